"""Several servers behind one client: least-outstanding-requests routing, passive ejection.

A team serves the Reasoner and the DM as several vLLM (or llama.cpp) replicas. Both clients
here speak HTTP through ``httpx`` — ``ChatOpenAI`` takes ``http_client`` /
``http_async_client``, `RemoteScorer` builds its own — so replication lives at the one level
they share, the **transport**: the client addresses the first replica's URL, and
`ReplicaTransport` / `SyncReplicaTransport` send each request to the replica with the fewest
requests in flight (ties: the one that served fewest), rewriting the URL's origin and path
prefix. Nothing above the transport knows there are several servers, so retries, timeouts and
micro-batching stay where they are.

A replica that refuses the connection, drops it, times out or answers 5xx / 429 is **ejected**
for ``eject_s`` seconds (its failures in a row double that, up to ``max_eject_s``): requests go
to the others. A request that failed before any answer came back (refused connection, 5xx,
429) is re-sent at once to another replica — LLM and DM calls have no side effects, so that
is safe; a timed-out request is not re-sent (the caller's retry, with its backoff, decides).
When every replica is ejected the transport still tries the one whose ejection ends first
(a recovered server comes back without waiting out its time), and when that fails too the
error names every replica and why it is out — the caller's bounded retries then end in the
clear `ReasonerError` / `ScorerError` or the configured fallback, as with one server.

Under every async client sits `LoopLocalTransport`: one connection pool per event loop, so a
Reasoner used by one ``asyncio.run`` after another never reuses a connection of a closed loop.
"""

from __future__ import annotations

import asyncio
import threading
import time
import weakref
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass

import httpx

__all__ = [
    "LoopLocalTransport",
    "Replica",
    "ReplicaPool",
    "ReplicaTransport",
    "SyncReplicaTransport",
    "async_http_client",
    "split_urls",
]

_RETRY_STATUS = frozenset({429, 500, 502, 503, 504})


def split_urls(value: str | Sequence[str]) -> list[str]:
    """``"http://a:8000/v1,http://b:8000/v1"`` or a list → the URLs, stripped, in order."""
    parts = value.split(",") if isinstance(value, str) else list(value)
    urls = [u.strip().rstrip("/") for u in parts if u and u.strip()]
    if not urls:
        raise ValueError(f"no server URL in {value!r}")
    for url in urls:
        parsed = httpx.URL(url)
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise ValueError(f"{url!r} is not an http(s) URL (in {value!r})")
    return urls


@dataclass
class Replica:
    """One server and what the pool knows of it."""

    url: httpx.URL
    outstanding: int = 0
    served: int = 0
    failures_in_a_row: int = 0
    down_until: float = 0.0
    last_error: str | None = None

    def describe(self, now: float) -> str:
        if self.down_until > now:
            return f"{self.url} (out for {self.down_until - now:.0f} s: {self.last_error})"
        return f"{self.url} (last error: {self.last_error})" if self.last_error else str(self.url)


