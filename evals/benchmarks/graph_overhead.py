"""Benchmark: what the DRR graph itself costs per reason → score → decide cycle.

Part A — graph overhead with instant doubles. A tiny chat model (`InstantChatModel`) returns a
fresh, answer-free step at once and a `FunctionScorer` returns a constant 0.9 against an
accept threshold of 0.5, with ``max_steps = max_reasoner_calls = --cycles``: every run accepts
one step per cycle and stops on ``max_steps`` after exactly ``--cycles`` cycles. Each mode
(``invoke``, ``ainvoke``, and both again with an ``InMemorySaver`` checkpointer, one
``thread_id`` per run) is warmed up, then timed over ``--repeats`` runs. The cost of the
doubles alone (the same Reasoner ``propose``/``apropose`` and scorer ``score``/``ascore`` calls,
made directly the same number of times) is measured too and its median subtracted, so the
reported overhead is the graph's own: LangGraph's Pregel loop, state reducers and channel
copies, the retry/timeout wrappers, the policy, and (when on) checkpoint serialisation.
Target (from the issue): under 2 ms per cycle, judged on the median.

Part B — the real embedded models. The embedded Reasoner (SmolLM2-135M via llama.cpp) and the
embedded MiniLM DM (``HFScorer(embedded_dm_base_path(), allow_untrained_head=True,
num_threads=1)``: one torch thread beside llama.cpp, see `HFScorer`) answer ``--questions``
seeded arithmetic questions, one ``ainvoke`` at a time, with a short run
configuration (``max_steps=4``, ``accept_threshold=0.0``). The untrained classification head
scores every step about 0.5, so a threshold of 0 accepts everything and the runs' shape does
not depend on the random head; the scores are meaningless, only the timing matters. Timing
wrappers around the scorer (`TimedScorer`) and the Reasoner (`TimedReasoner`) split each
question's wall time into Reasoner, DM and graph+other. Target: DM share (time inside DM
calls over wall time) under 3 %. Before the DM is loaded, a control pass answers the same
questions with a constant scorer; since the Reasoner is seeded, both passes generate the same
tokens, and the difference in wall time is the DM's marginal cost, including any CPU
contention between torch and llama.cpp that the time inside DM calls does not show.

Run from the repository root::

    python -m evals.benchmarks.graph_overhead                  # both parts
    python -m evals.benchmarks.graph_overhead --skip-real      # Part A only (no models needed)
    python -m evals.benchmarks.graph_overhead --profile        # + cProfile of Part A

It prints rich tables and writes a JSON record to ``--out``
(default ``runs/bench/graph_overhead.json``). Part A is `evals.benchmarks.cycle_overhead`,
Part B `evals.benchmarks.dm_share`; the doubles are in `evals.benchmarks.instant_doubles`, the
timing wrappers and statistics in `evals.benchmarks.timing`.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from evals.benchmarks.cycle_overhead import (
    OVERHEAD_TARGET_MS,
    WARMUP_RUNS,
    print_part_a,
    profile_part_a,
    run_part_a,
)
from evals.benchmarks.dm_share import print_part_b, run_part_b
from evals.benchmarks.timing import console, environment

DEFAULT_OUT = Path("runs/bench/graph_overhead.json")
app = typer.Typer(add_completion=False, help=__doc__.split("\n\n")[0] if __doc__ else None)


# -- CLI ----------------------------------------------------------------------------------------
@app.command()
def main(
    questions: Annotated[
        int, typer.Option(min=1, help="Part B: arithmetic questions to time.")
    ] = 8,
    seed: Annotated[int, typer.Option(help="Seeds the questions and the embedded Reasoner.")] = 0,
    cycles: Annotated[
        int, typer.Option(min=1, help="Part A: reason→score→decide cycles per run.")
    ] = 20,
    repeats: Annotated[
        int, typer.Option(min=1, help="Part A: timed runs per mode (after warm-up).")
    ] = 30,
    skip_real: Annotated[
        bool, typer.Option(help="Skip Part B (the real embedded models).")
    ] = False,
    profile: Annotated[
        bool, typer.Option(help="Also cProfile Part A and print the hot spots.")
    ] = False,
    out: Annotated[Path, typer.Option(help="Where to write the JSON record.")] = DEFAULT_OUT,
) -> None:
    """Measure the DRR graph's own overhead per cycle, and the DM's share with real models."""
    out.parent.mkdir(parents=True, exist_ok=True)
    record: dict[str, Any] = {
        "benchmark": "graph_overhead",
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "args": {
            "questions": questions,
            "seed": seed,
            "cycles": cycles,
            "repeats": repeats,
            "skip_real": skip_real,
        },
        "environment": environment(),
    }

    part_a = run_part_a(cycles, repeats, seed)
    print_part_a(part_a, cycles, repeats)
    record["part_a"] = {
        "cycles_per_run": cycles,
        "repeats": repeats,
        "warmup_runs": WARMUP_RUNS,
        "target_ms_per_cycle": OVERHEAD_TARGET_MS,
        "doubles": "Reasoner(InstantChatModel()); FunctionScorer returning 0.9 (a sync function "
        "for invoke, an async one for ainvoke); accept_threshold 0.5, "
        "max_steps = max_reasoner_calls = cycles",
        "modes": [r.record() for r in part_a],
    }
    if profile:
        record["part_a"]["profiles"] = profile_part_a(cycles, repeats, seed, out.parent)

    if skip_real:
        record["part_b"] = None
    else:
        part_b = run_part_b(questions, seed)
        print_part_b(part_b)
        record["part_b"] = part_b

    out.write_text(json.dumps(record, indent=2) + "\n")
    console.print(f"wrote {out}")


if __name__ == "__main__":
    app()
