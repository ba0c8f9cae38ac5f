"""The embedded Qwen2.5-Coder-0.5B-Instruct as a Reasoner, on the real model (llama.cpp, CPU):
its chat template takes a prefill and continues it, its forced final answer is a number, and a
GSM8K question runs end to end through ``stepwise`` in whole paragraph steps."""

from __future__ import annotations

import pytest

from drr_agent.config import DRRConfig
from drr_agent.evaluation.methods import MethodContext, MethodSettings, stepwise
from drr_agent.reasoners import choose_reasoner
from drr_agent.steps import BLOCK_STEPS
from drr_agent.tasks import split_task
from drr_agent.tasks.checking import normalize_answer
from drr_agent.tasks.sources.gsm8k import load_gsm8k

pytestmark = pytest.mark.embedded


@pytest.fixture(scope="module")
def qwen():
    return choose_reasoner(None, "embedded-qwen2.5-0.5b", seed=3, max_tokens=128)


def test_qwen_is_chosen_by_name_with_its_own_format(qwen) -> None:
    assert qwen.name == "Qwen2.5-Coder-0.5B-Instruct-Q4_K_M"
    assert qwen.step_format == BLOCK_STEPS and qwen.prompt.style == "prefill"
    with pytest.raises(ValueError, match="unknown embedded Reasoner"):
        choose_reasoner(None, "embedded-nope")


async def test_prefill_is_continued_and_the_final_answer_is_a_number(qwen) -> None:
    question = "Tom has 7 apples and buys 5 more. How many apples does he have?"
    steps = ["Tom starts with 7 apples and buys 5 more, so he has 7 + 5 = 12 apples."]
    fmt = BLOCK_STEPS.model_copy(update={"numeric_answer": True})
    (final,) = await qwen.apropose(question, steps, final=True, greedy_first=True, step_format=fmt)
    assert final.answer == "12" and final.text == "Answer: 12"
    (step,) = await qwen.apropose(question, [], greedy_first=True)
    assert step.text.strip() and step.completion_tokens > 0
    # the step continues the template's assistant turn: no chat scaffolding leaks into it
    assert "<|im_start|>" not in step.text and "assistant" not in step.text[:12]


async def test_a_gsm8k_question_through_stepwise_in_whole_steps(qwen) -> None:
    task = load_gsm8k(limit=60)
    part = split_task(task, 20, 0, dev=20).subtask(task, "train")
    item = part.items[0]
    ctx = MethodContext(
        task=part,
        reasoner=qwen,
        config=DRRConfig(max_steps=10, max_reasoner_calls=20),
        settings=MethodSettings(max_tokens=512),
    )
    outcome = await stepwise(item, ctx)
    thoughts = outcome.details["thoughts"]
    path = [thoughts[i]["text"] for i in outcome.details["path"]]
    assert path, "the run accepted steps"
    for text in path:
        last = text.strip().splitlines()[-1].strip()
        assert text.strip() not in ("\\[", "\\]", "$$"), f"a bare display: {text!r}"
        assert not (text.strip().startswith("#") and "\n" not in text.strip()), text
        assert not last.endswith(":"), f"a lead-in without its content: {text!r}"
    assert not outcome.abstained
    assert normalize_answer(outcome.answer, "number") is not None, outcome.answer
