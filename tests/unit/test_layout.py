"""The layout a newcomer relies on: one model list, and an import graph without cycles,
upward imports or project imports hidden in functions (scripts/import_graph.py)."""

from __future__ import annotations

import re

import yaml

from handlers.contract import MAX_TEXTS, Limits
from scripts import import_graph
from scripts.import_graph import Import, violations
from scripts.ops.server import read_properties
from scripts.registry import ALIASES, DEFAULT_MODELS, MODELS, ROOT, model_name
from sentiment_client.api import MAX_TEXTS_PER_REQUEST, MODEL_ALIASES


def test_the_project_keeps_its_layers():
    modules, edges = import_graph.collect()
    assert {"scripts.registry", "scripts.ops.server", "benchmarks.bench"} <= modules
    assert violations(modules, edges) == []


def test_each_rule_is_enforced():
    modules = {"scripts.registry", "scripts.ops.server", "scripts.training.train_fast"}
    edges = [
        Import("scripts.registry", "scripts.ops.server", 3, False),  # upward
        Import("scripts.training.train_fast", "scripts.registry", 9, True),  # hidden
        Import("scripts.ops.server", "scripts.registry.MODELS", 5, False),  # fine
    ]
    found = violations(modules, edges)
    assert any("a higher layer" in v and v.startswith("scripts.registry:3") for v in found)
    assert any("inside a function" in v and "train_fast:9" in v for v in found)
    assert any(v.startswith("import cycle: scripts.ops.server") for v in found)
    assert len(found) == 3


def test_every_model_has_its_files_and_one_name_everywhere():
    for spec in MODELS.values():
        assert (ROOT / "handlers" / spec.handler).is_file() and spec.config_file.is_file()
        assert set(spec.components) <= set(MODELS)
        assert model_name(spec.alias) == spec.name and model_name(spec.name) == spec.name
    # the installable client carries the short forms itself (it installs without the checkout)
    assert MODEL_ALIASES == ALIASES
    served = read_properties(ROOT / "docker" / "config.properties")["load_models"]
    assert served == ",".join(f"{name}={name}.mar" for name in DEFAULT_MODELS)
    configmap = yaml.safe_load((ROOT / "deploy/k8s/configmap.yaml").read_text())
    assert f"load_models={served}" in configmap["data"]["config.properties"]


def test_request_limit_is_one_number_everywhere():
    """The handlers' MAX_TEXTS is every archive's max_texts and the client's batch size (the
    client carries a copy: it installs without the checkout)."""
    assert Limits().max_texts == MAX_TEXTS_PER_REQUEST == MAX_TEXTS
    for spec in MODELS.values():
        handler = yaml.safe_load(spec.config_file.read_text(encoding="utf-8"))["handler"]
        assert handler["max_texts"] == MAX_TEXTS, spec.config_file


def test_readme_layout_matches_the_tree():
    """README's "Where everything lives" names every stage's modules and only real folders."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = readme.split("## Where everything lives", 1)[1].split("```")[1]
    folders = [line.split()[0] for line in block.splitlines() if line and not line[0].isspace()]
    for folder in folders:
        for name in folder.rstrip(",").split(","):
            if name.endswith("/"):
                assert (ROOT / name).is_dir(), name
    for package in ("scripts", "benchmarks"):
        for module in (ROOT / package).rglob("*.py"):
            if module.stem != "__init__" and module.stem != "__main__":
                assert module.stem in block, f"{module.relative_to(ROOT)} is not in README's layout"


def test_no_test_module_imports_another():
    """What several test modules share lives in a helper module under tests/ (tests/served.py,
    tests/cascade_math.py, ...): a test module imported by another runs its module-level code
    twice and ties the two files' fixtures and names together."""
    imports = re.compile(r"^\s*(?:from|import) tests(?:\.\w+)*\.test_\w+", re.M)
    offenders = [str(path.relative_to(ROOT)) for path in sorted((ROOT / "tests").rglob("test_*.py"))
                 if imports.search(path.read_text(encoding="utf-8"))]  # fmt: skip
    assert not offenders, f"move what they share into a helper module under tests/: {offenders}"
