"""scripts.deploy.jar_libraries on the installed wheel's jar and on small made-up jars."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from scripts.deploy import jar_libraries
from scripts.deploy.jar_libraries import Library, libraries


def versions(found: list[Library]) -> dict[str, str]:
    return {library.name.split(" (")[0]: library.version for library in found}


def test_the_installed_jar_bundles_netty_4_1_53_and_log4j_2_17_1():
    """TorchServe 0.12.0's frontend: what issue 31 and the security doc say it bundles."""
    found = libraries(jar_libraries.installed_jar())
    by_name = versions(found)
    assert by_name["io.netty"] in ("4.1.53.Final", "2.0.34.Final")
    assert any(lib.version == "4.1.53.Final" and lib.name.startswith("io.netty (") for lib in found)
    assert by_name["org.apache.logging.log4j:log4j-core"] == "2.17.1"
    assert by_name["org.yaml:snakeyaml"].startswith("2.x")
    assert by_name["com.google.code.gson:gson"] == "not recorded in the jar"


def test_a_jar_without_metadata_is_read_from_its_classes(tmp_path: Path):
    jar = tmp_path / "old.jar"
    with zipfile.ZipFile(jar, "w") as archive:
        archive.writestr("org/yaml/snakeyaml/LoaderOptions.class", b"")
        archive.writestr("META-INF/io.netty.versions.properties",
                         "netty-common.version=4.1.108.Final\n")  # fmt: skip
    by_name = versions(libraries(jar))
    assert by_name == {"io.netty": "4.1.108.Final",
                       "org.yaml:snakeyaml": "1.x (LoaderOptions, no TagInspector)"}  # fmt: skip


def test_cli_prints_a_table(capsys: pytest.CaptureFixture[str], tmp_path: Path):
    assert jar_libraries.main([]) == 0
    out = capsys.readouterr().out
    assert "| io.netty (" in out and "| 4.1.53.Final |" in out
    assert jar_libraries.main(["--jar", str(tmp_path / "none.jar")]) == 1
