"""The test doubles the unit tests share: chat models, DMs, a scripted graph, small tasks.

Chat models (the Reasoner's LangChain model):

- LangChain's own ``FakeListChatModel`` for a plain script: one reply per call, in order.
- `ScriptedChatModel` when a test needs more. A `BaseChatModel` (sync and async) that records
  every call as a `Call`, replies from a list or by a function of the call, and can fail,
  hang, report token usage and return token log-probs the way ``ChatOpenAI`` does.
- `SeededChatModel`: the same with a ``seed`` field, as ``ChatOpenAI`` has. A `Reasoner`
  derives a seed per call and candidate from it, and ``Reasoner.derive`` re-seeds a copy.
  (Copies share the original's ``calls`` list, so the original sees every call.)
- `arithmetic`: a reply function that solves the "a ± b" questions, slipping where the test
  says (by seed, by temperature, by a seeded RNG).
- `seven_plus_four`: the evaluation tests' Reasoner: arithmetic traces, a step script for
  "7 + 4" whose greedy path answers wrongly until a DM makes it backtrack, and a critic.
- `ToolCallingDouble`: an agent's tool-calling chat model that calls the DRR tool once, then
  words the tool's reply.

DMs: `constant_dm` and `scripted_dm` (a score per candidate text). Graph: `scripted_graph`.
The scripted quickstart: `TINY_QUICKSTART` and its Reasoner's `whole_traces_slip` (run once per
session by the ``tiny_quickstart`` fixture: its DM is the trained DM the docs' examples read).
Tasks: `number_item`, `number_task`. DM training data: `arithmetic_steps`. The HTTP fake servers
are in ``http_fakes.py``; the fixtures the tests share (``run``, ``no_backoff``,
``until``) are in ``conftest.py``.
"""

from __future__ import annotations

import asyncio
import random
import re
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

from langchain_core.language_models import BaseChatModel
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    HumanMessage,
    ToolMessage,
)
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from pydantic import Field, PrivateAttr

from drr_agent import DRRConfig, FunctionScorer, StepContext, StepPrompt, build_graph
from drr_agent.offline.records import StepExample
from drr_agent.offline.train import DM_RECIPES
from drr_agent.quickstart import QuickstartPlan
from drr_agent.scorers.likelihood import EMBEDDED_LIKELIHOOD_MODEL
from drr_agent.scorers.self_critique import CRITIC_QUESTION
from drr_agent.tasks import Task, TaskItem
from drr_agent.tasks.spec import TaskSpec

Runner = Callable[..., Awaitable[dict[str, Any]]]
"""The ``run`` fixture (conftest.py): ``await run(graph, inputs, **kwargs)``."""

ANSWER_PREFIX = StepPrompt().answer_prefix


# -- chat models ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    """One call a `ScriptedChatModel` received: its messages, its stop sequences and the other
    call arguments (``temperature``, ``seed``, ``max_tokens``, ``logprobs``, ...)."""

    messages: list[BaseMessage]
    stop: list[str] | None
    kwargs: dict[str, Any]

    @property
    def human(self) -> str:
        """The text of the prompt's human message (there must be exactly one)."""
        (message,) = [m for m in self.messages if isinstance(m, HumanMessage)]
        assert isinstance(message.content, str)
        return message.content

    @property
    def prefill(self) -> str | None:
        """The assistant text the prompt ends with (a prefill), or None when it ends with the
        user's turn."""
        last = self.messages[-1]
        return str(last.content) if isinstance(last, AIMessage) else None

    @property
    def seed(self) -> int | None:
        return self.kwargs.get("seed")

    @property
    def temperature(self) -> float | None:
        return self.kwargs.get("temperature")


def openai_logprobs(*values: float) -> dict[str, Any]:
    """``response_metadata["logprobs"]`` as ChatOpenAI puts it: one entry per token."""
    return {
        "content": [
            {"token": f"t{i}", "logprob": v, "top_logprobs": []} for i, v in enumerate(values)
        ]
    }


