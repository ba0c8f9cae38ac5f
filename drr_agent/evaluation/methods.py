"""The methods an evaluation compares: one small async function each, registered in `METHODS`.

Every method has the signature ``async def method(item, ctx) -> MethodOutcome`` and runs on the
same Reasoner (``ctx.reasoner``), under the same task instruction and answer checker:

- ``cot``: one greedy (temperature 0) chain of thought, the whole trace in one call, with the
  prompt trace sampling uses (`Reasoner.asample_trace`, cut by `finish_trace`).
- ``self_consistency``: ``k`` sampled traces (seeded per item and index, as traces are), the
  majority of their answers after normalisation by the task checker ("11" and "11.0" vote
  together); a tie goes to the answer seen first (lowest sample index).
- ``deepconf``: DeepConf's offline vote (Fu et al. 2025), the training-free anchor a DM must
  beat: the same ``k`` samples as ``self_consistency`` (same seeds), each with the
  Reasoner's own token confidence (`drr_agent.reasoners.confidence`: top-k log-probs, the
  lowest mean over a sliding window by default); the most confident ``deepconf_keep`` of
  the readable traces vote, each with its confidence as its weight. It needs a backend that
  returns ``top_logprobs`` (llama.cpp, vLLM, OpenAI); one that does not is an error, never
  a silent ``self_consistency``. ``deepconf_online`` is the online form (a warm-up
  threshold, then streamed traces cut when their window's confidence drops below it;
  `drr_agent.evaluation.deepconf`).
- ``drr``: the DRR graph (`build_graph`) with the DM (``ctx.scorer``).
- ``self_critique``: the same graph and budgets with the Reasoner as its own critic
  (`SelfCritiqueScorer` on the Reasoner's model) instead of the DM; the critic's calls and
  tokens are charged to the Reasoner.
- ``stepwise``: the same graph and budgets with a critic that accepts every step — greedy
  steps, the last one asked as the answer. What ``drr`` and ``self_critique`` add (or cost)
  over it is their critic's doing, not the step-at-a-time format's.
- ``oracle``: the same graph and budgets with an evaluation-only critic that reads the gold
  answer (`oracle_critic`): a final answer scores 1 if the task's checker accepts it, else 0;
  another step scores 0 if it writes an arithmetic equation that is wrong, 1 if all its
  equations are right, 0.5 (neutral) if it writes none. It knows what a DM can only
  estimate, so it is the ceiling a DM's ``drr`` result is read against in this graph and
  these budgets (critic
  efficiency = (drr − stepwise) / (oracle − stepwise), `evaluation.paired`). Never a method to
  deploy: it needs the answer.
- ``noisy_oracle``: the ``oracle`` with each right/wrong verdict flipped with probability
  ``MethodSettings.oracle_flip`` (the same verdict every time one item meets the same text,
  as a deterministic DM gives; neutral steps stay neutral). Between ``stepwise`` (a critic
  that knows nothing) and ``oracle`` (one that errs never), it says what a critic whose veto
  is wrong that often is worth in this graph — the accuracy a DM has to reach, read off the
  same graph and budgets (`evals/benchmarks/critic_quality.py` draws the curve).
- ``lp_rank``: ``stepwise`` with ``dm_weight=0``: with ``candidates_per_step > 1`` the
  candidates are ranked by the Reasoner's own per-token probability, no DM. What ``drr``
  adds over it is what the DM knows that the Reasoner's likelihood does not.
- ``drr_vote`` / ``stepwise_vote``: ``k`` runs of ``drr`` / ``stepwise`` on the item, the
  majority of their answers (normalised by the checker; a tie goes to the first run; it
  abstains only when every run does). Run 0 is the plain method; run ``i`` is seeded
  ``sample_seed(seed, item, i)`` (`MethodContext.run`, as whole-trace sample ``i`` is) and
  samples its first candidate too (``greedy_first`` off), so the runs differ.
  Why: one graph run has fixed budgets and does not turn more compute into accuracy the way
  voting does; these are the graph's own compute-scaling form, read against
  ``self_consistency`` at matched compute, and ``stepwise_vote`` is ``drr_vote``'s ablation
  as ``stepwise`` is ``drr``'s.
- ``best_of_n_dm``: ``k`` sampled traces (the same seeds as ``self_consistency``, so both see
  the same samples on a seeded backend); the DM scores every step of every trace and the
  answer of the trace with the highest *minimum* step score wins among the traces whose
  answer the checker can read (ties: lowest index). Min,
  not mean: the graph accepts a path only when every step passes the threshold, so the
  minimum is the same criterion without the routing (what this method isolates), and a mean
  lets several easy steps hide the one wrong step that sinks an arithmetic trace (the
  small Reasoner's drift after a right first step). ``MethodSettings.aggregate="mean"``
  switches it.
- ``dm_vote``: the same ``k`` samples and trace scores, voted: each readable answer gets the
  sum of its traces' scores and the heaviest wins (DeepConf's vote, `confidence_vote`, with
  the DM's trace score in place of the token confidence and every trace kept). A DM that
  tells hard questions from easy ones better than one question's samples apart keeps the
  samples' agreement this way, where ``best_of_n_dm`` trusts its ranking alone.

Add a method by writing such a function and adding it to `METHODS` (and to `DM_METHODS` if it
needs ``ctx.scorer``). A method raises on failure after its own bounded retries; the runner
records the error.
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import replace
from typing import Any

from drr_agent.errors import ReasonerError, ScorerError
from drr_agent.evaluation.context import Method, MethodContext, MethodOutcome, MethodSettings
from drr_agent.evaluation.deepconf import deepconf, deepconf_online
from drr_agent.evaluation.records import TokenUsage
from drr_agent.evaluation.whole_traces import (
    best_of_n_dm,
    best_scored,
    confidence_vote,
    cot,
    dm_vote,
    majority_answer,
    self_consistency,
)
from drr_agent.graph import build_graph
from drr_agent.offline.traces import sample_seed
from drr_agent.reasoners.base import Reasoner
from drr_agent.scorers.base import FunctionScorer, StepContext, StepScorer
from drr_agent.scorers.rules import check_equations
from drr_agent.scorers.self_critique import SelfCritiqueScorer
from drr_agent.state import DRRResult
from drr_agent.tasks.base import Task, TaskItem
from drr_agent.tasks.checking import is_correct

__all__ = [  # the method contract and the vote helpers, re-exported where they were first
    "DM_METHODS",
    "METHODS",
    "Method",
    "MethodContext",
    "MethodOutcome",
    "MethodSettings",
    "best_scored",
    "confidence_vote",
    "graph_vote",
    "majority_answer",
    "noisy_oracle_critic",
    "oracle_critic",
    "oracle_verdict",
]


def _graph_reasoner(item: TaskItem, ctx: MethodContext) -> Reasoner:
    """The Reasoner under the task's instruction, seeded per item.

    A backend with a ``seed`` field (``ChatOpenAI``) gets ``sample_seed(seed, item, run)`` so
    runs repeat; the `Reasoner` derives the seed of each call and candidate from it.
    """
    seed = sample_seed(ctx.settings.seed, item.id, ctx.run)
    return ctx.reasoner.derive(seed=seed, instruction=ctx.task.instruction)


def _tree_details(result: DRRResult) -> dict[str, Any]:
    """What the report needs from the thought tree: where the run backtracked and rejected."""
    return {
        "stop_reason": result.stop_reason,
        "stop_detail": result.stop_detail,
        "rejections": result.counters["rejections"],
        # requests behind reasoner_calls: a block step cut short is continued (Proposal.calls)
        "model_calls": result.counters.get("model_calls", result.counters["reasoner_calls"]),
        "backtrack_depths": [t["depth"] for t in result.thoughts if t["status"] == "abandoned"],
        "rejection_depths": [t["depth"] for t in result.thoughts if t["status"] == "rejected"],
        "path": result.path,
        "thoughts": result.thoughts,
    }


async def _run_graph(item: TaskItem, ctx: MethodContext, scorer: StepScorer) -> DRRResult:
    config = ctx.config.model_copy(update={"step_format": ctx.step_format})
    graph = build_graph(_graph_reasoner(item, ctx), scorer, config)
    result = DRRResult.from_state(await graph.ainvoke({"question": item.question}))
    if result.stop_reason == "reasoner_error":  # a failed dependency is an error, not a choice
        raise ReasonerError(result.stop_detail or "Reasoner failed")
    if result.stop_reason == "scorer_error":
        raise ScorerError(result.stop_detail or "scorer failed")
    return result


def _graph_outcome(result: DRRResult, extra: TokenUsage, extra_calls: int) -> MethodOutcome:
    counters = result.counters
    tokens = TokenUsage(prompt=counters["prompt_tokens"], completion=counters["completion_tokens"])
    return MethodOutcome(
        answer=result.answer,
        abstained=result.abstained,
        tokens=tokens + extra,
        reasoner_calls=counters["reasoner_calls"] + extra_calls,
        dm_calls=counters["dm_calls"],
        backtracks=counters["backtracks"],
        details=_tree_details(result),
    )


async def drr(item: TaskItem, ctx: MethodContext) -> MethodOutcome:
    """The DRR graph with the DM."""
    result = await _run_graph(item, ctx, ctx.require_scorer("drr"))
    return _graph_outcome(result, TokenUsage(), 0)


async def self_critique(item: TaskItem, ctx: MethodContext) -> MethodOutcome:
    """The DRR graph with the Reasoner as its own critic; the critic's cost is the Reasoner's."""
    critic = SelfCritiqueScorer.of(ctx.reasoner, thresholds=ctx.settings.critic_thresholds)
    result = await _run_graph(item, ctx, critic)
    used = TokenUsage(
        prompt=critic.usage["prompt_tokens"], completion=critic.usage["completion_tokens"]
    )
    outcome = _graph_outcome(result, used, critic.usage["calls"])
    outcome.details["critic"] = dict(critic.usage)
    return outcome


async def _graph_with_rule_critic(
    item: TaskItem, ctx: MethodContext, critic: StepScorer, **thresholds: float | None
) -> MethodOutcome:
    """The graph and budgets of ``drr`` with a critic that is not a DM and costs nothing
    (accept-all, the oracle): ``thresholds`` override the config's, no DM calls are counted."""
    config = ctx.config.model_copy(update=thresholds)
    result = await _run_graph(item, replace(ctx, config=config), critic)
    outcome = _graph_outcome(result, TokenUsage(), 0)
    outcome.dm_calls = 0
    return outcome


