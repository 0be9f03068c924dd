"""`make image`: build the project's image with Docker where a user has it, else with buildah
on a local Debian base (no registry reachable here, docs/deploy.md "Building without Docker").

The published Dockerfile names `python:3.11.11-slim-bookworm`; its `BASE` build argument lets
this machine use a bookworm root file system from `debootstrap --variant=minbase` instead,
imported into buildah as `localhost/nsmc-base:bookworm` and cached as a tarball under
$NSMC_IMAGE_CACHE (default /var/cache/nsmc-image), rebuilt when missing.  torch comes from
the CPU wheel on this machine's disk (served on 127.0.0.1 as a one-package index) where there
is one, else from PyPI (its CUDA build: +3 GB); download.pytorch.org is not reachable here.

    .venv/bin/python -m scripts.deploy.image build           # make image
    .venv/bin/python -m scripts.deploy.image base --rebuild  # the local base only, afresh
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import http.server
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from scripts.registry import ROOT

IMAGE = "nsmc-sentiment:cpu"
OFFICIAL_BASE = "python:3.11.11-slim-bookworm"
LOCAL_BASE = "localhost/nsmc-base:bookworm"
CACHE = Path(os.environ.get("NSMC_IMAGE_CACHE", "/var/cache/nsmc-image"))
MIRROR = os.environ.get("DEBIAN_MIRROR", "http://deb.debian.org/debian")
# What the Dockerfile's stages expect of python:3.11-slim: `python`, `pip`, venv; certificates
# for pip.  The JRE is left to the Dockerfile's own apt-get, so that its line is exercised.
BASE_PACKAGES = ("python3", "python3-venv", "python3-pip", "python-is-python3", "ca-certificates")
# The official image's environment that the stages rely on: UTF-8 (the JVM's default charset
# is ASCII without it), and pip allowed outside a venv (Debian's PEP 668 marker forbids it;
# the build stage installs into the system Python as it does on python:slim).
BASE_ENV = ("LANG=C.UTF-8", "PIP_BREAK_SYSTEM_PACKAGES=1")
PYPI = "https://pypi.org/simple"
INDEX_PORT = 47831  # the local torch index's port, fixed where free (index_server)
# Certificate authorities this machine adds (here: the egress proxy's in front of PyPI); the
# local base trusts them too, or pip in the build cannot reach PyPI.
LOCAL_CAS = Path("/usr/local/share/ca-certificates")


class BuildError(RuntimeError):
    """A step of the build failed; the message names it."""


def run(command: Sequence[str], echo: bool = True, **kwargs) -> subprocess.CompletedProcess:
    """Run a command, echoed first (a build log should say what ran), failing loudly."""
    if echo:
        print("+ " + " ".join(command), flush=True)
    result = subprocess.run(list(command), **kwargs)
    if result.returncode != 0:
        stderr = result.stderr.strip() if isinstance(result.stderr, str) else ""
        raise BuildError(f"{' '.join(command[:2])} failed ({result.returncode}) {stderr}")
    return result


def output(command: Sequence[str]) -> str:
    """A query's answer (not echoed: it changes nothing)."""
    return run(command, echo=False, capture_output=True, text=True).stdout.strip()


# ------------------------------------------------------------------ engine


def docker_usable() -> bool:
    """A Docker CLI that reaches an engine (a CLI alone cannot build)."""
    return bool(shutil.which("docker")) and subprocess.run(
        ["docker", "info"], capture_output=True).returncode == 0  # fmt: skip


def engine(preferred: str = "auto") -> str:
    """docker where it runs, else buildah; BuildError if neither."""
    if preferred in ("auto", "docker") and docker_usable():
        return "docker"
    if preferred in ("auto", "buildah") and shutil.which("buildah"):
        return "buildah"
    raise BuildError(f"no usable {preferred if preferred != 'auto' else 'docker or buildah'}: "
                     "apt-get install buildah debootstrap (docs/deploy.md)")  # fmt: skip


def image_exists(name: str) -> bool:
    return subprocess.run(["buildah", "inspect", "--type", "image", name],
                          capture_output=True).returncode == 0  # fmt: skip


# ------------------------------------------------------------------ local base


def base_key() -> str:
    """Names the cached base after what is in it: another package list, another tarball."""
    recipe = "\n".join(["bookworm", "minbase", MIRROR, *BASE_PACKAGES, *BASE_ENV])
    return hashlib.sha256(recipe.encode()).hexdigest()[:12]


