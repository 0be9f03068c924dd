"""Text normalisation shared by training and serving.

One function, imported by the training scripts and the handlers, so a model
never sees text at serving time that was cleaned differently from its
training data.
"""

import re
import unicodedata

_WHITESPACE_RUN = re.compile(r"\s+")
_REPLACEMENT_CHAR = "\ufffd"


def _is_dropped(char: str) -> bool:
    """Control, format, surrogate, private-use and unassigned characters, and U+FFFD."""
    if char == _REPLACEMENT_CHAR:
        return True
    if char in "\t\n\r":
        return False  # whitespace: collapsed below, not dropped
    return unicodedata.category(char).startswith("C")


def clean_text(text: str) -> str:
    """Drop control/replacement characters and collapse whitespace (the seed's `_clean_text`).

    Lone surrogates are dropped too: they cannot be encoded as UTF-8, and
    Rust-backed tokenizers reject them.
    """
    if not text.isprintable() or _REPLACEMENT_CHAR in text:  # fast path for ordinary text
        text = "".join(char for char in text if not _is_dropped(char))
    return _WHITESPACE_RUN.sub(" ", text).strip()
