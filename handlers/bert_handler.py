"""sentiment_bert: any Hugging Face sequence-classification checkpoint in the archive's model dir.

Loaded with the Auto* classes, so a checkpoint fine-tuned from a hub model
(`scripts/training/train_bert.py --init ...`) drops in unchanged.  Batches are padded
to their longest text, not to a fixed length.

Two runtimes for the same weights: ONNX Runtime (the default on CPU, when the
archive carries the `model.onnx` exported at build time: measured faster here;
`runtime: onnx-int8` serves its dynamic int8 quantization, also made at build
time) and torch (on a GPU, with `runtime: torch`, or for archives without the
export).  `self.model` is always the torch model, loaded on first use when ONNX
serves, so code that needs gradients (explanations) has it.  An archive built for
one runtime (`build_archive --runtime`) packs only that runtime's model file: an
ONNX-only one answers predictions, and explanations with 501 (no weights to take
gradients of).

Explanations attribute the log-odds of "positive" to each word piece of the
text through the torch model's input embeddings (`self.model` must be the
torch model, whatever runtime serves predictions): gradient x input (one
backward pass) or Captum's integrated gradients (`explain_method` in
model-config.yaml; costs measured by benchmarks/explain_cost.py).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Collection, Mapping, Sequence

import numpy as np
import torch
from transformers import AutoConfig, AutoTokenizer
from transformers.utils import logging as hf_logging

from handlers.artifacts import (
    BERT_COMMON_FILES,
    BERT_ONNX_OUTPUT,
    BERT_RUNTIME_FILES,
    BERT_WEIGHTS_FILE,
    MissingArtifactError,
)
from handlers.bert_settings import BertSettings, position_limit
from handlers.bert_weights import load_classifier
from handlers.contract import (
    Explanation,
    RequestError,
    TokenScore,
    checkpoint_labels,
    columns_of,
    label_names,
)
from handlers.scoring import softmax
from handlers.sentiment_handler import SentimentHandler

logger = logging.getLogger(__name__)
# by runtime: the exports ONNX Runtime serves
ONNX_FILES = {run: name for run, name in BERT_RUNTIME_FILES.items() if name != BERT_WEIGHTS_FILE}


def _device(context: Any) -> torch.device:
    gpu_id = context.system_properties.get("gpu_id")
    if gpu_id is not None and torch.cuda.is_available():
        return torch.device(f"cuda:{gpu_id}")
    return torch.device("cpu")


def _onnx_session(path: Path, threads: int) -> Any:
    """A CPU ONNX Runtime session with `threads` intra-op threads (workers share 2 cores)."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def packed_runtimes(packed: Collection[str]) -> list[str]:
    """The runtimes whose model file an archive packs (`packed`: its hash-checked files)."""
    return [runtime for runtime, name in BERT_RUNTIME_FILES.items() if name in packed]


def served_runtime(asked: str, packed: Collection[str], on_cpu: bool) -> str:
    """The runtime that serves: `asked` where the archive packs its export (ONNX Runtime runs
    on CPU, so a GPU worker takes the weights where they are packed), else torch on the
    weights; an archive with neither was built for another runtime and is refused by name."""
    export = ONNX_FILES.get(asked)
    weights = BERT_WEIGHTS_FILE in packed
    if export in packed and (on_cpu or not weights):
        return asked
    if weights:
        if export is not None and on_cpu:
            logger.warning("runtime %s asked for, but the archive has no %s: serving torch "
                           "(rebuild the archive to export it)", asked, export)  # fmt: skip
        return "torch"
    raise MissingArtifactError(
        f"handler.runtime {asked} needs {BERT_RUNTIME_FILES[asked]}, which this archive does not "
        f"pack (it packs runtime {', '.join(packed_runtimes(packed)) or 'none'}): serve that "
        f"runtime, or build the archive with `build_archive sentiment_bert --runtime {asked}`"
    )


def served_labels(metadata: Mapping[str, Any], id2label: Mapping[Any, str]) -> list[str]:
    """Labels by logit column: as the build recorded them (build_archive's --labels overrides
    the config there), else the config's own names; unknown names raise, never guessed."""
    if "labels" in metadata:
        return label_names(metadata["labels"])
    return checkpoint_labels(id2label)