def base_tarball(cache: Path = CACHE) -> Path:
    return cache / f"bookworm-minbase-{base_key()}.tar"


def debootstrap(rootfs: Path) -> None:
    """A bookworm root file system with BASE_PACKAGES, without apt's downloads and lists
    (python:slim ships without them too)."""
    shutil.rmtree(rootfs, ignore_errors=True)
    run(["debootstrap", "--variant=minbase", f"--include={','.join(BASE_PACKAGES)}",
         "bookworm", str(rootfs), MIRROR])  # fmt: skip
    for leftover in ("var/cache/apt/archives", "var/lib/apt/lists"):
        for path in (rootfs / leftover).glob("*"):
            if path.is_file():
                path.unlink()


def pack(rootfs: Path, tarball: Path) -> None:
    """The root file system as a tarball, owners and modes kept (written aside, then renamed,
    so an interrupted run never leaves a half tarball that looks cached)."""
    partial = tarball.with_suffix(".partial")
    run(["tar", "--numeric-owner", "--xattrs", "-C", str(rootfs), "-cf", str(partial), "."])
    partial.replace(tarball)


def import_tarball(tarball: Path, name: str = LOCAL_BASE) -> None:
    """A buildah image from the tarball: unpacked into a scratch container, committed."""
    container = output(["buildah", "from", "scratch"])
    try:
        mount = output(["buildah", "mount", container])
        run(["tar", "--numeric-owner", "--xattrs", "-C", mount, "-xf", str(tarball)])
        trust_local_cas(Path(mount))
        env = [arg for pair in BASE_ENV for arg in ("--env", pair)]
        run(["buildah", "config", *env, "--cmd", "python3", container])
        run(["buildah", "commit", "--quiet", container, name], capture_output=True)
    finally:
        subprocess.run(["buildah", "rm", container], capture_output=True)


def trust_local_cas(rootfs: Path) -> None:
    """This machine's own certificate authorities into the base's bundle (never into the
    tarball or the repository: they belong to this machine)."""
    cas = sorted(LOCAL_CAS.glob("*.crt"))
    if not cas:
        return
    target = rootfs / LOCAL_CAS.relative_to("/")
    target.mkdir(parents=True, exist_ok=True)
    for ca in cas:
        shutil.copyfile(ca, target / ca.name)
    run(["chroot", str(rootfs), "update-ca-certificates"], capture_output=True)


def ensure_base(cache: Path = CACHE, rebuild: bool = False) -> float:
    """The local base image, from the cached tarball or debootstrapped afresh; seconds spent."""
    started = time.monotonic()
    tarball = base_tarball(cache)
    if rebuild:
        tarball.unlink(missing_ok=True)
    elif image_exists(LOCAL_BASE) and tarball.exists():
        return 0.0
    if not tarball.exists():
        cache.mkdir(parents=True, exist_ok=True)
        rootfs = cache / "rootfs"
        debootstrap(rootfs)
        pack(rootfs, tarball)
        shutil.rmtree(rootfs)
    import_tarball(tarball)
    return time.monotonic() - started


# ------------------------------------------------------------------ torch from this disk


def pinned(package: str) -> str:
    """The version docker/constraints.txt pins for `package`."""
    for line in (ROOT / "docker" / "constraints.txt").read_text(encoding="utf-8").splitlines():
        name, _, version = line.partition("==")
        if name.strip().lower() == package:
            return version.strip()
    raise BuildError(f"{package} is not pinned in docker/constraints.txt")


def local_torch_wheel() -> Path | None:
    """The CPU wheel of the pinned torch in pip's find-links directories, if this machine has it."""
    version = pinned("torch")
    dirs = os.environ.get("PIP_FIND_LINKS", "/opt/wheels").split()
    for directory in map(Path, dirs):
        for wheel in sorted(directory.glob(f"torch-{version}+cpu-cp311-*.whl")):
            return wheel
    return None


def wheel_index(wheel: Path, root: Path) -> None:
    """A PEP 503 index of one project: <root>/torch/index.html linking the wheel."""
    (root / "torch").mkdir(parents=True)
    (root / "torch" / wheel.name).symlink_to(wheel)
    (root / "torch" / "index.html").write_text(
        f'<html><body><a href="{wheel.name}">{wheel.name}</a></body></html>\n', encoding="utf-8")


