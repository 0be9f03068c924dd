"""sentiment_bert: any Hugging Face sequence-classification checkpoint in the archive's model dir.

Loaded with the Auto* classes, so a checkpoint fine-tuned from a hub model
(`scripts/train_bert.py --init ...`) drops in unchanged.  Batches are padded
to their longest text, not to a fixed length.

Explanations attribute the log-odds of "positive" to each word piece of the
text through the torch model's input embeddings (`self.model` must be the
torch model, whatever runtime serves predictions): gradient x input (one
backward pass) or Captum's integrated gradients (`explain_method` in
model-config.yaml; costs measured by scripts/bench_explain.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer
from transformers.utils import logging as hf_logging

from handlers.artifacts import BERT_FILES
from handlers.contract import LABELS, Explanation, TokenScore
from handlers.sentiment_handler import SentimentHandler

EXPLAIN_METHODS = ("gradient_x_input", "integrated_gradients")  # methods of the handler below


def _device(context: Any) -> torch.device:
    gpu_id = context.system_properties.get("gpu_id")
    if gpu_id is not None and torch.cuda.is_available():
        return torch.device(f"cuda:{gpu_id}")
    return torch.device("cpu")


class SentimentBertHandler(SentimentHandler):
    required_files = BERT_FILES

    def load_model(self, model_dir: Path, config: Mapping[str, Any], context: Any) -> None:
        hf_logging.disable_progress_bar()
        # TorchServe leaves torch at one thread per core in every worker: on 2 cores that
        # oversubscribes as soon as two workers run.
        torch.set_num_threads(int(config.get("torch_threads", 1)))
        self.device = _device(context)
        self.max_length = int(config.get("max_length", self.metadata.get("max_length", 128)))
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        model = AutoModelForSequenceClassification.from_pretrained(model_dir)
        if self.device.type == "cuda" and config.get("fp16", False):
            model = model.half()
        self.model = model.to(self.device).eval()
        # Columns in the contract's order, whatever order a checkpoint names its labels in;
        # unnamed labels (LABEL_0, LABEL_1) are taken as NSMC's 0 = negative, 1 = positive.
        named = {str(label).lower(): int(i) for i, label in self.model.config.id2label.items()}
        self.columns = [named.get(name, index) for index, name in enumerate(LABELS)]
        self.explain_method = str(config.get("explain_method", "gradient_x_input"))
        if self.explain_method not in EXPLAIN_METHODS:
            raise ValueError(f"explain_method must be one of {EXPLAIN_METHODS}")
        if self.explain_method == "integrated_gradients":
            import captum.attr  # noqa: F401  (~1 s: paid at load, not by the first explanation)
        self.ig_steps = int(config.get("ig_steps", 20))

    def predict_proba(self, texts: list[str]) -> Sequence[Sequence[float]]:
        encoded = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length,
                                 return_tensors="pt").to(self.device)  # fmt: skip
        with torch.inference_mode():
            logits = self.model(**encoded).logits.float()
        return torch.softmax(logits, dim=-1)[:, self.columns].cpu().numpy()

    # ------------------------------------------------------------------ explanations

    def _log_odds(self, embeddings: torch.Tensor, encoded: Mapping[str, torch.Tensor]):
        """log P(positive) - log P(negative) from word embeddings (differentiable)."""
        extra = {k: v for k, v in encoded.items() if k in ("attention_mask", "token_type_ids")}
        logits = self.model(inputs_embeds=embeddings, **extra).logits.float()
        log_p = torch.log_softmax(logits, dim=-1)[:, self.columns]
        return log_p[:, 1] - log_p[:, 0]

    def gradient_x_input(self, encoded: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, None]:
        """[batch, tokens] scores: d(log-odds)/d(embedding) . embedding, one backward pass.

        A local linearisation: no baseline, and no sum rule.
        """
        with torch.enable_grad():
            embeddings = self.model.get_input_embeddings()(encoded["input_ids"]).detach()
            embeddings.requires_grad_(True)
            self._log_odds(embeddings, encoded).sum().backward()
        return (embeddings.grad * embeddings).sum(dim=-1).detach(), None

    def integrated_gradients(
        self, encoded: Mapping[str, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """[batch, tokens] scores by Captum's integrated gradients, and the baseline's log-odds.

        Special tokens ([CLS], [SEP]) stay in the baseline, so only the text's
        word pieces are attributed, and they add up to log-odds(text) -
        log-odds(baseline) (to ~0.03 at 20 steps).  One text at a time: a padded
        batch times `ig_steps` costs 10x more per text (measured).
        """
        from captum.attr import LayerIntegratedGradients

        layer = self.model.get_input_embeddings()

        def forward(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            # Captum repeats the mask for its n_steps and swaps in the interpolated embeddings.
            return self._log_odds(layer(input_ids), {"attention_mask": attention_mask})

        explainer = LayerIntegratedGradients(forward, layer)
        special_ids = torch.tensor(self.tokenizer.all_special_ids, device=self.device)
        scores = torch.zeros(encoded["input_ids"].shape, device=self.device)
        bases = torch.zeros(len(scores), device=self.device)
        for row, (ids, kept) in enumerate(zip(encoded["input_ids"], encoded["attention_mask"])):
            ids, mask = ids[kept.bool()][None], kept[kept.bool()][None]
            baseline = torch.where(torch.isin(ids, special_ids), ids, self.tokenizer.pad_token_id)
            with torch.enable_grad():
                attributions = explainer.attribute(
                    ids, baselines=baseline, additional_forward_args=(mask,), n_steps=self.ig_steps
                )
            scores[row, kept.bool()] = attributions.sum(dim=-1)[0].detach()
            with torch.inference_mode():
                bases[row] = forward(baseline, mask)[0]
        return scores, bases

    def explain_texts(self, texts: list[str]) -> list[Explanation]:
        """Every word piece of each (truncated) text with its score, in text order."""
        encoded = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length,
                                 return_offsets_mapping=True, return_special_tokens_mask=True,
                                 return_tensors="pt").to(self.device)  # fmt: skip
        offsets, special = encoded.pop("offset_mapping"), encoded.pop("special_tokens_mask")
        scores, bases = getattr(self, self.explain_method)(encoded)
        scores = scores.float().cpu()
        keep = encoded["attention_mask"].bool().cpu() & ~special.bool().cpu()
        explanations = []
        for row, text in enumerate(texts):
            tokens = [
                TokenScore(text[start:end], score, ((start, end),))
                for (start, end), score, kept in zip(
                    offsets[row].tolist(), scores[row].tolist(), keep[row].tolist()
                )
                if kept and end > start
            ]
            base = None if bases is None else float(bases[row])
            explanations.append(Explanation(self.explain_method.replace("_", " "), tokens, base))
        return explanations
