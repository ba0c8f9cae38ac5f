"""`load_dm`: the one chooser of which DM a run uses — served, in process, or untrained.

The CLI (``--dm``, ``--dm-url``, ``--untrained-dm``) and the LangGraph deployment
(``DRR_DM``, ``DRR_DM_URL``) both name a DM the same three ways; this is where those names
become a `StepScorer`, so both pick alike.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from drr_agent.errors import DMLoadError
from drr_agent.models import embedded_dm_base_path
from drr_agent.scorers.base import StepScorer
from drr_agent.scorers.card import DMCard
from drr_agent.scorers.hf import HFScorer, dm_fingerprint
from drr_agent.scorers.likelihood import LikelihoodDType, LikelihoodScorer, ReasonerLikelihood
from drr_agent.scorers.lookahead import AnswerLookahead
from drr_agent.scorers.remote import RemoteScorer

__all__ = ["load_dm"]


def load_dm(
    path: str | Path | None = None,
    *,
    url: str | None = None,
    allow_untrained: bool = False,
    trust_remote_code: bool = False,
    num_threads: int | None = None,
    likelihood_dtype: LikelihoodDType = "auto",
    lookahead: AnswerLookahead | None = None,
) -> StepScorer:
    """The DM a run uses.

    Args:
        path: A trained DM folder (Hugging Face sequence classification, e.g. from
            ``drr train``). With ``url`` it is only read for the DM's tokenizer and stored
            thresholds (`RemoteScorer`'s ``dm_path``).
        url: A DM served by ``drr serve --dm`` (vLLM); wins over loading ``path`` in process.
        allow_untrained: With neither ``path`` nor ``url``, take the embedded MiniLM base with
            a random head — scores that mean nothing, for smoke tests of the plumbing only.
            Without it that case is an error rather than a silently useless critic.
        trust_remote_code: Passed to ``transformers`` for ``path`` (off unless asked for).
        num_threads: torch threads of an in-process DM; 1 beside the embedded llama.cpp
            Reasoner, which wants the cores (see `HFScorer`).
        likelihood_dtype: The number format of a likelihood DM's verifier LM
            (`ReasonerLikelihood`'s ``dtype``): ``"auto"`` reads in bfloat16 where the CPU has
            it natively; ``"float32"`` gives the same features on every machine.
        lookahead: The Reasoner's forced answers for a likelihood DM whose head reads them
            (`drr_agent.scorers.lookahead`); default: the Reasoner its card names.

    Raises:
        DMLoadError: Nothing names a DM and ``allow_untrained`` is off, or the DM fails to load.
    """
    recipe = functools.partial(
        load_dm,
        path,
        url=url,
        allow_untrained=allow_untrained,
        trust_remote_code=trust_remote_code,
        num_threads=num_threads,
        likelihood_dtype=likelihood_dtype,
        lookahead=lookahead,
    )
    scorer = _load(
        path, url, allow_untrained, trust_remote_code, num_threads, likelihood_dtype, lookahead
    )
    return scorer.with_recipe(recipe)


def _load(
    path: str | Path | None,
    url: str | None,
    allow_untrained: bool,
    trust_remote_code: bool,
    num_threads: int | None,
    likelihood_dtype: LikelihoodDType,
    lookahead: AnswerLookahead | None,
) -> StepScorer:
    options = (num_threads, likelihood_dtype, lookahead)
    if url is not None:
        served = RemoteScorer(url, dm_path=path)
        card = DMCard.load(path) if path is not None else None
        return _with_likelihood(served, card, path, *options)
    if path is not None:
        card = DMCard.load(path)
        if card.head_alone:  # the light DM: no classifier weights to load, none is read
            return _with_likelihood(None, card, path, *options)
        classifier = HFScorer(
            path,
            trust_remote_code=trust_remote_code,
            classifier_only=True,  # the head, if the card has one, is wrapped on next
            num_threads=num_threads,
        )
        return _with_likelihood(classifier, classifier.card, path, *options)
    if not allow_untrained:
        raise DMLoadError(
            "no DM given: pass a trained DM folder (path) or a served DM (url), or "
            "allow_untrained=True for the embedded MiniLM with a random head (smoke tests only)"
        )
    return HFScorer(embedded_dm_base_path(), allow_untrained_head=True, num_threads=num_threads)


def _with_likelihood(
    classifier: StepScorer | None,
    card: DMCard | None,
    path: str | Path | None,
    num_threads: int | None,
    dtype: LikelihoodDType,
    lookahead: AnswerLookahead | None,
) -> StepScorer:
    """``classifier`` wrapped in a `LikelihoodScorer` when the DM card carries a likelihood
    head (a DM trained with ``drr train --likelihood``): the head *is* that DM. Without a
    classifier (a head that does not read one), the card names the DM."""
    head = card.likelihood_head if card is not None else None
    if head is None:
        assert classifier is not None, "a DM without a head is its classifier"
        return classifier
    identity: dict[str, Any] = {}
    if classifier is None:
        assert card is not None and path is not None
        identity = {
            "name": card.name or Path(path).name,
            "trained_questions": card.trained_questions,
            "fingerprint": dm_fingerprint(Path(path)),
        }
    return LikelihoodScorer(
        classifier,
        head,
        ReasonerLikelihood.of(head, num_threads=num_threads, dtype=dtype)
        if head.reads_verifier
        else None,
        lookahead,
        **identity,
    )
