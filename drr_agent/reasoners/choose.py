"""`choose_reasoner`: the one chooser of the Reasoner a run uses — embedded, or a server.

The CLI (``--reasoner embedded|embedded-qwen2.5-0.5b|URL``, ``--model``, ``--style``,
``--vllm``) and the LangGraph deployment (``DRR_REASONER_URL``, ``DRR_REASONER_MODEL``,
``DRR_REASONER_STYLE``, ``DRR_REASONER_VLLM``) name a Reasoner the same way; each checks its
own inputs (and says which option or variable is wrong), then both build it here, with the
same defaults. ``DRR_REASONER_MODEL`` without a URL names an embedded Reasoner.
"""

from __future__ import annotations

from typing import Literal

from drr_agent.reasoners.base import Reasoner
from drr_agent.reasoners.sampling import STEP_MAX_TOKENS, STEP_TEMPERATURE

__all__ = ["choose_reasoner"]


def choose_reasoner(
    url: str | None,
    model: str | None = None,
    *,
    style: Literal["prefill", "chat"] | None = None,
    vllm: bool = False,
    temperature: float = STEP_TEMPERATURE,
    seed: int | None = None,
    max_tokens: int = STEP_MAX_TOKENS,
) -> Reasoner:
    """An embedded Reasoner when ``url`` is ``None`` — ``model`` names which
    (`EMBEDDED_REASONERS`; default SmolLM2), with its own prompt (``prefill``) and step format
    — else the OpenAI-compatible server at ``url`` serving ``model`` (``chat`` prompts by
    default: hosted APIs cannot continue an assistant message; vLLM can with ``vllm=True``)."""
    from drr_agent.reasoners.embedded import DEFAULT_EMBEDDED, embedded_reasoner, embedded_spec
    from drr_agent.reasoners.openai_compatible import openai_compatible_reasoner

    sampling = {"temperature": temperature, "seed": seed, "max_tokens": max_tokens}
    if url is None:
        name = model or DEFAULT_EMBEDDED
        own = embedded_spec(name).prompt
        prompt = own.model_copy(update={"style": style}) if style else None
        return embedded_reasoner(prompt=prompt, model=name, **sampling)
    if not model:
        raise ValueError(f"a Reasoner served at {url} needs the name of its model")
    return openai_compatible_reasoner(url, model, style=style or "chat", vllm=vllm, **sampling)
