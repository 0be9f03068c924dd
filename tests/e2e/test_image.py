"""`make image-test`: the image built (buildah, local Debian base) and run here, answering
(scripts/deploy/image_test.py, docs/deploy.md).  13 minutes on a fresh machine, a minute with
every layer cached (measured here), so it runs only with buildah installed and NSMC_IMAGE_TEST=1:
not part of a plain `make test`, and not in CI until CI asks for it."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from scripts.registry import ROOT
from tests.conftest import missing


@pytest.mark.slow
def test_make_image_test_builds_and_the_container_answers():
    if os.environ.get("NSMC_IMAGE_TEST") != "1":
        missing("image build and run not asked for (minutes)",
                "NSMC_IMAGE_TEST=1 to run make image-test", ci_has_it=False)  # fmt: skip
    if shutil.which("buildah") is None:
        missing("no buildah", "apt-get install buildah debootstrap", ci_has_it=False)
    result = subprocess.run(["make", "image-test"], cwd=ROOT, capture_output=True, text=True,
                            timeout=3600)  # fmt: skip
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert "HEALTHCHECK healthy" in result.stdout
