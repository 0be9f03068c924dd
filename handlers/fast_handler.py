"""sentiment_fast: a scikit-learn pipeline (character n-gram TF-IDF + Naive Bayes) from joblib.

Like TorchServe's xgboost example, a non-torch model inside BaseHandler: the
artifact is loaded from the archive's model dir, after its SHA-256 was checked
against metadata.json (joblib unpickling can run code).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import joblib

from handlers.artifacts import FAST_MODEL_FILE as MODEL_FILE
from handlers.scoring import scorer
from handlers.sentiment_handler import SentimentHandler


class SentimentFastHandler(SentimentHandler):
    required_files = (MODEL_FILE,)

    def load_model(self, model_dir: Path, config: Mapping[str, Any], context: Any) -> None:
        self.model = joblib.load(model_dir / MODEL_FILE)
        self.score = scorer(self.model)

    def predict_proba(self, texts: list[str]) -> Sequence[Sequence[float]]:
        return self.score(texts)
