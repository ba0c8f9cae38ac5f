"""StepFormat: step segmentation, numbering removal and final-answer extraction."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from drr_agent import StepFormat
from drr_agent.steps import DEFAULT_ANSWER_PATTERNS

FMT = StepFormat()


# -- split / clean -------------------------------------------------------------------------


def test_split_strips_numbering_and_drops_blank_lines() -> None:
    text = "1. Add the apples.\n\nStep 2: 5 + 6 = 11\n   - carry on  \n3) done\n\n\n"
    assert FMT.split(text) == ["Add the apples.", "5 + 6 = 11", "carry on", "done"]


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("Step 3. compute", "compute"),
        ("step 4) compute", "compute"),
        ("12. compute", "compute"),
        ("* compute", "compute"),
        ("• compute", "compute"),
        ("  plain step  ", "plain step"),
        # content that merely starts with a digit or a minus sign is kept
        ("1.5 is half of 3", "1.5 is half of 3"),
        ("-5 is negative", "-5 is negative"),
        ("42.", "42."),
        ("3 apples remain", "3 apples remain"),
    ],
)
def test_clean(raw: str, clean: str) -> None:
    assert FMT.clean(raw) == clean


def test_split_only_strips_one_marker() -> None:
    assert FMT.split("1. 2. nested") == ["2. nested"]


def test_split_keeps_numbering_when_disabled() -> None:
    fmt = StepFormat(strip_numbering=False)
    assert fmt.split("1. a\n\n Step 2: b ") == ["1. a", "Step 2: b"]


def test_split_with_custom_separator_keeps_multiline_steps() -> None:
    fmt = StepFormat(separator="\n\n")
    assert fmt.split("first line\nstill first\n\n2. second\n\n\n\n") == [
        "first line\nstill first",
        "second",
    ]


def test_split_of_blank_text_is_empty() -> None:
    assert FMT.split("") == []
    assert FMT.split(" \n\n \n") == []


# -- first_step -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "step"),
    [
        ("5 + 6 = 11\nAnswer: 11", "5 + 6 = 11"),
        ("\n\n  2. carry the one\nmore", "carry the one"),
        ("single", "single"),
        ("", ""),
        ("  \n \n", ""),
    ],
)
def test_first_step(text: str, step: str) -> None:
    assert FMT.first_step(text) == step


# -- extract_answer ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("step", "answer"),
    [
        ("Answer: 11", "11"),
        ("answer: 11.", "11"),
        ("Final answer = 3.5", "3.5"),
        ("The answer is: 7", "7"),
        ("The answer is 18.", "18"),
        ("So the final answer is 1,000.", "1,000"),
        ("\\boxed{42}", "42"),
        ("So x = \\boxed{42}", "42"),
        ("#### 7", "7"),
        ("work\n#### 7", "7"),
    ],
)
def test_extract_answer(step: str, answer: str) -> None:
    assert FMT.extract_answer(step) == answer


@pytest.mark.parametrize(
    "step",
    ["5 + 6 = 11", "Answer:", "Answer: .", "", "We still need the total", "x #### 7"],
)
def test_extract_answer_none(step: str) -> None:
    assert FMT.extract_answer(step) is None


def test_custom_pattern_without_named_group_uses_group_1() -> None:
    fmt = StepFormat(answer_patterns=(r"RESULT=(\d+)",))
    assert fmt.extract_answer("so RESULT=12 ok") == "12"
    assert fmt.extract_answer("Answer: 12") is None


def test_patterns_are_tried_in_order_and_empty_matches_fall_through() -> None:
    fmt = StepFormat(answer_patterns=(r"A=(?P<answer>\S*)", r"B=(\d+)"))
    assert fmt.extract_answer("A=1 B=2") == "1"
    # A= matches with an empty answer: the next pattern is tried
    assert fmt.extract_answer("A= B=2") == "2"


@pytest.mark.parametrize(
    "step",
    [
        "The answer is \\boxed{42}.",
        "Therefore, the final answer is $\\boxed{42}$.",
        "Final answer: \\boxed{42}",
    ],
)
def test_boxed_answer_after_answer_phrase_is_unwrapped(step: str) -> None:
    assert FMT.extract_answer(step) == "42"


# -- validation ---------------------------------------------------------------------------------


def test_invalid_regex_names_the_pattern() -> None:
    with pytest.raises(ValueError, match=r"answer_patterns\[1\] is not a valid regex"):
        StepFormat(answer_patterns=(r"ok (?P<answer>\d+)", r"(unclosed"))


def test_regex_without_group_names_the_pattern() -> None:
    with pytest.raises(ValueError, match=r"answer_patterns\[0\] needs a capture group"):
        StepFormat(answer_patterns=(r"answer \d+",))


def test_validation_errors_are_value_errors() -> None:
    with pytest.raises(ValidationError) as info:
        StepFormat(answer_patterns=(r"[",))
    assert isinstance(info.value, ValueError)


def test_empty_pattern_list_rejected() -> None:
    with pytest.raises(ValueError, match="answer_patterns"):
        StepFormat(answer_patterns=())


def test_empty_separator_rejected() -> None:
    with pytest.raises(ValueError, match="separator must be a non-empty string"):
        StepFormat(separator="")


def test_unknown_field_rejected_and_model_frozen() -> None:
    with pytest.raises(ValidationError):
        StepFormat(seperator="\n")  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        FMT.separator = "x"  # type: ignore[misc]


def test_defaults() -> None:
    assert FMT.separator == "\n"
    assert FMT.answer_patterns == DEFAULT_ANSWER_PATTERNS
    assert FMT.strip_numbering is True


@pytest.mark.parametrize(
    ("step", "answer"),
    [
        ("6 is the answer.", "6"),
        ("So -2 is the correct answer!", "-2"),
        ("(B) is the answer", "(B)"),
        ("yes is the final answer", "yes"),
        ("This is the answer.", None),
        ("12 is the answer to the question.", None),
    ],
)
def test_a_line_naming_its_answer_first(step, answer):
    assert StepFormat().extract_answer(step) == answer


# -- block steps (instruct models) ---------------------------------------------------------

QWEN_GSM8K = r"""To determine Josh's profit, we need to follow these steps:

