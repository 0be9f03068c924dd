"""scripts.deploy.audit's verdicts on pip-audit's JSON reports (no network)."""

from __future__ import annotations

from pathlib import Path

from scripts.deploy.audit import FOUND, NOT_CHECKED, exit_code, parse, report

WHERE = Path("docker/constraints.txt")
SKIPPED = {"name": "idna", "skip_reason": "Dependency not found on PyPI and could not be audited"}
CLEAN = {"name": "requests", "version": "2.34.2", "vulns": []}
VULNERABLE = {"name": "netty-py", "version": "4.1.53", "vulns": [
    {"id": "PYSEC-1", "aliases": ["CVE-2024-29025"], "fix_versions": ["4.1.108"]}]}  # fmt: skip


def test_nothing_looked_up_says_not_checked_and_passes_unless_strict():
    """What happens here: every package 'not found' (pip-audit itself says 'No known ...')."""
    audit = parse({"dependencies": [SKIPPED, SKIPPED | {"name": "attrs"}]})
    lines = report(audit, WHERE, "pypi")
    assert lines[0].startswith("NOT CHECKED: none of the 2 packages") and len(lines) == 1
    assert exit_code(audit, strict=False) == 0
    assert exit_code(audit, strict=True) == NOT_CHECKED


def test_a_checked_advisory_fails_and_names_its_fix():
    audit = parse({"dependencies": [VULNERABLE, CLEAN, SKIPPED]})
    lines = report(audit, WHERE, "osv")
    assert lines[0] == f"{WHERE}: 2 of 3 pinned packages checked against osv"
    assert "NOT CHECKED (1): idna" in lines
    assert "VULNERABLE netty-py==4.1.53: PYSEC-1 (CVE-2024-29025); fixed in 4.1.108" in lines
    assert exit_code(audit, strict=False) == FOUND


def test_clean_packages_pass_and_a_failed_run_is_not_a_pass_under_strict():
    audit = parse({"dependencies": [CLEAN]})
    assert report(audit, WHERE, "pypi")[-1] == "no known advisory for the 1 packages checked"
    assert exit_code(audit, strict=True) == 0
    failed = parse({})
    failed.error = "ConnectionError: no route"
    assert report(failed, WHERE, "pypi")[0].startswith("NOT CHECKED: pip-audit could not run")
    assert exit_code(failed, strict=False) == 0 and exit_code(failed, strict=True) == NOT_CHECKED
