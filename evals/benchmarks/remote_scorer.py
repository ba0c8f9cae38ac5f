"""Benchmark: the DM behind vLLM, micro-batched against unbatched, at 1, 8 and 64 concurrent graphs.

Starts one vLLM server for a trained DM (``drr serve``'s export and launcher), then simulates
``G`` concurrent graphs: each asks `RemoteScorer.ascore` for one step's score, waits a short
"Reasoner" pause, and repeats. Reports scored steps per second and the latency of one score
call (p50 / p95) for each ``G``, with micro-batching on (``max_wait_ms``, ``max_batch=64``)
and off (``max_batch=1``: one HTTP call per request), side by side in one run — the machine is
shared, so compare ratios, not absolute numbers across runs.

    .venv/bin/python -m evals.benchmarks.remote_scorer --dm runs/qs-small/dm --seed 0

Needs vLLM (``bash .ci/setup-vllm``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import time
from pathlib import Path

from drr_agent.scorers import RemoteScorer, StepContext


def _contexts(n: int, seed: int) -> list[StepContext]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        a, b = rng.randint(0, 9), rng.randint(0, 9)
        steps = tuple(
            f"{a} + {b} = {a + b + rng.choice([0, 0, 1])}" for _ in range(rng.randint(0, 3))
        )
        out.append(StepContext(f"Calculate {a} + {b}.", steps, f"Answer: {a + b}"))
    return out


async def _graphs(
    scorer: RemoteScorer, graphs: int, calls: int, pause_s: float, seed: int
) -> dict[str, float]:
    contexts = _contexts(graphs * calls, seed)
    latencies: list[float] = []
    rng = random.Random(seed)

    async def graph(g: int) -> None:
        await asyncio.sleep(rng.random() * pause_s)  # graphs do not start in lockstep
        for c in range(calls):
            started = time.perf_counter()
            await scorer.ascore([contexts[g * calls + c]])
            latencies.append(time.perf_counter() - started)
            await asyncio.sleep(pause_s)

    before = scorer.http_calls
    started = time.perf_counter()
    await asyncio.gather(*(graph(g) for g in range(graphs)))
    wall = time.perf_counter() - started
    latencies.sort()
    return {
        "graphs": graphs,
        "steps": len(latencies),
        "steps_per_s": len(latencies) / wall,
        "p50_ms": 1000 * statistics.median(latencies),
        "p95_ms": 1000 * latencies[int(0.95 * (len(latencies) - 1))],
        "http_calls": scorer.http_calls - before,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dm", required=True, type=Path, help="trained DM folder")
    parser.add_argument("--graphs", default="1,8,64")
    parser.add_argument("--calls", type=int, default=20, help="score calls per graph")
    parser.add_argument("--pause-ms", type=float, default=20.0, help="'Reasoner' time per cycle")
    parser.add_argument("--max-wait-ms", type=float, default=5.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache", type=Path, default=Path(".drr_cache/serving"))
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()

    from drr_agent.serving import VLLMServer, export_dm_for_vllm

    folder = export_dm_for_vllm(args.dm, args.cache / f"dm-{args.dm.resolve().name}")
    rows = []
    with VLLMServer(folder, "drr-dm", "pooling", log=args.cache / "bench-dm.log") as server:
        print(f"vLLM ({server.device}) serving {args.dm} at {server.url}")
        modes = {
            "batched": RemoteScorer(server.url, dm_path=args.dm, max_wait_ms=args.max_wait_ms),
            "unbatched": RemoteScorer(server.url, dm_path=args.dm, max_batch=1),
        }

        async def run_all() -> None:
            for scorer in modes.values():  # warm-up: connections, tokenizer, server graphs
                await _graphs(scorer, 4, 3, 0.0, args.seed)
            for g in (int(x) for x in args.graphs.split(",")):
                for mode, scorer in modes.items():  # side by side, alternating per size
                    row = await _graphs(scorer, g, args.calls, args.pause_ms / 1000, args.seed)
                    rows.append({"mode": mode, **row})

        asyncio.run(run_all())
    print("| graphs | mode | steps/s | p50 ms | p95 ms | HTTP calls | steps/call |")
    print("|---:|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['graphs']} | {r['mode']} | {r['steps_per_s']:.1f} | {r['p50_ms']:.1f} | "
            f"{r['p95_ms']:.1f} | {r['http_calls']} | {r['steps'] / r['http_calls']:.1f} |"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
