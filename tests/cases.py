"""Bad and good request bodies shared by the unit and the integration tests.

Each bad case: (id, request dict as TorchServe hands it to the handler, content type,
expected error type).  The HTTP forms of the same cases are in BAD_HTTP_BODIES.
"""

from __future__ import annotations

import json

LONG_TEXT = "가" * 2001
TOO_MANY = {"text": ["좋다"] * 257}

BAD_REQUESTS = [
    ("no body", {}, None, "EmptyBody"),
    ("empty bytes", {"body": bytearray(b"")}, "application/octet-stream", "EmptyBody"),
    (
        "invalid utf-8",
        {"body": bytearray(b"\xff\xfe\xfa")},
        "application/octet-stream",
        "InvalidUTF8",
    ),
    ("invalid json", {"body": bytearray(b'{"text": ')}, "application/json", "InvalidJSON"),
    (
        "json with charset, invalid",
        {"body": b"{oops"},
        "application/json; charset=utf-8",
        "InvalidJSON",
    ),
    ("text missing", {"body": {"review": "좋다"}}, "application/json", "MissingText"),
    ("text null", {"body": {"text": None}}, "application/json", "InvalidText"),
    ("text number", {"body": {"text": 3}}, "application/json", "InvalidText"),
    ("text bool", {"body": {"text": True}}, "application/json", "InvalidText"),
    ("text object", {"body": {"text": {"a": 1}}}, "application/json", "InvalidText"),
    ("nested list", {"body": {"text": [["좋다"]]}}, "application/json", "InvalidText"),
    ("list with null", {"body": {"text": ["좋다", None]}}, "application/json", "InvalidText"),
    ("empty list", {"body": {"text": []}}, "application/json", "EmptyList"),
    ("empty text", {"body": {"text": ""}}, "application/json", "EmptyText"),
    ("whitespace text", {"body": {"text": " \t\n "}}, "application/json", "EmptyText"),
    ("whitespace raw body", {"body": "   "}, "text/plain", "EmptyText"),
    ("control chars only", {"body": {"text": "\x00\x01\u200b"}}, "application/json", "EmptyText"),
    ("too many texts", {"body": TOO_MANY}, "application/json", "TooManyTexts"),
    ("text too long", {"body": {"text": LONG_TEXT}}, "application/json", "TextTooLong"),
    ("raw text too long", {"body": LONG_TEXT}, "text/plain", "TextTooLong"),
    ("json array body", {"body": ["좋다"]}, "application/json", "InvalidBody"),
    ("json number body", {"body": 42}, "application/json", "InvalidBody"),
    ("json null body", {"body": None}, "application/json", "InvalidBody"),
    (
        "form-encoded fields",
        {'{"text": "좋다"}': ""},
        "application/x-www-form-urlencoded",
        "FormEncodedBody",
    ),
    ("form-encoded, fields dropped", {}, "application/x-www-form-urlencoded", "FormEncodedBody"),
]

GOOD_REQUESTS = [
    ("raw text", {"body": "정말 재밌게 잘봤습니다!"}, "text/plain", False, 1),
    (
        "octet-stream text",
        {"body": bytearray("최고의 영화".encode())},
        "application/octet-stream",
        False,
        1,
    ),
    ("json single", {"body": {"text": "최고의 영화"}}, "application/json", False, 1),
    ("json list", {"body": {"text": ["최고", "최악", "그냥 그래요"]}}, "application/json", True, 3),
    (
        "json with charset",
        {"body": json.dumps({"text": "좋다"}).encode()},
        "application/json; charset=utf-8",
        False,
        1,
    ),
    (
        "json sniffed",
        {"body": bytearray(b'{"text": ["a", "b"]}')},
        "application/octet-stream",
        True,
        2,
    ),
    ("brace review", {"body": "{스포} 재밌다"}, "text/plain", False, 1),
    ("data key", {"data": "재밌다"}, "text/plain", False, 1),
    ("max texts", {"body": {"text": ["좋다"] * 256}}, "application/json", True, 256),
    (
        "extra fields ignored",
        {"body": {"text": "좋다", "lang": "ko"}},
        "application/json",
        False,
        1,
    ),
]