1. Calculate the total value of the house after repairs.
2. Subtract what he paid.

### Step 1

The house is worth:
\[
80,000 + 50,000 = 130,000
\]

2. **Profit:**
   The profit is the value minus the cost:
   \[ 130,000 - 80,000 = 50,000 \]

```python
x = 1

y = 2
```

Therefore, the answer is:

Answer: 50000"""


def test_block_steps_keep_displays_code_and_headings_whole() -> None:
    from drr_agent.steps import BLOCK_STEPS

    steps = BLOCK_STEPS.split(QWEN_GSM8K)
    assert steps == [
        "To determine Josh's profit, we need to follow these steps:\n\n"
        "1. Calculate the total value of the house after repairs.\n2. Subtract what he paid.",
        "### Step 1\n\nThe house is worth:\n\\[\n80,000 + 50,000 = 130,000\n\\]",
        "2. **Profit:**\n   The profit is the value minus the cost:\n"
        "   \\[ 130,000 - 80,000 = 50,000 \\]",
        "```python\nx = 1\n\ny = 2\n```",
        "Therefore, the answer is:\n\nAnswer: 50000",
    ]
    # no step is only a display opener or a heading; numbering is kept for the Reasoner
    assert not any(s in ("\\[", "### Step 1") for s in steps)
    assert BLOCK_STEPS.extract_answer(steps[-1]) == "50000"


def test_block_steps_join_short_pieces_but_not_short_answers() -> None:
    from drr_agent.steps import BLOCK_STEPS

    assert BLOCK_STEPS.split("Let's go.\n\nFirst, 3 + 4 = 7 apples in all.\n\nAnswer: 7") == [
        "Let's go.\n\nFirst, 3 + 4 = 7 apples in all.",
        "Answer: 7",
    ]
    assert BLOCK_STEPS.is_fragment("**Step 2: add**")
    assert BLOCK_STEPS.is_fragment("The total is:\n$$")
    assert not BLOCK_STEPS.is_fragment("The total is $$7$$ apples in the basket.")
    assert not FMT.is_fragment("### heading")  # line steps join nothing


def test_line_steps_are_unchanged_by_block_rules() -> None:
    text = "7 + 4 = 11\nThe total:\nAnswer: 11"
    assert FMT.split(text) == ["7 + 4 = 11", "The total:", "Answer: 11"]


def test_numeric_answer_refuses_words() -> None:
    numeric = StepFormat(numeric_answer=True)
    assert numeric.extract_answer("The answer is the same as the first train.") is None
    assert numeric.extract_answer("The answer is 12 trains.") == "12 trains"
    assert numeric.extract_answer(r"So Janet makes \(\boxed{18}\) dollars.") == "18"
    assert numeric.extract_answer("#### 1,000") == "1,000"
    assert FMT.extract_answer("The answer is the same.") == "the same"


def test_segmented_as_takes_the_cut_and_keeps_the_answer_rules() -> None:
    from drr_agent.steps import BLOCK_STEPS

    task_rules = StepFormat(numeric_answer=True, answer_patterns=(r"^####\s*(.+)$",))
    merged = task_rules.segmented_as(BLOCK_STEPS)
    assert merged.separator == "\n\n" and merged.join_fragments and not merged.strip_numbering
    assert merged.numeric_answer and merged.answer_patterns == (r"^####\s*(.+)$",)


@pytest.mark.parametrize(
    ("answer", "why"),
    [
        ("2 - 7", "is an expression"),
        ("(3 + 4) * 2", "is an expression"),
        ("5 \\times 3", "is an expression"),
        ("the same as before", "holds no number"),
        ("-5", None),
        ("2 - 7 = -5", None),
        ("$1,000", None),
        ("1/3", None),
        ("12 apples", None),
        ("3.5%", None),
    ],
)
def test_a_numeric_answer_must_state_its_value(answer, why):
    from drr_agent.steps import numeric_refusal

    refusal = numeric_refusal(answer)
    assert (refusal is None) if why is None else (why in refusal)
    # a numeric task's answer rules refuse it; other tasks take what is written
    numeric = StepFormat(numeric_answer=True)
    assert (numeric.extract_answer(f"Answer: {answer}") is None) == (why is not None)
    assert StepFormat().extract_answer(f"Answer: {answer}") is not None
