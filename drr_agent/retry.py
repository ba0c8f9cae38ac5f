"""Bounded retries with exponential backoff and a per-attempt timeout.

The Reasoner and the DM are both dependencies that can fail or hang (a server restarting, a
slow CPU). Both go through these two helpers so a failure always ends the same way: a few
spaced attempts, then one error of the given class naming what failed and the last cause.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
from collections.abc import Awaitable, Callable
from typing import TypeVar

from tenacity import AsyncRetrying, Retrying, stop_after_attempt, wait_exponential_jitter

from drr_agent.errors import DRRError

T = TypeVar("T")

_WAIT = wait_exponential_jitter(multiplier=0.5, max=8.0, jitter=0.5)


def _fail(error_cls: type[DRRError], what: str, attempts: int, exc: BaseException) -> DRRError:
    kind = "timed out" if isinstance(exc, TimeoutError) else f"failed: {type(exc).__name__}: {exc}"
    return error_cls(f"{what} {kind} (after {attempts} attempt{'s' * (attempts > 1)})")


async def aretry(
    fn: Callable[[], Awaitable[T]],
    *,
    what: str,
    retries: int,
    timeout_s: float,
    error_cls: type[DRRError],
) -> T:
    """Await ``fn()`` up to ``retries + 1`` times, each attempt bounded by ``timeout_s``."""
    attempts = retries + 1
    try:
        async for attempt in AsyncRetrying(
            stop=stop_after_attempt(attempts), wait=_WAIT, reraise=True
        ):
            with attempt:
                return await asyncio.wait_for(fn(), timeout=timeout_s)
    except Exception as exc:
        raise _fail(error_cls, what, attempts, exc) from exc
    raise AssertionError("unreachable")  # pragma: no cover


def retry(
    fn: Callable[[], T],
    *,
    what: str,
    retries: int,
    timeout_s: float,
    error_cls: type[DRRError],
) -> T:
    """Sync twin of `aretry`; the attempt runs in a worker thread so the timeout holds."""
    attempts = retries + 1
    try:
        for attempt in Retrying(stop=stop_after_attempt(attempts), wait=_WAIT, reraise=True):
            with attempt:
                pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
                try:
                    # copy_context keeps LangChain tracing/callbacks attached to the worker thread
                    future = pool.submit(contextvars.copy_context().run, fn)
                    return future.result(timeout=timeout_s)
                except concurrent.futures.TimeoutError as exc:
                    raise TimeoutError(what) from exc
                finally:
                    pool.shutdown(wait=False, cancel_futures=True)
    except Exception as exc:
        raise _fail(error_cls, what, attempts, exc) from exc
    raise AssertionError("unreachable")  # pragma: no cover
