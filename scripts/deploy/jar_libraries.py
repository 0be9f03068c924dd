"""The Java libraries bundled in TorchServe's frontend jar, and their versions, read from the jar.

TorchServe is archived (0.12.0 is the last release): nobody will update what its
`model-server.jar` bundles, so a user has to know what is in it to match new advisories.  The
shaded jar keeps no META-INF/maven/*/pom.properties; versions come from what it does keep:
netty's `META-INF/io.netty.versions.properties`, the Maven `META-INF/DEPENDENCIES` list
(log4j, slf4j), a library's own version class, or a class only a release line has.

    .venv/bin/python -m scripts.deploy.jar_libraries            # markdown table
    .venv/bin/python -m scripts.deploy.jar_libraries --jar path/to/model-server.jar
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

NETTY_VERSIONS = "META-INF/io.netty.versions.properties"
DEPENDENCIES = "META-INF/DEPENDENCIES"


@dataclass(frozen=True)
class Library:
    """One bundled library: its name, its version as far as the jar tells, and how it tells."""

    name: str
    version: str
    source: str


def installed_jar() -> Path:
    """The frontend jar of the installed torchserve wheel (found, not imported: no torch)."""
    spec = importlib.util.find_spec("ts")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("torchserve is not installed here: pass --jar")
    return Path(spec.submodule_search_locations[0]) / "frontend" / "model-server.jar"


def netty(jar: zipfile.ZipFile) -> list[Library]:
    """netty's own artifacts (the gRPC ports use gRPC's shaded netty, not listed there)."""
    text = jar.read(NETTY_VERSIONS).decode("utf-8")
    versions = sorted(set(re.findall(r"^(netty-[\w-]+)\.version=(\S+)$", text, re.MULTILINE)))
    by_version: dict[str, list[str]] = {}
    for artifact, version in versions:
        by_version.setdefault(version, []).append(artifact)
    return [Library(f"io.netty ({', '.join(names[:3])}{', ...' if len(names) > 3 else ''}; "
                    f"{len(names)} artifact(s))", version, NETTY_VERSIONS)
            for version, names in sorted(by_version.items())]  # fmt: skip


def maven_dependencies(jar: zipfile.ZipFile) -> list[Library]:
    """group:artifact:jar:version lines of META-INF/DEPENDENCIES (log4j, slf4j)."""
    text = jar.read(DEPENDENCIES).decode("utf-8", errors="replace")
    found = sorted(set(re.findall(r"\b([\w.-]+:[\w.-]+):jar:([\w.-]+)", text)))
    return [Library(name, version, DEPENDENCIES) for name, version in found]


def fingerprint(names: set[str], library: str, marks: Sequence[tuple[str, str]]) -> Library:
    """A version line told by the first class present of `marks` ((class path, version))."""
    for path, version in marks:
        if path in names:
            return Library(library, version, f"{path} present")
    return Library(library, "older than " + marks[-1][1], f"none of {[p for p, _ in marks]}")


def present(names: set[str], library: str, package: str) -> Library | None:
    """A library whose version the shaded jar does not record: listed, version unknown."""
    if not any(name.startswith(package) for name in names):
        return None
    return Library(library, "not recorded in the jar", f"{package} classes present")


def libraries(jar_path: Path) -> list[Library]:
    """Every library this module can name in `jar_path`, with the best version it can read."""
    with zipfile.ZipFile(jar_path) as jar:
        names = set(jar.namelist())
        found = netty(jar) if NETTY_VERSIONS in names else []
        found += maven_dependencies(jar) if DEPENDENCIES in names else []
    found.append(fingerprint(names, "org.yaml:snakeyaml", [
        ("org/yaml/snakeyaml/inspector/TagInspector.class", "2.x (TagInspector: global tags "
         "refused by default)"),
        ("org/yaml/snakeyaml/LoaderOptions.class", "1.x (LoaderOptions, no TagInspector)"),
    ]))  # fmt: skip
    unknown: list[Callable[[], Library | None]] = [
        lambda: present(names, "com.google.code.gson:gson", "com/google/gson/"),
        lambda: present(names, "io.grpc (with its shaded netty)", "io/grpc/"),
        lambda: present(names, "com.google.protobuf:protobuf-java", "com/google/protobuf/"),
        lambda: present(names, "com.google.guava:guava", "com/google/common/"),
        lambda: present(names, "org.apache.commons (io, cli, compress)", "org/apache/commons/"),
        lambda: present(names, "io.prometheus:simpleclient", "io/prometheus/"),
        lambda: present(names, "org.codehaus.groovy / org.apache.groovy", "org/codehaus/groovy/"),
        lambda: present(names, "org.junit / org.testng (test libraries)", "org/junit/"),
    ]
    return found + [library for make in unknown if (library := make()) is not None]


def table(found: Sequence[Library]) -> str:
    """A markdown table: library, version, where the version was read."""
    rows = ["| library | version | read from |", "|---|---|---|"]
    rows += [f"| {lib.name} | {lib.version} | {lib.source} |" for lib in found]
    return "\n".join(rows)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jar", type=Path, help="default: the installed torchserve's jar")
    args = parser.parse_args(argv)
    try:
        jar = args.jar or installed_jar()
    except FileNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    if not jar.is_file():
        print(f"error: no jar at {jar}", file=sys.stderr)
        return 1
    print(f"{jar.name} ({jar.stat().st_size / 1e6:.1f} MB):\n")
    print(table(libraries(jar)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
