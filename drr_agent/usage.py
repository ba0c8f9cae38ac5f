"""What a unit of work cost, model by model: calls, tokens and one compute figure.

Why: a critic's worth is accuracy *at a cost*, and the cost is everything that ran — the
Reasoner's calls, and the DM's too (its classifier, any language model it reads steps with, the
forced answers its lookahead asks the Reasoner for). Comparing methods by Reasoner tokens alone
hides the DM's share; comparing by calls hides that a 22 M classifier and a 494 M LM differ by
twenty times per token. So every unit (an evaluated item) gets a `UsageLedger`: per model, the
calls, prompt and completion tokens, the prompt tokens a server's prefix cache served (where it
reports them) and the model's parameters, and one figure summed over all of them,
``compute ≈ 2 × parameters × tokens processed`` (a forward pass costs about two operations
per parameter per token; cached prompt tokens are not processed again).

How the ledger fills:

- **Chat models** (the Reasoner, the lookahead, a self-critique critic) through LangChain's
  callbacks: a handler on a context variable registered once with
  ``register_configure_hook`` (what ``get_usage_metadata_callback`` does, without registering a
  new hook per use) sees every call's ``usage_metadata`` inside `metered`, in every task and
  thread that inherits the context. Calls made inside `booked_as` (a DM's lookahead asking
  the Reasoner for a forced answer) are kept apart under ``"<model> (<role>)"``: the same
  model, another purpose.
- **In-process models** (a DM's classifier and verifier LM) call `record_usage` with what their
  forward read.
- **Work shared by several units** (a coalesced DM forward over rows of many items,
  `drr_agent.scorers.coalesce`) is metered apart (`shared_among`) and split among the units'
  ledgers by their share of the rows: every unit is charged for the calls its rows were in,
  and the tokens add up to exactly what ran.

Parameters come from `parameters_of` (the embedded models are known; `register_parameters`
adds others); a model whose size is unknown leaves the compute figure ``None`` rather than a
number that silently leaves it out.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import AIMessage
from langchain_core.outputs import ChatGeneration, LLMResult
from langchain_core.tracers.context import register_configure_hook
from pydantic import BaseModel, ConfigDict, Field

from drr_agent.models import EMBEDDED_MODELS

__all__ = [
    "ModelUsage",
    "UsageLedger",
    "booked_as",
    "current_ledger",
    "metered",
    "parameters_of",
    "record_usage",
    "register_parameters",
    "shared_among",
]

_PARAMETERS: dict[str, int] = {}


def register_parameters(model: str, parameters: int) -> None:
    """Tell the ledger how large ``model`` is (as its server names it), for its compute."""
    _PARAMETERS[model] = parameters


def parameters_of(model: str) -> int | None:
    """Parameters of a model by the name its server reports (``None``: unknown)."""
    if model in _PARAMETERS:
        return _PARAMETERS[model]
    for name, spec in EMBEDDED_MODELS.items():
        if model in (name, spec.served_name):
            return spec.parameters
    return None


class ModelUsage(BaseModel):
    """One model's share of a unit's cost.

    Attributes:
        calls: Requests (chat calls, or forward batches the unit's rows were in).
        prompt_tokens: Tokens read (a classifier's or verifier's whole input counts here).
        completion_tokens: Tokens generated.
        cached_prompt_tokens: Of ``prompt_tokens``, those a server's prefix cache served
            (0 where the server does not say).
        parameters: The model's size (``None``: unknown).
    """

    model_config = ConfigDict(extra="forbid")

    calls: int = Field(default=0, ge=0)
    prompt_tokens: int = Field(default=0, ge=0)
    completion_tokens: int = Field(default=0, ge=0)
    cached_prompt_tokens: int = Field(default=0, ge=0)
    parameters: int | None = None

    @property
    def compute(self) -> float | None:
        """``2 × parameters × tokens processed`` (cached prompt tokens excluded)."""
        if self.parameters is None:
            return None
        processed = self.prompt_tokens - self.cached_prompt_tokens + self.completion_tokens
        return 2.0 * self.parameters * processed


class UsageLedger:
    """Per-model usage of one unit of work; safe to add to from several threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.models: dict[str, ModelUsage] = {}

    def add(
        self,
        model: str,
        *,
        prompt_tokens: int = 0,
        completion_tokens: int = 0,
        cached_prompt_tokens: int = 0,
        calls: int = 1,
        parameters: int | None = None,
    ) -> None:
        with self._lock:
            old = self.models.get(model) or ModelUsage(parameters=parameters)
            self.models[model] = ModelUsage(
                calls=old.calls + calls,
                prompt_tokens=old.prompt_tokens + prompt_tokens,
                completion_tokens=old.completion_tokens + completion_tokens,
                cached_prompt_tokens=old.cached_prompt_tokens + cached_prompt_tokens,
                parameters=old.parameters if old.parameters is not None else parameters,
            )

    def sole_model(self) -> str | None:
        """The one model booked here without a role (`booked_as`) — a unit's Reasoner when
        only it ran — else ``None`` (none, or several)."""
        with self._lock:
            names = [name for name in self.models if not name.endswith(")")]
        return names[0] if len(names) == 1 else None

    @property
    def compute(self) -> float | None:
        """The unit's compute, summed over every model (``None`` if one model's size is
        unknown; 0.0 when nothing ran)."""
        figures = [usage.compute for usage in self.models.values()]
        return None if any(f is None for f in figures) else float(sum(figures))  # type: ignore[arg-type]


class _LedgerHandler(BaseCallbackHandler):
    """Books every chat-model call of the current context into its ledger."""

    run_inline = True  # a few additions under a lock: no thread hop per call

    def __init__(self, ledger: UsageLedger) -> None:
        super().__init__()
        self.ledger = ledger

    def on_llm_end(self, response: LLMResult, **kwargs: Any) -> None:
        role = _ROLE.get()
        for generations in response.generations:
            first = generations[0] if generations else None
            if not isinstance(first, ChatGeneration) or not isinstance(first.message, AIMessage):
                continue
            message = first.message
            usage = message.usage_metadata or {}
            model = str(message.response_metadata.get("model_name") or "unknown model")
            if model.startswith("/"):  # llama.cpp names a model by its file's path
                model = model.rsplit("/", 1)[-1]
            details = usage.get("input_token_details") or {}
            self.ledger.add(
                f"{model} ({role})" if role else model,
                prompt_tokens=int(usage.get("input_tokens", 0)),
                completion_tokens=int(usage.get("output_tokens", 0)),
                cached_prompt_tokens=int(details.get("cache_read", 0) or 0),
                parameters=parameters_of(model),
            )


_LEDGER: ContextVar[UsageLedger | None] = ContextVar("drr_usage_ledger", default=None)
_HANDLER: ContextVar[_LedgerHandler | None] = ContextVar("drr_usage_handler", default=None)
register_configure_hook(_HANDLER, inheritable=True)
_ROLE: ContextVar[str | None] = ContextVar("drr_usage_role", default=None)


@contextmanager
def booked_as(role: str) -> Iterator[None]:
    """Book the chat-model calls inside under ``"<model> (<role>)"`` (e.g. ``"lookahead"``)."""
    token = _ROLE.set(role)
    try:
        yield
    finally:
        _ROLE.reset(token)


@contextmanager
def metered() -> Iterator[UsageLedger]:
    """A fresh ledger for the code inside (and every task and thread it starts)."""
    ledger = UsageLedger()
    ledger_token = _LEDGER.set(ledger)
    handler_token = _HANDLER.set(_LedgerHandler(ledger))
    try:
        yield ledger
    finally:
        _HANDLER.reset(handler_token)
        _LEDGER.reset(ledger_token)


def current_ledger() -> UsageLedger | None:
    """The ledger work done here is booked into (``None``: nothing is metering)."""
    return _LEDGER.get()


@contextmanager
def shared_among(shares: Sequence[tuple[UsageLedger | None, int]]) -> Iterator[None]:
    """Meter the work inside apart, then book it into each ``(ledger, rows)`` share: the
    calls to every ledger whose rows were in them, the tokens split by rows (the remainder
    to the first shares, so the totals are exact). ``None`` ledgers (no metering) get none.
    Work that failed is booked too: it ran."""
    batch = UsageLedger()
    try:
        with metered() as batch:
            yield
    finally:
        _book_shares(batch, shares)


def _book_shares(batch: UsageLedger, shares: Sequence[tuple[UsageLedger | None, int]]) -> None:
    if not sum(rows for _, rows in shares):
        return
    for model, usage in batch.models.items():
        fields = ("prompt_tokens", "completion_tokens", "cached_prompt_tokens")
        split = {f: _split(getattr(usage, f), [rows for _, rows in shares]) for f in fields}
        for index, (ledger, _) in enumerate(shares):
            if ledger is not None:
                ledger.add(
                    model,
                    calls=usage.calls,
                    parameters=usage.parameters,
                    **{f: split[f][index] for f in fields},
                )


def _split(amount: int, weights: Sequence[int]) -> list[int]:
    """``amount`` in whole parts proportional to ``weights``, summing to ``amount``."""
    total = sum(weights)
    parts = [amount * w // total for w in weights]
    for index in range(amount - sum(parts)):
        parts[index % len(parts)] += 1
    return parts


def record_usage(
    model: str,
    *,
    prompt_tokens: int,
    completion_tokens: int = 0,
    calls: int = 1,
    parameters: int | None = None,
) -> None:
    """Book an in-process model's work into the current ledger (a no-op outside `metered`)."""
    ledger = _LEDGER.get()
    if ledger is not None:
        ledger.add(
            model,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            calls=calls,
            parameters=parameters,
        )
