"""StepPrompt message layouts, and how a Reasoner uses them with a fake chat model."""

from __future__ import annotations

from doubles import ScriptedChatModel, SeededChatModel
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

from drr_agent import Reasoner, StepFormat, StepPrompt
from drr_agent.prompts import DEFAULT_INSTRUCTION

QUESTION = "  Tom has 5 apples and buys 6. How many?  "


def test_prefill_without_steps_is_one_human_message() -> None:
    messages = StepPrompt().messages(QUESTION, [])
    assert len(messages) == 1
    assert isinstance(messages[0], HumanMessage)
    assert messages[0].content == f"{QUESTION.strip()}\n\n{DEFAULT_INSTRUCTION}"


def test_prefill_writes_accepted_steps_as_assistant_prefix() -> None:
    prompt = StepPrompt()
    messages = prompt.messages(QUESTION, ["Tom starts with 5.", "He buys 6."])
    assert [type(m) for m in messages] == [HumanMessage, AIMessage]
    assert messages[1].content == "Tom starts with 5.\n\nHe buys 6.\n\n"
    assert messages[1].content == prompt.prefill_text(["Tom starts with 5.", "He buys 6."])
    human = messages[0].content
    assert "Steps so far" not in human
    assert "Tom starts with 5." not in human
    assert "Write only the next step" not in human


def test_prefill_text_uses_step_joiner() -> None:
    prompt = StepPrompt(step_joiner="\n")
    assert prompt.prefill_text(["a", "b"]) == "a\nb\n"
    assert prompt.messages("q", ["a", "b"])[-1].content == "a\nb\n"
    assert StepPrompt(step_joiner=" | ").prefill_text(["a"]) == "a | "
    assert prompt.prefill_text([]) == ""


def test_chat_lists_steps_in_the_human_message_and_has_no_prefill() -> None:
    prompt = StepPrompt(style="chat")
    messages = prompt.messages(QUESTION, ["Tom starts with 5.", "He buys 6."])
    assert len(messages) == 1
    assert isinstance(messages[0], HumanMessage)
    human = messages[0].content
    assert "Steps so far:\n1. Tom starts with 5.\n2. He buys 6." in human
    assert human.endswith("Write only the next step, on one line.")
    assert prompt.prefill_text(["Tom starts with 5."]) == ""


def test_chat_without_steps_has_no_steps_section() -> None:
    human = StepPrompt(style="chat").messages(QUESTION, [])[0].content
    assert "Steps so far" not in human
    assert human.endswith("Write only the next step, on one line.")


def test_rejected_alternatives_are_listed_in_the_human_message() -> None:
    for style in ("prefill", "chat"):
        prompt = StepPrompt(style=style)
        messages = prompt.messages(QUESTION, ["Tom starts with 5."], ["5 - 6 = -1", "5 * 6 = 30"])
        human = next(m for m in messages if isinstance(m, HumanMessage)).content
        assert f"{prompt.rejected_header}\n- 5 - 6 = -1\n- 5 * 6 = 30" in human
        for m in messages:
            if isinstance(m, AIMessage):
                assert "5 - 6" not in m.content


def test_no_rejected_section_without_rejections() -> None:
    prompt = StepPrompt()
    human = prompt.messages(QUESTION, ["x"], [])[0].content
    assert prompt.rejected_header not in human


def test_system_message_comes_first() -> None:
    messages = StepPrompt(system="You are careful.").messages(QUESTION, ["a"])
    assert [type(m) for m in messages] == [SystemMessage, HumanMessage, AIMessage]
    assert messages[0].content == "You are careful."


def test_custom_instruction_and_header() -> None:
    prompt = StepPrompt(instruction="Think.", rejected_header="Not these:")
    human = prompt.messages("q?", [], ["bad"])[0].content
    assert human == "q?\n\nThink.\n\nNot these:\n- bad"


# -- Reasoner + prompt --------------------------------------------------------------------------


def test_reasoner_strips_echoed_prefill_and_cuts_first_step() -> None:
    prefill = "Tom starts with 5.\n\n"
    model = FakeListChatModel(responses=[prefill + "2. 5 + 6 = 11\nAnswer: 11"])
    reasoner = Reasoner(model)
    (proposal,) = reasoner.propose("q", ["Tom starts with 5."])
    assert proposal.text == "5 + 6 = 11"


def test_reasoner_returns_n_proposals_in_order() -> None:
    model = FakeListChatModel(responses=["a", "b", "c"])
    proposals = Reasoner(model).propose("q", [], n=3)
    assert [p.text for p in proposals] == ["a", "b", "c"]


