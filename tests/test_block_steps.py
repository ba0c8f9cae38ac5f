"""Block steps on the Reasoner's side: a step cut short at the separator is continued until
it stands alone; a forced final answer is read in the task's format or refused with a reason."""

from __future__ import annotations

from doubles import Call, ScriptedChatModel, ai_message

from drr_agent import DRRConfig, FunctionScorer, build_graph
from drr_agent.prompts import INSTRUCT_PROMPT
from drr_agent.reasoners import Reasoner
from drr_agent.steps import BLOCK_STEPS


def _block_reasoner(model: ScriptedChatModel, style: str = "prefill") -> Reasoner:
    prompt = INSTRUCT_PROMPT.model_copy(update={"style": style})
    return Reasoner(model, prompt, name="instruct", step_format=BLOCK_STEPS)


def test_a_heading_is_continued_into_one_step() -> None:
    def respond(call: Call) -> str:
        prefill = call.prefill or ""
        if prefill.endswith("### Step 1\n\n"):
            return ai_message("The house is worth:\n\\[", 10, 4)
        if prefill.endswith("\\[\n\n"):
            return ai_message("80 + 50 = 130\n\\]", 10, 6)
        return ai_message("### Step 1", 10, 3)

    model = ScriptedChatModel(respond=respond)
    (proposal,) = _block_reasoner(model).propose("Q?", [])
    assert proposal.text == "### Step 1\n\nThe house is worth:\n\\[\n\n80 + 50 = 130\n\\]"
    assert proposal.calls == 3 and len(model.calls) == 3
    assert (proposal.prompt_tokens, proposal.completion_tokens) == (30, 13)
    assert all(c.stop == ["\n\n"] for c in model.calls)


async def test_a_step_cut_by_the_token_limit_is_continued_without_glue() -> None:
    def respond(call: Call) -> object:
        if (call.prefill or "").endswith("The total is 3"):
            return ai_message("0 apples in the basket.", 5, 2)
        return ai_message("The total is 3", 5, 4, finish_reason="length")

    model = ScriptedChatModel(respond=respond)
    (proposal,) = await _block_reasoner(model).apropose("Q?", ["Earlier step here."])
    assert proposal.text == "The total is 30 apples in the basket."
    assert proposal.calls == 2
    assert model.calls[1].prefill == "Earlier step here.\n\nThe total is 3"


def test_chat_style_and_line_reasoners_never_continue() -> None:
    model = ScriptedChatModel(replies=["### Step 1"])
    (proposal,) = _block_reasoner(model, style="chat").propose("Q?", [])
    assert proposal.text == "### Step 1" and proposal.calls == 1
    line = Reasoner(ScriptedChatModel(replies=["Total:"]))
    assert line.propose("Q?", [])[0].calls == 1


def test_continuations_are_bounded() -> None:
    model = ScriptedChatModel(replies=["**Heading:**"])
    (proposal,) = _block_reasoner(model).propose("Q?", [])
    assert proposal.calls == 4 and len(model.calls) == 4


def test_forced_final_answer_is_read_in_the_boxed_format() -> None:
    model = ScriptedChatModel(replies=["18}$ dollars."])
    fmt = BLOCK_STEPS.model_copy(update={"numeric_answer": True})
    (proposal,) = _block_reasoner(model).propose("Q?", ["a step"], final=True, step_format=fmt)
    assert proposal.answer == "18" and proposal.text == "Answer: 18"
    assert model.calls[0].prefill.endswith("Therefore, the final answer is $\\boxed{")


def test_forced_final_answer_without_a_number_is_refused_with_a_reason() -> None:
    model = ScriptedChatModel(replies=["the same as the first train"])
    reasoner = Reasoner(model, name="plain", step_format=BLOCK_STEPS)
    fmt = BLOCK_STEPS.model_copy(update={"numeric_answer": True})
    (proposal,) = reasoner.propose("Q?", ["a step"], final=True, step_format=fmt)
    assert proposal.answer is None and proposal.text == ""
    assert "holds no number" in (proposal.note or "")


def test_the_graph_cuts_with_the_reasoners_format_and_records_refusals() -> None:
    # paragraph steps, then (at max_steps) a final answer without a number, refused
    model = ScriptedChatModel(
        replies=["First we add:\n\\[ 3 + 4 = 7 \\]", "the same", "7}$."],
    )
    graph = build_graph(
        _block_reasoner(model),
        FunctionScorer(lambda _: 1.0, name="accept-all"),
        DRRConfig(
            max_steps=2,
            max_reasoner_calls=4,
            accept_threshold=0.0,
            answer_threshold=0.0,
            step_format=BLOCK_STEPS.model_copy(update={"numeric_answer": True}),
        ),
    )
    out = graph.invoke({"question": "Q?"})
    texts = [t["text"] for t in out["thoughts"]]
    assert texts[0] == "First we add:\n\\[ 3 + 4 = 7 \\]"
    assert out["thoughts"][1]["reason"] == "empty step: the final answer 'the same' holds no number"
    assert out["answer"] == "7" and not out["abstained"]
    assert out["counters"]["model_calls"] == 3


def test_chat_style_final_answer_is_read_from_the_reply_alone() -> None:
    model = ScriptedChatModel(replies=["Answer: 12"])
    fmt = BLOCK_STEPS.model_copy(update={"numeric_answer": True})
    (proposal,) = _block_reasoner(model, style="chat").propose(
        "Q?", ["a step"], final=True, step_format=fmt
    )
    assert proposal.answer == "12"
