"""The web page's rendering helpers (web/render.py) and its source; no browser, no server."""

from __future__ import annotations

from scripts.registry import ROOT
from web.render import char_heat, confidence_html, highlight_html


def test_highlight_colours_follow_the_scores():
    tokens = [{"token": "재밌", "score": 2.0, "spans": [[3, 5]]},
              {"token": "최악", "score": -1.0, "spans": [[7, 9]]}]  # fmt: skip
    text = "정말 재밌고 최악"
    assert char_heat(text, tokens) == [0, 0, 0, 1.0, 1.0, 0, 0, -0.5, -0.5]
    html = highlight_html(text, tokens)
    assert 'class="hl pos"' in html and ">재밌</span>" in html
    assert 'class="hl neg"' in html and ">최악</span>" in html
    assert "<script>" not in highlight_html("<script>", [])


def test_confidence_bar_colour_follows_the_label():
    positive, negative = confidence_html("positive", 0.9), confidence_html("negative", 0.9)
    colour = lambda html: html.split('data-colour="')[1].split('"')[0]  # noqa: E731
    assert colour(positive) != colour(negative)
    assert 'width:90.0%' in positive and "confidence 90.0%" in positive


def test_page_uses_no_deprecated_streamlit_arguments():
    """Streamlit 1.67 logs use_container_width as deprecated: width="stretch" replaces it."""
    assert "use_container_width" not in (ROOT / "web" / "app.py").read_text(encoding="utf-8")