class ReplicaPool:
    """The replicas of one endpoint and the routing state that all its clients share.

    Args:
        urls: The replicas' base URLs, all with the same API (e.g. ``…:8000/v1`` each). The
            first is the one clients address (`primary`).
        eject_s: How long a failing replica is out at first.
        max_eject_s: The longest it is out after failures in a row.
        clock: Seconds, monotonic (tests pass a fake).
    """

    def __init__(
        self,
        urls: str | Sequence[str],
        *,
        eject_s: float = 10.0,
        max_eject_s: float = 120.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.replicas = [Replica(httpx.URL(u)) for u in split_urls(urls)]
        self.eject_s = eject_s
        self.max_eject_s = max_eject_s
        self._clock = clock
        self._lock = threading.Lock()  # sync clients call from worker threads

    @property
    def primary(self) -> str:
        """The URL clients are built with; the transport re-targets it per request."""
        return str(self.replicas[0].url)

    @property
    def urls(self) -> list[str]:
        return [str(r.url) for r in self.replicas]

    def __len__(self) -> int:
        return len(self.replicas)

    def __repr__(self) -> str:
        return f"ReplicaPool({self.urls})"

    def acquire(self, tried: Sequence[Replica] = ()) -> Replica | None:
        """The replica for the next request (counted as in flight), or ``None`` when every
        replica was ``tried`` already. Healthy ones first, fewest in flight, then fewest
        served; with none healthy, the one whose ejection ends first."""
        with self._lock:
            now = self._clock()
            left = [r for r in self.replicas if not any(r is t for t in tried)]
            if not left:
                return None
            healthy = [r for r in left if r.down_until <= now]
            if healthy:
                replica = min(healthy, key=lambda r: (r.outstanding, r.served))
            else:
                replica = min(left, key=lambda r: r.down_until)
            replica.outstanding += 1
            return replica

    def release(self, replica: Replica, error: str | None = None, *, count: bool = True) -> None:
        """The request on ``replica`` is done; ``error`` says why it failed (ejects it).
        ``count=False``: it was cancelled by the caller, which says nothing of the server."""
        with self._lock:
            replica.outstanding = max(0, replica.outstanding - 1)
            if not count:
                return
            if error is None:
                replica.served += 1
                replica.failures_in_a_row = 0
                replica.down_until = 0.0
                return
            replica.failures_in_a_row += 1
            replica.last_error = error
            out = min(self.max_eject_s, self.eject_s * 2 ** (replica.failures_in_a_row - 1))
            replica.down_until = self._clock() + out

    def target(self, url: httpx.URL, replica: Replica) -> httpx.URL:
        """``url`` (addressed to the primary) re-targeted at ``replica``."""
        base = self.replicas[0].url
        suffix = url.path
        prefix = base.path.rstrip("/")
        if prefix and suffix.startswith(prefix):
            suffix = suffix[len(prefix) :]
        path = replica.url.path.rstrip("/") + suffix
        return url.copy_with(
            scheme=replica.url.scheme, host=replica.url.host, port=replica.url.port, path=path
        )

    def all_failed(self) -> httpx.TransportError:
        """The error when every replica failed this request: each one, and why it is out."""
        now = self._clock()
        down = "; ".join(r.describe(now) for r in self.replicas)
        return httpx.ConnectError(f"all {len(self.replicas)} replicas failed: {down}")

    def snapshot(self) -> list[dict[str, object]]:
        """Per replica: URL, in flight, served, whether it is out now (logs, tests)."""
        with self._lock:
            now = self._clock()
            return [
                {
                    "url": str(r.url),
                    "outstanding": r.outstanding,
                    "served": r.served,
                    "ejected": r.down_until > now,
                    "last_error": r.last_error,
                }
                for r in self.replicas
            ]


class _Released:
    """Releases the replica once, when the response body is closed (or read to the end)."""

    def __init__(self, pool: ReplicaPool, replica: Replica) -> None:
        self._pool, self._replica, self._done = pool, replica, False

    def __call__(self) -> None:
        if not self._done:
            self._done = True
            self._pool.release(self._replica)


class _AsyncCounted(httpx.AsyncByteStream):
    def __init__(self, stream: httpx.AsyncByteStream, done: _Released) -> None:
        self._stream, self._done = stream, done

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._stream:
            yield chunk

    async def aclose(self) -> None:
        try:
            await self._stream.aclose()
        finally:
            self._done()


class _SyncCounted(httpx.SyncByteStream):
    def __init__(self, stream: httpx.SyncByteStream, done: _Released) -> None:
        self._stream, self._done = stream, done

    def __iter__(self) -> Iterator[bytes]:
        yield from self._stream

    def close(self) -> None:
        try:
            self._stream.close()
        finally:
            self._done()


class _Attempts:
    """The failover loop both transports run (they differ only in sync / async I/O): each
    iteration is one replica, the request re-targeted at it; the loop ends with the
    all-replicas error once every replica was tried."""

    def __init__(self, pool: ReplicaPool, request: httpx.Request) -> None:
        self.pool, self.request = pool, request
        self.tried: list[Replica] = []
        self.cause: BaseException | None = None

    def __iter__(self) -> Iterator[Replica]:
        while (replica := self.pool.acquire(self.tried)) is not None:
            self.tried.append(replica)
            self.request.url = self.pool.target(self.request.url, replica)
            yield replica
        raise self.pool.all_failed() from self.cause

    def failed(self, replica: Replica, exc: BaseException) -> bool:
        """Book a request that raised; whether to send it to the next replica."""
        if isinstance(exc, httpx.TimeoutException):  # ejected, but not re-sent
            self.pool.release(replica, type(exc).__name__)
            return False
        if isinstance(exc, httpx.TransportError):  # no answer came back: safe to re-send
            self.pool.release(replica, f"{type(exc).__name__}: {exc}")
            self.cause = exc
            return True
        self.pool.release(replica, count=False)  # cancelled by the caller
        return False

    def refused(self, replica: Replica, response: httpx.Response) -> bool:
        """Whether ``response`` is a refusal to take to another replica (the last one's
        answer is returned as it is)."""
        if response.status_code in _RETRY_STATUS and len(self.tried) < len(self.pool):
            self.pool.release(replica, f"HTTP {response.status_code}")
            return True
        return False


class LoopLocalTransport(httpx.AsyncBaseTransport):
    """An ``httpx`` async transport with one connection pool per running event loop.

    Why: a pooled connection belongs to the loop that opened it, and a client outlives its
    loop — ``langchain_openai`` even shares one client between every ``ChatOpenAI`` of the same
    URL. A script that runs ``asyncio.run`` twice with one Reasoner (a batch, then another; a
    quickstart's phases) otherwise reuses the first loop's connection and fails with "Event
    loop is closed". A closed loop's pool goes when the loop is collected.
    """

    def __init__(self, factory: Callable[[], httpx.AsyncBaseTransport] = httpx.AsyncHTTPTransport):
        self._factory = factory
        self._pools: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncBaseTransport]
        self._pools = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    def current(self) -> httpx.AsyncBaseTransport:
        """The running loop's pool (made on its first request)."""
        loop = asyncio.get_running_loop()
        with self._lock:
            pool = self._pools.get(loop)
            if pool is None:
                pool = self._pools[loop] = self._factory()
            return pool

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self.current().handle_async_request(request)

    async def aclose(self) -> None:
        with self._lock:
            pool = self._pools.pop(asyncio.get_running_loop(), None)
        if pool is not None:
            await pool.aclose()


