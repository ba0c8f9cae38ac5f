"""`Reasoner`: any LangChain chat model, used one reasoning step at a time.

The graph never talks to a model directly; it asks a `Reasoner` for ``n`` candidate next steps
given the question, the accepted path and the rejected alternatives. The Reasoner builds the
prompt (`StepPrompt`), stops the model at the step separator, strips an echoed prefill, cuts
the first step out of the completion (`StepFormat`) and reports token usage and, when asked,
the completion's mean token log-prob (for ranking candidates, `DRRConfig.dm_weight`). Any
``BaseChatModel`` works: ``ChatOpenAI`` against vLLM or an API, the embedded llama.cpp model,
or LangChain's fake chat models in tests.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.runnables import RunnableParallel

from drr_agent.prompts import StepPrompt
from drr_agent.reasoners.confidence import token_confidences
from drr_agent.reasoners.limits import acheck_prompt, aretry_reasoner, check_prompt
from drr_agent.reasoners.signals import (
    LOGPROB_REQUEST,
    SampledToken,
    reply_tokens,
    step_statistics,
)
from drr_agent.reasoners.streaming import STOPPED, StopRule, astream_until
from drr_agent.steps import StepFormat, numeric_refusal


@dataclass(frozen=True, slots=True)
class Proposal:
    """One candidate step as the Reasoner wrote it."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    answer: str | None = None
    """Set for a step asked as the final answer (``final=True``): the answer it gives."""
    logprob: float | None = None
    """Mean token log-prob of the completion (length-normalised, so long and short steps
    compare), when log-probs were asked for and the model returned them; else ``None``."""
    signals: dict[str, float] | None = None
    """The statistics of the completion's token log-probs a light DM reads (`SAMPLED_FEATURES`
    in `drr_agent.reasoners.signals`) when log-probs were asked for and returned; else ``None``."""
    note: str | None = None
    """Why the step is empty when the model wrote something (a final answer that holds no
    answer the task can read); the graph records it as the rejection's reason."""
    calls: int = 1
    """Model calls the step took: a block step cut short at the separator (a heading, an open
    display, the token limit) is continued in further calls (`Reasoner.apropose`)."""


@dataclass(frozen=True, slots=True)
class _Reply:
    """A step's text so far and what the calls that wrote it cost."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    tokens: tuple[SampledToken, ...] | None
    calls: int
    cut: bool
    """The last call stopped at its token limit rather than at the separator."""

    def then(self, other: _Reply, glue: str) -> _Reply:
        """This reply continued by ``other``; one without log-probs keeps the tokens so far."""
        tokens = self.tokens
        if self.tokens is not None and other.tokens is not None:
            tokens = self.tokens + other.tokens
        return _Reply(
            text=self.text + glue + other.text,
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
            tokens=tokens,
            calls=self.calls + other.calls,
            cut=other.cut,
        )


@dataclass(frozen=True, slots=True)
class Completion:
    """A whole trace as the Reasoner wrote it (`Reasoner.asample_trace`); ``confidences``:
    its per-token confidence when asked for (`drr_agent.reasoners.confidence`); ``tokens``:
    its tokens with their log-probs when any were asked for (`drr_agent.reasoners.signals`);
    ``stopped``: a stop rule cut it (`drr_agent.reasoners.streaming`; its prompt tokens are
    then 0: the server never reported them)."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    confidences: tuple[float, ...] | None = None
    tokens: tuple[SampledToken, ...] | None = None
    stopped: bool = False


