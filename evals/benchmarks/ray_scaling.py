"""Ray against the in-process runner on the same trace job, on a 2-node Ray cluster of this host.

Starts a Ray head (``ray start --head --num-cpus 1``) and a second node joined to it (``ray
start --address …``: a second raylet on the same machine, so two "nodes" of one CPU each),
then samples the same traces three ways, side by side in one run:

1. **local**: `sample_traces` in this process, the embedded Reasoner (llama.cpp, all cores);
2. **ray**: the same job through `RayExecutor` — one actor per node, each rebuilding the
   embedded Reasoner from its recipe (its own llama.cpp server, ``DRR_LLAMA_THREADS=1``);
3. **overhead**: a job that does no work, local and on Ray, for Ray's cost per item;

then a **kill check**: the Ray job again into a fresh file while one worker process is
SIGKILLed mid-job (found with ``ps``, killed from outside); the file must hold every key once.

    .venv/bin/python -m evals.benchmarks.ray_scaling --items 24 --samples 4 --out runs/ray

Writes ``ray_scaling.json`` and ``ray_scaling.md`` under ``--out``. On 2 cores both paths
share the same CPUs, so the throughput ratio says what Ray costs, not what a cluster gains;
the README's projection multiplies the measured per-replica throughput instead.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from drr_agent.execution import LocalExecutor, RayExecutor
from drr_agent.offline.jsonl import RecordFile
from drr_agent.offline.records import TraceRecord
from drr_agent.offline.traces import sample_traces
from drr_agent.reasoners import embedded_reasoner
from drr_agent.tasks import load_task


@dataclass(frozen=True)
class NoWork:
    """A job that returns at once: what is left is the executor's own cost per item."""

    async def __call__(self, resources: Any, unit: Any) -> Any:
        return unit


def _ray(*args: str) -> None:
    ray_bin = Path(sys.executable).parent / "ray"
    subprocess.run([str(ray_bin), *args], check=True, capture_output=True, text=True)


def _worker_pids() -> list[int]:
    out = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
    return [int(line.split()[0]) for line in out.splitlines() if "ray::_Worker" in line]


async def _traces(task, items, out: Path, executor, samples: int) -> tuple[float, int]:
    reasoner = embedded_reasoner(temperature=0.8, max_tokens=96, seed=0)
    started = time.perf_counter()
    summary = await sample_traces(
        task,
        items,
        "train",
        reasoner,
        out,
        samples_per_item=samples,
        temperature=0.8,
        max_tokens=96,
        seed=0,
        executor=executor,
        progress=False,
    )
    return time.perf_counter() - started, summary.traces_new


