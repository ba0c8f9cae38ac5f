"""The feature extractor: teacher-forced token statistics of candidate steps under a causal LM.

`ReasonerLikelihood.features` reads each step twice — in its context (`LikelihoodContext`) and
its claimed result after the question alone — and returns one row of `LIKELIHOOD_FEATURES`
per step; `lookahead_features` reads the Reasoner's forced answers the same way;
`worked_examples` writes a preamble the LM reads before every row.
"""

from __future__ import annotations

import copy
import inspect
import math
import re
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from drr_agent.errors import DMLoadError
from drr_agent.prompts import StepPrompt
from drr_agent.scorers.base import StepContext
from drr_agent.scorers.likelihood.dtype import LikelihoodDType, native_bfloat16
from drr_agent.scorers.likelihood.features import LIKELIHOOD_FEATURES, LOOKAHEAD_FEATURES
from drr_agent.scorers.likelihood.reading import (
    EMBEDDED_LIKELIHOOD_MODEL,
    EMBEDDED_VERIFIER_MODEL,
    LikelihoodContext,
    embedded_likelihood_folder,
)
from drr_agent.steps import StepFormat
from drr_agent.usage import record_usage

if TYPE_CHECKING:
    from drr_agent.scorers.likelihood.head import LikelihoodHead

__all__ = [
    "ANSWER_FORMAT",
    "LOOKAHEAD_PHRASE",
    "ReasonerLikelihood",
    "lookahead_features",
    "worked_examples",
]

_LAST_NUMBER = re.compile(r"-?\d+(?:[.,]\d+)*")

ANSWER_FORMAT = StepFormat()
"""How the claim pass recognises a final answer: the library's default answer markers (the
embedded Reasoner's and every built-in task's)."""

LOOKAHEAD_PHRASE = "The answer is"
"""How a lookahead answer is written for the verifier's claim reading (as measured)."""


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
        self.parameters = sum(p.numel() for p in self.lm.parameters())
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
        record_usage(  # the preamble's keys and values are computed once, not per row
            f"{self.model_name} (DM verifier)",
            prompt_tokens=sum(map(len, seqs)),
            parameters=self.parameters,
        )
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