class Reasoner:
    """Wraps a chat model so it proposes single steps.

    Args:
        model: Any LangChain chat model. Its own settings (temperature, max_tokens, timeout)
            apply; use sampling (temperature > 0) when asking for several candidates per step.
        prompt: Prompt style; ``StepPrompt()`` (prefill) by default, ``StepPrompt(style="chat")``
            for APIs that cannot continue an assistant message.
        name: Identity recorded with traces and results; defaults to the model's name.
        continuation: Extra call arguments for prompts that end with a prefilled assistant
            message (e.g. vLLM's ``continue_final_message``; see `openai_compatible_reasoner`).
        step_format: How this model writes steps (`StepFormat`: lines by default, paragraph
            blocks — `BLOCK_STEPS` — for instruct models). The graph cuts the model's text with
            it unless `DRRConfig.step_format` says otherwise; evaluations and trace sampling
            combine it with the task's answer rules (`StepFormat.segmented_as`).

    With ``logprobs=True`` every call also asks for token log-probs (OpenAI's ``logprobs``,
    which ``ChatOpenAI`` returns in ``response_metadata["logprobs"]["content"]``; vLLM and the
    llama.cpp server answer in the same shape, with the completion's tokens only: neither the
    prefill nor the stop sequence is among them). A model that returns none (fake chat models,
    some APIs) gives ``Proposal.logprob=None``.

    A model with a fixed ``seed`` (``ChatOpenAI(seed=...)``, the embedded model) would write
    the same step every time it is asked the same thing, so a retry after a rejection, or
    the ``n`` candidates of one call, would be copies. The Reasoner therefore derives a seed per
    call and candidate from the model's seed and the ``call_index`` the graph passes (its
    count of Reasoner calls so far): runs stay reproducible, and every proposal is a fresh
    sample.
    """

    def __init__(
        self,
        model: BaseChatModel,
        prompt: StepPrompt | None = None,
        name: str | None = None,
        *,
        continuation: dict[str, Any] | None = None,
        step_format: StepFormat | None = None,
    ) -> None:
        if not isinstance(model, BaseChatModel):
            raise TypeError(
                f"Reasoner needs a LangChain chat model (BaseChatModel), got {type(model).__name__}"
            )
        self.model = model
        self.prompt = prompt or StepPrompt()
        self.name = name or _model_name(model)
        self.continuation = dict(continuation or {})
        self.step_format = step_format or StepFormat()
        fields = getattr(type(model), "model_fields", {})
        self.base_seed: int | None = getattr(model, "seed", None) if "seed" in fields else None
        self.recipe: Callable[[], Reasoner] | None = None

    def __repr__(self) -> str:
        return f"Reasoner({self.name!r}, style={self.prompt.style!r})"

    @property
    def fingerprint(self) -> str:
        """sha256 (16 hex) of the model name, the prompt and the call arguments: a resumed
        evaluation refuses to mix records of a Reasoner prompted differently."""
        blob = json.dumps(
            [
                self.name,
                self.prompt.model_dump(mode="json"),
                self.continuation,
                *self._segmentation_fingerprint(),
            ],
            sort_keys=True,
            default=str,
        )
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def _segmentation_fingerprint(self) -> list[Any]:
        """The step format, where it is not the line default (fingerprints of line Reasoners
        stay what they were, so their runs still resume)."""
        if self.step_format == StepFormat():
            return []
        return [self.step_format.model_dump(mode="json")]

    def format_for(self, answer_rules: StepFormat) -> StepFormat:
        """``answer_rules`` (a task's `StepFormat`) cut the way this Reasoner writes steps."""
        return answer_rules.segmented_as(self.step_format)

    def derive(self, *, seed: int | None = None, instruction: str | None = None) -> Reasoner:
        """A copy re-seeded (when the model takes a ``seed``: ``ChatOpenAI``, the embedded
        model) and/or under another task instruction; name, prompt style and continuation
        arguments stay. Evaluations and labellers seed one copy per item, so every item gets
        its own samples and a rerun repeats them."""
        model = self.model
        if seed is not None and "seed" in getattr(type(model), "model_fields", {}):
            model = model.model_copy(update={"seed": seed})
        prompt = self.prompt
        if instruction is not None:
            prompt = prompt.model_copy(update={"instruction": instruction})
        derived = Reasoner(
            model,
            prompt,
            name=self.name,
            continuation=self.continuation,
            step_format=self.step_format,
        )
        if self.recipe is not None:
            derived.recipe = functools.partial(
                _rederive, self.recipe, seed=seed, instruction=instruction
            )
        return derived

    def with_recipe(self, recipe: Callable[[], Reasoner]) -> Reasoner:
        """Record how to build this Reasoner again (the factories of this package do), so it
        pickles as that recipe: a Ray worker rebuilds it — its own HTTP clients, its own
        embedded server — instead of receiving clients and locks it cannot use."""
        self.recipe = recipe
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> Reasoner:
        return self  # a handle on a model service, as shared as the service itself

    def __reduce__(self) -> tuple[Any, ...]:
        if self.recipe is None:
            raise TypeError(
                f"{self!r} was built from a model object and cannot be pickled; build it with "
                "embedded_reasoner / openai_compatible_reasoner / choose_reasoner (they record "
                "a recipe) or give it one with with_recipe"
            )
        return (_build, (self.recipe,))

    def trace_messages(self, question: str, instruction: str | None = None) -> list[BaseMessage]:
        """The prompt of a whole trace: the graph's first-step prompt, optionally under another
        task instruction — so traces, labels and the graph all see the same question."""
        prompt = self.prompt
        if instruction is not None:
            prompt = prompt.model_copy(update={"instruction": instruction})
        return prompt.messages(question, [])

    async def _ainvoke_retrying(
        self,
        messages: list[BaseMessage],
        kwargs: dict[str, Any],
        retries: int,
        timeout_s: float,
        stop_when: StopRule | None = None,
    ) -> BaseMessage:
        """One model call with bounded retries and backoff; a `ReasonerError` when all fail
        (`QuestionTooLongError`, unretried, when the prompt cannot fit: `limits`); streamed
        and cut by ``stop_when`` when given (`astream_until`)."""
        await acheck_prompt(self.model, messages, kwargs.get("max_tokens"))
        return await aretry_reasoner(
            (lambda: self.model.ainvoke(messages, **kwargs))
            if stop_when is None
            else (lambda: astream_until(self.model, messages, kwargs, stop_when)),
            what=f"Reasoner {self.name!r}",
            retries=retries,
            timeout_s=timeout_s,
        )

    async def acontinue(
        self,
        question: str,
        steps: Sequence[str],
        *,
        final: bool = False,
        temperature: float,
        max_tokens: int,
        seed: int | None,
        stop: Sequence[str] | None = None,
        retries: int = 2,
        timeout_s: float = 120.0,
    ) -> str:
        """Continue the prefilled ``steps`` (``prefill`` style) and return what the model
        added — a rollout from a step prefix; with ``final`` the prefill ends with the answer
        prefix, so the continuation is the final answer (as the graph asks for it).

        Raises:
            ReasonerError: Every attempt failed or timed out.
        """
        messages = self.prompt.messages(question, steps, final=final)
        prefill = self.prompt.prefill_text(steps, final=final)
        kwargs: dict[str, Any] = {
            **self.continuation_for(prefill),
            "temperature": temperature,
            "max_tokens": max_tokens,
            "seed": seed,
        }
        if stop:
            kwargs["stop"] = list(stop)
        message = await self._ainvoke_retrying(messages, kwargs, retries, timeout_s)
        return self.reply_text(message, prefill)

    async def asample_trace(
        self,
        question: str,
        *,
        instruction: str | None = None,
        temperature: float,
        max_tokens: int,
        seed: int | None,
        retries: int = 2,
        timeout_s: float = 120.0,
        top_logprobs: int | None = None,
        logprobs: bool = False,
        stop_when: StopRule | None = None,
    ) -> Completion:
        """Sample one whole trace (no stop sequence) with bounded retries and backoff.

        The one way traces are sampled — by ``drr traces`` (the DM's training data) and by the
        evaluation's whole-trace methods (``cot``, ``self_consistency``) — so both see the same
        prompt and settings. ``top_logprobs`` (≥ 2) also asks for that many log-probs per
        token and returns the token confidences (``deepconf``); ``logprobs`` asks for the
        sampled tokens' own (`LOGPROB_REQUEST`, for ``Completion.tokens``) when ``top_logprobs``
        does not already. The text is the same either way. ``stop_when`` (with
        ``top_logprobs``) streams the reply and cuts it once the rule holds for its token
        confidences so far (`drr_agent.reasoners.streaming.astream_until`: DeepConf's online
        early stop); the cut trace is returned with ``stopped``.

        Raises:
            ReasonerError: Every attempt failed or timed out.
        """
        messages = self.trace_messages(question, instruction)
        kwargs: dict[str, Any] = {
            "temperature": temperature,
            "max_tokens": max_tokens,
            "seed": seed,
        }
        if top_logprobs is not None:
            kwargs |= {"logprobs": True, "top_logprobs": top_logprobs}
        elif logprobs:
            kwargs |= LOGPROB_REQUEST
        if stop_when is not None and top_logprobs is None:
            raise ValueError("stop_when reads token confidences: ask for top_logprobs too")
        message = await self._ainvoke_retrying(messages, kwargs, retries, timeout_s, stop_when)
        usage = getattr(message, "usage_metadata", None) or {}
        asked = top_logprobs is not None or logprobs
        return Completion(
            text=message.text if hasattr(message, "text") else str(message.content),
            prompt_tokens=int(usage.get("input_tokens", 0)),
            completion_tokens=int(usage.get("output_tokens", 0)),
            confidences=token_confidences(message) if top_logprobs is not None else None,
            tokens=reply_tokens(message) if asked else None,
            stopped=message.response_metadata.get("finish_reason") == STOPPED,
        )

    def continuation_for(self, prefill: str) -> dict[str, Any]:
        """The continuation arguments a prompt needs: only one ending with a prefill gets them
        (vLLM refuses ``continue_final_message`` after the user's turn)."""
        return dict(self.continuation) if prefill else {}

    def _call_kwargs(
        self, call_index: int, n: int, prefill: str, greedy_first: bool, logprobs: bool
    ) -> list[dict[str, Any]]:
        """Per-candidate invoke kwargs: a derived seed when the model has a fixed one, the
        continuation arguments when the prompt ends with a prefill, temperature 0 for the
        first candidate when ``greedy_first``, the log-prob request when ``logprobs``."""
        kwargs = [self.continuation_for(prefill) for _ in range(n)]
        if logprobs:
            for kw in kwargs:
                kw.update(LOGPROB_REQUEST)
        if self.base_seed is not None:
            for i, kw in enumerate(kwargs):
                kw["seed"] = call_seed(self.base_seed, call_index, i)
        if greedy_first:
            kwargs[0]["temperature"] = 0.0
        return kwargs

    def _fan_out(self, fmt: StepFormat, kwargs: list[dict[str, Any]]) -> RunnableParallel:
        """The ``n`` candidate calls as one LangChain parallel runnable (threads or tasks)."""
        return RunnableParallel(
            {str(i): self.model.bind(stop=[fmt.separator], **kw) for i, kw in enumerate(kwargs)}
        )

    @staticmethod
    def reply_text(message: BaseMessage, prefill: str) -> str:
        """A reply's text without the prefill, which llama.cpp echoes in a continued message."""
        text = message.content if isinstance(message.content, str) else message.text
        return text[len(prefill) :] if prefill and text.startswith(prefill) else text

    def _reply(self, output: object, prefill: str) -> _Reply:
        message = _as_message(output)
        usage = getattr(message, "usage_metadata", None) or {}
        return _Reply(
            text=self.reply_text(message, prefill),
            prompt_tokens=int(usage.get("input_tokens", 0)),
            completion_tokens=int(usage.get("output_tokens", 0)),
            tokens=reply_tokens(message),
            calls=1,
            cut=message.response_metadata.get("finish_reason") == "length",
        )

    def _continuation(
        self, messages: list[BaseMessage], prefill: str, fmt: StepFormat, reply: _Reply
    ) -> tuple[list[BaseMessage], str, str] | None:
        """``(messages, prefill, glue)`` of the call that continues a block step cut short —
        a fragment (`StepFormat.is_fragment`: a heading, an open display) stopped at the
        separator, or a step stopped by the token limit — else ``None``.

        Only ``prefill`` prompts can be continued, and only formats that join fragments (a
        line Reasoner's steps are what one call returns, as they always were).
        """
        if self.prompt.style != "prefill" or not fmt.join_fragments or reply.calls > _CONTINUATIONS:
            return None
        if reply.cut:
            glue = ""
        elif fmt.is_fragment(reply.text):
            glue = fmt.separator
        else:
            return None
        text = prefill + reply.text + glue
        head = messages[:-1] if prefill else messages
        return [*head, AIMessage(text)], text, glue

    def read_final_answer(
        self, completion: str, fmt: StepFormat | None = None
    ) -> tuple[str | None, str | None]:
        """``(answer, why_none)`` of a completion of a ``final`` prompt — the one reading of a
        forced answer, shared by the graph, the answer-rollout labels and the lookahead.

        The task's answer patterns are tried on the sentence the prefill started (``… is
        $\\boxed{`` + ``18}$``), then `StepPrompt.final_answer` (the first line); a numeric
        task (`StepFormat.numeric_answer`) refuses an answer that states no value, and says why.
        """
        fmt = fmt or self.step_format
        answer = fmt.extract_answer(self.prompt.prefill_text([], final=True) + completion)
        if answer is not None:
            return answer, None
        answer = self.prompt.final_answer(completion) or None
        refusal = numeric_refusal(answer) if answer is not None and fmt.numeric_answer else None
        if refusal is not None:
            return None, refusal
        if answer is None and completion.strip():
            return None, f"no final answer in {completion.strip()[:80]!r}"
        return answer, None

    def _proposal(self, reply: _Reply, fmt: StepFormat, final: bool) -> Proposal:
        answer = note = None
        if final:
            answer, note = self.read_final_answer(reply.text, fmt)
            # written in the canonical form, as the DM saw final steps in training
            text = f"Answer: {answer}" if answer else ""
        else:
            text = fmt.first_step(reply.text)
        logprob = signals = None
        if reply.tokens:
            logprob = sum(t.logprob for t in reply.tokens) / len(reply.tokens)
            signals = step_statistics(reply.tokens)
        return Proposal(
            text=text,
            prompt_tokens=reply.prompt_tokens,
            completion_tokens=reply.completion_tokens,
            answer=answer,
            logprob=logprob,
            signals=signals,
            note=note,
            calls=reply.calls,
        )

    async def _afinish(
        self,
        output: object,
        messages: list[BaseMessage],
        prefill: str,
        fmt: StepFormat,
        kwargs: dict[str, Any],
        final: bool,
    ) -> Proposal:
        reply = self._reply(output, prefill)
        while not final and (nxt := self._continuation(messages, prefill, fmt, reply)):
            more_messages, more_prefill, glue = nxt
            call = {**kwargs, **self.continuation_for(more_prefill)}
            more = await self.model.ainvoke(more_messages, stop=[fmt.separator], **call)
            reply = reply.then(self._reply(more, more_prefill), glue)
        return self._proposal(reply, fmt, final)

    def _finish(
        self,
        output: object,
        messages: list[BaseMessage],
        prefill: str,
        fmt: StepFormat,
        kwargs: dict[str, Any],
        final: bool,
    ) -> Proposal:
        """Sync twin of `_afinish`."""
        reply = self._reply(output, prefill)
        while not final and (nxt := self._continuation(messages, prefill, fmt, reply)):
            more_messages, more_prefill, glue = nxt
            call = {**kwargs, **self.continuation_for(more_prefill)}
            more = self.model.invoke(more_messages, stop=[fmt.separator], **call)
            reply = reply.then(self._reply(more, more_prefill), glue)
        return self._proposal(reply, fmt, final)

    async def apropose(
        self,
        question: str,
        steps: Sequence[str],
        rejected: Sequence[str] = (),
        *,
        n: int = 1,
        step_format: StepFormat | None = None,
        call_index: int = 0,
        final: bool = False,
        greedy_first: bool = False,
        logprobs: bool = False,
    ) -> list[Proposal]:
        """Ask for ``n`` candidate next steps concurrently.

        Each candidate is one call stopped at the step separator; a block step cut short
        there (see `_continuation`) is continued until it stands alone, so a candidate is one
        whole step (`Proposal.calls` says how many calls it took).

        Args:
            step_format: How to cut steps and read answers; default: this Reasoner's own.
            call_index: Which call of the run this is (seeds differ per call, see the class).
            final: The step must be the final answer (the budget allows no other).
            greedy_first: Decode the first candidate greedily (temperature 0): the model's
                best guess, with sampling kept for the other candidates and for retries.
            logprobs: Ask for token log-probs, to fill ``Proposal.logprob`` (off by default:
                they cost response size, and only a ranking that blends them needs them).
        """
        fmt = step_format or self.step_format
        messages = self.prompt.messages(question, steps, rejected, final=final)
        prefill = self.prompt.prefill_text(steps, final=final)
        kwargs = self._call_kwargs(call_index, n, prefill, greedy_first, logprobs)
        await acheck_prompt(self.model, messages)  # too long: QuestionTooLongError, unsent
        if n == 1:  # the common case; abatch's fan-out costs more than the graph's own step
            outputs = [await self.model.ainvoke(messages, stop=[fmt.separator], **kwargs[0])]
        else:
            outputs = list((await self._fan_out(fmt, kwargs).ainvoke(messages)).values())
        return list(
            await asyncio.gather(
                *(
                    self._afinish(o, messages, prefill, fmt, kw, final)
                    for o, kw in zip(outputs, kwargs, strict=True)
                )
            )
        )

    def propose(
        self,
        question: str,
        steps: Sequence[str],
        rejected: Sequence[str] = (),
        *,
        n: int = 1,
        step_format: StepFormat | None = None,
        call_index: int = 0,
        final: bool = False,
        greedy_first: bool = False,
        logprobs: bool = False,
    ) -> list[Proposal]:
        """Sync twin of `apropose`."""
        fmt = step_format or self.step_format
        messages = self.prompt.messages(question, steps, rejected, final=final)
        prefill = self.prompt.prefill_text(steps, final=final)
        kwargs = self._call_kwargs(call_index, n, prefill, greedy_first, logprobs)
        check_prompt(self.model, messages)
        if n == 1:
            outputs = [self.model.invoke(messages, stop=[fmt.separator], **kwargs[0])]
        else:
            outputs = list(self._fan_out(fmt, kwargs).invoke(messages).values())
        return [
            self._finish(o, messages, prefill, fmt, kw, final)
            for o, kw in zip(outputs, kwargs, strict=True)
        ]


_CONTINUATIONS = 3
"""Most extra calls that continue one block step (a heading, then an open display, then the
token limit: three is what the embedded Qwen needs at most on GSM8K's dev questions)."""


def _build(recipe: Callable[[], Reasoner]) -> Reasoner:
    return recipe()


def _rederive(
    recipe: Callable[[], Reasoner], *, seed: int | None, instruction: str | None
) -> Reasoner:
    return recipe().derive(seed=seed, instruction=instruction)


def call_seed(base: int, call_index: int, candidate: int) -> int:
    """The seed of candidate ``candidate`` in call ``call_index`` of a run seeded ``base``."""
    digest = hashlib.sha256(f"{base}:{call_index}:{candidate}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


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