async def _overhead(executor, n: int) -> float:
    """Seconds per item of a job that does nothing: (n+1 items − 1 item) / n, so the
    actors' start-up (the same in both) drops out."""
    times = []
    for count in (1, n + 1):
        started = time.perf_counter()
        got = [r async for r in executor.stream(NoWork(), list(range(count)), None)]
        assert sorted(got) == list(range(count))
        times.append(time.perf_counter() - started)
    return (times[1] - times[0]) / n


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    for name in ("local", "ray", "killed"):  # a fresh measurement, not a resume
        for stale in out.glob(f"{name}.jsonl*"):
            stale.unlink()
    task = load_task("basic_arithmetic", limit=args.items, seed=5)
    items = task.items
    n = len(items) * args.samples
    port = args.port
    # the raylets' workers inherit this: one llama.cpp thread per actor, and this checkout on
    # the path (they import this module's NoWork); Ray's token authentication (on by default
    # for `ray start --head`, which writes ~/.ray/auth_token): the second node and this
    # driver join with it (read when ray is imported)
    env = {
        "DRR_LLAMA_THREADS": "1",
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": str(Path.cwd()),
        "RAY_AUTH_MODE": "token",
    }
    os.environ.update(env)
    import ray

    quiet = ("--disable-usage-stats", "--include-dashboard=false")
    _ray("start", "--head", "--num-cpus", "1", "--port", str(port), *quiet)
    try:
        _ray("start", "--address", f"127.0.0.1:{port}", "--num-cpus", "1", quiet[0])
        ray.init(address=f"127.0.0.1:{port}", log_to_driver=False)
        nodes = [node for node in ray.nodes() if node["Alive"]]
        os.environ.pop("DRR_LLAMA_THREADS")  # the local run gets every core, as by default
        local_s, local_n = await _traces(
            task, items, out / "local.jsonl", LocalExecutor(args.concurrency), args.samples
        )
        cluster = RayExecutor(address=None, workers=2, concurrency=args.concurrency // 2)
        ray_s, ray_n = await _traces(task, items, out / "ray.jsonl", cluster, args.samples)
        overhead = {
            "local_ms": 1000 * await _overhead(LocalExecutor(args.concurrency), 400),
            "ray_ms": 1000 * await _overhead(cluster, 400),
        }
        # the kill check: SIGKILL one worker process from outside while the job runs
        killed: list[int] = []

        def kill_one() -> None:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                done = len(RecordFile(out / "killed.jsonl", TraceRecord).read(repair=True))
                pids = _worker_pids()
                if done >= n // 4 and pids:
                    os.kill(pids[0], signal.SIGKILL)
                    killed.append(pids[0])
                    return
                time.sleep(0.2)

        killer = threading.Thread(target=kill_one)
        (out / "killed.jsonl").touch()
        killer.start()
        kill_s, _ = await _traces(task, items, out / "killed.jsonl", cluster, args.samples)
        killer.join()
        keys = [r.key for r in RecordFile(out / "killed.jsonl", TraceRecord).read()]
        expected = {(item.id, i) for item in items for i in range(args.samples)}
    finally:
        ray.shutdown()
        _ray("stop", "--force")
    return {
        "nodes": len(nodes),
        "units": n,
        "local": {"wall_s": local_s, "traces": local_n, "traces_per_s": local_n / local_s},
        "ray": {"wall_s": ray_s, "traces": ray_n, "traces_per_s": ray_n / ray_s},
        "ray_over_local_throughput": (ray_n / ray_s) / (local_n / local_s),
        "overhead_per_item_ms": overhead,
        "kill": {
            "killed_pids": killed,
            "wall_s": kill_s,
            "records": len(keys),
            "distinct": len(set(keys)),
            "missing": len(expected - set(keys)),
            "extra": len(set(keys) - expected),
        },
    }


def _markdown(r: dict[str, Any]) -> str:
    k = r["kill"]
    return "\n".join(
        [
            f"Ray on {r['nodes']} nodes of 1 CPU (one host, 2 cores) vs in-process; "
            f"{r['units']} traces of the embedded SmolLM2.",
            "",
            "| runner | wall s | traces/s |",
            "|---|---:|---:|",
            f"| local (asyncio, llama.cpp on all cores) | {r['local']['wall_s']:.1f} "
            f"| {r['local']['traces_per_s']:.2f} |",
            f"| ray (2 actors, 1 llama.cpp thread each) | {r['ray']['wall_s']:.1f} "
            f"| {r['ray']['traces_per_s']:.2f} |",
            "",
            f"Ray / local throughput: {r['ray_over_local_throughput']:.2f}. Executor cost per "
            f"item (a job that does nothing, 400 items): local "
            f"{r['overhead_per_item_ms']['local_ms']:.2f} ms, Ray "
            f"{r['overhead_per_item_ms']['ray_ms']:.2f} ms.",
            "",
            f"Kill check: worker pid(s) {k['killed_pids']} SIGKILLed mid-job; the file holds "
            f"{k['records']} records, {k['distinct']} distinct, {k['missing']} missing, "
            f"{k['extra']} unexpected ({k['wall_s']:.1f} s).",
            "",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=24)
    parser.add_argument("--samples", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--out", type=Path, default=Path("runs/ray-scaling"))
    parser.add_argument("--port", type=int, default=6390, help="the Ray head's GCS port")
    args = parser.parse_args()
    result = asyncio.run(main_async(args))
    (args.out / "ray_scaling.json").write_text(json.dumps(result, indent=2))
    table = _markdown(result)
    (args.out / "ray_scaling.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
