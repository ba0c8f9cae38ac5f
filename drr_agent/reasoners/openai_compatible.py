"""A Reasoner served over an OpenAI-compatible API (vLLM, llama.cpp server, hosted APIs).

vLLM can continue a prefilled assistant message when asked with ``continue_final_message``;
this factory sets that for the ``prefill`` style so small instruct models get the same prompt
they get embedded. For APIs that reject a trailing assistant message, use ``style="chat"``.

Several replicas of one served model (a list of URLs, or comma-separated) share the load
through `drr_agent.replicas`: ``ChatOpenAI`` addresses the first, and the HTTP
transport it is given sends each request to the replica with the fewest in flight, leaving a
failing one out for a while.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from typing import Any, Literal
from urllib.parse import urlparse

import httpx
from langchain_openai import ChatOpenAI

from drr_agent.prompts import INSTRUCT_PROMPT
from drr_agent.reasoners.base import Reasoner
from drr_agent.reasoners.sampling import STEP_MAX_TOKENS, STEP_TEMPERATURE
from drr_agent.replicas import (
    ReplicaPool,
    SyncReplicaTransport,
    async_http_client,
    split_urls,
)
from drr_agent.steps import BLOCK_STEPS, StepFormat

REASONER_API_KEY_ENV = "DRR_REASONER_API_KEY"
"""Environment variable holding the key for the ``--reasoner`` endpoint."""

_OPENAI_HOST = "api.openai.com"


def reasoner_api_key(
    base_url: str, api_key: str | None = None, *, env: str = REASONER_API_KEY_ENV
) -> str | None:
    """The key to send to ``base_url``: the one given, else the endpoint's own variable
    (``env``: ``$DRR_REASONER_API_KEY`` for the Reasoner), else — only for OpenAI's own API —
    ``$OPENAI_API_KEY``. A key meant for OpenAI is never sent to another host (a local server,
    a third-party URL in a config file). The one rule for every OpenAI-compatible endpoint
    drr-agent calls: the CLI's ``--reasoner``, a deployment's ``DRR_REASONER_URL`` and the
    agent app's ``DRR_AGENT_MODEL_URL`` (``env="DRR_AGENT_MODEL_API_KEY"``)."""
    if api_key:
        return api_key
    if os.environ.get(env):
        return os.environ[env]
    if (urlparse(base_url).hostname or "").lower() == _OPENAI_HOST:
        return os.environ.get("OPENAI_API_KEY")
    return None


def openai_compatible_reasoner(
    base_url: str | Sequence[str],
    model: str,
    *,
    api_key: str | None = None,
    style: Literal["prefill", "chat"] = "chat",
    temperature: float = STEP_TEMPERATURE,
    max_tokens: int = STEP_MAX_TOKENS,
    seed: int | None = None,
    timeout_s: float = 120.0,
    vllm: bool = False,
    step_format: StepFormat | None = None,
) -> Reasoner:
    """A `Reasoner` over ``{base_url}/chat/completions``.

    Args:
        base_url: The API root, e.g. ``http://127.0.0.1:8000/v1``; several replicas of the
            same model as a list or comma-separated (all with the same key).
        model: Served model name.
        api_key: The endpoint's key; default `reasoner_api_key` (``$DRR_REASONER_API_KEY``;
            ``$OPENAI_API_KEY`` for api.openai.com only), else a placeholder that local
            servers ignore.
        style: Prompt style (see `drr_agent.prompts`); ``prefill`` needs a server that can
            continue an assistant message (vLLM with ``vllm=True``, llama.cpp).
        vllm: Send vLLM's ``continue_final_message`` flags for the prefill style.
        step_format: How the model writes steps; default `BLOCK_STEPS` (paragraphs, as
            instruct models write), `StepFormat()` for one step per line.
    """
    # vLLM continues a trailing assistant message only when told to, and refuses the flag
    # when the prompt ends with the user's turn (the first step): the Reasoner adds it per call
    continuation = None
    if vllm and style == "prefill":
        continuation = {
            "extra_body": {"continue_final_message": True, "add_generation_prompt": False}
        }
    urls = split_urls(base_url)
    pool = ReplicaPool(urls) if len(urls) > 1 else None
    clients: dict[str, Any] = {"http_async_client": async_http_client(timeout_s, pool)}
    if pool is not None:
        clients["http_client"] = httpx.Client(
            transport=SyncReplicaTransport(pool), timeout=timeout_s
        )
    keys = {reasoner_api_key(u, api_key) for u in urls}
    if len(keys) > 1:
        raise ValueError(f"replicas {urls} would get different keys; give one with api_key")
    chat = ChatOpenAI(
        base_url=urls[0],
        api_key=keys.pop() or "not-needed",  # type: ignore[arg-type]
        model=model,
        temperature=temperature,
        max_tokens=max_tokens,  # type: ignore[call-arg]
        seed=seed,
        timeout=timeout_s,
        max_retries=0,  # drr_agent.retry owns retries
        **clients,
    )
    reasoner = Reasoner(
        chat,
        INSTRUCT_PROMPT.model_copy(update={"style": style}),
        name=model,
        continuation=continuation,
        step_format=step_format or BLOCK_STEPS,
    )
    recipe = functools.partial(
        openai_compatible_reasoner,
        urls,
        model,
        api_key=api_key,  # as given: a key from the environment is read where it is rebuilt
        style=style,
        temperature=temperature,
        max_tokens=max_tokens,
        seed=seed,
        timeout_s=timeout_s,
        vllm=vllm,
        step_format=step_format,
    )
    return reasoner.with_recipe(recipe)
