"""Explanation -> highlighted HTML, as pure functions (unit-tested without a browser).

Both models' tokens carry character spans in the text they explain; n-grams
overlap, word pieces do not.  Each character gets the sum of score/length of
every span covering it, so the colour is the same kind of quantity for both
models (and for sentiment_fast, exactly its share of the log-odds).
"""

from __future__ import annotations

from html import escape
from typing import Any, Sequence


def char_heat(text: str, tokens: Sequence[dict[str, Any]]) -> list[float]:
    heat = [0.0] * len(text)
    for token in tokens:
        for start, end in token.get("spans", []):
            share = token["score"] / max(end - start, 1)
            for i in range(max(start, 0), min(end, len(text))):
                heat[i] += share
    return heat


def _style(value: float, scale: float) -> tuple[str, str]:
    """(css class, background) for one character's heat; 10 levels each way."""
    level = round(min(abs(value) / scale, 1.0) * 10) if scale else 0
    if level == 0:
        return "", ""
    colour = "22,163,74" if value > 0 else "220,38,38"
    return ("pos" if value > 0 else "neg"), f"rgba({colour},{level / 12:.2f})"


def highlight_html(text: str, tokens: Sequence[dict[str, Any]]) -> str:
    """The text as <span>s coloured green (towards positive) or red (towards negative)."""
    heat = char_heat(text, tokens)
    scale = max((abs(h) for h in heat), default=0.0)
    pieces: list[str] = []
    run, run_style, run_sum = "", ("", ""), 0.0
    for char, value in zip(text, heat):
        style = _style(value, scale)
        if style != run_style and run:
            pieces.append(_span(run, run_style, run_sum))
            run, run_sum = "", 0.0
        run, run_style, run_sum = run + char, style, run_sum + value
    if run:
        pieces.append(_span(run, run_style, run_sum))
    return f'<div class="explained" style="font-size:1.15rem;line-height:2">{"".join(pieces)}</div>'


def _span(text: str, style: tuple[str, str], total: float) -> str:
    css_class, background = style
    if not css_class:
        return escape(text)
    return (
        f'<span class="hl {css_class}" data-score="{total:.4f}" title="{total:+.3f}" '
        f'style="background:{background};border-radius:3px">{escape(text)}</span>'
    )


LABEL_COLOURS = {"positive": "#15803d", "negative": "#b91c1c"}  # green, red


def confidence_html(label: str, confidence: float) -> str:
    """A confidence bar in the label's colour (st.progress has one colour for every label)."""
    colour = LABEL_COLOURS.get(label, "#6b7280")
    width = max(0.0, min(confidence, 1.0)) * 100
    return (
        f'<div class="confidence" data-label="{escape(label)}" data-colour="{colour}" '
        f'style="background:#e5e7eb;border-radius:4px;height:0.6rem;margin:0.3rem 0">'
        f'<div style="width:{width:.1f}%;background:{colour};height:100%;border-radius:4px">'
        f"</div></div><small>confidence {confidence:.1%}</small>"
    )