async def stepwise(item: TaskItem, ctx: MethodContext) -> MethodOutcome:
    """The graph without a critic (every step accepted): the ablation of ``drr``'s DM."""
    accept_all = FunctionScorer(lambda _: 1.0, name="accept-all")
    return await _graph_with_rule_critic(
        item, ctx, accept_all, accept_threshold=0.0, answer_threshold=0.0
    )


async def lp_rank(item: TaskItem, ctx: MethodContext) -> MethodOutcome:
    """``stepwise`` with the candidates ranked by the Reasoner's own mean token log-prob.

    ``dm_weight=0`` (`DRRConfig`): the accept-all critic passes every candidate and the
    per-token probability alone picks among them. What ``drr`` gains over this is what the
    DM adds over the Reasoner ranking its own candidates (with ``candidates_per_step`` > 1;
    with one candidate per call it is ``stepwise``).
    """
    config = ctx.config.model_copy(update={"dm_weight": 0.0})
    return await stepwise(item, replace(ctx, config=config))


ORACLE_THRESHOLDS = {"accept_threshold": 0.25, "answer_threshold": 0.5}
"""The oracle passes right and neutral steps and right answers; it rejects wrong ones."""


def oracle_verdict(item: TaskItem, task: Task, candidate: str) -> float:
    """1 right, 0 wrong, 0.5 neutral: the gold-aware verdict (see ``oracle`` in the module)."""
    answer = task.step_format.extract_answer(candidate)
    if answer is not None:
        return float(is_correct(answer, item.gold, item.answer_type, item.choices))
    verdicts = check_equations(candidate)
    if not verdicts:
        return 0.5
    return 1.0 if all(verdicts) else 0.0


