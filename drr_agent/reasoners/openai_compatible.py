"""A Reasoner served over an OpenAI-compatible API (vLLM, llama.cpp server, hosted APIs).

vLLM can continue a prefilled assistant message when asked with ``continue_final_message``;
this factory sets that for the ``prefill`` style so small instruct models get the same prompt
they get embedded. For APIs that reject a trailing assistant message, use ``style="chat"``.
"""

from __future__ import annotations

import os
from typing import Literal
from urllib.parse import urlparse

from langchain_openai import ChatOpenAI

from drr_agent.prompts import StepPrompt
from drr_agent.reasoners.base import Reasoner

REASONER_API_KEY_ENV = "DRR_REASONER_API_KEY"
"""Environment variable holding the key for the ``--reasoner`` endpoint."""

_OPENAI_HOST = "api.openai.com"


def reasoner_api_key(base_url: str, api_key: str | None = None) -> str | None:
    """The key to send to ``base_url``: the one given, else ``$DRR_REASONER_API_KEY``, else —
    only for OpenAI's own API — ``$OPENAI_API_KEY``. A key meant for OpenAI is never sent to
    another host (a local server, a third-party URL in a config file)."""
    if api_key:
        return api_key
    if os.environ.get(REASONER_API_KEY_ENV):
        return os.environ[REASONER_API_KEY_ENV]
    if (urlparse(base_url).hostname or "").lower() == _OPENAI_HOST:
        return os.environ.get("OPENAI_API_KEY")
    return None


def openai_compatible_reasoner(
    base_url: str,
    model: str,
    *,
    api_key: str | None = None,
    style: Literal["prefill", "chat"] = "chat",
    temperature: float = 0.7,
    max_tokens: int = 64,
    seed: int | None = None,
    timeout_s: float = 120.0,
    vllm: bool = False,
) -> Reasoner:
    """A `Reasoner` over ``{base_url}/chat/completions``.

    Args:
        base_url: The API root, e.g. ``http://127.0.0.1:8000/v1``.
        model: Served model name.
        api_key: The endpoint's key; default `reasoner_api_key` (``$DRR_REASONER_API_KEY``;
            ``$OPENAI_API_KEY`` for api.openai.com only), else a placeholder that local
            servers ignore.
        style: Prompt style (see `drr_agent.prompts`); ``prefill`` needs a server that can
            continue an assistant message (vLLM with ``vllm=True``, llama.cpp).
        vllm: Send vLLM's ``continue_final_message`` flags for the prefill style.
    """
    # vLLM continues a trailing assistant message only when told to, and refuses the flag
    # when the prompt ends with the user's turn (the first step): the Reasoner adds it per call
    continuation = None
    if vllm and style == "prefill":
        continuation = {
            "extra_body": {"continue_final_message": True, "add_generation_prompt": False}
        }
    chat = ChatOpenAI(
        base_url=base_url,
        api_key=reasoner_api_key(base_url, api_key) or "not-needed",  # type: ignore[arg-type]
        model=model,
        temperature=temperature,
        max_tokens=max_tokens,  # type: ignore[call-arg]
        seed=seed,
        timeout=timeout_s,
        max_retries=0,  # drr_agent.retry owns retries
    )
    return Reasoner(chat, StepPrompt(style=style), name=model, continuation=continuation)