def ai_message(
    text: str,
    prompt_tokens: int | None = None,
    completion_tokens: int | None = None,
    **metadata: Any,
) -> AIMessage:
    """A reply. With ``prompt_tokens`` it reports token usage (``usage_metadata``): that many
    prompt tokens, and ``completion_tokens`` (default: one per word of ``text``). ``metadata``
    becomes its ``response_metadata``."""
    usage = None
    if prompt_tokens is not None:
        completion = len(text.split()) if completion_tokens is None else completion_tokens
        usage = {
            "input_tokens": prompt_tokens,
            "output_tokens": completion,
            "total_tokens": prompt_tokens + completion,
        }
    return AIMessage(text, usage_metadata=usage, response_metadata=metadata)


class ScriptedChatModel(BaseChatModel):
    """A chat model double: replies from a script, records its calls, fails when told to.

    Replies: ``respond(call)`` when given (a `str`, or an `AIMessage` used as it is), else
    ``replies`` in order, the last one repeating (calls that fail take none).

    Every call, failed ones too, is appended to ``calls`` (a `Call`) before anything else.

    Failures: a failing call raises a fresh copy of ``error`` (default
    ``ConnectionError("reasoner down")``). Calls fail when they are among the first
    ``fail_first`` (a transient failure), when they are call ``fail_from`` (1-based) or later,
    or when their human message contains one of ``fail_on``.

    ``delay_s``: wait that long before replying or failing (async: ``asyncio.sleep``; sync: on
    an event that `release` sets, so no worker thread outlives the test).

    Usage and log-probs: with ``prompt_tokens`` set, replies report that many prompt tokens and
    ``completion_tokens`` (default: one per word). ``logprobs`` maps a reply's text to its mean
    token log-prob: a call that asks for log-probs (``logprobs=True``) gets two tokens around it
    in ``response_metadata["logprobs"]``, ChatOpenAI's shape.
    """

    replies: list[str] = Field(default_factory=lambda: ["5 + 6 = 11"])
    respond: Callable[[Call], str | AIMessage] | None = None
    calls: list[Call] = Field(default_factory=list)
    fail_first: int = 0
    fail_from: int | None = None
    fail_on: tuple[str, ...] = ()
    error: Exception | None = None
    delay_s: float = 0.0
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    logprobs: dict[str, float] | None = None
    streamed: int = 0
    _lock: Any = PrivateAttr(default_factory=threading.Lock)
    _release: threading.Event = PrivateAttr(default_factory=threading.Event)
    _served: int = PrivateAttr(default=0)

    @property
    def _llm_type(self) -> str:
        return "scripted"

    def release(self) -> None:
        """End every sync wait on ``delay_s`` now."""
        self._release.set()

    def _record(
        self, messages: list[BaseMessage], stop: list[str] | None, kwargs: dict[str, Any]
    ) -> tuple[Call, int | None]:
        """Record the call; return it and the index of its scripted reply (None: it fails)."""
        call = Call(list(messages), stop, dict(kwargs))
        with self._lock:
            self.calls.append(call)
            k = len(self.calls)
            fails = (
                k <= self.fail_first
                or (self.fail_from is not None and k >= self.fail_from)
                or any(s in call.human for s in self.fail_on)
            )
            if fails:
                return call, None
            self._served += 1
            return call, self._served - 1

    def _reply(self, call: Call, slot: int | None) -> ChatResult:
        if slot is None:
            error = self.error or ConnectionError("reasoner down")
            raise type(error)(*error.args)
        if self.respond is not None:
            reply = self.respond(call)
        else:
            reply = self.replies[min(slot, len(self.replies) - 1)]
        if isinstance(reply, str):
            metadata = {}
            if call.kwargs.get("logprobs") and self.logprobs and reply in self.logprobs:
                lp = self.logprobs[reply]
                metadata["logprobs"] = openai_logprobs(lp - 0.01, lp + 0.01)
            reply = ai_message(reply, self.prompt_tokens, self.completion_tokens, **metadata)
        return ChatResult(generations=[ChatGeneration(message=reply)])

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: Any = None,
        **kwargs: Any,
    ) -> ChatResult:
        call, slot = self._record(messages, stop, kwargs)
        if self.delay_s:
            self._release.wait(self.delay_s)
        return self._reply(call, slot)

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: Any = None,
        **kwargs: Any,
    ) -> ChatResult:
        call, slot = self._record(messages, stop, kwargs)
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        return self._reply(call, slot)

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: Any = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        """The scripted reply streamed one log-prob entry (token) a chunk, the text spread
        over them word by word, then a last chunk with the usage (``stream_usage``); each
        chunk handed out is counted in ``streamed`` (a reader that stops early takes fewer)."""
        call, slot = self._record(messages, stop, kwargs)
        message = self._reply(call, slot).generations[0].message
        entries = (message.response_metadata.get("logprobs") or {}).get("content") or [None]
        words = str(message.content).split(" ")
        pieces = [w + " " for w in words[: len(entries) - 1]]
        pieces += [" ".join(words[len(entries) - 1 :])] + [""] * (len(entries) - len(words))
        for entry, piece in zip(entries, pieces, strict=False):
            metadata = {"logprobs": {"content": [entry]}} if entry is not None else {}
            self.streamed += 1
            yield ChatGenerationChunk(
                message=AIMessageChunk(content=piece, response_metadata=metadata)
            )
        yield ChatGenerationChunk(
            message=AIMessageChunk(
                content="",
                usage_metadata=message.usage_metadata,
                response_metadata={"finish_reason": "stop"},
            )
        )


