"""A question longer than the Reasoner's context: counted first where it can be, never retried.

Two ways to know a prompt does not fit:

- **Counted before sending**, where the context size is known: the embedded llama.cpp server
  registers its per-slot context when it starts (`register_context`), and the prompt's text is
  counted with the server's own tokenizer (its ``/tokenize`` route) before each call.
- **Refused by the server**: an OpenAI-compatible server answers HTTP 400 with a message that
  says the context or length is exceeded (vLLM: "This model's maximum context length is N
  tokens"; llama.cpp: "request (M tokens) exceeds the available context size (N tokens)";
  OpenAI: ``context_length_exceeded``). `context_exceeded` recognises it, so `aretry_reasoner`
  fails at once instead of retrying a request that can never succeed.

Either way the caller gets a `QuestionTooLongError` (a `ReasonerError`) naming the limit, and
the graph stops with ``stop_reason="question_too_long"``.
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import httpx
from langchain_core.messages import BaseMessage

from drr_agent.errors import QuestionTooLongError, ReasonerError
from drr_agent.retry import aretry, retry

__all__ = [
    "acheck_prompt",
    "aretry_reasoner",
    "check_prompt",
    "context_exceeded",
    "register_context",
    "retry_reasoner",
]

T = TypeVar("T")

_EXCEEDED = re.compile(
    r"context[ _](?:length|size|window)|maximum model length|context_length_exceeded|"
    r"exceed_context_size|prompt is too long|input tokens exceed|too long and exceeds",
    re.IGNORECASE,
)
_LIMIT = re.compile(
    r"maximum context length is (\d+)|maximum model length (?:is |of )?(\d+)|"
    r"available context size \((\d+) tokens\)|exceeds limit of (\d+)|"
    r"context (?:length|size|window) (?:is |of )(\d+)",
    re.IGNORECASE,
)

_TEMPLATE_TOKENS = 64
"""A bound on what the chat template adds around the messages' text (role markers)."""

_contexts: dict[str, int] = {}
_contexts_lock = threading.Lock()


def register_context(base_url: str, tokens: int) -> None:
    """Record that the llama.cpp server at ``base_url`` (the API root, ``…/v1``) holds
    ``tokens`` tokens per request (its per-slot context), so prompts to it are counted first."""
    with _contexts_lock:
        _contexts[base_url.rstrip("/")] = tokens


def _status(exc: BaseException) -> int | None:
    status = getattr(exc, "status_code", None)
    if status is None:
        status = getattr(getattr(exc, "response", None), "status_code", None)
    return status if isinstance(status, int) else None


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    one: BaseException | None = exc
    while one is not None and one not in seen:
        seen.append(one)
        one = one.__cause__
    return seen


def context_exceeded(exc: BaseException) -> bool:
    """Whether ``exc`` (or what caused it) is a server refusing a prompt longer than its
    context: LangChain's ``ContextOverflowError``, or an HTTP 400 / 413 whose message says so."""
    try:
        from langchain_core.exceptions import ContextOverflowError
    except ImportError:  # pragma: no cover - langchain-core before 1.1
        overflow: tuple[type[BaseException], ...] = (QuestionTooLongError,)
    else:
        overflow = (QuestionTooLongError, ContextOverflowError)
    for one in _chain(exc):
        if isinstance(one, overflow):
            return True
        if _status(one) in (400, 413) and _EXCEEDED.search(str(one)):
            return True
    return False


def _limit_in(exc: BaseException) -> int | None:
    for one in _chain(exc):
        match = _LIMIT.search(str(one))
        if match:
            return int(next(g for g in match.groups() if g))
    return None


def _too_long(failed: ReasonerError) -> QuestionTooLongError:
    cause = failed.__cause__ or failed
    limit = getattr(cause, "limit", None) or _limit_in(cause)
    within = f"the Reasoner's context of {limit} tokens" if limit else "the Reasoner's context"
    return QuestionTooLongError(
        f"question too long: the prompt and its reply do not fit {within}; the server "
        f"refused it, not retried ({failed})",
        limit=limit,
    )


