"""Does reading the Reasoner's forced answer after a step make a better critic of dev steps?

The lookahead (`drr_agent.scorers.lookahead`) asks the Reasoner to conclude right after each
step — the labels' own question, once, greedily — and the verifier judges that answer. This
benchmark reads a quickstart run's train and dev steps once (the run's classifier and verifier
as `load_dm` loads them; the forced answers the labels recorded, else asked of the embedded
Reasoner under the task's instruction), then fits heads with and without the lookahead inputs,
with and without the classifier, and reports

- ``train → dev``: fitted on the train rows, read on the dev rows (what the quickstart does);
- ``cv``: 5-fold cross-validation by question over train + dev, heads without the classifier
  (its logits on training rows are in-sample, on dev rows not): a choice that does not hang
  on 40 dev questions, and the spread of a 24-question estimate.

Each head has ``--hidden`` tanh units, ``--seeds`` starts averaged in the report. Nothing here
reads the test split.

    .venv/bin/python -m evals.benchmarks.lookahead_heads --run runs/quickstart \\
        --out runs/quickstart/lookahead-heads.json

Cost: the verifier reads each train and dev row once (~2 min for the quickstart's 1511 rows in
bfloat16 on 2 cores), plus one Reasoner call per distinct prefix the labels did not record
(~5 min for all 1484); the fits take seconds.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import numpy as np

from drr_agent.offline.dm_eval import evaluate_scores
from drr_agent.offline.jsonl import RecordFile
from drr_agent.offline.records import StepExample
from drr_agent.offline.run_folder import RunFolder
from drr_agent.scorers import load_dm
from drr_agent.scorers.likelihood import (
    CLASSIFIER_FEATURE,
    LOOKAHEAD_HEAD_INPUTS,
    VERIFIER_HEAD_INPUTS,
    LikelihoodHead,
    LikelihoodScorer,
    head_inputs,
    lookahead_features,
)
from drr_agent.scorers.lookahead import LookaheadSpec
from drr_agent.tasks.spec import TaskSpec

HEADS = {
    "verifier": VERIFIER_HEAD_INPUTS,
    "verifier + lookahead": LOOKAHEAD_HEAD_INPUTS,
}
METRICS = ("auroc", "auroc_non_final", "auroc_final", "ece", "sibling_pair_accuracy")
FOLDS = 5


def _inputs(dm: LikelihoodScorer, task_spec: Path, rows: list[StepExample]) -> np.ndarray:
    """Every head input for ``rows``: statistics, classifier logit and lookahead."""
    lookahead = LookaheadSpec(instruction=TaskSpec.read(task_spec).load().instruction).build()
    lookahead.remember_recorded(rows)
    contexts = [e.context for e in rows]
    answers = lookahead.answers(contexts)
    return head_inputs(
        dm.likelihood.features(contexts),
        dm.classifier.score(contexts),
        lookahead_features(dm.likelihood, contexts, answers),
    )


def _report(
    x: np.ndarray,
    rows: list[StepExample],
    fit: np.ndarray,
    read: np.ndarray,
    features: tuple[str, ...],
    hidden: int,
    seeds: int,
) -> dict[str, float]:
    """The mean over ``seeds`` starts of a head fitted on rows ``fit``, read on rows ``read``."""
    labels = [rows[i].label for i in np.flatnonzero(fit)]
    read_rows = [rows[i] for i in np.flatnonzero(read)]
    runs = []
    for seed in range(seeds):
        head = LikelihoodHead.fit(x[fit], labels, features=features, hidden=hidden, seed=seed)
        report = evaluate_scores(head.probabilities(x[read]).tolist(), read_rows)
        runs.append([getattr(report, m) or float("nan") for m in METRICS])
    return dict(zip(METRICS, np.nanmean(runs, axis=0).tolist(), strict=True))


def measure(run: Path, hidden: int, seeds: int) -> dict:
    folder = RunFolder(run)
    dm = load_dm(folder.dm)
    if not isinstance(dm, LikelihoodScorer):
        raise SystemExit(f"{folder.dm}: not a likelihood DM (its card has no head)")
    rows = [e for e in RecordFile(folder.labels, StepExample).read() if e.split in ("train", "dev")]
    x = _inputs(dm, folder.task_spec, rows)
    train = np.array([e.split == "train" for e in rows])
    questions = sorted({e.question for e in rows})
    random.Random(0).shuffle(questions)
    fold_of = {q: i % FOLDS for i, q in enumerate(questions)}
    fold = np.array([fold_of[e.question] for e in rows])
    result: dict = {"run": str(run), "rows": len(rows), "hidden": hidden, "seeds": seeds}
    result["train_dev"] = {
        name: _report(x, rows, train, ~train, features, hidden, seeds)
        for name, features in HEADS.items()
    }
    result["cv"] = {}
    for name, features in HEADS.items():
        without = tuple(f for f in features if f != CLASSIFIER_FEATURE)
        folds = [
            _report(x, rows, fold != k, fold == k, without, hidden, seeds) for k in range(FOLDS)
        ]
        result["cv"][f"{name} (no classifier)"] = {
            "mean": {m: float(np.nanmean([f[m] for f in folds])) for m in METRICS},
            "folds": folds,
        }
    return result


def _markdown(result: dict) -> str:
    lines = [
        f"{result['rows']} train + dev rows of {result['run']}; heads of {result['hidden']} "
        f"units, mean of {result['seeds']} starts",
        "",
        "| head | read on | AUROC (steps / answers) | ECE | sibling pairs |",
        "|---|---|---:|---:|---:|",
    ]
    parts = [("dev (fitted on train)", result["train_dev"])]
    parts.append(("5-fold CV", {k: v["mean"] for k, v in result["cv"].items()}))
    for where, heads in parts:
        for name, m in heads.items():
            lines.append(
                f"| {name} | {where} | {m['auroc']:.3f} ({m['auroc_non_final']:.3f} / "
                f"{m['auroc_final']:.3f}) | {m['ece']:.3f} | {m['sibling_pair_accuracy']:.3f} |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", type=Path, required=True, help="a quickstart run folder")
    parser.add_argument("--hidden", type=int, default=8)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--out", type=Path, help="write the result as JSON here")
    args = parser.parse_args()
    result = measure(args.run, args.hidden, args.seeds)
    print(_markdown(result))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
