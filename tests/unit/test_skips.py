"""Skips: one helper (tests.conftest.missing), a CI that fails instead, and a run that ends by
counting them, so that `make test` by hand cannot pass quietly on a fraction of the suite."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from scripts.registry import ROOT
from tests.conftest import missing, skip_summary

# Every way pytest offers to skip, besides calling tests.conftest.missing.
OTHER_SKIPS = re.compile(r"pytest\.skip\(|\.skipif\(|mark\.skip\b|importorskip\(")


def test_missing_skips_by_hand_and_fails_under_ci(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="no wrk; apt-get install wrk"):
        missing("no wrk", "apt-get install wrk")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI must run every check"):
        missing("no wrk", "apt-get install wrk")


def test_what_ci_lacks_too_skips_there_and_says_so(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.skip.Exception, match=r"CI lacks it too"):
        missing("no docker compose", "install it", ci_has_it=False)


def test_summary_counts_each_reason_commonest_first():
    line = skip_summary(["no data; set NSMC_DIR", "no wrk; install", "no data; set NSMC_DIR"])
    assert line == "3 tests skipped: 2 x no data; set NSMC_DIR; 1 x no wrk; install"
    assert skip_summary(["no wrk; install"]) == "1 test skipped: 1 x no wrk; install"
    assert skip_summary([]) == "no test skipped"


def test_the_run_ends_with_the_count(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch):
    """The hook itself, in a run of its own: two skips through the helper, one line at the end."""
    monkeypatch.delenv("CI", raising=False)
    pytester.makeconftest("from tests.conftest import pytest_terminal_summary  # noqa: F401\n")
    pytester.makepyfile(
        "from tests.conftest import missing\n"
        "import pytest\n"
        "@pytest.mark.parametrize('n', [1, 2])\n"
        "def test_needs_wrk(n):\n"
        "    missing('no wrk', 'apt-get install wrk')\n"
        "def test_passes():\n"
        "    pass\n"
    )
    pytester.syspathinsert(ROOT)
    result = pytester.runpytest("-p", "no:cacheprovider", "-q")
    result.assert_outcomes(passed=1, skipped=2)
    result.stdout.fnmatch_lines(["2 tests skipped: 2 x no wrk; apt-get install wrk"])


def test_no_test_skips_another_way():
    """A bare pytest.skip or skipif would skip under CI too, and hide a check there."""
    offenders = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in sorted((ROOT / "tests").rglob("*.py"))
        if path.name not in ("conftest.py", "test_skips.py")
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if OTHER_SKIPS.search(line)
    ]
    assert not offenders, f"skip through tests.conftest.missing instead: {offenders}"
