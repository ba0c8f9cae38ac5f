"""How much does ``drr`` move when only the DM's training seed does?

A quickstart reports ``drr`` with *one* trained DM. Two DMs trained on almost the same data can
route very differently (README, *Status*), so a ``drr`` number is one draw from the DM's
training distribution. This script retrains the quickstart's DM on the same labelled steps
with other seeds (everything else as the quickstart's plan: base, epochs, learning rate,
likelihood head, early stopping and thresholds on dev), evaluates ``drr`` with each on the
same test questions, and reports each DM's dev metrics, its test accuracy, its paired
difference to ``stepwise`` and its critic efficiency, then the spread over seeds. ``stepwise``
and ``oracle`` run once (they use no DM); the quickstart's own DM counts as its plan's seed.

Nothing is chosen here: it measures the variance a reported ``drr`` number carries.

    .venv/bin/python -m evals.benchmarks.dm_seeds --run runs/quickstart --seeds 1,2 \\
        --out runs/quickstart/dm-seeds
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
from pathlib import Path

from drr_agent.evaluation.methods import MethodContext, MethodSettings
from drr_agent.evaluation.paired import compare, critic_efficiency
from drr_agent.evaluation.records import RECORDS_FILE, EvalRecord
from drr_agent.evaluation.runner import run_eval
from drr_agent.offline.jsonl import RecordFile
from drr_agent.offline.records import StepExample
from drr_agent.offline.run_folder import RunFolder
from drr_agent.offline.train import train_dm
from drr_agent.quickstart import QuickstartPlan
from drr_agent.scorers import load_dm
from drr_agent.scorers.card import DMCard
from drr_agent.tasks.splits import TaskSplit


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def _train(plan: QuickstartPlan, labels: list[StepExample], seed: int, out: Path) -> Path:
    """The quickstart's DM recipe with another seed (reused when ``out`` holds one)."""
    if (out / "drr_dm.json").is_file():
        return out
    train_dm(
        [e for e in labels if e.split == "train"],
        plan.train_config(out, seed=seed),
        progress=False,
        dev=[e for e in labels if e.split == "dev"],
    )
    return out


def _dev_metrics(dm: Path) -> dict:
    """The DM's dev report and the thresholds the graph routes on (the likelihood head's when
    the DM has one, else the card's)."""
    card = DMCard.load(dm)
    dev = card.metrics["eval"]
    routed = card.likelihood_head or card
    return {
        "dev_auroc": dev["auroc"],
        "dev_ece": dev["ece"],
        "sibling_pairs": dev["sibling_pair_accuracy"],
        "minimal_pairs": dev["minimal_pair_accuracy"],
        "accept_threshold": routed.accept_threshold,
        "answer_threshold": routed.answer_threshold,
    }


async def measure(run: Path, out: Path, seeds: list[int]) -> dict:
    folder = RunFolder(run)
    plan = QuickstartPlan.load(folder.plan)
    task = plan.task.load()
    test = TaskSplit.load(folder.split).subtask(task, "test")
    labels = RecordFile(folder.labels, StepExample).read()
    reasoner = plan.step_reasoner()
    settings = MethodSettings(seed=plan.seed)

    async def evaluate(methods: list[str], where: Path, dm: Path | None) -> list[EvalRecord]:
        scorer = None if dm is None else load_dm(dm, num_threads=1)
        ctx = MethodContext(test, reasoner, scorer, plan.graph, settings)
        await run_eval(
            test, test.items, methods, ctx, where, concurrency=plan.concurrency, plots=False
        )
        return RecordFile(where / RECORDS_FILE, EvalRecord).read()

    anchors = await evaluate(["stepwise", "oracle"], out / "anchors", None)
    rows = []
    for seed in sorted({plan.seed, *seeds}):
        dm = folder.dm if seed == plan.seed else _train(plan, labels, seed, out / f"seed-{seed}")
        records = [*anchors, *await evaluate(["drr"], out / f"eval-seed-{seed}", dm)]
        diff = compare(records, "drr", "stepwise")
        eff = critic_efficiency(records)
        if diff is None or eff is None:
            raise SystemExit(f"seed {seed}: drr, stepwise and oracle share no test item")
        rows.append(
            {
                "seed": seed,
                **_dev_metrics(dm),
                "drr": eff.method_accuracy,
                "drr_minus_stepwise": [diff.diff, diff.ci_low, diff.ci_high],
                "critic_efficiency": eff.efficiency,
            }
        )
    accuracies = [r["drr"] for r in rows]
    result = {
        "run": str(run),
        "n": eff.n,
        "stepwise": eff.floor_accuracy,
        "oracle": eff.ceiling_accuracy,
        "rows": rows,
        "drr_mean": statistics.fmean(accuracies),
        "drr_sd": statistics.stdev(accuracies) if len(accuracies) > 1 else None,
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "dm_seeds.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def _markdown(result: dict) -> str:
    lines = [
        f"drr over DM training seeds, {result['n']} test questions; stepwise "
        f"{result['stepwise']:.3f}, oracle {result['oracle']:.3f}; drr mean "
        f"{result['drr_mean']:.3f}"
        + ("" if result["drr_sd"] is None else f" ± {result['drr_sd']:.3f} (sd)"),
        "",
        "| seed | dev AUROC | sibling pairs | minimal pairs | thresholds | drr | drr − stepwise "
        "[95% CI] | critic efficiency |",
        "|---:|---:|---:|---:|---|---:|---|---:|",
    ]
    for r in result["rows"]:
        d, low, high = r["drr_minus_stepwise"]
        eff = "—" if r["critic_efficiency"] is None else f"{r['critic_efficiency']:.2f}"
        lines.append(
            f"| {r['seed']} | {r['dev_auroc']:.3f} | {r['sibling_pairs']:.3f} | "
            f"{r['minimal_pairs']:.3f} | {r['accept_threshold']:.3f} / "
            f"{r['answer_threshold']:.3f} | {r['drr']:.3f} | {d:+.3f} [{low:+.3f}, {high:+.3f}] "
            f"| {eff} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", type=Path, required=True, help="A finished quickstart folder.")
    parser.add_argument("--seeds", type=_ints, default=[1, 2], help="Other training seeds.")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    result = asyncio.run(measure(args.run, args.out, args.seeds))
    table = _markdown(result)
    (args.out / "dm_seeds.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
