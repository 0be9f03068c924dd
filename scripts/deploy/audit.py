"""`make audit`: the locked Python dependencies (docker/constraints.txt) against published
advisories, with pip-audit, and the Java libraries bundled in TorchServe's jar.

pip-audit answers "No known vulnerabilities found" and exits 0 even when it could look up no
package at all (no route to its advisory service: every package "not found on PyPI").  This
wrapper counts what was really checked and says so:

- exit 1: at least one package was checked and has a known advisory;
- exit 0: nothing found among the packages checked, or nothing could be checked (said loudly;
  `--strict` makes that exit 3, for a CI that must check).

TorchServe's frontend jar has no Python advisory feed: its libraries are printed for a person
to match (docs/security-and-reliability.md keeps the known ones).

    .venv/bin/python -m scripts.deploy.audit
    .venv/bin/python -m scripts.deploy.audit --strict --service osv
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from scripts.deploy import jar_libraries
from scripts.registry import ROOT

CONSTRAINTS = ROOT / "docker" / "constraints.txt"
FOUND, NOT_CHECKED = 1, 3


@dataclass
class Audit:
    """What pip-audit could check: vulnerable packages, clean ones, and those it could not."""

    vulnerable: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    clean: list[str] = field(default_factory=list)
    unchecked: dict[str, str] = field(default_factory=dict)  # package: why
    error: str = ""  # pip-audit itself failed (no JSON)


def parse(report: dict[str, Any]) -> Audit:
    """pip-audit's JSON report (`--format json`) sorted into checked and unchecked."""
    audit = Audit()
    for dependency in report.get("dependencies", []):
        name = f"{dependency['name']}=={dependency.get('version', '?')}"
        if "skip_reason" in dependency:
            audit.unchecked[dependency["name"]] = dependency["skip_reason"]
        elif dependency.get("vulns"):
            audit.vulnerable[name] = dependency["vulns"]
        else:
            audit.clean.append(name)
    return audit


def run_pip_audit(constraints: Path, service: str) -> Audit:
    """pip-audit over the pinned file, without resolving or installing anything."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "report.json"
        command = [sys.executable, "-m", "pip_audit", "-r", str(constraints), "--no-deps",
                   "--disable-pip", "--progress-spinner", "off", "--vulnerability-service",
                   service, "--format", "json", "--output", str(out)]  # fmt: skip
        result = subprocess.run(command, capture_output=True, text=True, timeout=900)
        if not out.exists() or not out.read_text(encoding="utf-8").strip():
            lines = (result.stderr or result.stdout).strip().splitlines()
            return Audit(error=lines[-1] if lines else f"pip-audit exited {result.returncode}")
        return parse(json.loads(out.read_text(encoding="utf-8")))


def report(audit: Audit, constraints: Path, service: str) -> list[str]:
    """What a person reads: the verdict first, then the details."""
    checked = len(audit.clean) + len(audit.vulnerable)
    total = checked + len(audit.unchecked)
    if audit.error:
        return [f"NOT CHECKED: pip-audit could not run against {service}: {audit.error}"]
    lines = [f"{constraints}: {checked} of {total} pinned packages checked against {service}"]
    if checked == 0:
        lines[0] = (f"NOT CHECKED: none of the {total} packages of {constraints} could be looked "
                    f"up on {service} (no route to the advisory service from here?); the audit "
                    "means nothing until it can: run it where the service is reachable")  # fmt: skip
    elif audit.unchecked:
        lines.append(f"NOT CHECKED ({len(audit.unchecked)}): {', '.join(sorted(audit.unchecked))}")
    for name, vulns in sorted(audit.vulnerable.items()):
        for vuln in vulns:
            fixed = ", ".join(vuln.get("fix_versions", [])) or "no fixed version"
            aliases = ", ".join(vuln.get("aliases", []))
            lines.append(f"VULNERABLE {name}: {vuln['id']} ({aliases}); fixed in {fixed}")
    if checked and not audit.vulnerable:
        lines.append(f"no known advisory for the {checked} packages checked")
    return lines


def exit_code(audit: Audit, strict: bool) -> int:
    """1 where a checked package has an advisory; 3 with --strict where any was not checked."""
    if audit.vulnerable:
        return FOUND
    if strict and (audit.error or audit.unchecked):
        return NOT_CHECKED
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--constraints", type=Path, default=CONSTRAINTS)
    parser.add_argument("--service", choices=["pypi", "osv"], default="pypi",
                        help="pip-audit's advisory source (default: PyPI's JSON API)")
    parser.add_argument("--strict", action="store_true",
                        help=f"exit {NOT_CHECKED} when some package could not be checked")
    parser.add_argument("--no-jar", action="store_true", help="skip the Java libraries table")
    args = parser.parse_args(argv)
    audit = run_pip_audit(args.constraints, args.service)
    print("\n".join(report(audit, args.constraints, args.service)))
    if not args.no_jar:
        print("\nJava libraries in TorchServe's jar (no feed: match them against advisories by "
              "hand; the known ones: docs/security-and-reliability.md):\n")  # fmt: skip
        jar_libraries.main([])
    return exit_code(audit, args.strict)


if __name__ == "__main__":
    sys.exit(main())
