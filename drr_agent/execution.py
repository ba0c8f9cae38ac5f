"""Where the batch jobs' items run: in this process (default) or on a Ray cluster.

`sample_traces`, `mc_examples` and `run_eval` each turn work units (an item, a sample index, a
method) into records. A unit's work is an async *job*, ``job(resources, unit) -> record``,
where ``resources`` is what it needs — the Reasoner, or the evaluation's `MethodContext`. An
executor runs the jobs and yields each record as it finishes; the caller, on the driver, is
the one writer: it appends every record to its resumable record file as it arrives. So a
resumed job, a retried Ray task or a restarted actor can never duplicate or lose a record —
the file decides what is done, and a record reaches it once.

- `LocalExecutor`: asyncio in this process, ``concurrency`` jobs in flight over the caller's
  own resources. The default everywhere.
- `RayExecutor`: ``workers`` Ray actors. Each receives the resources once, pickled — a
  Reasoner or DM made by this library's factories pickles as its *recipe* and is rebuilt in
  the actor (`drr_agent.reasoners.Reasoner.recipe`), so an actor holds its own clients (and,
  for the embedded Reasoner, its own llama.cpp server) — and runs up to ``concurrency`` jobs
  at once on its event loop. A worker that dies is restarted and its unfinished jobs are
  retried there (Ray's ``max_restarts`` / ``max_task_retries``); a unit whose retries are spent
  fails the call with the unit named, and what was written stays written for the resume.
  Actors rather than Ray Data: the work is a few thousand small, latency-bound requests whose
  results must reach one writer in order of completion, and an actor keeps its model loaded
  between them; Ray Data's strengths (streaming large datasets through stateless batches,
  writing sharded outputs) are not what these jobs need.

Ray is an optional extra (``pip install 'drr-agent[ray]'``); nothing here imports it until a
`RayExecutor` runs.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from drr_agent.errors import DRRError

__all__ = ["Executor", "LocalExecutor", "RayExecutor", "executor_from_options"]

Job = Callable[[Any, Any], Awaitable[Any]]


class Executor(Protocol):
    """Runs ``job(resources, unit)`` for every unit; yields the results as they finish."""

    def stream(self, job: Job, units: Sequence[Any], resources: Any) -> AsyncIterator[Any]: ...


@dataclass(frozen=True)
class LocalExecutor:
    """In this process: at most ``concurrency`` jobs in flight (an ``asyncio.Semaphore``)."""

    concurrency: int = 8

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {self.concurrency}")

    async def stream(self, job: Job, units: Sequence[Any], resources: Any) -> AsyncIterator[Any]:
        semaphore = asyncio.Semaphore(self.concurrency)

        async def one(unit: Any) -> Any:
            async with semaphore:
                return await job(resources, unit)

        tasks = [asyncio.ensure_future(one(u)) for u in units]
        try:
            for future in asyncio.as_completed(tasks):
                yield await future
        finally:  # interrupted: stop the jobs in flight (their units are redone on resume)
            for task in tasks:
                task.cancel()


class _Worker:
    """A Ray actor: the job's resources, rebuilt once from their pickle, and its loop."""

    def __init__(self, job: Job, resources: Any) -> None:
        self.job = job
        self.resources = resources

    async def run(self, unit: Any) -> Any:
        return await self.job(self.resources, unit)

    def pid(self) -> int:
        return os.getpid()


