"""Choose DeepConf's settings on dev, offline; read every sampling method at k = 1…K.

A ``drr eval --split dev --methods deepconf --k K`` run records, per item, the ``K`` sampled
answers and every token's confidence (``details.token_confidences``). From those alone this
script computes, without sampling again:

- the headroom: ``pass@k`` (one of the first ``k`` samples is right) and ``mean@1`` (the
  share of right samples), for k = 1, 2, 4, ... K;
- ``majority@k``: `self_consistency` on the first ``k`` samples (the same seeds);
- DeepConf's accuracy for every ``keep`` × ``window`` × ``measure`` on all ``K`` samples
  (`drr_agent.evaluation.methods.confidence_vote`, the method's own vote),
- ``deepconf_online`` replayed for every ``warmup`` × ``keep`` × ``window``: its answer and
  the tokens it would have generated (a cut trace up to its cut), by the method's own rules;

- with ``--dm DIR``, ``best_of_n_dm`` at every ``k``: the DM scores every step of the
  samples (the records keep each sample's steps and their log-prob statistics), the trace
  with the highest lowest step score among the first ``k`` wins (the method's own rule,
  `drr_agent.evaluation.methods.best_scored`); and ``dm_vote``: DeepConf's weighted vote
  with those trace scores as the weights (the ``dm_vote`` method's own vote);
- with ``--setting KEEP WINDOW MEASURE``, DeepConf at every ``k`` under that one setting;
- each method's mean compute at every ``k`` (the record's compute, shared among its samples
  by their tokens), so they can be read against the graph methods at matched compute;

and prints the settings ranked by dev accuracy. Pass the chosen ``--deepconf-keep`` and
``--deepconf-window`` to the test run. Dev only: a setting read off test is no result. On
test, name the dev-chosen ``--setting`` and read nothing else off the ranking.

    .venv/bin/python -m evals.benchmarks.deepconf_sweep --run runs/gsm8k-dev-deepconf \\
        --out evals/results/<folder>/deepconf_sweep.json
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path
from typing import get_args

from drr_agent.evaluation.deepconf import cut_length, online_threshold, warmup_agrees
from drr_agent.evaluation.methods import best_scored, confidence_vote, majority_answer
from drr_agent.evaluation.records import RECORDS_FILE, EvalRecord
from drr_agent.offline.jsonl import RecordFile
from drr_agent.reasoners.confidence import ConfidenceMeasure, trace_confidence
from drr_agent.scorers.base import StepContext, StepScorer
from drr_agent.tasks.base import TaskItem
from drr_agent.tasks.checking import is_correct, normalize_answer

KEEPS = (0.1, 0.25, 0.5, 0.75, 1.0)
WINDOWS = (8, 16, 32, 64, 128)
WARMUPS = (1, 2, 4)
CONSENSUS = 0.95  # `MethodSettings.deepconf_consensus`'s default (DeepConf's τ)


def _item(record: EvalRecord, answer_type: str) -> TaskItem:
    return TaskItem(
        id=record.item_id, question=record.question, gold=record.gold, answer_type=answer_type
    )


def _deepconf_answer(
    record: EvalRecord, k: int, answer_type: str, setting: tuple[float, int, ConfidenceMeasure]
) -> str | None:
    keep, window, measure = setting
    answers = [normalize_answer(a, answer_type) for a in record.details["answers"][:k]]
    confidences = [
        trace_confidence(t, window, measure) if t else None
        for t in record.details["token_confidences"][:k]
    ]
    chosen, _, _ = confidence_vote(answers, confidences, keep)
    return record.details["answers"][chosen] if chosen is not None else None


def _online(
    record: EvalRecord, answer_type: str, warmup: int, keep: float, window: int, consensus: float
) -> tuple[str | None, int]:
    """``deepconf_online`` replayed on a record's samples: its answer and the tokens it would
    have generated (warm-up whole; the rest up to their cut) — the method's own rules
    (`drr_agent.evaluation.deepconf`), so settings are chosen without sampling again."""
    answers = [normalize_answer(a, answer_type) for a in record.details["answers"]]
    tokens = record.details["token_confidences"]
    sizes = record.details["sample_tokens"]
    confidence = [trace_confidence(t, window) if t else None for t in tokens[:warmup]]
    threshold = online_threshold(confidence, keep)
    voters = [c if c is not None and c >= threshold else None for c in confidence]
    spent = sum(sum(pair) for pair in sizes[:warmup])
    if not warmup_agrees(answers[:warmup], voters, consensus):
        for t, (prompt, completion) in zip(tokens[warmup:], sizes[warmup:], strict=True):
            cut = cut_length(t, threshold, window) if t else None
            voters.append(None if cut is not None or not t else trace_confidence(t, window))
            spent += prompt + (cut if cut is not None else completion)
    chosen, _, _ = confidence_vote(answers[: len(voters)], voters, 1.0)
    return (record.details["answers"][chosen] if chosen is not None else None), spent


def _trace_scores(record: EvalRecord, scorer: StepScorer) -> list[float | None]:
    """Each sample's lowest step score under ``scorer`` (``None``: a sample with no step)."""
    steps, signals = record.details["steps"], record.details["step_signals"]
    contexts, owner = [], []
    for index, (trace, trace_signals) in enumerate(zip(steps, signals, strict=True)):
        for j, step in enumerate(trace):
            row = trace_signals[j] if trace_signals else None
            contexts.append(StepContext(record.question, tuple(trace[:j]), step, row))
            owner.append(index)
    scores = scorer.score(contexts) if contexts else []
    lowest: list[float | None] = [None] * len(steps)
    for index, score in zip(owner, scores, strict=True):
        current = lowest[index]
        lowest[index] = float(score) if current is None else min(current, float(score))
    return lowest


