"""sentiment_fast: a scikit-learn pipeline (character n-gram TF-IDF + an NB-family linear model).

Like TorchServe's xgboost example, a non-torch model inside BaseHandler: the
artifact is loaded from the archive's model dir, after its SHA-256 was checked
against metadata.json (joblib unpickling can run code).

Explanations are exact for this model: its log-odds of "positive" are a bias plus,
for every n-gram j in the text, tfidf_j x w_j (Naive Bayes: w_j = log P(j|pos) -
log P(j|neg); NB-SVM: w_j = NB log-count ratio x the logistic regression's weight;
handlers.scoring.linear_log_odds).  Each n-gram's term is its score.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import joblib

from handlers.artifacts import FAST_MODEL_FILE as MODEL_FILE
from handlers.contract import Explanation, TokenScore
from handlers.scoring import linear_log_odds, scorer
from handlers.sentiment_handler import SentimentHandler


def occurrences(text: str, token: str) -> tuple[tuple[int, int], ...]:
    """Every [start, end) where `token` occurs in `text`, overlapping ones included."""
    spans = []
    start = text.find(token)
    while start != -1:
        spans.append((start, start + len(token)))
        start = text.find(token, start + 1)
    return tuple(spans)


class SentimentFastHandler(SentimentHandler):
    required_files = (MODEL_FILE,)

    def load_model(self, model_dir: Path, config: Mapping[str, Any], context: Any) -> None:
        self.model = joblib.load(model_dir / MODEL_FILE)
        self.explain_top_k = int(config.get("explain_top_k", 10))
        self.linear = linear_log_odds(self.model)
        if self.linear is None:
            raise TypeError(f"{MODEL_FILE}: a [vectorizer, MultinomialNB] or [vectorizer, "
                            "NaiveBayesScaling, LogisticRegression] pipeline is needed for "
                            f"exact explanations, got {[n for n, _ in self.model.steps]}")  # fmt: skip
        self.score = scorer(self.model)

    def predict_proba(self, texts: list[str]) -> Sequence[Sequence[float]]:
        return self.score(texts)

    def ngram_scores(self, texts: list[str]) -> list[dict[str, float]]:
        """Per text, every n-gram the model knows in it -> its term of the log-odds of positive."""
        vectorizer = self.model[0]
        analyze, vocabulary = vectorizer.build_analyzer(), vectorizer.vocabulary_
        weights = vectorizer.transform(texts).tocsr()
        scores = []
        for row, text in enumerate(texts):
            start, end = weights.indptr[row], weights.indptr[row + 1]
            weight = dict(zip(weights.indices[start:end], weights.data[start:end]))
            columns = {gram: vocabulary[gram] for gram in analyze(text) if gram in vocabulary}
            scores.append({g: float(weight[j] * self.linear.weights[j])
                           for g, j in columns.items()})  # fmt: skip
        return scores

    def explain_texts(self, texts: list[str]) -> list[Explanation]:
        """The top-k n-grams each way, strongest first (most positive ... most negative)."""
        preprocess = self.model[0].build_preprocessor()
        explanations = []
        for text, scores in zip(texts, self.ngram_scores(texts)):
            ranked = sorted(scores.items(), key=lambda item: item[1], reverse=True)
            k = self.explain_top_k
            chosen = [g for g in ranked[:k] if g[1] > 0] + [g for g in ranked[-k:] if g[1] < 0]
            seen = preprocess(text)  # lower-cased, as the vectorizer saw it
            tokens = [TokenScore(gram, score, occurrences(seen, gram)) for gram, score in chosen]
            explanations.append(Explanation(self.linear.method, tokens, self.linear.bias))
        return explanations
