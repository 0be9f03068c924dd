"""Bad, hostile and good request bodies shared by the unit and the integration tests.

Each bad case: (id, request dict as TorchServe hands it to the handler, content type,
expected error type).  The HTTP forms (raw bytes on the wire) are in BAD_HTTP_BODIES and
HOSTILE_HTTP_BODIES.
"""

from __future__ import annotations

import gzip
import json

from handlers.contract import MAX_TEXTS

LONG_TEXT = "가" * 2001
TOO_MANY = {"text": ["좋다"] * (MAX_TEXTS + 1)}

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
    ("json string body", {"body": "좋다"}, "application/json", "InvalidBody"),
    ("json string, charset", {"body": b'"x"'}, "application/json; charset=utf-8", "InvalidBody"),
    (
        "huge integer",
        {"body": b'{"text": ' + b"9" * 5000 + b"}"},
        "application/json",
        "InvalidJSON",
    ),
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
    ("max texts", {"body": {"text": ["좋다"] * MAX_TEXTS}}, "application/json", True, MAX_TEXTS),
    ("json after a BOM", {"body": b'\xef\xbb\xbf{"text": "a"}'}, "application/json", False, 1),
    (
        "extra fields ignored",
        {"body": {"text": "좋다", "lang": "ko"}},
        "application/json",
        False,
        1,
    ),
]


# ----------------------------------------------------------------------------- HTTP bodies
# (id, raw body bytes, Content-Type or None, expected): expected is the error type of a 400,
# ANSWERED (legal text: a normal 200 prediction) or TOO_LARGE (413 from the frontend).
ANSWERED = 200
TOO_LARGE = 413
JSON = "application/json"
TEXT = "text/plain"
OCTETS = "application/octet-stream"
MAX_REQUEST_SIZE = 1_048_576  # config.properties max_request_size


def _json(value: object) -> bytes:
    return json.dumps(value).encode()


BAD_HTTP_BODIES = [
    ("empty body", b"", TEXT, "EmptyBody"),
    (
        "no content type (curl -d)",
        '{"text": "좋다"}'.encode(),
        "application/x-www-form-urlencoded",
        "FormEncodedBody",
    ),
    ("invalid utf-8", b"\xff\xfe\xfa", TEXT, "InvalidUTF8"),
    ("invalid utf-8 octets", b"\xc3\x28", OCTETS, "InvalidUTF8"),
    ("truncated json", b'{"text": "', JSON, "InvalidJSON"),
    ("deeply nested json", b"[" * 100_000 + b"]" * 100_000, JSON, "InvalidJSON"),
    ("text missing", b'{"review": "x"}', JSON, "MissingText"),
    ("text null", b'{"text": null}', JSON, "InvalidText"),
    ("text number", b'{"text": 12}', JSON, "InvalidText"),
    ("nested list", b'{"text": [["a"]]}', JSON, "InvalidText"),
    ("empty list", b'{"text": []}', JSON, "EmptyList"),
    ("whitespace text", b'{"text": "  \\n "}', JSON, "EmptyText"),
    ("too many texts", _json(TOO_MANY), JSON, "TooManyTexts"),
    ("text too long", _json({"text": LONG_TEXT}), JSON, "TextTooLong"),
    ("json list body", b'["a"]', JSON, "InvalidBody"),
]

_MULTIPART = (
    b'--X\r\nContent-Disposition: form-data; name="text"\r\n\r\n'
    + "좋다".encode()
    + b"\r\n--X--\r\n"
)

