"""The DM over HTTP: a vLLM server scores steps for many concurrent graphs, micro-batched.

`RemoteScorer` implements `StepScorer` against vLLM's pair-scoring endpoint (``POST /score``,
the cross-encoder API). The DM judges a *text pair* — the question, and the steps with the
candidate (`dm_text_pair`) — with BERT segment ids telling the two apart, and vLLM's
``/classify`` accepts single strings only, so the pair endpoint is the one that scores exactly
what the DM was trained on. ``/score`` serves one-logit heads; ``drr serve`` exports a copy of
a two-label DM whose logit is the difference of the two (`drr_agent.serving.export`), so the
served probability ``sigmoid(l_good - l_bad)`` *is* the in-process ``softmax(...)[good]`` — the
label order is read from the DM's config there, never assumed.

Many graphs run at once in an app or an evaluation, each asking for a few scores per cycle.
Requests that arrive within ``max_wait_ms`` of each other are sent as one ``/score`` call (up
to ``max_batch`` pairs; larger bursts become several calls in flight together), over one
keep-alive connection pool per event loop. Each call has a timeout and bounded retries with
backoff; when the server stays down, every waiting graph gets a `ScorerError` naming the URL
(the graph then abstains or raises, per `DRRConfig.on_scorer_error`) — nothing waits forever.
"""

from __future__ import annotations

import asyncio
import os
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from drr_agent.errors import ScorerError
from drr_agent.replicas import (
    ReplicaPool,
    ReplicaTransport,
    SyncReplicaTransport,
    split_urls,
)
from drr_agent.retry import aretry, retry
from drr_agent.scorers.base import StepContext, StepScorer, dm_text_pair

__all__ = ["DM_API_KEY_ENV", "RemoteScorer"]

DM_API_KEY_ENV = "DRR_DM_API_KEY"
"""Environment variable holding the key of a served DM (``drr serve --api-key``)."""


@dataclass
class _Request:
    pairs: list[tuple[str, str]]
    future: asyncio.Future[list[float]]


@dataclass
class _LoopState:
    """What belongs to one event loop: the HTTP pool and the queue of the micro-batcher."""

    client: httpx.AsyncClient
    queue: list[_Request] = field(default_factory=list)
    timer: asyncio.TimerHandle | None = None
    tasks: set[asyncio.Task[None]] = field(default_factory=set)