async def test_reasoner_async_uses_the_step_format() -> None:
    model = FakeListChatModel(responses=["first\n\nsecond"])
    (proposal,) = await Reasoner(model).apropose("q", [], step_format=StepFormat(separator="\n\n"))
    assert proposal.text == "first"
    assert proposal.prompt_tokens == 0
    assert proposal.completion_tokens == 0


def test_final_prompt_prefills_the_answer_prefix_and_puts_it_back() -> None:
    prompt = StepPrompt()
    assert prompt.prefill_text([], final=True) == "So the result is"
    assert prompt.prefill_text(["a"], final=True) == "a\n\nSo the result is"
    chat = StepPrompt(style="chat")
    assert chat.prefill_text(["a"], final=True) == ""
    assert "Write the final answer now" in chat.messages("q", ["a"], final=True)[0].content
    # llama.cpp echoes the prefill; the step is written in the canonical answer form
    model = FakeListChatModel(responses=["a\n\nSo the result is 11.\nmore"])
    (proposal,) = Reasoner(model).propose("q", ["a"], final=True)
    assert proposal.text == "Answer: 11" and proposal.answer == "11"
    assert StepFormat().extract_answer(proposal.text) == "11"
    # a chat reply that writes its own marker
    model = FakeListChatModel(responses=["Answer: (B)."])
    (proposal,) = Reasoner(model, chat).propose("q", ["a"], final=True)
    assert proposal.answer == "(B)"
    # an empty completion gives no answer (and an empty step, which the graph rejects)
    (proposal,) = Reasoner(FakeListChatModel(responses=["  "])).propose("q", [], final=True)
    assert proposal.text == "" and proposal.answer is None


async def test_reasoner_derives_a_fresh_seed_per_call_and_candidate() -> None:
    model = SeededChatModel(seed=11, replies=["x"])  # a seed field, as ChatOpenAI has
    reasoner = Reasoner(model)
    assert reasoner.base_seed == 11
    reasoner.propose("q", [], n=3, call_index=0)
    await reasoner.apropose("q", [], n=1, call_index=1)
    reasoner.propose("q", [], n=1, call_index=1)
    seen = [c.seed for c in model.calls]
    first, second, again = seen[:3], seen[3], seen[4]
    assert len(set(first)) == 3 and second not in first  # all distinct
    assert second == again  # reproducible: the same call of the same run, the same seed
    # an unseeded model is called without one
    plain = SeededChatModel(replies=["x"], seed=None)
    Reasoner(plain).propose("q", [])
    assert [c.seed for c in plain.calls] == [None]


def test_continuation_arguments_go_only_with_a_prefill() -> None:
    model = ScriptedChatModel(replies=["x"])
    reasoner = Reasoner(model, continuation={"extra_body": {"continue_final_message": True}})
    reasoner.propose("q", [])  # the user's turn ends the prompt
    reasoner.propose("q", ["a"])  # a prefilled assistant turn ends it
    reasoner.propose("q", [], final=True)  # "Answer:" is a prefill too
    assert [("extra_body" in c.kwargs) for c in model.calls] == [False, True, True]


def test_final_answer_drops_punctuation_left_of_the_answer():
    # SmolLM2 continues "So the result is" with ": 11" or ": : 11" as often as with " 11"
    prompt = StepPrompt()
    for completion, answer in [
        (" 11", "11"),
        (": 11", "11"),
        (": : 11", "11"),
        ("Answer: 11.", "11"),
        (": Answer: X", "X"),
        (" -5", "-5"),
        (" 11\nmore text", "11"),
    ]:
        assert prompt.final_answer(completion) == answer, completion


def test_an_openai_key_is_never_sent_to_another_host(monkeypatch):
    from drr_agent.reasoners.openai_compatible import reasoner_api_key

    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai")
    monkeypatch.delenv("DRR_REASONER_API_KEY", raising=False)
    assert reasoner_api_key("http://127.0.0.1:8000/v1") is None
    assert reasoner_api_key("https://api.example.com/v1") is None
    assert reasoner_api_key("https://api.openai.com/v1") == "sk-openai"
    assert reasoner_api_key("http://127.0.0.1:8000/v1", "mine") == "mine"
    monkeypatch.setenv("DRR_REASONER_API_KEY", "for-the-reasoner")
    assert reasoner_api_key("http://127.0.0.1:8000/v1") == "for-the-reasoner"


def test_the_embedded_prompt_resamples_instead_of_listing_rejected_steps():
    from drr_agent.reasoners.embedded import EMBEDDED_PROMPT

    listed = StepPrompt(style="prefill").messages("Q?", ["a"], ["bad step"])
    plain = EMBEDDED_PROMPT.messages("Q?", ["a"], ["bad step"])
    assert "bad step" in listed[0].content and "bad step" not in plain[0].content
    assert plain == EMBEDDED_PROMPT.messages("Q?", ["a"])  # the greedy step's own prompt