def oracle_critic(item: TaskItem, task: Task) -> FunctionScorer:
    """A critic that knows ``item``'s gold answer (see ``oracle`` in the module docstring)."""
    return FunctionScorer(
        lambda context: oracle_verdict(item, task, context.candidate),
        name="oracle",
        thresholds=ORACLE_THRESHOLDS,
    )


def noisy_oracle_critic(item: TaskItem, task: Task, flip: float, seed: int) -> FunctionScorer:
    """`oracle_critic` whose right/wrong verdicts are flipped with probability ``flip``.

    Whether a verdict flips is a hash of (seed, item, candidate text), not a draw per call:
    the critic is as consistent as a deterministic DM, and a rerun repeats it.
    """

    def judge(context: StepContext) -> float:
        verdict = oracle_verdict(item, task, context.candidate)
        if verdict == 0.5:
            return verdict
        digest = hashlib.sha256(f"{seed}|{item.id}|{context.candidate}".encode()).digest()
        flipped = int.from_bytes(digest[:8], "big") / 2**64 < flip
        return 1.0 - verdict if flipped else verdict

    return FunctionScorer(judge, name=f"noisy-oracle:{flip:g}", thresholds=ORACLE_THRESHOLDS)


async def noisy_oracle(item: TaskItem, ctx: MethodContext) -> MethodOutcome:
    """The ``oracle`` graph with a critic wrong ``ctx.settings.oracle_flip`` of the time."""
    critic = noisy_oracle_critic(item, ctx.task, ctx.settings.oracle_flip, ctx.settings.seed)
    return await _graph_with_rule_critic(
        item, ctx, critic, accept_threshold=None, answer_threshold=None
    )


