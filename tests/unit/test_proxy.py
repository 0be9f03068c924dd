"""The front proxy's configuration (docker/nginx.conf, scripts/deploy/proxy.py), without a server:
what its content-type rule lets through, its limits against TorchServe's, and `nginx -t` on the
rendered file.  Served for real: tests/integration/test_proxy.py and `make image-test`."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from scripts.deploy import proxy
from scripts.ops.server import read_properties
from scripts.registry import ROOT
from tests.conftest import missing

TEMPLATE = proxy.TEMPLATE.read_text(encoding="utf-8")


def content_type_rule() -> re.Pattern[str]:
    """The map's one regex entry (`~*` = case-insensitive), as nginx matches it."""
    (pattern,) = re.findall(r'"~\*(.+)" 0;', TEMPLATE)
    return re.compile(pattern.replace("\\\\", "\\"), re.IGNORECASE)


def passes(content_type: str) -> bool:
    """True when the proxy forwards a request with this Content-Type (map: "" or the regex)."""
    return content_type == "" or bool(content_type_rule().search(content_type))


@pytest.mark.parametrize("content_type", [
    "application/json", "application/json; charset=utf-8", "Application/JSON",
    "text/plain", "text/plain; charset=utf-8", "TEXT/PLAIN;charset=UTF-8",
    "application/octet-stream", "",
])  # fmt: skip
def test_the_contract_types_pass(content_type: str):
    assert passes(content_type)


@pytest.mark.parametrize("content_type", [
    *proxy.FORM_TYPES, "multipart/form-data; boundary=X", "Multipart/Form-Data;boundary=X",
    "APPLICATION/X-WWW-FORM-URLENCODED", "application/x-www-form-urlencoded; charset=utf-8",
    "multipart/mixed; boundary=X", "application/json, application/x-www-form-urlencoded",
    "application/jsonx", "text/plainx", "text/html", "image/png", " application/json",
    "application/json\\n",
])  # fmt: skip
def test_form_bodies_and_everything_else_are_refused(content_type: str):
    """The two types TorchServe decodes as forms in every spelling, and any type not in the
    contract (a list of types, a prefix, leading space) too."""
    assert not passes(content_type)


def test_limits_match_torchserve():
    """client_max_body_size = max_request_size (nginx answers 413 where TorchServe would), the
    bodies stay in memory, and the proxy waits longer than the slowest model's responseTimeout."""
    size = int(read_properties(ROOT / "config.properties")["max_request_size"])
    assert re.search(rf"^\s*client_max_body_size {size};", TEMPLATE, re.M)
    assert re.search(rf"^\s*client_body_buffer_size {size};", TEMPLATE, re.M)
    assert f"over {size} bytes" in TEMPLATE
    timeout = int(re.search(r"proxy_read_timeout (\d+)s;", TEMPLATE)[1])
    slowest = max(int(re.search(r"responseTimeout: (\d+)", p.read_text())[1])
                  for p in (ROOT / "archive").glob("*/model-config.yaml"))  # fmt: skip
    assert timeout > slowest


def test_every_refusal_is_a_json_error():
    """Each error_page names a location whose answer is the contract's {"code", "type",
    "message"} with the same code."""
    pages = dict(re.findall(r"error_page (\d+) (@\w+);", TEMPLATE))
    assert {"413", "415"} <= set(pages)
    assert "default_type application/json;" in TEMPLATE
    for code, location in pages.items():
        body = re.search(rf"location {location} {{\s*return {code} '(.+)';", TEMPLATE)[1]
        assert body.startswith(f'{{"code": {code}, "type": "') and '"message": "' in body


def test_render_fills_every_placeholder(tmp_path: Path):
    text = proxy.render("127.0.0.1:1", "127.0.0.1:2", tmp_path)
    assert not re.search(r"@[A-Z]+@", text)
    assert "listen 127.0.0.1:1;" in text and "server 127.0.0.1:2;" in text
    assert f"pid {tmp_path}/nginx.pid;" in text


def test_nginx_accepts_the_rendered_file(tmp_path: Path):
    if proxy.nginx_binary() is None:
        missing("nginx not installed", "apt-get install nginx-light")
    config = proxy.write_config("127.0.0.1:18088", "127.0.0.1:18080", tmp_path)
    checked = proxy.check_config(config)
    assert checked.returncode == 0, checked.stderr
