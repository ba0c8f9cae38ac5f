"""Prompts that ask a chat model for *one* next reasoning step.

Two styles, because chat servers differ in what they allow:

- ``prefill`` (default for the embedded model): the accepted steps are written as the start of
  the assistant's reply and the model continues it, stopping at the step separator. This is
  what small instruct models follow best. llama.cpp's server continues a trailing assistant
  message by itself; vLLM needs ``continue_final_message`` (set by the OpenAI-compatible
  factory); hosted APIs usually cannot, so they use
- ``chat``: the accepted steps are listed in the user message and the model is asked for the
  next step only.

In both, the alternatives the DM rejected at this point are listed so the Reasoner explores
instead of repeating them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from pydantic import BaseModel, ConfigDict

DEFAULT_INSTRUCTION = (
    "Solve this step by step. Write one reasoning step per line. On the last line write 'Answer: X'"
)


class StepPrompt(BaseModel):
    """How the question, accepted path and rejected alternatives become chat messages.

    Attributes:
        style: ``"prefill"`` or ``"chat"`` (see the module docstring).
        instruction: Appended to the question. The default is the prompt under which the
            embedded Reasoner's headroom was measured (DESIGN.md).
        system: Optional system message.
        step_joiner: Text between accepted steps in a prefilled reply. A blank line makes small
            models start the next step at once instead of emitting an empty line first.
        rejected_header: Introduces the list of rejected alternatives.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    style: Literal["prefill", "chat"] = "prefill"
    instruction: str = DEFAULT_INSTRUCTION
    system: str | None = None
    step_joiner: str = "\n\n"
    rejected_header: str = (
        "These next steps were judged wrong; do not repeat them, write a different step:"
    )

    def prefill_text(self, steps: Sequence[str]) -> str:
        """The assistant prefix for ``prefill`` style ('' when no step is accepted yet)."""
        if self.style != "prefill" or not steps:
            return ""
        return self.step_joiner.join(steps) + self.step_joiner

    def messages(
        self, question: str, steps: Sequence[str], rejected: Sequence[str] = ()
    ) -> list[BaseMessage]:
        """Messages asking for the step after ``steps``, avoiding ``rejected``."""
        parts = [question.strip(), self.instruction]
        if self.style == "chat" and steps:
            listed = "\n".join(f"{i}. {s}" for i, s in enumerate(steps, 1))
            parts.append(f"Steps so far:\n{listed}")
        if rejected:
            parts.append(self.rejected_header + "\n" + "\n".join(f"- {r}" for r in rejected))
        if self.style == "chat":
            parts.append("Write only the next step, on one line.")
        messages: list[BaseMessage] = []
        if self.system:
            messages.append(SystemMessage(self.system))
        messages.append(HumanMessage("\n\n".join(parts)))
        prefill = self.prefill_text(steps)
        if prefill:
            messages.append(AIMessage(prefill))
        return messages
