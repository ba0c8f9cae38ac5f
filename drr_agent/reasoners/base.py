"""`Reasoner`: any LangChain chat model, used one reasoning step at a time.

The graph never talks to a model directly; it asks a `Reasoner` for ``n`` candidate next steps
given the question, the accepted path and the rejected alternatives. The Reasoner builds the
prompt (`StepPrompt`), stops the model at the step separator, strips an echoed prefill, cuts
the first step out of the completion (`StepFormat`) and reports token usage. Any
``BaseChatModel`` works: ``ChatOpenAI`` against vLLM or an API, the embedded llama.cpp model,
or LangChain's fake chat models in tests.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage

from drr_agent.prompts import StepPrompt
from drr_agent.steps import StepFormat


@dataclass(frozen=True, slots=True)
class Proposal:
    """One candidate step as the Reasoner wrote it."""

    text: str
    prompt_tokens: int
    completion_tokens: int


class Reasoner:
    """Wraps a chat model so it proposes single steps.

    Args:
        model: Any LangChain chat model. Its own settings (temperature, max_tokens, timeout)
            apply; use sampling (temperature > 0) when asking for several candidates per step.
        prompt: Prompt style; ``StepPrompt()`` (prefill) by default, ``StepPrompt(style="chat")``
            for APIs that cannot continue an assistant message.
        name: Identity recorded with traces and results; defaults to the model's name.
    """

    def __init__(
        self, model: BaseChatModel, prompt: StepPrompt | None = None, name: str | None = None
    ) -> None:
        if not isinstance(model, BaseChatModel):
            raise TypeError(
                f"Reasoner needs a LangChain chat model (BaseChatModel), got {type(model).__name__}"
            )
        self.model = model
        self.prompt = prompt or StepPrompt()
        self.name = name or _model_name(model)

    def __repr__(self) -> str:
        return f"Reasoner({self.name!r}, style={self.prompt.style!r})"

    def _inputs(
        self, question: str, steps: Sequence[str], rejected: Sequence[str]
    ) -> list[BaseMessage]:
        return self.prompt.messages(question, steps, rejected)

    def _parse(self, message: BaseMessage, prefill: str, fmt: StepFormat) -> Proposal:
        text = message.content if isinstance(message.content, str) else message.text
        if prefill and text.startswith(prefill):  # llama.cpp echoes a continued message
            text = text[len(prefill) :]
        usage = getattr(message, "usage_metadata", None) or {}
        return Proposal(
            text=fmt.first_step(text),
            prompt_tokens=int(usage.get("input_tokens", 0)),
            completion_tokens=int(usage.get("output_tokens", 0)),
        )

    async def apropose(
        self,
        question: str,
        steps: Sequence[str],
        rejected: Sequence[str] = (),
        *,
        n: int = 1,
        step_format: StepFormat | None = None,
    ) -> list[Proposal]:
        """Ask for ``n`` candidate next steps concurrently."""
        fmt = step_format or StepFormat()
        messages = self._inputs(question, steps, rejected)
        if n == 1:  # the common case; abatch's fan-out costs more than the graph's own step
            outputs = [await self.model.ainvoke(messages, stop=[fmt.separator])]
        else:
            outputs = await self.model.abatch(
                [messages] * n, config={"max_concurrency": n}, stop=[fmt.separator]
            )
        return [self._parse(_as_message(o), self.prompt.prefill_text(steps), fmt) for o in outputs]

    def propose(
        self,
        question: str,
        steps: Sequence[str],
        rejected: Sequence[str] = (),
        *,
        n: int = 1,
        step_format: StepFormat | None = None,
    ) -> list[Proposal]:
        """Sync twin of `apropose`."""
        fmt = step_format or StepFormat()
        messages = self._inputs(question, steps, rejected)
        if n == 1:
            outputs = [self.model.invoke(messages, stop=[fmt.separator])]
        else:
            outputs = self.model.batch(
                [messages] * n, config={"max_concurrency": n}, stop=[fmt.separator]
            )
        return [self._parse(_as_message(o), self.prompt.prefill_text(steps), fmt) for o in outputs]


def _as_message(output: object) -> BaseMessage:
    if isinstance(output, BaseMessage):
        return output
    return AIMessage(str(output))


def _model_name(model: BaseChatModel) -> str:
    for attr in ("model_name", "model", "model_id"):
        value = getattr(model, attr, None)
        if isinstance(value, str) and value:
            return value
    return type(model).__name__
