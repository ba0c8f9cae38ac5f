"""A reply read as it is written, cut the moment a rule on its token confidences holds.

DeepConf's online form (Fu et al. 2025) stops a trace once a window of its tokens falls
below a confidence threshold: the tokens it would have written after that are never
generated. Here the reply is streamed (OpenAI streaming with ``logprobs`` and
``top_logprobs``, which the llama.cpp server, vLLM and OpenAI send per chunk), each token's
confidence (`drr_agent.reasoners.confidence.token_confidence`) is read as it arrives, and the
stream is closed when ``stop_when`` holds — closing the connection is what tells the server
to stop generating.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import aclosing
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage

from drr_agent.reasoners.confidence import token_confidence
from drr_agent.reasoners.signals import logprob_content

__all__ = ["STOPPED", "StopRule", "astream_until"]

STOPPED = "stop_rule"
"""The ``finish_reason`` of a reply the stop rule cut (OpenAI's say why the server stopped:
``"stop"``, ``"length"``)."""

StopRule = Callable[[Sequence[float]], bool]
"""Given the token confidences so far, whether to stop reading (and generating) now."""


async def astream_until(
    model: Any, messages: Sequence[BaseMessage], kwargs: dict[str, Any], stop_when: StopRule
) -> tuple[AIMessage, bool]:
    """Stream one reply, stopping once ``stop_when`` holds for its token confidences so far.

    ``kwargs`` must ask for ``top_logprobs`` (≥ 2: a confidence needs alternatives). Returns
    the reply as one message — its text, its log-prob entries in the OpenAI shape, the
    server's usage when it sent any — whose ``finish_reason`` is `STOPPED` if it was cut.
    A cut reply carries no usage
    from the server (it never finished); its completion tokens are the entries read, and
    its prompt tokens are 0 (the caller knows them from an uncut reply to the same prompt).
    """
    parts: list[str] = []
    entries: list[Any] = []
    confidences: list[float] = []
    usage: Any = None
    metadata: dict[str, Any] = {}
    stopped = False
    async with aclosing(model.astream(list(messages), stream_usage=True, **kwargs)) as stream:
        async for chunk in stream:
            parts.append(str(chunk.text))
            content = logprob_content(chunk)
            if isinstance(content, list):
                entries.extend(content)
                for token in content:
                    value = token_confidence(token)
                    if value is not None:
                        confidences.append(value)
            if getattr(chunk, "usage_metadata", None):
                usage = chunk.usage_metadata
            metadata.update(
                {k: v for k, v in chunk.response_metadata.items() if k not in ("logprobs",)}
            )
            if confidences and stop_when(confidences):
                stopped = True
                break
    if stopped:
        metadata["finish_reason"] = STOPPED
    if usage is None:
        usage = {"input_tokens": 0, "output_tokens": len(entries), "total_tokens": len(entries)}
    message = AIMessage(
        "".join(parts),
        response_metadata=metadata | {"logprobs": {"content": entries}},
        usage_metadata=usage,
    )
    return message
