"""The DM's share of wall time per question, side by side for several DMs in one run.

The issue's goal is a DM that costs at most 15 % of a question's wall time in process on CPU.
This runs the ``drr`` graph on the same questions, one at a time (so a question's wall time is
its own), once per DM, with the DM wrapped in a timer; it reports per DM the mean wall time per
question, the mean DM time, their ratio, and the DM time per scored candidate. The DMs run
interleaved question by question, so machine load hits them alike.

    .venv/bin/python -m evals.benchmarks.dm_cost --run runs/quickstart --questions 20 \\
        --dm classifier=runs/quickstart/dm:classifier --dm likelihood=runs/quickstart/dm

``NAME=PATH`` loads the DM as the graph would (`load_dm`: a DM with a likelihood head is the
combination); ``NAME=PATH:classifier`` loads its classifier alone.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path

from drr_agent import DRRResult, build_graph
from drr_agent.offline.run_folder import RunFolder
from drr_agent.quickstart import QuickstartPlan
from drr_agent.scorers import HFScorer, StepScorer, load_dm
from drr_agent.tasks.checking import is_correct
from drr_agent.tasks.splits import TaskSplit
from evals.benchmarks.timing import TimedScorer


def _load(spec: str) -> tuple[str, StepScorer]:
    name, _, where = spec.partition("=")
    path, _, part = where.partition(":")
    if part == "classifier":
        return name, HFScorer(path, num_threads=1, classifier_only=True)
    return name, load_dm(path, num_threads=1)


async def measure(run: Path, dms: list[tuple[str, StepScorer]], questions: int) -> dict:
    folder = RunFolder(run)
    plan = QuickstartPlan.load(folder.plan)
    task = plan.task.load()
    dev = TaskSplit.load(folder.split).subtask(task, "dev")
    reasoner = plan.step_reasoner()
    timed = {name: TimedScorer(dm) for name, dm in dms}
    graphs = {name: build_graph(reasoner, dm, plan.graph) for name, dm in timed.items()}
    wall = dict.fromkeys(timed, 0.0)
    correct = dict.fromkeys(timed, 0)
    items = dev.items[:questions]
    await graphs[next(iter(graphs))].ainvoke({"question": items[0].question})  # warm-up
    for dm in timed.values():
        dm.reset()
    for item in items:
        for name, graph in graphs.items():
            start = time.perf_counter()
            result = DRRResult.from_state(await graph.ainvoke({"question": item.question}))
            wall[name] += time.perf_counter() - start
            correct[name] += is_correct(result.answer, item.gold, item.answer_type, item.choices)
    rows = {}
    for name, dm in timed.items():
        rows[name] = {
            "questions": len(items),
            "wall_s_per_question": wall[name] / len(items),
            "dm_s_per_question": dm.seconds / len(items),
            "dm_share": dm.seconds / wall[name],
            "dm_ms_per_candidate": 1000 * dm.seconds / max(dm.items, 1),
            "candidates_scored": dm.items,
            "correct": correct[name],
        }
    return rows


def _markdown(rows: dict) -> str:
    lines = [
        "| DM | n | wall s / question | DM s / question | DM share | DM ms / candidate |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, r in rows.items():
        lines.append(
            f"| {name} | {r['questions']} | {r['wall_s_per_question']:.2f} | "
            f"{r['dm_s_per_question']:.2f} | {r['dm_share']:.1%} | "
            f"{r['dm_ms_per_candidate']:.0f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, required=True, help="a finished quickstart folder")
    parser.add_argument("--dm", action="append", required=True, help="NAME=PATH[:classifier]")
    parser.add_argument("--questions", type=int, default=20, help="dev questions")
    parser.add_argument("--out", type=Path, default=None, help="write dm_cost.json/.md here")
    args = parser.parse_args()
    rows = asyncio.run(measure(args.run, [_load(s) for s in args.dm], args.questions))
    table = _markdown(rows)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "dm_cost.json").write_text(json.dumps(rows, indent=2) + "\n")
        (args.out / "dm_cost.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