def _compute_at(record: EvalRecord, k: int) -> float | None:
    """The record's compute, shared among its samples by their tokens: the first ``k``'s."""
    sizes = [sum(pair) for pair in record.details.get("sample_tokens", [])]
    if record.compute is None or not sizes or not sum(sizes):
        return None
    return record.compute * sum(sizes[:k]) / sum(sizes)


def sweep(
    records: list[EvalRecord],
    answer_type: str,
    scorer: StepScorer | None = None,
    setting: tuple[float, int, ConfidenceMeasure] | None = None,
) -> dict:
    """Headroom, majority@k and every DeepConf setting's accuracy over ``records``; with
    ``scorer``, best_of_n_dm@k; with ``setting``, that DeepConf setting at every k."""
    rows = [r for r in records if r.method == "deepconf" and r.error is None]
    if not rows:
        raise SystemExit("no deepconf records without errors in the run")
    k = min(len(r.details["answers"]) for r in rows)
    ks = [2**i for i in range(k.bit_length()) if 2**i <= k]
    right = [[is_correct(a, r.gold, answer_type) for a in r.details["answers"][:k]] for r in rows]
    n = len(rows)
    out: dict = {
        "items": n,
        "k": k,
        "pass_at": {j: sum(any(c[:j]) for c in right) / n for j in ks},
        "mean_at_1": sum(sum(c) / k for c in right) / n,
        "majority_at": {},
        "deepconf": [],
    }
    for j in ks:
        wins = 0
        for r in rows:
            answer, _ = majority_answer(r.details["answers"][:j], _item(r, answer_type))
            wins += is_correct(answer, r.gold, answer_type)
        out["majority_at"][j] = wins / n
    measures: tuple[ConfidenceMeasure, ...] = get_args(ConfidenceMeasure)
    for keep, window, measure in itertools.product(KEEPS, WINDOWS, measures):
        wins = sum(
            is_correct(
                _deepconf_answer(r, k, answer_type, (keep, window, measure)), r.gold, answer_type
            )
            for r in rows
        )
        out["deepconf"].append(
            {"keep": keep, "window": window, "measure": measure, "accuracy": wins / n}
        )
    out["deepconf"].sort(key=lambda row: (-row["accuracy"], row["keep"], row["window"]))
    out["online"] = []
    for warmup, keep, window in itertools.product(WARMUPS, KEEPS, WINDOWS):
        if warmup >= k:
            continue
        replayed = [_online(r, answer_type, warmup, keep, window, CONSENSUS) for r in rows]
        out["online"].append(
            {
                "warmup": warmup,
                "keep": keep,
                "window": window,
                "accuracy": sum(
                    is_correct(a, r.gold, answer_type)
                    for (a, _), r in zip(replayed, rows, strict=True)
                )
                / n,
                "tokens": sum(t for _, t in replayed) / n,
            }
        )
    out["online"].sort(key=lambda row: (-row["accuracy"], row["tokens"]))
    computes = [[_compute_at(r, j) for j in ks] for r in rows]
    if all(c is not None for row in computes for c in row):
        out["compute_at"] = {j: sum(row[i] for row in computes) / n for i, j in enumerate(ks)}
    # per item and k, right or wrong: paired comparisons with other runs on the same items
    per_item: dict[str, dict[str, bool]] = {}
    for r in rows:
        per_item[r.item_id] = {
            f"majority@{j}": is_correct(
                majority_answer(r.details["answers"][:j], _item(r, answer_type))[0],
                r.gold,
                answer_type,
            )
            for j in ks
        }
    if setting is not None:
        out["setting"] = list(setting)
        for r in rows:
            for j in ks:
                answer = _deepconf_answer(r, j, answer_type, setting)
                per_item[r.item_id][f"deepconf@{j}"] = is_correct(answer, r.gold, answer_type)
    if scorer is not None:
        for r in rows:
            lowest = _trace_scores(r, scorer)
            answers = [normalize_answer(a, answer_type) for a in r.details["answers"]]
            for j in ks:
                chosen = best_scored(answers[:j], lowest[:j])
                answer = r.details["answers"][chosen] if chosen is not None else None
                per_item[r.item_id][f"best_of_n_dm@{j}"] = is_correct(answer, r.gold, answer_type)
                # DeepConf's vote with the DM's trace scores as the weights
                chosen, _, _ = confidence_vote(answers[:j], lowest[:j], 1.0)
                answer = r.details["answers"][chosen] if chosen is not None else None
                per_item[r.item_id][f"dm_vote@{j}"] = is_correct(answer, r.gold, answer_type)
    names = next(iter(per_item.values())).keys()
    out["accuracy_at"] = {name: sum(per_item[i][name] for i in per_item) / n for name in names}
    out["per_item"] = per_item
    return out


