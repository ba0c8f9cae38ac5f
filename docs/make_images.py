"""Regenerates the README's pictures from a quickstart run folder.

    .venv/bin/python docs/make_images.py --run runs/quickstart --question "Calculate 2 - 7."

Draws one DRR run of the embedded Reasoner judged by the run's DM (`draw_thought_tree`), and
copies the evaluation's accuracy-vs-tokens plot.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from drr_agent import build_graph, draw_thought_tree, embedded_reasoner, load_dm
from drr_agent.evaluation.plots import ACCURACY_PLOT
from drr_agent.offline.run_folder import RunFolder
from drr_agent.quickstart import PLANS

OUT = Path(__file__).parent / "images"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, default=Path("runs/quickstart"))
    parser.add_argument("--question", default="Calculate 2 - 7.")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    plan = PLANS["small"]
    reasoner = embedded_reasoner(
        seed=args.seed, temperature=plan.step_temperature, max_tokens=plan.step_max_tokens
    )
    run = RunFolder(args.run)
    graph = build_graph(reasoner, load_dm(run.dm, num_threads=1), plan.graph)
    state = graph.invoke({"question": args.question})
    fig = draw_thought_tree(state)
    fig.savefig(OUT / "thought_tree.png", dpi=80)
    shutil.copy(run.eval / ACCURACY_PLOT, OUT / ACCURACY_PLOT)
    print("wrote", *sorted(p.name for p in OUT.glob("*.png")))


if __name__ == "__main__":
    main()
