"""Coalescing: concurrent score calls on one event loop share one forward pass.

Why: in an evaluation or an app, many graphs run at once and each asks its DM for a score or
two per cycle. An in-process DM runs one forward at a time (torch already uses every core), so
without coalescing the calls queue up and each pays a whole forward for one row — and a
transformer's forward over eight short rows costs little more than over one (measured on 2
cores with the 0.5B verifier LM: ~150 tokens/s batched by 8 against ~50 one row at a time).

`Coalescer` batches *what is waiting*, with no timer: a call that finds the DM idle runs at
once, alone (a single graph pays no latency); calls that arrive while a forward runs wait
together and go as one batch in the next. `RemoteScorer` does the same over HTTP with a short
timer instead, since there the server, not this process, is busy.

A batch's cost is shared: its model calls and tokens are booked into the callers' usage
ledgers by their share of the rows (`drr_agent.usage.shared_among`), so an evaluated item is
charged for the DM work its own steps caused, not for its neighbours'.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from drr_agent.usage import UsageLedger, current_ledger, shared_among

__all__ = ["Coalescer"]

T = TypeVar("T")
R = TypeVar("R")


@dataclass
class _Waiting(Generic[T, R]):
    items: list[T]
    future: asyncio.Future[list[R]]
    ledger: UsageLedger | None  # the caller's, for its share of the batch (`shared_among`)


@dataclass
class _LoopQueue(Generic[T, R]):
    waiting: list[_Waiting[T, R]] = field(default_factory=list)
    worker: asyncio.Task[None] | None = None


class Coalescer(Generic[T, R]):
    """Wraps ``fn`` (a batch in, one result per item out, in order) so that concurrent calls
    on one event loop are answered by as few calls of ``fn`` as the load allows.

    Each caller gets exactly its own results; a failure of a shared call reaches every caller
    whose items were in it (and no other). A caller cancelled while it waits (a graph's
    timeout) is left out of the next batch; one cancelled during its batch leaves the batch
    running for the others. ``calls`` counts the calls of ``fn`` (for benchmarks).
    """

    def __init__(self, fn: Callable[[list[T]], Awaitable[list[R]]]) -> None:
        self._fn = fn
        self._loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopQueue[T, R]] = (
            weakref.WeakKeyDictionary()
        )
        self.calls = 0

    async def __call__(self, items: Sequence[T]) -> list[R]:
        if not items:
            return []
        loop = asyncio.get_running_loop()
        queue = self._loops.setdefault(loop, _LoopQueue())
        waiting = _Waiting(list(items), loop.create_future(), current_ledger())
        queue.waiting.append(waiting)
        if queue.worker is None:
            queue.worker = loop.create_task(self._drain(queue))
        return await waiting.future

    async def _drain(self, queue: _LoopQueue[T, R]) -> None:
        """Run the waiting calls, everything queued at once, until none is left."""
        try:
            while queue.waiting:
                batch, queue.waiting = queue.waiting, []
                batch = [w for w in batch if not w.future.cancelled()]
                if not batch:
                    continue
                self.calls += 1
                try:
                    with shared_among([(w.ledger, len(w.items)) for w in batch]):
                        results = await self._fn([item for w in batch for item in w.items])
                    if len(results) != sum(len(w.items) for w in batch):
                        raise RuntimeError(
                            f"a coalesced scorer returned {len(results)} results for "
                            f"{sum(len(w.items) for w in batch)} items"
                        )
                except Exception as exc:  # every caller of this batch hears of it
                    for w in batch:
                        if not w.future.done():
                            w.future.set_exception(exc)
                    continue
                start = 0
                for w in batch:
                    if not w.future.done():
                        w.future.set_result(results[start : start + len(w.items)])
                    start += len(w.items)
        finally:
            queue.worker = None