def async_http_client(timeout_s: float, pool: ReplicaPool | None = None) -> httpx.AsyncClient:
    """The async client a ``ChatOpenAI`` Reasoner gets: over ``pool``'s replicas when given,
    each event loop with its own connections (`LoopLocalTransport`)."""
    transport = ReplicaTransport(pool) if pool is not None else LoopLocalTransport()
    return httpx.AsyncClient(transport=transport, timeout=timeout_s)


class ReplicaTransport(httpx.AsyncBaseTransport):
    """An ``httpx`` async transport that spreads requests over a `ReplicaPool` (each event
    loop with its own connections unless ``inner`` says otherwise)."""

    def __init__(self, pool: ReplicaPool, inner: httpx.AsyncBaseTransport | None = None):
        self.pool = pool
        self._inner = inner or LoopLocalTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        attempts = _Attempts(self.pool, request)
        for replica in attempts:
            try:
                response = await self._inner.handle_async_request(request)
            except BaseException as exc:
                if attempts.failed(replica, exc):
                    continue
                raise
            if attempts.refused(replica, response):
                await response.aclose()
                continue
            assert isinstance(response.stream, httpx.AsyncByteStream)
            response.stream = _AsyncCounted(response.stream, _Released(self.pool, replica))
            return response
        raise AssertionError("unreachable")  # pragma: no cover — _Attempts raises

    async def aclose(self) -> None:
        await self._inner.aclose()


class SyncReplicaTransport(httpx.BaseTransport):
    """The same for a sync ``httpx.Client`` (`RemoteScorer.score`, ``ChatOpenAI.invoke``)."""

    def __init__(self, pool: ReplicaPool, inner: httpx.BaseTransport | None = None):
        self.pool = pool
        self._inner = inner or httpx.HTTPTransport()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        attempts = _Attempts(self.pool, request)
        for replica in attempts:
            try:
                response = self._inner.handle_request(request)
            except BaseException as exc:
                if attempts.failed(replica, exc):
                    continue
                raise
            if attempts.refused(replica, response):
                response.close()
                continue
            assert isinstance(response.stream, httpx.SyncByteStream)
            response.stream = _SyncCounted(response.stream, _Released(self.pool, replica))
            return response
        raise AssertionError("unreachable")  # pragma: no cover — _Attempts raises

    def close(self) -> None:
        self._inner.close()
