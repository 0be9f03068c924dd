"""model_store/defaults.json: the archive each model serves by default, so that a restart
serves the versions that served before it.

Written when a default changes (scripts.ops.manage set-default, scripts.ops.rollout); read
when an instance's config.properties is rendered (its load_models).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

DEFAULTS_FILE = "defaults.json"


@dataclass(frozen=True)
class DefaultVersions:
    """The recorded default archive of each model of one model store."""

    model_store: Path

    @property
    def path(self) -> Path:
        return self.model_store / DEFAULTS_FILE

    def recorded(self) -> dict[str, str]:
        """{model: archive file} as recorded; {} before any default changed."""
        if not self.path.exists():
            return {}
        return json.loads(self.path.read_text(encoding="utf-8"))

    def archive(self, name: str) -> str:
        """The archive a start loads for `name`: the last recorded default, else <name>.mar."""
        return self.recorded().get(name, f"{name}.mar")

    def record(self, name: str, archive: str) -> None:
        """Remember `archive` as the default of `name`, so that a restart serves it again."""
        defaults = {**self.recorded(), name: archive}
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(defaults, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        tmp.replace(self.path)  # atomic: a crash leaves the old or the new file, never half
