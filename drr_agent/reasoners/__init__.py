"""Reasoner adapters: any LangChain chat model, the embedded SmolLM2, OpenAI-compatible servers."""

from drr_agent.reasoners.base import Completion, Proposal, Reasoner
from drr_agent.reasoners.choose import choose_reasoner
from drr_agent.reasoners.embedded import (
    EMBEDDED_REASONER_NAME,
    embedded_chat_model,
    embedded_gguf_path,
    embedded_reasoner,
)
from drr_agent.reasoners.openai_compatible import openai_compatible_reasoner

__all__ = [
    "EMBEDDED_REASONER_NAME",
    "Completion",
    "Proposal",
    "Reasoner",
    "choose_reasoner",
    "embedded_chat_model",
    "embedded_gguf_path",
    "embedded_reasoner",
    "openai_compatible_reasoner",
]