async def oracle(item: TaskItem, ctx: MethodContext) -> MethodOutcome:
    """The graph with the gold-aware critic: the ceiling of any DM in this graph (its own
    thresholds, `ORACLE_THRESHOLDS`, replace any the config sets for the DM)."""
    critic = oracle_critic(item, ctx.task)
    return await _graph_with_rule_critic(
        item, ctx, critic, accept_threshold=None, answer_threshold=None
    )


def graph_vote(method: Method) -> Method:
    """``k`` runs of the graph ``method``, majority answer (``drr_vote``, ``stepwise_vote``;
    see the module docstring). The runs go out together; the item's usage ledger counts
    every call of every run."""

    async def voted(item: TaskItem, ctx: MethodContext) -> MethodOutcome:
        sampled = ctx.config.model_copy(update={"greedy_first": False})
        contexts = [ctx] + [
            replace(ctx, config=sampled, run=run) for run in range(1, ctx.settings.k)
        ]
        runs = await asyncio.gather(*(method(item, run_ctx) for run_ctx in contexts))
        answers = [run.answer for run in runs]
        winner, votes = majority_answer(answers, item)
        return MethodOutcome(
            answer=winner,
            abstained=all(run.abstained for run in runs),
            tokens=sum((run.tokens for run in runs), TokenUsage()),
            reasoner_calls=sum(run.reasoner_calls for run in runs),
            dm_calls=sum(run.dm_calls for run in runs),
            backtracks=sum(run.backtracks for run in runs),
            details={
                "answers": answers,
                "votes": votes,
                "runs": [
                    {key: run.details.get(key) for key in ("stop_reason", "rejections", "path")}
                    for run in runs
                ],
            },
        )

    voted.__name__ = voted.__qualname__ = f"{method.__name__}_vote"
    return voted


METHODS: dict[str, Method] = {
    "cot": cot,
    "stepwise": stepwise,
    "lp_rank": lp_rank,
    "self_consistency": self_consistency,
    "deepconf": deepconf,
    "deepconf_online": deepconf_online,
    "self_critique": self_critique,
    "drr": drr,
    "drr_vote": graph_vote(drr),
    "stepwise_vote": graph_vote(stepwise),
    "best_of_n_dm": best_of_n_dm,
    "dm_vote": dm_vote,
    "oracle": oracle,
    "noisy_oracle": noisy_oracle,
}
"""Method name -> method. The runner and ``drr eval --methods`` dispatch on these names."""

DM_METHODS = frozenset({"drr", "drr_vote", "best_of_n_dm", "dm_vote"})
"""The methods that need ``MethodContext.scorer`` (the DM)."""