def against(result: dict, graph_records: list[EvalRecord]) -> list[dict]:
    """Each method of another run on the same items (the graph methods) against each
    sampling family at the smallest ``k`` whose mean compute is at least its own — "at no more
    compute" read from the graph method's side — paired by item (`compare`)."""
    from drr_agent.evaluation.paired import compare

    families = sorted({name.split("@")[0] for name in result["accuracy_at"]})
    pseudo = [
        EvalRecord(
            run_id="sweep", task="", method=name, item_id=item, question="", gold="",
            correct=right,
        )
        for item, outcomes in result["per_item"].items()
        for name, right in outcomes.items()
    ]  # fmt: skip
    graph_records = [r for r in graph_records if r.item_id in result["per_item"]]
    rows = []
    for method in sorted({r.method for r in graph_records}):
        mine = [r.compute for r in graph_records if r.method == method and r.compute is not None]
        if not mine:  # (an errored record has no compute; it still counts as wrong)
            continue
        compute = sum(mine) / len(mine)
        ks = [j for j, c in result.get("compute_at", {}).items() if c >= compute]
        if not ks:
            continue
        k = min(ks)
        for family in families:
            pair = compare([*pseudo, *graph_records], method, f"{family}@{k}")
            if pair is not None:
                rows.append({"compute": compute, "matched_k": k} | pair.model_dump())
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, required=True, help="a drr eval folder (dev)")
    parser.add_argument("--answer-type", default="number")
    parser.add_argument("--out", type=Path, help="write the sweep as JSON here")
    parser.add_argument("--dm", type=Path, help="a DM folder: best_of_n_dm at every k")
    parser.add_argument(
        "--setting",
        nargs=3,
        metavar=("KEEP", "WINDOW", "MEASURE"),
        help="one DeepConf setting (chosen on dev) read at every k",
    )
    parser.add_argument(
        "--against",
        type=Path,
        help="a drr eval folder of other methods on the same items (e.g. drr, stepwise): "
        "each against every sampling method at matched compute, paired by item",
    )
    args = parser.parse_args()
    records = RecordFile(args.run / RECORDS_FILE, EvalRecord).read()
    scorer = None
    if args.dm is not None:
        from drr_agent.scorers.loading import load_dm

        scorer = load_dm(args.dm)
    setting = None
    if args.setting is not None:
        keep, window, measure = args.setting
        if measure not in get_args(ConfidenceMeasure):
            parser.error(f"--setting MEASURE {measure!r}: one of {get_args(ConfidenceMeasure)}")
        setting = (float(keep), int(window), measure)
    result = sweep(records, args.answer_type, scorer, setting)
    print(f"{result['items']} items, k = {result['k']}; mean@1 {result['mean_at_1']:.3f}")
    for j, value in result["pass_at"].items():
        compute = result.get("compute_at", {}).get(j)
        cost = f"   compute {compute:.3g}" if compute is not None else ""
        print(f"  pass@{j} {value:.3f}   majority@{j} {result['majority_at'][j]:.3f}{cost}")
    for name, value in result["accuracy_at"].items():
        print(f"  {name:<18} {value:.3f}")
    print("best deepconf_online settings (warmup, keep, window: accuracy, tokens an item):")
    for row in result["online"][:5]:
        print(
            f"  {row['warmup']:<2} {row['keep']:<5} {row['window']:<4} {row['accuracy']:.3f}"
            f" {row['tokens']:.0f}"
        )
    print("best DeepConf settings on these items (keep, window, measure: accuracy):")
    for row in result["deepconf"][:10]:
        print(f"  {row['keep']:<5} {row['window']:<4} {row['measure']:<13} {row['accuracy']:.3f}")
    if args.against is not None:
        graph = RecordFile(args.against / RECORDS_FILE, EvalRecord).read()
        result["against"] = against(result, graph)
        print("at matched compute (the sampling method at the smallest k with no less):")
        for row in result["against"]:
            print(
                f"  {row['method']:<9} {row['method_accuracy']:.3f} vs {row['baseline']:<17}"
                f" {row['baseline_accuracy']:.3f}: {row['diff']:+.3f}"
                f" [{row['ci_low']:+.3f}, {row['ci_high']:+.3f}] ({row['wins']}/{row['losses']})"
            )
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