@contextmanager
def torch_index(wheel: Path | None) -> Iterator[str]:
    """The index URL for the Dockerfile's TORCH_INDEX_URL: the wheel served on 127.0.0.1 for
    the build's duration (buildah's chroot isolation shares this machine's network), or PyPI."""
    if wheel is None:
        yield PYPI
        return
    with tempfile.TemporaryDirectory(prefix="torch-index-") as root:
        wheel_index(wheel, Path(root))
        handler = functools.partial(QuietHandler, directory=root)
        server = index_server(handler)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_port}/"
        finally:
            server.shutdown()
            server.server_close()


def index_server(handler: Callable[..., Any]) -> http.server.HTTPServer:
    """On INDEX_PORT where free: the URL is a build argument, and another one each build would
    miss buildah's layer cache for every step that installs torch."""
    for port in (INDEX_PORT, 0):
        try:
            return http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
        except OSError:
            continue
    raise BuildError("no port for the torch index on 127.0.0.1")


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    """Serves the wheel without a log line per request in the build's output."""

    def log_message(self, format: str, *args) -> None:  # noqa: A002 (the base's signature)
        pass


# ------------------------------------------------------------------ the image


def nsmc_context() -> Path:
    """The NSMC files for the build stage: $NSMC_DIR, else the empty context (download)."""
    data = os.environ.get("NSMC_DIR")
    return Path(data).resolve() if data else ROOT / "docker" / "no-nsmc"


def build_command(tool: str, tag: str, build_args: dict[str, str],
                  target: str | None = None) -> list[str]:  # fmt: skip
    """`docker build` or `buildah build` of the Dockerfile, the nsmc context and the args."""
    args = [arg for key, value in build_args.items() for arg in ("--build-arg", f"{key}={value}")]
    args += ["--target", target] if target else []
    common = ["--build-context", f"nsmc={nsmc_context()}", *args, "-t", tag, str(ROOT)]
    if tool == "docker":
        return ["docker", "build", *common]
    # docker format: OCI images have no HEALTHCHECK; --layers: reuse steps between builds.
    return ["buildah", "build", "--isolation", "chroot", "--format", "docker", "--layers",
            *common]  # fmt: skip


# buildah 1.28 (Debian bookworm's) skips the stages it sees no use of, and it does not expand
# `FROM base-${VARIANT}`: base-cpu was skipped and the runtime stage then looked for an image of
# that name ("short-name base-cpu did not resolve").  Built first as its own target and tagged
# with the stage's name, it is found (BuildKit needs none of this).
RUNTIME_BASE = "base-cpu"


def build(tool: str = "auto", tag: str = IMAGE, cache: Path = CACHE) -> dict[str, float]:
    """Build the image; the seconds spent on the base and on the image."""
    tool = engine(tool)
    if tool == "docker":
        started = time.monotonic()
        run(build_command(tool, tag, {}))
        return {"base_s": 0.0, "image_s": time.monotonic() - started}
    base_s = ensure_base(cache)
    started = time.monotonic()
    with torch_index(local_torch_wheel()) as index:
        args = {"BASE": LOCAL_BASE, "TORCH_INDEX_URL": index}
        run(build_command(tool, f"localhost/{RUNTIME_BASE}", args, target=RUNTIME_BASE))
        run(build_command(tool, tag, args))
    return {"base_s": base_s, "image_s": time.monotonic() - started}


def image_size(tag: str = IMAGE) -> int:
    """Bytes of the image's layers as buildah stores them (uncompressed tars)."""
    inspected = json.loads(output(["buildah", "inspect", "--type", "image", tag]))
    return sum(layer["size"] for layer in json.loads(inspected["Manifest"])["layers"])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=["build", "base"])
    parser.add_argument("--engine", choices=["auto", "docker", "buildah"], default="auto")
    parser.add_argument("--tag", default=IMAGE)
    parser.add_argument("--cache", type=Path, default=CACHE)
    parser.add_argument("--rebuild", action="store_true", help="debootstrap the base afresh")
    args = parser.parse_args(argv)
    try:
        if args.command == "base":
            print(f"{LOCAL_BASE} ready in {ensure_base(args.cache, args.rebuild):.0f}s")
            return 0
        times = build(args.engine, args.tag, args.cache)
    except BuildError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    size = f", {image_size(args.tag) / 1e9:.2f} GB" if engine(args.engine) == "buildah" else ""
    print(f"{args.tag} built: base {times['base_s']:.0f}s, image {times['image_s']:.0f}s{size}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
