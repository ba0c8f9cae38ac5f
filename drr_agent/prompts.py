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
instead of repeating them — unless ``list_rejected`` is off: then a retry is a fresh sample of
the same prompt, which is what the embedded 135M Reasoner does best (`EMBEDDED_PROMPT`).
When the budget allows one more step only, the prompt asks for the
final answer (``final=True``): prefill style starts the step with ``answer_prefix``, chat style
says so.
"""

from __future__ import annotations

import re
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
            embedded Reasoner's headroom was measured (``docs/environment.md``).
        system: Optional system message.
        step_joiner: Text between accepted steps in a prefilled reply. A blank line makes small
            models start the next step at once instead of emitting an empty line first.
        rejected_header: Introduces the list of rejected alternatives.
        list_rejected: Whether the prompt lists the rejected alternatives at all. ``False``
            makes a retry a fresh sample of the very prompt the greedy step came from (a
            sibling, as the DM's sibling data are): a 135M model shown its rejected steps
            tends to write about them ("It appears that a step was missed…") instead of
            writing a different step.
        answer_prefix: Starts a step that must give the final answer (prefill style). It
            avoids the word "answer" on purpose: after an instruction that says "write 'Answer:
            X'", small models complete "Answer:" with a literal "X" (SmolLM2-135M: 1 in 20
            greedy answers right with "Answer:", 12 in 20 with "So the result is").
        final_request: Asks for the final answer in ``chat`` style.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    style: Literal["prefill", "chat"] = "prefill"
    instruction: str = DEFAULT_INSTRUCTION
    system: str | None = None
    step_joiner: str = "\n\n"
    rejected_header: str = (
        "These next steps were judged wrong; do not repeat them, write a different step:"
    )
    list_rejected: bool = True
    answer_prefix: str = "So the result is"
    final_request: str = "Write the final answer now, on one line: 'Answer: X'."

    def prefill_text(self, steps: Sequence[str], *, final: bool = False) -> str:
        """The assistant prefix for ``prefill`` style ('' when there is nothing to prefill).

        With ``final``, the prefix ends with ``answer_prefix``: the model can only complete
        the final answer.
        """
        if self.style != "prefill":
            return ""
        prefix = self.step_joiner.join(steps) + self.step_joiner if steps else ""
        return prefix + self.answer_prefix if final else prefix

    def final_answer(self, completion: str) -> str:
        """The answer in a completion of a ``final`` prompt: its first line, without the
        trailing full stop (a chat-style reply may still start with an answer marker)."""
        line = completion.strip().split("\n", 1)[0].strip()
        # "So the result is: 11", ": Answer: 11": punctuation left of the answer is not it
        line = re.sub(r"^(?:[:=\s-]*(?:answer|final answer|result)\s*[:=-])+", "", line, flags=re.I)
        return line.lstrip(":= ").rstrip(".").strip()

    def messages(
        self,
        question: str,
        steps: Sequence[str],
        rejected: Sequence[str] = (),
        *,
        final: bool = False,
    ) -> list[BaseMessage]:
        """Messages asking for the step after ``steps``, avoiding ``rejected``; with ``final``
        that step must be the final answer."""
        parts = [question.strip(), self.instruction]
        if self.style == "chat" and steps:
            listed = "\n".join(f"{i}. {s}" for i, s in enumerate(steps, 1))
            parts.append(f"Steps so far:\n{listed}")
        if rejected and self.list_rejected:
            parts.append(self.rejected_header + "\n" + "\n".join(f"- {r}" for r in rejected))
        if self.style == "chat":
            parts.append(self.final_request if final else "Write only the next step, on one line.")
        messages: list[BaseMessage] = []
        if self.system:
            messages.append(SystemMessage(self.system))
        messages.append(HumanMessage("\n\n".join(parts)))
        prefill = self.prefill_text(steps, final=final)
        if prefill:
            messages.append(AIMessage(prefill))
        return messages


INSTRUCT_PROMPT = StepPrompt(answer_prefix="Therefore, the final answer is $\\boxed{")
"""The prompt of instruct models (the embedded Qwen, a Reasoner served over an
OpenAI-compatible API): rejected steps listed (such a model can use the hint), and a forced
final answer that opens the ``\\boxed{`` instruct models write their answers in, so the model
can only complete the answer. The line-style "So the result is" let the embedded Qwen open a
display on the next line, and a call stopped at the separator came back empty."""
