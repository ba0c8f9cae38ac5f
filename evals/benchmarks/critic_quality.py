"""How good must a critic be to help in this graph? Accuracy against a critic's error rate.

The DM's job in DRR is a veto: pass the right steps, reject the wrong ones. ``oracle`` never
errs, ``stepwise`` knows nothing (accepts every step); ``noisy_oracle`` is the oracle with
each right/wrong verdict flipped with probability ``flip`` (consistently per item and text,
as a deterministic DM). Running it for several flips on the same questions, graph and budgets
draws the curve from the ceiling down to the floor and says what error rate a trained DM
has to get under before its critic efficiency, ``(critic − stepwise) / (oracle − stepwise)``,
reaches a target — read it beside the DM's own veto accuracy on dev steps
(``accuracy_at_threshold`` in the DM card).

Nothing here reads a DM, so the questions may be the split's train and dev ones (``--parts
train,dev``; never test): nothing is chosen from this curve, it is a measurement of the
graph. The flip decisions use ``--seed``; each flip level is its own resumable ``drr eval``
folder under ``--out``.

    .venv/bin/python -m evals.benchmarks.critic_quality --run runs/quickstart \\
        --flips 0.1,0.2,0.3 --parts train,dev --out runs/quickstart/critic-quality
"""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path

from drr_agent.evaluation.methods import MethodContext, MethodSettings
from drr_agent.evaluation.paired import critic_efficiency
from drr_agent.evaluation.records import RECORDS_FILE, EvalRecord
from drr_agent.evaluation.runner import run_eval
from drr_agent.offline.jsonl import RecordFile
from drr_agent.offline.run_folder import RunFolder
from drr_agent.quickstart import QuickstartPlan
from drr_agent.tasks.base import Task
from drr_agent.tasks.splits import TaskSplit


def _floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x.strip()]


def _questions(run: Path, parts: list[str]) -> tuple[QuickstartPlan, Task]:
    """The run's plan and its task restricted to the named split parts (never ``test``)."""
    if "test" in parts:
        raise SystemExit("--parts: the test questions are for reporting methods, not this")
    folder = RunFolder(run)
    plan = QuickstartPlan.load(folder.plan)
    task = plan.task.load()
    split = TaskSplit.load(folder.split)
    subtasks = [split.subtask(task, part) for part in parts]
    items = tuple(item for sub in subtasks for item in sub.items)
    return plan, subtasks[0].model_copy(update={"items": items})


async def measure(run: Path, out: Path, flips: list[float], parts: list[str], seed: int) -> dict:
    plan, task = _questions(run, parts)
    reasoner = plan.step_reasoner()

    async def evaluate(methods: list[str], folder: Path, flip: float) -> list[EvalRecord]:
        settings = MethodSettings(seed=seed, oracle_flip=flip)
        ctx = MethodContext(task, reasoner, None, plan.graph, settings)
        await run_eval(
            task, task.items, methods, ctx, folder, concurrency=plan.concurrency, plots=False
        )
        return RecordFile(folder / RECORDS_FILE, EvalRecord).read()

    anchors = await evaluate(["stepwise", "oracle"], out / "anchors", 0.0)
    rows = []
    for flip in flips:
        noisy = await evaluate(["noisy_oracle"], out / f"flip-{flip:g}", flip)
        eff = critic_efficiency([*anchors, *noisy], method="noisy_oracle", seed=seed)
        if eff is None:
            raise SystemExit(f"flip {flip}: no shared items between the methods")
        rows.append(
            {
                "flip": flip,
                "n": eff.n,
                "accuracy": eff.method_accuracy,
                "stepwise": eff.floor_accuracy,
                "oracle": eff.ceiling_accuracy,
                "efficiency": eff.efficiency,
                "efficiency_ci": [eff.ci_low, eff.ci_high],
            }
        )
    result = {"run": str(run), "parts": parts, "seed": seed, "rows": rows}
    out.mkdir(parents=True, exist_ok=True)
    (out / "critic_quality.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def _markdown(result: dict) -> str:
    rows = result["rows"]
    lines = [
        f"critic error rate → accuracy on {rows[0]['n']} questions ({', '.join(result['parts'])})"
        f"; stepwise {rows[0]['stepwise']:.3f}, oracle {rows[0]['oracle']:.3f}",
        "",
        "| flip | accuracy | critic efficiency [95% CI] |",
        "|---:|---:|---|",
    ]
    for r in rows:
        low, high = r["efficiency_ci"]
        ci = "—" if low is None else f"[{low:.2f}, {high:.2f}]"
        eff = "—" if r["efficiency"] is None else f"{r['efficiency']:.2f}"
        lines.append(f"| {r['flip']:g} | {r['accuracy']:.3f} | {eff} {ci} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", type=Path, required=True, help="A finished quickstart folder.")
    parser.add_argument("--flips", type=_floats, default=[0.1, 0.2, 0.3])
    parser.add_argument("--parts", default="train,dev", help="Split parts (not test).")
    parser.add_argument("--seed", type=int, default=0, help="Seeds which verdicts flip.")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    parts = [p.strip() for p in args.parts.split(",") if p.strip()]
    result = asyncio.run(measure(args.run, args.out, args.flips, parts, args.seed))
    table = _markdown(result)
    (args.out / "critic_quality.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