class SentimentBertHandler(SentimentHandler):
    required_files = BERT_COMMON_FILES  # and the served runtime's file (served_runtime)

    def load_model(self, model_dir: Path, config: Mapping[str, Any], context: Any) -> None:
        hf_logging.disable_progress_bar()
        settings = BertSettings.from_config(config)
        # TorchServe leaves torch at one thread per core in every worker: on 2 cores that
        # oversubscribes as soon as two workers run.  ONNX Runtime gets the same count.
        torch.set_num_threads(settings.torch_threads)
        self.model_dir = model_dir
        self.device = _device(context)
        self.fp16 = settings.fp16
        # CPU: groups of similar length waste less on padding; a GPU wants the whole batch.
        self.pad_group = settings.pad_group if self.device.type == "cpu" else 1 << 30
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        self._torch_model: torch.nn.Module | None = None
        checkpoint = AutoConfig.from_pretrained(model_dir)
        self.columns = columns_of(served_labels(self.metadata, checkpoint.id2label))
        configured = settings.max_length or int(self.metadata.get("max_length", 128))
        self.max_length = self._token_limit(configured, checkpoint)
        self.explain_method = settings.explain_method
        if self.explain_method == "integrated_gradients":
            import captum.attr  # noqa: F401  (~1 s: paid at load, not by the first explanation)
        self.ig_steps = settings.ig_steps
        self.packed = set(self.metadata.get("artifact_sha256", {}))  # hash checked
        self.runtime = served_runtime(settings.runtime, self.packed, self.device.type == "cpu")
        self.session = None
        if self.runtime == "torch":
            self.model  # noqa: B018 -- load now: it serves every request
        else:
            path = model_dir / ONNX_FILES[self.runtime]
            self.session = _onnx_session(path, settings.torch_threads)
            self.onnx_inputs = [node.name for node in self.session.get_inputs()]

    def _token_limit(self, configured: int, checkpoint: Any) -> int:
        """`configured`, cut to what the checkpoint can embed: a longer text would fail
        inside the model (an index past its position table) instead of being answered."""
        limit = position_limit(checkpoint, self.tokenizer)
        if limit is None or limit >= configured:
            return configured
        logger.warning("max_length %d is more than this checkpoint embeds: texts are cut to "
                       "%d tokens", configured, limit)  # fmt: skip
        return limit

    @property
    def model(self) -> torch.nn.Module:
        """The torch model: serves with runtime torch; loaded on first use otherwise.

        An archive built for an ONNX runtime alone packs no weights: what needs them
        (explanations) is refused for its own request, with how to get an archive that has them.
        """
        if self._torch_model is None:
            if BERT_WEIGHTS_FILE not in self.packed:
                raise RequestError(
                    "ExplanationUnavailable",
                    f"this archive was built for runtime {self.runtime} alone and packs no torch "
                    "weights, which explanations need; predictions work. Build it with "
                    "`build_archive sentiment_bert --runtime torch` or without --runtime",
                    code=501,
                )
            model = load_classifier(self.model_dir)
            if self.device.type == "cuda" and self.fp16:
                model = model.half()
            self._torch_model = model.to(self.device).eval()
        return self._torch_model

    @model.setter
    def model(self, model: torch.nn.Module | None) -> None:  # BaseHandler.__init__ sets None
        self._torch_model = model

    def predict_proba(self, texts: list[str]) -> Sequence[Sequence[float]]:
        """Texts sorted by length and run in groups of `pad_group`, padded per group.

        Reviews are mostly short (median 12 tokens, max 64 here): padding a batch of 16 to
        its longest text tripled the work on CPU.  Answers do not depend on the grouping.
        """
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        rows = np.empty((len(texts), len(self.columns)), dtype=np.float32)
        for start in range(0, len(order), self.pad_group):
            group = order[start : start + self.pad_group]
            rows[group] = softmax(self._logits([texts[i] for i in group]))[:, self.columns]
        return rows

    def _logits(self, texts: list[str]) -> np.ndarray:
        if self.session is not None:
            encoded = self.tokenizer(texts, padding=True, truncation=True,
                                     max_length=self.max_length, return_tensors="np")  # fmt: skip
            feed = {name: encoded[name] for name in self.onnx_inputs}
            return self.session.run([BERT_ONNX_OUTPUT], feed)[0]
        encoded = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length,
                                 return_tensors="pt").to(self.device)  # fmt: skip
        with torch.inference_mode():
            return self.model(**encoded).logits.float().cpu().numpy()

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
