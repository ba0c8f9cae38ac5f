"""What do the rollout labels let a critic that knows right from wrong score?

The DM's step metrics (AUROC, ECE, sibling-pair accuracy in its card) are measured against
the rollout labels: did the Reasoner, asked for its answer after this step, get it right?
That is a behavioural label, as DRR asks, but it mixes two things: whether the step is right
and whether *this* Reasoner then goes on to answer correctly (one rollout per step in the
quickstart). A critic is only as good on those metrics as the labels let it be. This
benchmark scores the same labelled steps, through the same `evaluate_dm` that writes the DM
card, with critics that know the gold answer:

- ``oracle``: the gold-aware verdict the graph's ``oracle`` method uses (`oracle_verdict`:
  1 right, 0 wrong, 0.5 a step it cannot check) — the critic whose graph accuracy is the
  ceiling of critic efficiency;
- ``oracle_path``: the same, but 0 when any earlier step of the trace is wrong;
- ``*_calibrated``: each verdict level mapped to the rate of positive labels that level has
  on the *train* rows — the best-calibrated critic that only knows right from wrong.

If the oracle's AUROC against the labels is below a target, no critic that judges
correctness reaches the target; what is left to learn is which questions this Reasoner fails
anyway. Nothing is chosen here and no DM is read; ``--dm`` only copies a DM card's dev
metrics beside the rows.

    .venv/bin/python -m evals.benchmarks.label_ceiling --run runs/quickstart \\
        --dm runs/quickstart/dm --out runs/quickstart/label-ceiling.json

Cost: seconds (no model runs).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from pathlib import Path

from drr_agent.evaluation.methods import oracle_verdict
from drr_agent.offline.dm_eval import DEFAULT_PAIR_LIMIT, DMReport, evaluate_dm
from drr_agent.offline.jsonl import RecordFile
from drr_agent.offline.records import StepExample
from drr_agent.offline.run_folder import RunFolder
from drr_agent.quickstart import QuickstartPlan
from drr_agent.scorers.base import FunctionScorer, StepContext
from drr_agent.scorers.card import DMCard
from drr_agent.tasks.splits import TaskSplit

METRICS = ("auroc", "auroc_non_final", "auroc_final", "ece", "brier")
PAIRS = ("sibling_pair_accuracy", "minimal_pair_accuracy")
COLUMNS = ("n", *METRICS, *PAIRS)


def _verdicts(run: Path) -> tuple[Callable[[StepContext], float], Callable[[StepContext], float]]:
    """(the step's own verdict, the path-aware verdict), for contexts of the run's questions."""
    folder = RunFolder(run)
    task = QuickstartPlan.load(folder.plan).task.load()
    split = TaskSplit.load(folder.split)
    items = {item.question: item for part in ("train", "dev") for item in split.items(task, part)}

    def step(context: StepContext) -> float:
        if context.question not in items:
            raise SystemExit(f"{run}: a labelled step's question is not a train or dev question")
        return oracle_verdict(items[context.question], task, context.candidate)

    def path(context: StepContext) -> float:
        earlier = (StepContext(context.question, (), s) for s in context.steps)
        if any(step(c) == 0.0 for c in earlier):
            return 0.0
        return step(context)

    return step, path


def _calibrated(
    verdict: Callable[[StepContext], float], train: Sequence[StepExample]
) -> Callable[[StepContext], float]:
    """``verdict`` with each level replaced by the positive-label rate it has on ``train``."""
    totals: dict[float, list[float]] = {}
    for e in train:
        level = verdict(e.context)
        totals.setdefault(level, []).append(e.label)
    rate = {level: sum(labels) / len(labels) for level, labels in totals.items()}
    overall = sum(e.label for e in train) / len(train)
    return lambda context: rate.get(verdict(context), overall)


def _row(report: DMReport) -> dict:
    return {key: getattr(report, key) for key in COLUMNS}


def measure(run: Path, part: str, dm: Path | None, minimal_pairs: int | None) -> dict:
    labels = RecordFile(RunFolder(run).labels, StepExample).read()
    train = [e for e in labels if e.split == "train"]
    rows = [e for e in labels if e.split == part]
    if not rows or not train:
        raise SystemExit(f"{run}: no labelled {part} or train steps")
    step, path = _verdicts(run)
    critics = {
        "oracle": step,
        "oracle_calibrated": _calibrated(step, train),
        "oracle_path": path,
        "oracle_path_calibrated": _calibrated(path, train),
    }
    result: dict = {"run": str(run), "part": part, "critics": {}}
    for name, fn in critics.items():
        report = evaluate_dm(FunctionScorer(fn, name=name), rows, minimal_pair_limit=minimal_pairs)
        result["critics"][name] = _row(report)
    if dm is not None:
        card = DMCard.load(dm)
        result["dm"] = {key: card.metrics["eval"].get(key) for key in COLUMNS}
    return result


def _table(result: dict) -> str:
    def fmt(value: float | int | None) -> str:
        return "—" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)

    lines = [
        f"critics against the rollout labels of the {result['part']} steps of {result['run']}",
        "",
        "| critic | " + " | ".join(COLUMNS) + " |",
        "|---|" + "---:|" * len(COLUMNS),
    ]
    rows = dict(result["critics"])
    if "dm" in result:
        rows["the run's DM (card)"] = result["dm"]
    for name, row in rows.items():
        lines.append(f"| {name} | " + " | ".join(fmt(row.get(c)) for c in COLUMNS) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", type=Path, required=True, help="a quickstart run folder")
    parser.add_argument("--part", default="dev", choices=["dev", "train"])
    parser.add_argument("--dm", type=Path, help="a DM folder whose card's dev metrics to show")
    parser.add_argument("--minimal-pairs", type=int, default=DEFAULT_PAIR_LIMIT)
    parser.add_argument("--out", type=Path, help="write the result as JSON here")
    args = parser.parse_args()
    result = measure(args.run, args.part, args.dm, args.minimal_pairs)
    print(_table(result))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