HOSTILE_HTTP_BODIES = [
    # broken or abusive JSON
    ("truncated json list", b'{"text": ["a", "b"', JSON, "InvalidJSON"),
    ("deeply nested object", b'{"a":' * 50_000 + b"1" + b"}" * 50_000, JSON, "InvalidJSON"),
    (
        "deeply nested text",
        b'{"text": ' + b"[" * 50_000 + b"]" * 50_000 + b"}",
        JSON,
        "InvalidJSON",
    ),
    ("huge integer", b'{"text": ' + b"9" * 10_000 + b"}", JSON, "InvalidJSON"),
    ("huge exponent", b'{"text": 1e999999}', JSON, "InvalidText"),
    ("NaN", b'{"text": NaN}', JSON, "InvalidText"),
    ("text object", b'{"text": {"a": 1}}', JSON, "InvalidText"),
    ("text bool", b'{"text": true}', JSON, "InvalidText"),
    ("list item object", _json({"text": ["좋다", {}]}), JSON, "InvalidText"),
    ("json string body", '"좋은 영화"'.encode(), JSON, "InvalidBody"),
    ("json string body, charset", b'"x"', "application/json; charset=utf-8", "InvalidBody"),
    ("only whitespace as json", b"   ", JSON, "InvalidJSON"),
    ("raw text declared json", "정말 좋은 영화".encode(), JSON, "InvalidJSON"),
    ("duplicate text keys", b'{"text": 1, "text": "good"}', JSON, ANSWERED),
    # size
    ("10,000-element list", _json({"text": ["좋다"] * 10_000}), JSON, "TooManyTexts"),
    ("1 MB single text", _json({"text": "a" * 1_000_000}), JSON, "TextTooLong"),
    ("1 MB raw text", b"a" * 1_000_000, TEXT, "TextTooLong"),
    ("body 1 byte over max_request_size", b"a" * (MAX_REQUEST_SIZE + 1), TEXT, TOO_LARGE),
    ("1.2 MB json body", _json({"text": "가" * 200_000}), JSON, TOO_LARGE),
    # characters
    ("NUL bytes inside text", "좋은\x00영화\x00".encode(), TEXT, ANSWERED),
    ("only NUL bytes", b"\x00\x00\x00", TEXT, "EmptyText"),
    ("escaped NULs in json", b'{"text": "\\u0000\\u0000"}', JSON, "EmptyText"),
    ("lone surrogate", b'{"text": "\\ud800"}', JSON, "EmptyText"),
    ("lone surrogate inside text", _json({"text": "\udfff좋은 영화\ud800"}), JSON, ANSWERED),
    ("surrogate as raw bytes", b"\xed\xa0\x80", TEXT, "InvalidUTF8"),
    ("overlong utf-8", b"\xc0\xaf", OCTETS, "InvalidUTF8"),
    ("RTL override, zero-width", "\u202e좋은\u200b영화\u200d\u2066".encode(), TEXT, ANSWERED),
    ("zero-width only", "\u200b\u200c\u200d\ufeff".encode(), TEXT, "EmptyText"),
    ("Arabic and Hebrew", "فيلم رائع סרט מעולה".encode(), TEXT, ANSWERED),
    ("emoji", "최고의 영화 👍🎬😂👨‍👩‍👧".encode(), TEXT, ANSWERED),
    ("2,000 emoji (at the limit)", _json({"text": "😂" * 2000}), JSON, ANSWERED),
    ("only punctuation", b"!!!???...,,,;;~~", TEXT, ANSWERED),
    ("mixed Korean, English, Chinese", "이 movie 정말 好看 최고".encode(), TEXT, ANSWERED),
    ("combining marks", ("좋" + "\u0301" * 1500).encode(), TEXT, ANSWERED),
    ("markup", b"<script>alert(1)</script>' OR 1=1 --", TEXT, ANSWERED),
    ("UTF-8 BOM before json", b'\xef\xbb\xbf{"text": "good"}', JSON, ANSWERED),
    # content types and encodings
    ("wrong content type image/png", "좋은 영화".encode(), "image/png", ANSWERED),
    ("json sent as text/plain (read as text)", _json({"text": "좋다"}), TEXT, ANSWERED),
    ("utf-16 json", _json({"text": "좋다"}).decode().encode("utf-16"), JSON, "InvalidUTF8"),
    ("gzip bytes", gzip.compress("좋은 영화".encode()), OCTETS, "InvalidUTF8"),
    ("gzip bytes declared json", gzip.compress(_json({"text": "좋다"})), JSON, "InvalidUTF8"),
    ("all byte values", bytes(range(256)), OCTETS, "InvalidUTF8"),
    ("multipart field text", _MULTIPART, "multipart/form-data; boundary=X", "FormEncodedBody"),
]
