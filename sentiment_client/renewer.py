"""Keep a TorchServe's keys valid (`watch`), renew them now, or show when they expire.

The key file and the renewal are sentiment_client/keys.py; this is their command line, run
by `make serve` (scripts/ops/server.py), the image's entrypoint and the systemd unit.

    python -m sentiment_client.renewer show  --key-file run/key_file.json
    python -m sentiment_client.renewer renew --key-file run/key_file.json \\
        --management-url http://127.0.0.1:8081 inference management
    python -m sentiment_client.renewer watch --key-file run/key_file.json \\
        --management-url http://127.0.0.1:8081 --pid-file run/renewer.pid
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Sequence

from sentiment_client.keys import APIS, KeyFile, KeyFileError, Renewer, RenewError, renew


def write_pid_file(path: Path) -> None:
    path.write_text(f"{os.getpid()}\n", encoding="utf-8")


def stop_after(pid_file: Path, stop: threading.Event, every: float = 2.0) -> None:
    """Set `stop` once the process whose pid `pid_file` holds has gone (or the file has)."""
    while not stop.wait(every):
        try:
            os.kill(int(pid_file.read_text().strip()), 0)
        except (OSError, ValueError):
            print(f"{pid_file}: the server has gone; stopping", flush=True)
            stop.set()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=["show", "renew", "watch"])
    parser.add_argument("apis", nargs="*", metavar="{inference,management}",
                        help="renew: the keys to renew (default: both)")
    parser.add_argument("--key-file", default=os.environ.get("TS_KEY_FILE"),
                        help="default: $TS_KEY_FILE, else run/key_file.json")  # fmt: skip
    parser.add_argument(
        "--management-url", default=os.environ.get("TS_MANAGEMENT_URL", "http://127.0.0.1:8081")
    )
    parser.add_argument("--poll", type=float, default=30.0, help="watch: longest sleep (s)")
    parser.add_argument("--pid-file", type=Path, help="watch: write the process id here")
    parser.add_argument("--server-pid-file", type=Path,
                        help="watch: stop once the process in this file is gone (make serve's "
                        "TorchServe), so a server killed without `make stop` leaves no renewer")
    args = parser.parse_args(argv)
    if set(args.apis) - set(APIS):
        parser.error(f"keys are {' and '.join(APIS)}, not {' '.join(args.apis)}")
    key_file = KeyFile(args.key_file)
    try:
        if args.command == "show":  # expiry only: keys are not for terminals and logs
            keys = key_file.current()
            if not keys.keys:
                print(key_file.why_refused("inference"), file=sys.stderr)
                return 2
            for api, expiry in sorted(keys.expires.items()):
                print(f"{api}\texpires {expiry:%Y-%m-%d %H:%M:%S} UTC")
        elif args.command == "renew":
            for api in args.apis or APIS:
                keys = renew(key_file, args.management_url, api)
                print(f"renewed the {api} key in {key_file.path}; "
                      f"it expires {keys.expires[api]:%Y-%m-%d %H:%M:%S} UTC")  # fmt: skip
        else:
            if args.pid_file:
                write_pid_file(args.pid_file)
            stop = threading.Event()
            signal.signal(signal.SIGTERM, lambda *_: stop.set())
            if args.server_pid_file:
                threading.Thread(target=stop_after, args=(args.server_pid_file, stop),
                                 daemon=True).start()  # fmt: skip
            stamp = lambda message: print(  # noqa: E731
                f"{datetime.now(timezone.utc):%Y-%m-%dT%H:%M:%SZ} {message}", flush=True
            )
            try:
                Renewer(key_file, args.management_url, poll=args.poll, log=stamp).run(stop)
            except KeyboardInterrupt:
                pass
            finally:
                if args.pid_file:
                    args.pid_file.unlink(missing_ok=True)
    except (KeyFileError, RenewError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2 if isinstance(err, KeyFileError) else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
