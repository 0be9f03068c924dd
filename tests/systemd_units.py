"""The project's systemd units (deploy/systemd/) read as systemd reads their keys, for the unit
tests (tests/e2e/test_systemd.py) and the image's cross-checks (tests/e2e/test_deploy_files.py)."""

from __future__ import annotations

from scripts.registry import ROOT

UNITS = ROOT / "deploy" / "systemd"
INSTALLED = "/opt/nsmc-sentiment"  # where the units expect the checkout


def unit(name: str) -> dict[str, dict[str, str]]:
    """{section: {key: value}} of a unit file (the last value of a repeated key wins)."""
    sections: dict[str, dict[str, str]] = {}
    current = sections.setdefault("", {})
    for line in (UNITS / name).read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
        else:
            key, _, value = line.partition("=")
            current[key.strip()] = value.strip()
    return sections


SERVER, KEYS = unit("nsmc-sentiment.service"), unit("nsmc-sentiment-keys.service")
