"""The in-process DM: a Hugging Face sequence classifier loaded from a local folder.

Loading checks what users get wrong: a missing folder, a folder that is not a model, a base
encoder without a classification head. Weights load from safetensors only (no pickle) and
remote code is off unless asked for. Inputs keep the question and the *latest* steps when the
context is longer than the DM's window, because the step being judged depends most on what
just came before it. Forward passes run in a worker thread so concurrent graphs keep their
event loop free.

Decoder-only classifiers (``LlamaForSequenceClassification``, e.g. a DM on the Reasoner's own
SmolLM2 backbone) need two things a BERT-style encoder does not: a pad token, because they
pool the hidden state of the last non-pad token (`ensure_pad_token`), and a separator between
the two texts of a pair, because their tokenizers encode ``(text, text_pair)`` as the two
token runs glued together (`fit_to_window` then starts ``text_pair`` with a newline).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import threading
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from safetensors import SafetensorError

from drr_agent.errors import DMLoadError
from drr_agent.scorers.base import STEP_JOINER, StepContext, StepScorer, dm_text_pair
from drr_agent.scorers.card import DM_METADATA_FILE, DMCard
from drr_agent.scorers.coalesce import Coalescer
from drr_agent.usage import record_usage

_POSITIVE_LABEL_NAMES = ("good", "correct", "positive", "accept", "yes", "label_1")


def _weights_files(path: Path) -> str:
    """The safetensors files of a DM folder, for error messages."""
    names = sorted(p.name for p in path.glob("*.safetensors"))
    return ", ".join(names) or "no *.safetensors file"


def dm_fingerprint(path: Path) -> str:
    """sha256 (16 hex) of a DM folder's card, config and weights: what makes scores differ."""
    digest = hashlib.sha256()
    names = [DM_METADATA_FILE, "config.json", *(p.name for p in sorted(path.glob("*.safetensors")))]
    for name in names:
        file = path / name
        if not file.is_file():
            continue
        digest.update(name.encode() + b"\0")
        with file.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


_PAIR_PROBE = ("first question", "second answer")
_pair_separators: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()


def pair_separator(tokenizer: Any) -> str:
    """What `fit_to_window` puts at the start of ``text_pair`` for ``tokenizer``.

    ``""`` when the tokenizer's pair encoding already separates the two texts (BERT-style
    ``[CLS] a [SEP] b [SEP]``); `STEP_JOINER` (a newline) when it puts the two token runs
    side by side, as the tokenizers of decoder-only models (Llama, SmolLM2) do — otherwise the
    question would run straight into the first step ("...?8 - 1 = 7"). Found by encoding a
    probe pair once per tokenizer; a tokenizer that cannot encode pairs gets ``""``.
    """
    try:
        return _pair_separators[tokenizer]
    except (KeyError, TypeError):
        pass
    try:
        first, second = (
            list(tokenizer(text, add_special_tokens=False)["input_ids"]) for text in _PAIR_PROBE
        )
        pair = list(tokenizer(_PAIR_PROBE[0], text_pair=_PAIR_PROBE[1])["input_ids"])
    except (TypeError, ValueError, KeyError):
        return ""
    glued = first + second
    adjacent = any(pair[i : i + len(glued)] == glued for i in range(len(pair) - len(glued) + 1))
    separator = STEP_JOINER if adjacent else ""
    with contextlib.suppress(TypeError):  # not weak-referenceable: probe again next time
        _pair_separators[tokenizer] = separator
    return separator


def ensure_pad_token(tokenizer: Any, model: Any = None) -> None:
    """Give ``tokenizer`` (and ``model.config``) a pad token when they lack one.

    Decoder-only tokenizers often have none (``pad_token = eos_token`` is the usual fix), and
    a ``*ForSequenceClassification`` decoder finds the token it classifies from — the last one
    that is not padding — through ``config.pad_token_id``; without it a batch of more than one
    cannot be scored. ``drr train`` applies this before training, so the exported folder
    records both; `HFScorer` applies it on load for folders trained elsewhere.
    """
    if getattr(tokenizer, "pad_token", None) is None:
        eos = getattr(tokenizer, "eos_token", None)
        if eos is None:
            raise DMLoadError(
                f"the tokenizer ({type(tokenizer).__name__}) has neither a pad nor an eos "
                "token; the DM cannot pad a batch"
            )
        tokenizer.pad_token = eos
    config = getattr(model, "config", None)
    if config is not None and getattr(config, "pad_token_id", None) is None:
        config.pad_token_id = tokenizer.pad_token_id


