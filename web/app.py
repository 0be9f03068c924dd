"""Streamlit page: a review in, the three endpoints' verdicts side by side, and why.

Started by `python -m web` (or `make web`); talks to TorchServe only through
sentiment_client, configured by SENTIMENT_URL and SENTIMENT_KEY_FILE.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import streamlit as st

from scripts.registry import MODELS as REGISTRY
from sentiment_client import ClientError, SentimentClient, strongest
from sentiment_client.api import DEFAULT_URL
from web.render import LABEL_COLOURS, confidence_html, highlight_html

MODELS = {spec.name: spec.description for spec in REGISTRY.values()}  # every served model
EXAMPLES = [
    "정말 재밌게 잘봤습니다! 배우들 연기도 최고",
    "발연기 도저히 못보겠다 진짜 이렇게 연기를 못할거라곤 상상도 못했네",
    "음악이 주가 된, 최고의 음악영화",
    "돈 아깝다. 스토리도 엉망이고 시간 낭비였음",
    "기대 안 했는데 생각보다 괜찮네요 ㅎㅎ",
    "초반은 지루했지만 결말이 감동적이었다",
]


@st.cache_resource
def client() -> SentimentClient:
    return SentimentClient(
        os.environ.get("SENTIMENT_URL", DEFAULT_URL),
        key_file=os.environ.get("SENTIMENT_KEY_FILE"),
        retries=1,
    )


def timed(call: Any, *args: Any) -> tuple[Any, float]:
    started = time.perf_counter()
    result = call(*args)
    return result, 1000 * (time.perf_counter() - started)


def show_model(model: str, text: str) -> None:
    st.subheader(model)
    st.caption(MODELS[model])
    try:
        [prediction], predict_ms = timed(client().predict, [text], model)
        [why], explain_ms = timed(client().explain, [text], model)
    except ClientError as err:
        st.error(str(err))
        return
    label, confidence = prediction["label"], prediction["confidence"]
    colour = LABEL_COLOURS.get(label, "#6b7280")
    st.markdown(
        f'<div class="verdict" data-model="{model}" data-label="{label}" '
        f'style="font-size:1.6rem;font-weight:600;color:{colour}">{label}</div>',
        unsafe_allow_html=True,
    )
    st.markdown(confidence_html(label, confidence), unsafe_allow_html=True)
    if "models" in prediction:  # the cascade says who decided
        st.caption("decided by " + " + ".join(prediction["models"]))
    st.caption(f"prediction {predict_ms:.0f} ms · explanation {explain_ms:.0f} ms (round trip)")
    st.markdown(highlight_html(why["text"], why["tokens"]), unsafe_allow_html=True)
    positive, negative = strongest(why["tokens"], 5)
    rows = [
        f"`{t['score']:+.3f}` {t['token'].replace(' ', '␣')}" for t in positive + negative[::-1]
    ]
    st.markdown("  \n".join(rows))
    st.caption(f"scores: {why['method']} (green: towards positive, red: towards negative)")


def analyse_file(upload: Any) -> None:
    try:
        lines = upload.getvalue().decode("utf-8").splitlines()
    except UnicodeDecodeError:
        st.error("the file is not UTF-8 text")
        return
    texts = [line for line in lines if line.strip()][:5000]
    answers: dict[str, list[dict]] = {}
    for model in MODELS:
        try:
            results, ms = timed(lambda m: list(client().predict_many(texts, m)), model)
        except ClientError as err:
            st.error(str(err))
            return
        answers[model] = results
        st.caption(f"{model}: {len(texts)} reviews in {ms / 1000:.1f} s")
    table = [
        {"review": text, **{m: answers[m][i].get("label", "error") for m in MODELS}}
        for i, text in enumerate(texts)
    ]
    agree = sum(row["sentiment_fast"] == row["sentiment_bert"] for row in table)
    st.write(f"The models agree on {agree} of {len(table)} reviews.")
    st.dataframe(table, width="stretch")
    jsonl = "\n".join(json.dumps(row, ensure_ascii=False) for row in table)
    st.download_button("Download predictions (JSON lines)", jsonl, "predictions.jsonl")


def main() -> None:
    st.set_page_config(page_title="Korean movie-review sentiment", layout="wide")
    st.title("Korean movie-review sentiment")
    st.caption(f"The TorchServe models at {client().base_url}, side by side, and why.")
    with st.sidebar:
        st.header("Examples")
        for i, example in enumerate(EXAMPLES):
            st.button(example, key=f"example-{i}", on_click=st.session_state.update,
                      kwargs={"review": example}, width="stretch")  # fmt: skip
    text = st.text_area("Review", key="review", height=100, placeholder="리뷰를 입력하세요")
    if st.button("Analyze", type="primary") and text.strip():
        st.session_state["analysed"] = text  # kept across reruns: an upload must not wipe it
    if analysed := st.session_state.get("analysed"):
        for column, model in zip(st.columns(len(MODELS)), MODELS):
            with column:
                show_model(model, analysed)
    upload = st.file_uploader("Or a file of reviews (UTF-8, one per line)", type=["txt"])
    if upload is not None:
        analyse_file(upload)


main()
