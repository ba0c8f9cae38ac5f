"""Choose DeepConf's settings on dev, offline: headroom and every (keep, window, measure).

A ``drr eval --split dev --methods deepconf --k K`` run records, per item, the ``K`` sampled
answers and every token's confidence (``details.token_confidences``). From those alone this
script computes, without sampling again:

- the headroom: ``pass@k`` (one of the first ``k`` samples is right) and ``mean@1`` (the
  share of right samples), for k = 1, 2, 4, ... K;
- ``majority@k``: `self_consistency` on the first ``k`` samples (the same seeds);
- DeepConf's accuracy for every ``keep`` × ``window`` × ``measure`` on all ``K`` samples
  (`drr_agent.evaluation.methods.confidence_vote`, the method's own vote),

and prints the settings ranked by dev accuracy. Pass the chosen ``--deepconf-keep`` and
``--deepconf-window`` to the test run. Dev only: a setting read off test is no result.

    .venv/bin/python -m evals.benchmarks.deepconf_sweep --run runs/gsm8k-dev-deepconf \\
        --out evals/results/<folder>/deepconf_sweep.json
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path
from typing import get_args

from drr_agent.evaluation.methods import confidence_vote, majority_answer
from drr_agent.evaluation.records import RECORDS_FILE, EvalRecord
from drr_agent.offline.jsonl import RecordFile
from drr_agent.reasoners.confidence import ConfidenceMeasure, trace_confidence
from drr_agent.tasks.base import TaskItem
from drr_agent.tasks.checking import is_correct, normalize_answer

KEEPS = (0.1, 0.25, 0.5, 0.75, 1.0)
WINDOWS = (8, 16, 32, 64, 128)


def _item(record: EvalRecord, answer_type: str) -> TaskItem:
    return TaskItem(
        id=record.item_id, question=record.question, gold=record.gold, answer_type=answer_type
    )


def sweep(records: list[EvalRecord], answer_type: str) -> dict:
    """Headroom, majority@k and every DeepConf setting's accuracy over ``records``."""
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
        wins = 0
        for r in rows:
            answers = [normalize_answer(a, answer_type) for a in r.details["answers"][:k]]
            confidences = [
                trace_confidence(t, window, measure) if t else None
                for t in r.details["token_confidences"][:k]
            ]
            chosen, _, _ = confidence_vote(answers, confidences, keep)
            answer = r.details["answers"][chosen] if chosen is not None else None
            wins += is_correct(answer, r.gold, answer_type)
        out["deepconf"].append(
            {"keep": keep, "window": window, "measure": measure, "accuracy": wins / n}
        )
    out["deepconf"].sort(key=lambda row: (-row["accuracy"], row["keep"], row["window"]))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, required=True, help="a drr eval folder (dev)")
    parser.add_argument("--answer-type", default="number")
    parser.add_argument("--out", type=Path, help="write the sweep as JSON here")
    args = parser.parse_args()
    records = RecordFile(args.run / RECORDS_FILE, EvalRecord).read()
    result = sweep(records, args.answer_type)
    print(f"{result['items']} items, k = {result['k']}; mean@1 {result['mean_at_1']:.3f}")
    for j, value in result["pass_at"].items():
        print(f"  pass@{j} {value:.3f}   majority@{j} {result['majority_at'][j]:.3f}")
    print("best DeepConf settings on these items (keep, window, measure: accuracy):")
    for row in result["deepconf"][:10]:
        print(f"  {row['keep']:<5} {row['window']:<4} {row['measure']:<13} {row['accuracy']:.3f}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