def fit_to_window(tokenizer: Any, item: StepContext, max_length: int) -> tuple[str, str]:
    """The DM's ``(text, text_pair)`` for ``item`` within ``max_length`` tokens.

    Keeps the question (up to a third of the window) and the candidate, then adds previous
    steps from the latest backwards while they fit: the step being judged depends most on
    what just came before it. Training uses this too, so the DM is trained on what it sees.
    For a tokenizer that does not separate the texts of a pair (decoder-only models),
    ``text_pair`` starts with `pair_separator` (a newline; one token, within the window's
    4-token allowance for special tokens).
    """
    candidate_only = dm_text_pair(StepContext(item.question, (), item.candidate))[1]
    pieces = [item.question, candidate_only, *item.steps]
    lengths = [len(ids) for ids in tokenizer(pieces, add_special_tokens=False)["input_ids"]]
    budget = max_length - 4 - min(lengths[0], max_length // 3) - lengths[1]
    kept = 0
    for cost in reversed(lengths[2:]):
        if cost + 1 > budget:
            break
        budget -= cost + 1
        kept += 1
    text, pair = dm_text_pair(item, item.steps[len(item.steps) - kept :])
    return text, pair_separator(tokenizer) + pair


class HFScorer(StepScorer):
    """DM scorer over ``AutoModelForSequenceClassification``.

    Args:
        path: Local model folder (``config.json``, safetensors weights, tokenizer).
        max_length: Token window; default: the window the DM was trained with (``drr_dm.json``),
            else ``min(256, tokenizer.model_max_length)``.
        batch_size: Items per forward pass.
        positive_label: Label name meaning "good step"; default: read from ``drr_dm.json``,
            else a label named good/correct/positive/..., else index 1 of a 2-label head.
        allow_untrained_head: Accept a base encoder without a classification head (the head
            is then randomly initialised: scores are meaningless, but the plumbing is real —
            for tests and smoke runs only).
        trust_remote_code: Passed to transformers; off unless you ask for it.
        classifier_only: Read the classifier of a DM whose card carries a likelihood head
            on purpose (`load_dm` builds the head on top of it; the vLLM export serves it).
            Without it such a folder is refused: scoring with the classifier alone would be
            a different, weaker critic than the DM that was trained and reported.
        num_threads: If set, ``torch.set_num_threads(num_threads)`` — process-wide. Use 1 when
            the embedded llama.cpp Reasoner runs in the same process: measured here, the two
            thread pools otherwise spin against each other and the Reasoner runs 1.8× slower,
            while a 1-thread DM costs ~10 ms more per call.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        max_length: int | None = None,
        batch_size: int = 32,
        positive_label: str | None = None,
        allow_untrained_head: bool = False,
        trust_remote_code: bool = False,
        classifier_only: bool = False,
        num_threads: int | None = None,
    ) -> None:
        import torch
        from transformers import (
            AutoConfig,
            AutoModelForSequenceClassification,
            AutoTokenizer,
        )

        self.path = Path(path).expanduser()
        if not self.path.exists():
            raise DMLoadError(
                f"DM folder {self.path} does not exist. Train one with `drr train`, or pass "
                "the folder of a Hugging Face sequence-classification model."
            )
        if not (self.path / "config.json").is_file():
            raise DMLoadError(f"{self.path} is not a Hugging Face model folder (no config.json)")
        self.card = DMCard.load(self.path)
        if self.card.likelihood_head is not None and not classifier_only:
            raise DMLoadError(
                f"{self.path} is a DM whose card ({DM_METADATA_FILE}) carries a likelihood "
                "head over this classifier, a verifier LM"
                + (" and a lookahead" if self.card.likelihood_head.reads_lookahead else "")
                + f": HFScorer would score with the classifier alone. Load the whole DM with "
                f"drr_agent.load_dm({str(self.path)!r}) (`drr dm-info` lists what it runs), or "
                "pass classifier_only=True to read the classifier alone on purpose."
            )
        try:
            config = AutoConfig.from_pretrained(self.path, trust_remote_code=trust_remote_code)
        except (OSError, ValueError) as exc:
            raise DMLoadError(f"{self.path}/config.json cannot be read: {exc}") from exc
        architectures = list(getattr(config, "architectures", None) or [])
        is_classifier = any(a.endswith("ForSequenceClassification") for a in architectures)
        if not is_classifier and not allow_untrained_head:
            raise DMLoadError(
                f"{self.path} holds {architectures or 'an unknown architecture'}, not a sequence "
                "classifier (config.json 'architectures' has no *ForSequenceClassification). "
                "Train a DM with `drr train`, or pass allow_untrained_head=True for a smoke test."
            )
        if not is_classifier:
            config.num_labels = 2
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(
                self.path, trust_remote_code=trust_remote_code
            )
            self.model = AutoModelForSequenceClassification.from_pretrained(
                self.path,
                config=config,
                use_safetensors=True,
                trust_remote_code=trust_remote_code,
            )
        except SafetensorError as exc:
            raise DMLoadError(
                f"{self.path}: the weights file ({_weights_files(self.path)}) is damaged or "
                f"truncated ({exc}). Copy the DM folder again or retrain it with `drr train`."
            ) from exc
        except RuntimeError as exc:
            if "size mismatch" not in str(exc) and "ignore_mismatched_sizes" not in str(exc):
                raise
            raise DMLoadError(
                f"{self.path}: config.json does not match the weights in "
                f"{_weights_files(self.path)} (a layer's shape differs, e.g. num_labels or "
                "hidden_size was edited). Restore the config.json written with these weights, "
                "or retrain the DM with `drr train`."
            ) from exc
        except (OSError, ValueError) as exc:
            raise DMLoadError(f"cannot load the DM from {self.path}: {exc}") from exc
        ensure_pad_token(self.tokenizer, self.model)
        self.model.eval()
        if num_threads is not None:
            torch.set_num_threads(num_threads)
        self.positive_index = self._positive_index(positive_label)
        limit = int(getattr(self.tokenizer, "model_max_length", 512) or 512)
        self.max_length = max_length or self.card.max_length or min(256, limit)
        self.batch_size = batch_size
        self.name = self.card.name or self.path.name
        # one forward at a time: torch already uses every core for a single pass; concurrent
        # graphs' calls share the next one instead of queueing one by one (`Coalescer`)
        self._lock = threading.Lock()
        self._coalesced = Coalescer(self._ascore_now)

    def _positive_index(self, requested: str | None) -> int:
        id2label = {int(k): str(v) for k, v in self.model.config.id2label.items()}
        wanted = requested or self.card.positive_label
        if wanted is not None:
            for index, label in id2label.items():
                if label == wanted:
                    return index
            raise DMLoadError(
                f"{self.path}: positive label {wanted!r} is not among the DM's labels "
                f"{sorted(id2label.values())}"
            )
        for index, label in id2label.items():
            if label.lower() in _POSITIVE_LABEL_NAMES:
                return index
        if len(id2label) == 2:
            return 1
        raise DMLoadError(
            f"{self.path}: cannot tell which of the labels {sorted(id2label.values())} means a "
            "good step; pass positive_label"
        )

    @property
    def thresholds(self) -> dict[str, float]:
        return self.card.thresholds

    @property
    def trained_questions(self) -> frozenset[str] | None:
        return self.card.trained_questions

    @functools.cached_property
    def parameters(self) -> int:
        """The classifier's size (for the usage ledger, `drr_agent.usage`)."""
        return sum(p.numel() for p in self.model.parameters())

    @functools.cached_property
    def fingerprint(self) -> str:  # type: ignore[override]
        return dm_fingerprint(self.path)

    def _fit(self, item: StepContext) -> tuple[str, str]:
        return fit_to_window(self.tokenizer, item, self.max_length)

    def score(self, items: Sequence[StepContext]) -> list[float]:
        import torch

        pairs = [self._fit(item) for item in items]
        scores: list[float] = []
        with self._lock, torch.inference_mode():
            for start in range(0, len(pairs), self.batch_size):
                chunk = pairs[start : start + self.batch_size]
                encoded = self.tokenizer(
                    [a for a, _ in chunk],
                    [b for _, b in chunk],
                    truncation="longest_first",
                    max_length=self.max_length,
                    padding=True,
                    return_tensors="pt",
                )
                logits = self.model(**encoded).logits
                record_usage(
                    f"{self.name} (DM classifier)",
                    prompt_tokens=int(encoded["attention_mask"].sum()),
                    parameters=self.parameters,
                )
                if logits.shape[-1] == 1:
                    probs = torch.sigmoid(logits[:, 0])
                else:
                    probs = torch.softmax(logits.float(), dim=-1)[:, self.positive_index]
                scores.extend(float(p) for p in probs)
        return scores

    async def ascore(self, items: Sequence[StepContext]) -> list[float]:
        return await self._coalesced(items)

    async def _ascore_now(self, items: Sequence[StepContext]) -> list[float]:
        return await asyncio.to_thread(self.score, items)
