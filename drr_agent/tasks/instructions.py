"""How each answer type asks the Reasoner to state its answer (the `Task.instruction`)."""

from __future__ import annotations

from drr_agent.prompts import DEFAULT_INSTRUCTION
from drr_agent.tasks.base import AnswerType

__all__ = ["BOOLEAN_INSTRUCTION", "CHOICE_INSTRUCTION", "instruction_for"]

CHOICE_INSTRUCTION = (
    "Solve this step by step. Write one reasoning step per line. On the last line write "
    "'Answer: X' where X is the letter of the correct choice"
)
BOOLEAN_INSTRUCTION = (
    "Solve this step by step. Write one reasoning step per line. On the last line write "
    "'Answer: yes' or 'Answer: no'"
)

_BY_TYPE: dict[str, str] = {
    "number": DEFAULT_INSTRUCTION,
    "text": DEFAULT_INSTRUCTION,
    "choice": CHOICE_INSTRUCTION,
    "boolean": BOOLEAN_INSTRUCTION,
}


def instruction_for(answer_type: AnswerType) -> str:
    """The instruction appended to questions of this answer type.

    Numbers and free text keep `DEFAULT_INSTRUCTION` (the prompt the embedded Reasoner's
    headroom was measured with); choices ask for the letter, yes/no questions for yes or no.
    """
    return _BY_TYPE[answer_type]