class RemoteScorer(StepScorer):
    """A DM served by vLLM (``drr serve --dm``), behind the `StepScorer` interface.

    Args:
        url: The server's root, e.g. ``http://127.0.0.1:8001`` (a trailing ``/v1`` is fine);
            several replicas of the same DM as a list or comma-separated: requests go to the
            one with the fewest in flight, a failing one is left out for a while
            (`drr_agent.replicas`).
        model: The served model name (``drr serve`` uses ``drr-dm``).
        dm_path: The DM folder (as trained). Recommended: its tokenizer cuts long contexts
            exactly as the in-process scorer does (`fit_to_window`), and its ``drr_dm.json``
            gives the thresholds. Without it, pairs are sent whole and the server truncates.
        max_batch: Most pairs in one HTTP call.
        max_wait_ms: How long the first request of a batch waits for others. A graph's cycle
            takes hundreds of ms of Reasoner time, so a few ms of waiting costs little and lets
            concurrent graphs share a forward pass.
        timeout_s: Per-call timeout (connect, read, write).
        retries: Extra attempts after a failed or timed-out call, with backoff.
        thresholds: Override the thresholds read from ``dm_path``.
        api_key: Sent as ``Authorization: Bearer …`` (a server started with ``drr serve
            --api-key``, i.e. vLLM's ``--api-key``); default ``$DRR_DM_API_KEY``, else none.
    """

    def __init__(
        self,
        url: str | Sequence[str],
        model: str = "drr-dm",
        *,
        dm_path: str | Path | None = None,
        max_batch: int = 64,
        max_wait_ms: float = 5.0,
        timeout_s: float = 30.0,
        retries: int = 2,
        thresholds: dict[str, float] | None = None,
        api_key: str | None = None,
    ) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}")
        urls = [u.removesuffix("/v1") for u in split_urls(url)]
        self.pool = ReplicaPool(urls) if len(urls) > 1 else None
        self.url = urls[0]
        self.model = model
        self.name = f"{model}@{self.url}" + (f"+{len(urls) - 1}" if self.pool else "")
        self.max_batch = max_batch
        self.max_wait_s = max_wait_ms / 1000
        self.timeout_s = timeout_s
        self.retries = retries
        key = api_key or os.environ.get(DM_API_KEY_ENV)
        self._headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._tokenizer: Any = None
        self._max_length = 256
        stored: dict[str, float] = {}
        self._trained_questions: frozenset[str] | None = None
        self._fingerprint: str | None = None
        if dm_path is not None:
            from transformers import AutoTokenizer

            from drr_agent.scorers.card import DMCard
            from drr_agent.scorers.hf import dm_fingerprint

            card = DMCard.load(dm_path)
            self._tokenizer = AutoTokenizer.from_pretrained(str(dm_path))
            self._max_length = card.max_length or self._max_length
            stored = card.thresholds
            self._trained_questions = card.trained_questions
            self._fingerprint = dm_fingerprint(Path(dm_path))
        self._thresholds = dict(thresholds) if thresholds is not None else stored
        self._loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopState] = (
            weakref.WeakKeyDictionary()
        )
        self._sync_client: httpx.Client | None = None
        self.http_calls = 0  # for benchmarks and tests: how many /score calls were made

    @property
    def thresholds(self) -> dict[str, float]:
        return self._thresholds

    @property
    def trained_questions(self) -> frozenset[str] | None:
        return self._trained_questions

    @property
    def fingerprint(self) -> str | None:
        """The served DM's folder (``dm_path``) fingerprint; ``None`` without it."""
        return self._fingerprint

    def __repr__(self) -> str:
        where = self.pool.urls if self.pool else self.url
        return f"RemoteScorer({where!r}, model={self.model!r})"

    # -- inputs and the one HTTP call -----------------------------------------------------
    def _pairs(self, items: Sequence[StepContext]) -> list[tuple[str, str]]:
        if self._tokenizer is None:
            return [dm_text_pair(item) for item in items]
        from drr_agent.scorers.hf import fit_to_window

        return [fit_to_window(self._tokenizer, item, self._max_length) for item in items]

    def _payload(self, pairs: Sequence[tuple[str, str]]) -> dict[str, Any]:
        return {
            "model": self.model,
            "text_1": [p[0] for p in pairs],
            "text_2": [p[1] for p in pairs],
            "truncate_prompt_tokens": self._max_length,
        }

    def _parse(self, response: httpx.Response, n: int) -> list[float]:
        if response.status_code >= 400:
            detail = response.text[:300]
            error = httpx.HTTPStatusError(
                f"{response.status_code} from {response.request.url}: {detail}",
                request=response.request,
                response=response,
            )
            raise error
        data = sorted(response.json()["data"], key=lambda d: d["index"])
        scores = [float(d["score"]) for d in data]
        if len(scores) != n:
            raise ValueError(f"the server returned {len(scores)} scores for {n} pairs")
        return scores

    @staticmethod
    def _refused(exc: Exception) -> bool:
        """A 4xx answer (bad input, unknown model) is not retried; 408 and 429 are transient."""
        if isinstance(exc, httpx.HTTPStatusError):
            status = exc.response.status_code
            return 400 <= status < 500 and status not in (408, 429)
        return False

    def _what(self) -> str:
        if self.pool:
            return f"DM servers {', '.join(self.pool.urls)} (model {self.model!r})"
        return f"DM server {self.url} (model {self.model!r})"

    # -- async: micro-batched -------------------------------------------------------------
    def _state(self) -> _LoopState:
        loop = asyncio.get_running_loop()
        state = self._loops.get(loop)
        if state is None:  # clients are bound to the loop that made them: one per loop
            transport = ReplicaTransport(self.pool) if self.pool else None
            state = _LoopState(
                client=httpx.AsyncClient(
                    timeout=self.timeout_s, headers=self._headers, transport=transport
                )
            )
            self._loops[loop] = state
        return state

    async def _send(self, state: _LoopState, pairs: list[tuple[str, str]]) -> list[float]:
        async def call() -> list[float]:
            self.http_calls += 1
            response = await state.client.post(f"{self.url}/score", json=self._payload(pairs))
            return self._parse(response, len(pairs))

        return await aretry(
            call,
            what=self._what(),
            retries=self.retries,
            timeout_s=self.timeout_s + 5,
            error_cls=ScorerError,
            permanent=self._refused,
        )

    def _flush(self, state: _LoopState) -> None:
        """Send everything queued, in calls of at most ``max_batch`` pairs."""
        if state.timer is not None:
            state.timer.cancel()
            state.timer = None
        queue, state.queue = state.queue, []
        chunk: list[_Request] = []
        size = 0
        for request in queue:
            if chunk and size + len(request.pairs) > self.max_batch:
                self._dispatch(state, chunk)
                chunk, size = [], 0
            chunk.append(request)
            size += len(request.pairs)
        if chunk:
            self._dispatch(state, chunk)

    def _dispatch(self, state: _LoopState, requests: list[_Request]) -> None:
        async def run() -> None:
            pairs = [p for r in requests for p in r.pairs]
            try:
                scores = await self._send(state, pairs)
            except BaseException as exc:  # every waiting graph hears of it
                for r in requests:
                    if not r.future.done():
                        r.future.set_exception(exc)
                if not isinstance(exc, Exception):
                    raise
                return
            start = 0
            for r in requests:
                if not r.future.done():
                    r.future.set_result(scores[start : start + len(r.pairs)])
                start += len(r.pairs)

        task = asyncio.get_running_loop().create_task(run())
        state.tasks.add(task)  # keep a reference until it is done
        task.add_done_callback(state.tasks.discard)

    async def ascore(self, items: Sequence[StepContext]) -> list[float]:
        if not items:
            return []
        # cutting to the window is fast tokenizer work (~0.1 ms): inline, so requests that
        # arrive together also reach the queue together
        pairs = self._pairs(items)
        state = self._state()
        loop = asyncio.get_running_loop()
        request = _Request(pairs, loop.create_future())
        state.queue.append(request)
        if sum(len(r.pairs) for r in state.queue) >= self.max_batch:
            self._flush(state)
        elif state.timer is None:
            state.timer = loop.call_later(self.max_wait_s, self._flush, state)
        return await request.future

    # -- sync: one call per request -------------------------------------------------------
    def score(self, items: Sequence[StepContext]) -> list[float]:
        if not items:
            return []
        if self._sync_client is None:
            transport = SyncReplicaTransport(self.pool) if self.pool else None
            self._sync_client = httpx.Client(
                timeout=self.timeout_s, headers=self._headers, transport=transport
            )
        client = self._sync_client
        pairs = self._pairs(items)
        scores: list[float] = []
        for start in range(0, len(pairs), self.max_batch):
            chunk = pairs[start : start + self.max_batch]

            def call(chunk: list[tuple[str, str]] = chunk) -> list[float]:
                self.http_calls += 1
                response = client.post(f"{self.url}/score", json=self._payload(chunk))
                return self._parse(response, len(chunk))

            scores += retry(
                call,
                what=self._what(),
                retries=self.retries,
                timeout_s=self.timeout_s + 5,
                error_cls=ScorerError,
                permanent=self._refused,
            )
        return scores

    async def aclose(self) -> None:
        """Close this loop's connection pool (others close with their loops)."""
        state = self._loops.pop(asyncio.get_running_loop(), None)
        if state is not None:
            await state.client.aclose()
        if self._sync_client is not None:
            self._sync_client.close()
            self._sync_client = None
