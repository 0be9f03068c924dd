"""The systemd units (deploy/systemd/): read statically always, `systemd-analyze verify`d where
it is installed.  Paths in the units assume /opt/nsmc-sentiment; verify needs the commands to
exist, so it checks a copy pointed at this checkout, as an installer would write it."""

from __future__ import annotations

import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from scripts.ops.server import main as server_main
from scripts.ops.server import read_properties
from scripts.registry import ROOT
from tests.conftest import missing
from tests.systemd_units import INSTALLED, KEYS, SERVER, UNITS


def test_server_starts_at_boot_unprivileged_and_restarts():
    service = SERVER["Service"]
    assert service["User"] not in ("root", "0") and service["Group"] not in ("root", "0")
    assert service["Restart"] in ("on-failure", "always")
    assert SERVER["Install"]["WantedBy"] == "multi-user.target"
    assert "StandardOutput" not in service  # the default: the journal
    command = shlex.split(service["ExecStart"])
    assert command[0] == f"{INSTALLED}/.venv/bin/python" and command[1:] == [
        "-m", "scripts.ops.server", "foreground"]  # fmt: skip
    assert service["WorkingDirectory"] == INSTALLED


def test_keys_are_renewed_beside_the_server():
    assert "nsmc-sentiment-keys.service" in SERVER["Unit"]["Wants"]
    assert KEYS["Unit"]["PartOf"] == "nsmc-sentiment.service"
    service = KEYS["Service"]
    assert service["User"] == SERVER["Service"]["User"] and service["Restart"] == "always"
    command = shlex.split(service["ExecStart"])
    assert command[1:4] == ["-m", "sentiment_client.renewer", "watch"]
    options = dict(zip(command[4::2], command[5::2]))
    assert options["--key-file"] == f"{INSTALLED}/run/key_file.json"  # where `foreground` runs
    management = read_properties(ROOT / "config.properties")["management_address"]
    assert options["--management-url"] == management


def test_foreground_is_a_server_command(capsys):
    with pytest.raises(SystemExit) as usage:
        server_main(["--help"])
    assert usage.value.code == 0 and "{up,stop,status,foreground}" in capsys.readouterr().out


def test_units_pass_systemd_analyze_verify(tmp_path: Path):
    if shutil.which("systemd-analyze") is None:
        missing("no systemd-analyze", "apt-get install systemd")
    for path in UNITS.glob("*.service"):
        text = path.read_text(encoding="utf-8").replace(INSTALLED, str(ROOT))
        (tmp_path / path.name).write_text(text, encoding="utf-8")
    result = subprocess.run(["systemd-analyze", "verify", *sorted(map(str, tmp_path.iterdir()))],
                            capture_output=True, text=True, timeout=60)  # fmt: skip
    assert result.returncode == 0 and not result.stdout + result.stderr, result.stderr