def _raise_too_long(exc: ReasonerError) -> None:
    """Raise ``exc`` as the `QuestionTooLongError` it is, if it is one (else return)."""
    if isinstance(exc.__cause__, QuestionTooLongError):
        raise exc.__cause__ from None
    if context_exceeded(exc):
        raise _too_long(exc) from exc.__cause__


async def aretry_reasoner(
    fn: Callable[[], Awaitable[T]], *, what: str, retries: int, timeout_s: float
) -> T:
    """`drr_agent.retry.aretry` for a Reasoner call: a prompt the server refuses as longer
    than its context (`context_exceeded`) fails at once, as a `QuestionTooLongError`."""
    try:
        return await aretry(
            fn,
            what=what,
            retries=retries,
            timeout_s=timeout_s,
            error_cls=ReasonerError,
            permanent=context_exceeded,
        )
    except ReasonerError as exc:
        _raise_too_long(exc)
        raise


def retry_reasoner(fn: Callable[[], T], *, what: str, retries: int, timeout_s: float) -> T:
    """Sync twin of `aretry_reasoner`."""
    try:
        return retry(
            fn,
            what=what,
            retries=retries,
            timeout_s=timeout_s,
            error_cls=ReasonerError,
            permanent=context_exceeded,
        )
    except ReasonerError as exc:
        _raise_too_long(exc)
        raise


_client: httpx.Client | None = None


def _tokenize(root: str, text: str) -> int | None:
    """Tokens of ``text`` by the server's own tokenizer (llama.cpp's ``/tokenize``); ``None``
    when it cannot say (busy, an old server without the route): the call itself decides then."""
    global _client
    if _client is None:  # one pool for every count; the servers counted are local ones
        _client = httpx.Client(timeout=10.0, trust_env=False)
    try:
        reply = _client.post(f"{root}/tokenize", json={"content": text})
        return len(reply.raise_for_status().json()["tokens"])
    except (httpx.HTTPError, ValueError, KeyError, TypeError):
        return None


def _text(messages: Sequence[BaseMessage]) -> str:
    return "\n".join(m.content if isinstance(m.content, str) else m.text for m in messages)


def _reply_tokens(model: Any, max_tokens: int | None) -> int:
    """The longest reply the call may take (its ``max_tokens``, else the model's; 0: unknown)."""
    if max_tokens is None:
        max_tokens = getattr(model, "max_tokens", None)
    return max_tokens if isinstance(max_tokens, int) else 0


def _fits_by_bytes(text: str, reply: int, limit: int) -> bool:
    """A token holds at least one byte: a prompt of fewer bytes (plus the chat template's
    markers) fits without asking the server to count — every call of an ordinary question."""
    return len(text.encode()) + _TEMPLATE_TOKENS + reply <= limit


def check_prompt(
    model: Any, messages: Sequence[BaseMessage], max_tokens: int | None = None
) -> None:
    """Count the prompt's tokens where the server's context is known (`register_context`) and
    raise `QuestionTooLongError` when the prompt and the longest reply (``max_tokens``, else
    the model's) cannot fit together. Nothing is counted for other servers."""
    base = str(getattr(model, "openai_api_base", None) or "").rstrip("/")
    limit = _contexts.get(base)
    if limit is None:
        return
    text = _text(messages)
    reply = _reply_tokens(model, max_tokens)
    if _fits_by_bytes(text, reply, limit):
        return
    tokens = _tokenize(base.removesuffix("/v1"), text)
    if tokens is not None and tokens + reply > limit:
        raise QuestionTooLongError(
            f"question too long: its prompt is {tokens} tokens and the reply may take {reply}, "
            f"beyond the Reasoner's context of {limit} tokens; shorten the question (nothing "
            "was sent)",
            limit=limit,
            tokens=tokens,
        )


async def acheck_prompt(
    model: Any, messages: Sequence[BaseMessage], max_tokens: int | None = None
) -> None:
    """`check_prompt` off the event loop (only for a registered server and a prompt that may
    not fit: others cost nothing)."""
    base = str(getattr(model, "openai_api_base", None) or "").rstrip("/")
    limit = _contexts.get(base)
    if limit is not None and not _fits_by_bytes(
        _text(messages), _reply_tokens(model, max_tokens), limit
    ):
        await asyncio.to_thread(check_prompt, model, messages, max_tokens)
