"""Soak: many concurrent DRR graphs against one served DM and one served Reasoner, for minutes.

Starts two vLLM CPU servers as ``drr serve`` would — the DM (exported one-logit cross-encoder)
and the embedded SmolLM2 Reasoner — then keeps ``--graphs`` graphs running on
``basic_arithmetic`` questions for ``--minutes``: each graph, when done, starts the next
question. Reports finished graphs, errors (graphs that raised, and graphs that ended on a
Reasoner or DM error), latency per graph (p50 / p95 / max), and resident memory of this
process and of each server's process tree at the start, every 30 s and at the end — growth
that continues after the first minute (warm-up: allocator pools, KV cache, first batches of
each shape) would show a leak in the client (connection pools, micro-batcher queues, graph
state) or the servers.

    .venv/bin/python -m evals.benchmarks.soak --dm runs/quickstart/dm --graphs 64 --minutes 5 \\
        --out runs/soak

Needs vLLM (``bash .ci/setup-vllm``). A DM with a likelihood head is served as its classifier
(the head's Reasoner-likelihood features run in this process, as `load_dm` does).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
from pathlib import Path

from drr_agent import DRRConfig, DRRResult, build_graph
from drr_agent.reasoners import openai_compatible_reasoner
from drr_agent.scorers import load_dm
from drr_agent.serving import VLLMServer, embedded_reasoner_folder, export_dm_for_vllm
from drr_agent.tasks import load_task


def _rss_mib(pid: int, *, tree: bool = True) -> float:
    """Resident memory of ``pid`` (and, with ``tree``, its descendants), MiB (from /proc)."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            status = Path(f"/proc/{p}/status").read_text()
            total += next(int(x.split()[1]) for x in status.splitlines() if x.startswith("VmRSS"))
            if tree:
                todo += [int(c) for c in Path(f"/proc/{p}/task/{p}/children").read_text().split()]
        except (OSError, StopIteration):
            continue
    return total / 1024


def _memory(servers: dict[str, VLLMServer]) -> dict[str, float]:
    out = {"client": _rss_mib(os.getpid(), tree=False)}  # the servers are its children
    for name, server in servers.items():
        assert server.process is not None
        out[name] = _rss_mib(server.process.pid)
    return out


async def soak(dm_path: Path, graphs: int, minutes: float, cache: Path) -> dict:
    dm_folder = export_dm_for_vllm(dm_path, cache / "dm")
    servers = {
        "dm_server": VLLMServer(dm_folder, "drr-dm", "pooling", device="cpu"),
        "reasoner_server": VLLMServer(
            embedded_reasoner_folder(), "drr-reasoner", "generate", device="cpu"
        ),
    }
    for server in servers.values():
        server.start()
    try:
        reasoner = openai_compatible_reasoner(
            f"{servers['reasoner_server'].url}/v1", "drr-reasoner", style="prefill",
            vllm=True, temperature=0.7, max_tokens=48, seed=0, timeout_s=120,
        )  # fmt: skip
        scorer = load_dm(dm_path, url=servers["dm_server"].url, num_threads=1)
        graph = build_graph(reasoner, scorer, DRRConfig(max_steps=2, max_reasoner_calls=8))
        questions = [i.question for i in load_task("basic_arithmetic", limit=500, seed=7).items]
        latencies: list[float] = []
        outcomes: dict[str, int] = {}
        raised: list[str] = []
        memory_start = _memory(servers)
        deadline = time.monotonic() + 60 * minutes
        samples: list[dict[str, float]] = []

        async def sample_memory() -> None:
            start = time.monotonic()
            while time.monotonic() < deadline:
                await asyncio.sleep(30)
                samples.append({"t_s": round(time.monotonic() - start), **_memory(servers)})

        counter = iter(range(10**9))

        async def worker() -> None:
            while time.monotonic() < deadline:
                question = questions[next(counter) % len(questions)]
                started = time.perf_counter()
                try:
                    state = await graph.ainvoke({"question": question})
                except Exception as exc:  # a soak counts failures instead of stopping
                    raised.append(f"{type(exc).__name__}: {exc}"[:200])
                    continue
                latencies.append(time.perf_counter() - started)
                reason = DRRResult.from_state(state).stop_reason or "none"
                outcomes[reason] = outcomes.get(reason, 0) + 1

        started = time.perf_counter()
        await asyncio.gather(sample_memory(), *(worker() for _ in range(graphs)))
        wall = time.perf_counter() - started
        memory_end = _memory(servers)
    finally:
        for server in servers.values():
            server.stop()
    latencies.sort()

    def pct(q: float) -> float:
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] if latencies else 0.0

    errors = len(raised) + sum(n for r, n in outcomes.items() if r.endswith("_error"))
    return {
        "graphs": graphs,
        "minutes": wall / 60,
        "finished": len(latencies),
        "graphs_per_s": len(latencies) / wall,
        "errors": errors,
        "raised": raised[:10],
        "stop_reasons": outcomes,
        "latency_s": {
            "p50": pct(0.5),
            "p95": pct(0.95),
            "max": latencies[-1] if latencies else 0.0,
            "mean": statistics.fmean(latencies) if latencies else 0.0,
        },
        "rss_mib_start": memory_start,
        "rss_mib_every_30s": samples,
        "rss_mib_end": memory_end,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dm", type=Path, required=True, help="a trained DM folder")
    parser.add_argument("--graphs", type=int, default=64)
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--out", type=Path, default=Path("runs/soak"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    result = asyncio.run(soak(args.dm, args.graphs, args.minutes, args.out / "serving"))
    (args.out / "soak.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
