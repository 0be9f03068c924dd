"""Two builds of one model at once must not take each other's files.

Before: torch-model-archiver stages an archive's files in $TMPDIR/<model name> and deletes
whatever is there first, so a build of sentiment_bert beside another (a test run beside a
measurement) failed with "No such file or directory: '/tmp/sentiment_bert/metadata.json'".
Each build now gives the archiver its own TMPDIR.
"""

from __future__ import annotations

import tempfile
import uuid
from pathlib import Path

from scripts.packaging.build_archive import build_archive
from scripts.registry import MODELS


def test_a_build_leaves_the_shared_tmpdir_alone(random_bert_dir: Path, tmp_path: Path):
    name = f"concurrent_{uuid.uuid4().hex[:8]}"
    other_build = Path(tempfile.gettempdir()) / name  # where another build of `name` stages
    other_build.mkdir()
    try:
        (other_build / "metadata.json").write_text("{}")
        mar = build_archive(MODELS["sentiment_bert"], random_bert_dir, tmp_path, model_name=name,
                            runtime="torch")  # fmt: skip
        assert mar.exists() and (other_build / "metadata.json").exists()
    finally:
        for item in other_build.iterdir():
            item.unlink()
        other_build.rmdir()
