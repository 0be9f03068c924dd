"""The image build and image test's pure parts (scripts/deploy/image.py, image_test.py):
command lines, the local torch index, the test config; the real build: tests/e2e/test_image.py."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import requests

from scripts.deploy import image, image_test
from scripts.ops.server import Ports, parse_properties, read_properties
from scripts.registry import ROOT

PORTS = Ports(18080, 18081, 18082, 17070, 17071, 19000)


def test_buildah_builds_the_dockerfile_with_the_local_base(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("NSMC_DIR", "/data/nsmc")
    command = image.build_command("buildah", "x:1", {"BASE": image.LOCAL_BASE})
    assert command[:4] == ["buildah", "build", "--isolation", "chroot"]
    assert "--layers" in command and command[command.index("--format") + 1] == "docker"
    assert f"BASE={image.LOCAL_BASE}" in command and "nsmc=/data/nsmc" in command
    assert command[-3:] == ["-t", "x:1", str(ROOT)]


def test_buildah_builds_the_runtime_base_stage_first():
    """buildah 1.28 skips `FROM base-${VARIANT}`'s stage: built as a target, named like it."""
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    variant = re.search(r"^ARG VARIANT=(\w+)$", dockerfile, re.MULTILINE).group(1)
    assert "FROM base-${VARIANT} AS runtime" in dockerfile
    assert image.RUNTIME_BASE == f"base-{variant}"
    assert f"FROM ${{BASE}} AS {image.RUNTIME_BASE}" in dockerfile
    command = image.build_command("buildah", "localhost/base-cpu", {}, target="base-cpu")
    assert command[command.index("--target") + 1] == "base-cpu"


def test_docker_builds_unchanged(monkeypatch: pytest.MonkeyPatch):
    """A Docker user's build names no local base: the Dockerfile's default applies."""
    monkeypatch.delenv("NSMC_DIR", raising=False)
    command = image.build_command("docker", image.IMAGE, {})
    assert command[:2] == ["docker", "build"] and "--build-arg" not in command
    assert f"nsmc={ROOT / 'docker' / 'no-nsmc'}" in command


def test_the_base_key_follows_its_recipe(monkeypatch: pytest.MonkeyPatch):
    key = image.base_key()
    monkeypatch.setattr(image, "BASE_PACKAGES", (*image.BASE_PACKAGES, "openjdk-17-jre-headless"))
    assert image.base_key() != key
    assert image.base_tarball(Path("/c")).name == f"bookworm-minbase-{image.base_key()}.tar"


def test_the_local_torch_wheel_is_the_pinned_one():
    """requirements.txt pins torch exactly; the wheel served must be that version's CPU build."""
    requirements = (ROOT / "requirements.txt").read_text(encoding="utf-8")
    assert f"torch=={image.pinned('torch')}\n" in requirements
    with pytest.raises(image.BuildError):
        image.pinned("no-such-package")


def test_the_wheel_index_is_served_on_loopback(tmp_path: Path):
    wheel = tmp_path / "torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl"
    wheel.write_bytes(b"wheel")
    with image.torch_index(wheel) as url:
        assert url.startswith("http://127.0.0.1:")
        page = requests.get(f"{url}torch/", timeout=5)
        assert wheel.name in page.text
        assert requests.get(f"{url}torch/{wheel.name}", timeout=5).content == b"wheel"
    with image.torch_index(None) as url:
        assert url == image.PYPI


def test_the_test_config_moves_only_the_listeners():
    shipped = (ROOT / "docker" / "config.properties").read_text(encoding="utf-8")
    moved = parse_properties(image_test.moved_properties(shipped, PORTS))
    original = read_properties(ROOT / "docker" / "config.properties")
    differing = {key for key in moved if moved[key] != original.get(key)}
    assert differing == {"inference_address", "management_address", "metrics_address",
                         "grpc_inference_port", "grpc_management_port"}  # fmt: skip
    assert moved["management_address"] == "http://127.0.0.1:18081"
    assert moved.keys() == original.keys()


def test_the_server_command_is_the_images_own_but_the_config():
    config = {"Entrypoint": ["sh", "/home/model-server/entrypoint.sh"],
              "Cmd": ["torchserve", "--start", "--ts-config",
                      "/home/model-server/config.properties",
                      "--model-store", "/home/model-server/model-store"]}  # fmt: skip
    command = image_test.server_command(config)
    assert command == ["sh", "/home/model-server/entrypoint.sh", "torchserve", "--start",
                       "--ts-config", image_test.TEST_CONFIG,
                       "--model-store", "/home/model-server/model-store"]  # fmt: skip


def test_a_published_management_port_is_refused():
    image_test.check_management_unpublished({"ExposedPorts": {"8080/tcp": {}, "8082/tcp": {}}})
    with pytest.raises(image_test.ImageCheckFailed, match="8081"):
        image_test.check_management_unpublished({"ExposedPorts": {"8081/tcp": {}}})