class SeededChatModel(ScriptedChatModel):
    """A `ScriptedChatModel` with a ``seed`` field, as ``ChatOpenAI`` has (see the module)."""

    seed: int | None = None


class ToolCallingDouble(BaseChatModel):
    """A scripted tool-calling model, as an agent's chat model: ``bind_tools`` accepts only the
    DRR tool (``drr_reason``). Without a tool reply among its messages it calls ``drr_reason``
    on "What is 5 + 6?" (call id ``c1``); after one it answers "DRR says: <the last tool reply>".
    Every call's messages are appended to ``seen``."""

    seen: list[list[BaseMessage]] = Field(default_factory=list)

    @property
    def _llm_type(self) -> str:
        return "tool-calling-double"

    def bind_tools(self, tools: Any, **kwargs: Any) -> Any:
        assert [t.name for t in tools] == ["drr_reason"]
        return self

    def _generate(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> ChatResult:
        self.seen.append(list(messages))
        tool_results = [m for m in messages if isinstance(m, ToolMessage)]
        if tool_results:
            reply = AIMessage(f"DRR says: {tool_results[-1].content}")
        else:
            call = {"name": "drr_reason", "args": {"question": "What is 5 + 6?"}, "id": "c1"}
            reply = AIMessage("", tool_calls=[call])
        return ChatResult(generations=[ChatGeneration(message=reply)])


# -- arithmetic ----------------------------------------------------------------------------------

PROBLEM = re.compile(r"(-?\d+) ([+-]) (-?\d+)")
TRACE = "{a} {op} {b} = {v}\nAnswer: {v}"

RequestKind = Literal["trace", "step", "answer", "continuation"]


@dataclass(frozen=True)
class ArithmeticRequest:
    """What `arithmetic`'s ``slip`` is asked about.

    ``kind``: ``"answer"`` (the prompt ends with the answer prefix), ``"step"`` (a graph step:
    stop sequences given), ``"continuation"`` (a prefilled whole-trace rollout) or ``"trace"``
    (a whole trace). ``rng`` is seeded by the question and the call's seed: deterministic per
    request, like a seeded sampler.
    """

    kind: RequestKind
    call: Call
    rng: random.Random

    @property
    def seed(self) -> int | None:
        return self.call.seed

    @property
    def temperature(self) -> float | None:
        return self.call.temperature


def arithmetic(
    slip: Callable[[ArithmeticRequest], int] | None = None,
    *,
    trace: str = TRACE,
    answer_from: Literal["question", "last_step"] = "question",
) -> Callable[[Call], str]:
    """A ``respond`` for `ScriptedChatModel` that solves the "a ± b" of the question.

    It writes ``v``, the right value plus ``slip(request)`` (default 0, never wrong):

    - a whole trace: ``trace`` formatted with ``a``, ``op``, ``b`` and ``v``;
    - a graph step: ``"a op b = v"``;
    - the answer asked after a prefill (it ends with the answer prefix): ``" v"``, from the
      right value, or with ``answer_from="last_step"`` from the value after the last ``=`` of
      the prefill's last step (repeating that step's result; the right value without one);
    - a prefilled whole-trace rollout: ``"Answer: v"``, from the last step as above.
    """

    def respond(call: Call) -> str:
        question = call.human
        match = PROBLEM.search(question)
        assert match is not None, question
        a, op, b = match.groups()
        right = int(a) + int(b) if op == "+" else int(a) - int(b)
        prefill = call.prefill or ""
        kind: RequestKind
        if prefill.endswith(ANSWER_PREFIX):
            kind = "answer"
        elif call.stop is not None:
            kind = "step"
        else:
            kind = "continuation" if prefill else "trace"
        rng = random.Random(f"{question}|{call.seed}")
        off = int(slip(ArithmeticRequest(kind, call, rng))) if slip is not None else 0
        if kind == "trace":
            return trace.format(a=a, op=op, b=b, v=right + off)
        if kind == "step":
            return f"{a} {op} {b} = {right + off}"
        value = right
        if kind == "continuation" or answer_from == "last_step":
            last = prefill.removesuffix(ANSWER_PREFIX).strip().splitlines()[-1]
            value = int(last.split("=")[-1]) if "=" in last else right
        return f" {value + off}" if kind == "answer" else f"Answer: {value + off}"

    return respond


def seven_plus_four(traces: dict[int, str] | None = None, **fields: Any) -> ScriptedChatModel:
    """The evaluation tests' Reasoner; its replies report 20 prompt tokens, one per word.

    - whole traces: ``traces[seed]`` if scripted, else a right trace (`arithmetic`) with drift
      after the answer;
    - graph steps: at the question "7 + 4 = 11" (or "4 + 7 = 11" once that was rejected there);
      after a step, "Answer: 11" after "4 + 7", else "Answer: 12";
    - critic questions (`SelfCritiqueScorer`): "No" for a step holding 12, "Yes" otherwise
      (30 prompt tokens).

    ``fields`` go to `ScriptedChatModel` (``fail_on``, ``delay_s``, ...).
    """
    scripted = dict(traces or {})
    solve = arithmetic(trace=TRACE + "\nnoise after the answer")

    def respond(call: Call) -> str | AIMessage:
        human = call.human
        if CRITIC_QUESTION in human:
            candidate = human.split("Next step:")[1].split("\n")[0]
            return ai_message("No" if "12" in candidate else "Yes", prompt_tokens=30)
        if call.stop is None:
            return scripted[call.seed] if call.seed in scripted else solve(call)
        prefill = call.prefill or ""
        if not prefill:
            return "4 + 7 = 11" if "- 7 + 4 = 11" in human else "7 + 4 = 11"
        return "Answer: 11" if prefill.startswith("4 + 7") else "Answer: 12"

    return ScriptedChatModel(respond=respond, prompt_tokens=20, **fields)


# -- DMs and graphs ------------------------------------------------------------------------------


def constant_dm(score: float = 0.9, **kwargs: Any) -> FunctionScorer:
    """A DM that gives every step the same score."""
    return FunctionScorer(lambda ctx: score, name="constant-dm", **kwargs)


def scripted_dm(
    scores: dict[str, float] | None = None,
    default: float = 0.9,
    seen: list[StepContext] | None = None,
    **kwargs: Any,
) -> FunctionScorer:
    """A DM that scores a candidate by its text (``default`` for unknown texts), appending
    every step it is asked about to ``seen``; ``kwargs`` go to `FunctionScorer`."""
    table = scores or {}

    def dm(ctx: StepContext) -> float:
        if seen is not None:
            seen.append(ctx)
        return table.get(ctx.candidate, default)

    kwargs.setdefault("name", "scripted-dm")
    return FunctionScorer(dm, **kwargs)


def scripted_graph(
    replies: list[str],
    scores: dict[str, float],
    *,
    default: float,
    config: DRRConfig | None = None,
    checkpointer: Any = None,
) -> Any:
    """A DRR graph on a plain script of replies (``FakeListChatModel``), scored by
    `scripted_dm` (``scores``, else ``default``)."""
    model = FakeListChatModel(responses=replies)
    dm = scripted_dm(scores, default=default)
    return build_graph(model, dm, config, checkpointer=checkpointer)


# -- tasks ---------------------------------------------------------------------------------------


def number_item(question: str, gold: str = "11", id: str = "q0") -> TaskItem:
    """A task item whose answer is a number."""
    return TaskItem(id=id, question=question, gold=gold, answer_type="number")


def number_task(name: str, items: Iterable[tuple[str, str, str]]) -> Task:
    """A task of number questions, from ``(id, question, gold)`` triples."""
    rows = tuple(number_item(question, gold, id) for id, question, gold in items)
    return Task(name=name, source="test", items=rows, answer_type="number")


# -- DM training data ----------------------------------------------------------------------------

_DRIFT = (
    "so the cat has {x} hats",
    "then we sleep for {x} hours",
    "the colour of {x} is blue",
    "therefore {x} dogs fly away",
)


def arithmetic_steps(n_items: int, seed: int, split: str = "train") -> list[StepExample]:
    """Traces for "What is a + b + c?": two samples per item, two steps and an answer each.

    A step is labelled 1 when it computes correctly from a correct prefix, else 0. Wrong
    steps are either far off ("3 + 4 = 41") or drift into nonsense, so the label is learnable
    from the text by a small encoder in a few epochs.
    """
    rng = random.Random(seed)
    rows: list[StepExample] = []
    for i in range(n_items):
        a, b, c = (rng.randint(1, 9) for _ in range(3))
        # the parts never share a question (train_dm refuses that), whatever the digits
        question = f"What is {a} + {b} + {c}?" if split == "train" else f"Sum {a}, {b} and {c}."
        for sample in range(2):
            ok1 = rng.random() < 0.5
            r1 = a + b if ok1 else a + b + rng.randint(20, 60)
            ok2 = ok1 and rng.random() < 0.7
            if ok2:
                value = r1 + c
                step2 = f"{r1} + {c} = {value}"
            elif rng.random() < 0.5:
                value = r1 + c + rng.randint(20, 60)
                step2 = f"{r1} + {c} = {value}"
            else:
                value = rng.randint(1, 30)
                step2 = rng.choice(_DRIFT).format(x=value)
            steps = [(f"{a} + {b} = {r1}", ok1), (step2, ok2), (f"Answer: {value}", ok2)]
            for k, (text, ok) in enumerate(steps):
                rows.append(
                    StepExample(
                        task="synthetic_sum",
                        split=split,  # type: ignore[arg-type]
                        item_id=f"{split}-{i}",
                        sample_index=sample,
                        step_index=k,
                        question=question,
                        previous=[s for s, _ in steps[:k]],
                        step=text,
                        label=1.0 if ok else 0.0,
                        label_kind="mc",
                        final=k == len(steps) - 1,
                    )
                )
    return rows


# -- the scripted quickstart -------------------------------------------------------------
def whole_traces_slip(request: ArithmeticRequest) -> int:
    """The `TINY_QUICKSTART` Reasoner's slips (``tiny_quickstart`` in conftest). Whole traces
    are right for a third of the seeds (wrong by one otherwise); graph steps
    are right, and so is the answer asked for after a step (an answer rollout or the graph's
    forced one)."""
    return int(request.kind == "trace" and (request.seed or 0) % 3 != 0)


TINY_QUICKSTART = QuickstartPlan(
    task=TaskSpec(name="basic_arithmetic", seed=42, limit=60, distinct=True),
    test=6,
    dev=8,
    samples=3,
    siblings=2,
    # the Reasoner's own small LM keeps this test quick; the verifier LM is tested on its own
    dm=DM_RECIPES["verifier"].model_copy(
        update={
            "pair_weight": 1.0,
            "likelihood_model": EMBEDDED_LIKELIHOOD_MODEL,
            "likelihood_examples": 2,
            "minimal_pairs": 4,
            "epochs": 1,
            "batch_size": 8,
        }
    ),
    methods=("cot", "stepwise", "self_critique", "drr", "oracle"),
    graph=DRRConfig(max_steps=2, max_reasoner_calls=4),
    concurrency=4,
)


def labelled_step(
    question: str,
    step: str,
    label: float,
    *,
    split: str = "train",
    label_kind: str = "outcome",
    **fields: Any,
) -> StepExample:
    """The first step of one trace of ``question``, labelled ``label``: the hand-made step the
    tests that train or judge a DM on their own rows build (``fields``: any other field)."""
    return StepExample(
        task="t",
        split=split,
        item_id=question,
        sample_index=0,
        step_index=0,
        question=question,
        previous=[],
        step=step,
        label=label,
        label_kind=label_kind,
        **fields,
    )