@dataclass(frozen=True)
class RayExecutor:
    """On a Ray cluster: ``workers`` actors, ``concurrency`` jobs in flight on each.

    Args:
        address: The cluster (``"auto"``: the one ``ray start`` runs on this machine;
            ``"HOST:PORT"``; ``None``: start a local one for this process).
        workers: Actors to start (default: one per CPU the cluster has).
        concurrency: Jobs in flight per actor.
        max_restarts: How often a dead actor is restarted.
        max_task_retries: How often a job on a dead actor is tried again.
        num_cpus: CPUs each actor reserves (Ray's scheduling unit).
    """

    address: str | None = "auto"
    workers: int | None = None
    concurrency: int = 4
    max_restarts: int = 3
    max_task_retries: int = 3
    num_cpus: float = 1.0

    def _connect(self) -> Any:
        try:
            import ray
        except ImportError as exc:
            raise DRRError(
                "--executor ray needs Ray: pip install 'drr-agent[ray]' (or pip install ray)"
            ) from exc
        if not ray.is_initialized():
            try:
                ray.init(address=self.address, log_to_driver=False, include_dashboard=False)
            except ray.exceptions.AuthenticationError as exc:
                raise DRRError(
                    f"the Ray cluster at {self.address!r} wants its token: set RAY_AUTH_MODE=token "
                    "and give the head's token (~/.ray/auth_token there, or RAY_AUTH_TOKEN)"
                ) from exc
            except ConnectionError as exc:
                raise DRRError(
                    f"no Ray cluster at {self.address!r}: start one with `ray start --head` "
                    "(and `ray start --address HEAD:6379` on the others), or pass "
                    "--ray-address local for a cluster of this process only"
                ) from exc
        return ray

    def _start(self, ray: Any, job: Job, resources: Any) -> tuple[list[Any], Any]:
        """Start the actors; also return the reference to their shared resources, which must
        outlive them (a restarted actor is built again from it)."""
        try:
            shared = ray.put(resources)  # pickled once, rebuilt once per actor
        except Exception as exc:
            raise DRRError(
                f"{type(resources).__name__} cannot be sent to Ray workers ({exc}). Build the "
                "Reasoner with drr_agent's factories (embedded_reasoner, "
                "openai_compatible_reasoner, choose_reasoner) and the DM with load_dm: those "
                "pickle as recipes the workers rebuild"
            ) from exc
        cpus = ray.cluster_resources().get("CPU", 0.0)
        fits = int(cpus // self.num_cpus)
        count = self.workers or max(1, fits)
        if count > fits:  # Ray would wait forever for the CPUs of the actors that do not fit
            raise DRRError(
                f"{count} Ray workers of {self.num_cpus:g} CPU need {count * self.num_cpus:g} "
                f"CPUs; the cluster has {cpus:g}: pass fewer --workers or add nodes"
            )
        worker = ray.remote(
            num_cpus=self.num_cpus,
            max_restarts=self.max_restarts,
            max_task_retries=self.max_task_retries,
            max_concurrency=self.concurrency,
        )(_Worker)
        actors = [
            worker.options(scheduling_strategy="SPREAD").remote(job, shared) for _ in range(count)
        ]
        return actors, shared

    async def stream(self, job: Job, units: Sequence[Any], resources: Any) -> AsyncIterator[Any]:
        if not units:
            return
        ray = self._connect()
        actors, shared = self._start(ray, job, resources)
        try:
            async for result in self._run(ray, actors, units):
                yield result
        finally:
            for actor in actors:
                ray.kill(actor, no_restart=True)
            del shared  # held until here: a restarted actor is rebuilt from it

    async def _run(self, ray: Any, actors: list[Any], units: Sequence[Any]) -> AsyncIterator[Any]:
        queue = list(reversed(units))
        load = dict.fromkeys(range(len(actors)), 0)
        pending: dict[asyncio.Future[Any], tuple[int, Any]] = {}

        def submit() -> None:
            while queue:
                index = min(load, key=load.__getitem__)  # the least loaded actor
                if load[index] >= self.concurrency:
                    return
                unit = queue.pop()
                ref = actors[index].run.remote(unit)
                pending[asyncio.wrap_future(ref.future())] = (index, unit)
                load[index] += 1

        submit()
        while pending:
            done, _ = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for future in done:
                index, unit = pending.pop(future)
                load[index] -= 1
                try:
                    result = future.result()
                except ray.exceptions.RayError as exc:
                    for other in pending:  # abandoned: their outcome is not waited for
                        other.cancel()
                    raise DRRError(f"Ray could not finish {unit!r}: {exc}") from exc
                yield result
            submit()


def executor_from_options(
    executor: str, concurrency: int, ray_address: str | None = "auto", workers: int | None = None
) -> Executor:
    """The executor the CLI's ``--executor`` / ``--ray-address`` / ``--workers`` name."""
    if executor == "local":
        return LocalExecutor(concurrency)
    if executor == "ray":
        address = None if ray_address == "local" else ray_address
        return RayExecutor(address=address, workers=workers, concurrency=concurrency)
    raise ValueError(f"unknown executor {executor!r} (local or ray)")
