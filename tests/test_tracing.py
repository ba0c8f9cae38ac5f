"""Decision tracing (`drr_agent.tracing`) on a scripted run: text tree, table, picture, replay.

Doubles only (doubles.py's `scripted_graph`): LangChain's `FakeListChatModel` as the Reasoner
(one reply per call, in order) and a `FunctionScorer` scoring each step by its text. The script
produces an accepted step, two rejections under it, the backtrack that abandons it, a new path
and a trusted answer.
"""

from __future__ import annotations

import io
from typing import Any

import matplotlib
import pytest
from doubles import ScriptedChatModel, constant_dm
from doubles import scripted_graph as doubles_scripted_graph
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langgraph.checkpoint.memory import InMemorySaver
from rich.console import Console

from drr_agent import (
    DRRConfig,
    DRRResult,
    FunctionScorer,
    areplay,
    astream_decisions,
    build_graph,
    decision_log,
    draw_thought_tree,
    format_counters,
    format_decision,
    format_thought_tree,
    layout_thought_tree,
    replay,
    stream_decisions,
    thought_table,
)
from drr_agent.tracing import DrawnEdge

matplotlib.use("Agg")

QUESTION = "Tom has 5 apples and buys 6 more. How many apples does he have?"
REPLIES = ["Tom starts with 5.", "5 - 6 = -1", "He sells them.", "5 + 6 = 11", "Answer: 11"]
SCORES = {
    "Tom starts with 5.": 0.9,
    "5 - 6 = -1": 0.1,
    "He sells them.": 0.2,
    "5 + 6 = 11": 0.8,
    "Answer: 11": 0.95,
}
CONFIG = DRRConfig(accept_threshold=0.5, answer_threshold=0.7, max_retries_per_point=2)
THRESHOLDS = {"accept_threshold": 0.5, "answer_threshold": 0.7}

EXPECTED_TREE = """\
Question: Tom has 5 apples and buys 6 more. How many apples does he have?
(thresholds: accept 0.50, answer 0.70)
├── ↩ #0  0.900 ≥ acc 0.50  abandoned (backtracked)  Tom starts with 5.  [backtracked after 2 rejections below it]
│   ├── ✗ #1  0.100 < acc 0.50  rejected  5 - 6 = -1
│   └── ✗ #2  0.200 < acc 0.50  rejected  He sells them.
└── ● #3  0.800 ≥ acc 0.50  accepted [path]  5 + 6 = 11
    └── ★ #4  0.950 ≥ ans 0.70  answer [path]  Answer: 11
Accepted path: #3 → #4
Answer: 11 (answered: trusted final answer: final answer trusted: score 0.950 >= 0.700)
Reasoner calls 5 (tokens 0+0), DM calls 5, rejections 2, backtracks 1"""  # noqa: E501


def scripted_graph(
    checkpointer: Any = None, replies: list[str] | None = None, config: DRRConfig = CONFIG
) -> Any:
    return doubles_scripted_graph(
        replies or REPLIES, SCORES, default=0.5, config=config, checkpointer=checkpointer
    )


@pytest.fixture
def run() -> tuple[Any, dict[str, Any], list[dict[str, Any]], dict[str, Any]]:
    """A checkpointed scripted run: (graph, thread config, decision events, final state)."""
    graph = scripted_graph(InMemorySaver())
    thread = {"configurable": {"thread_id": "traced"}}
    events, final = [], {}
    for mode, chunk in graph.stream(
        {"question": QUESTION}, thread, stream_mode=["custom", "values"]
    ):
        if mode == "custom":
            events.append(chunk)
        else:
            final = chunk
    return graph, thread, events, final


def test_the_script_gives_rejections_a_backtrack_and_an_answer(run) -> None:
    _, _, events, final = run
    assert [e["route"] for e in events] == [
        "continue",
        "backtrack",
        "backtrack",
        "continue",
        "answer",
    ]
    assert events[2]["popped"] == 0
    assert final["answer"] == "11" and final["path"] == [3, 4]
    assert [t["status"] for t in final["thoughts"]] == [
        "abandoned",
        "rejected",
        "rejected",
        "accepted",
        "answer",
    ]


def test_the_state_records_each_decision_the_stream_reported(run) -> None:
    """`decide` appends a DecisionRecord per event: route, thought, depth and pop, so replays
    and traces read the route instead of re-deriving it from the path."""
    _, _, events, final = run
    expected = [
        {
            "route": e["route"],
            "thought": e["thought"]["id"],
            "depth": e["depth"],
            "popped": e.get("popped"),
        }
        for e in events
    ]
    assert final["decisions"] == expected
    result = DRRResult.from_state(final)
    assert result.decisions == expected and result.counters == final["counters"]
    # the result has the state's shape: its dump is a state the result reads back unchanged
    assert DRRResult.from_state(result.model_dump()) == result


def test_result_rejects_a_malformed_thought() -> None:
    bad = {"question": "q", "thoughts": [{"id": 0, "text": "x", "unknown": 1}]}
    with pytest.raises(ValueError, match="thoughts"):
        DRRResult.from_state(bad)


# -- text ---------------------------------------------------------------------------------------


def test_text_tree(run) -> None:
    _, _, _, final = run
    assert format_thought_tree(final, **THRESHOLDS) == EXPECTED_TREE
    assert format_counters(final) == EXPECTED_TREE.splitlines()[-1]


def test_text_tree_takes_thresholds_from_the_state_and_any_run_form(run) -> None:
    graph, thread, _, final = run
    # `decide` stored the thresholds it applied
    assert (final["accept_threshold"], final["answer_threshold"]) == (0.5, 0.7)
    assert format_thought_tree(final) == EXPECTED_TREE
    assert format_thought_tree(DRRResult.from_state(final)) == EXPECTED_TREE
    assert format_thought_tree(DRRResult.from_state(final).model_dump()) == EXPECTED_TREE
    assert format_thought_tree(graph.get_state(thread)) == EXPECTED_TREE
    # arguments win over the state; the state itself is not changed
    assert "accept 0.30" in format_thought_tree(final, accept_threshold=0.3)
    assert final["accept_threshold"] == 0.5


WRAPPED_TREE = """\
Question: Tom has 5 apples and buys 6 more.
  How many apples does he have?
(thresholds: accept 0.50, answer 0.70)
├── ↩ #0  0.900 ≥ acc 0.50  abandoned
│   │  (backtracked)
│   │  Tom starts with 5.
│   │  [backtracked after 2 rejections below
│   │   it]
│   ├── ✗ #1  0.100 < acc 0.50  rejected
│   │      5 - 6 = -1
│   └── ✗ #2  0.200 < acc 0.50  rejected
│          He sells them.
└── ● #3  0.800 ≥ acc 0.50  accepted [path]
    │  5 + 6 = 11
    └── ★ #4  0.950 ≥ ans 0.70  answer
           [path]
           Answer: 11
Accepted path: #3 → #4
Answer: 11 (answered: trusted final answer:
  final answer trusted: score 0.950 >=
  0.700)
Reasoner calls 5 (tokens 0+0), DM calls 5,
  rejections 2, backtracks 1"""


def test_text_tree_wrapped_to_a_terminal_keeps_every_text_whole(run) -> None:
    _, _, _, final = run
    # each thought's text and note on lines of their own under it, wrapped, never cut
    assert format_thought_tree(final, wrap=44) == WRAPPED_TREE
    assert max(len(line) for line in WRAPPED_TREE.splitlines()) <= 44
    long = DRRResult.from_state(final).model_copy(
        update={"question": "Why? " * 40, "thoughts": [dict(final["thoughts"][0], text="x" * 90)]}
    )
    lines = format_thought_tree(long, wrap=40).splitlines()
    assert "…" not in "".join(lines) and "".join(lines).count("x") == 90
    assert max(map(len, lines)) <= 40  # a word longer than a line is broken


def _without_thresholds(final) -> dict:
    return {k: v for k, v in final.items() if not k.endswith("_threshold")}


def test_text_tree_without_thresholds_shows_plain_scores(run) -> None:
    _, _, _, final = run
    text = format_thought_tree(_without_thresholds(final))
    assert "thresholds unknown" in text
    assert "✗ #1  0.100  rejected  5 - 6 = -1" in text
    assert "≥" not in text.split("\n", 2)[2].split("Answer: 11 (")[0]


def test_text_tree_of_an_abstention_and_of_a_run_in_progress() -> None:
    # (not forced to answer on its last try, the run ends with no answer seen)
    unforced = CONFIG.model_copy(update={"force_final_answer": False})
    out = scripted_graph(replies=["5 - 6 = -1"], config=unforced).invoke({"question": QUESTION})
    assert format_thought_tree(out, accept_threshold=0.5).splitlines()[2:] == [
        "├── ✗ #0  0.100 < acc 0.50  rejected  5 - 6 = -1",
        "└── ✗ #1  0.100 < acc 0.50  rejected  5 - 6 = -1",
        "Accepted path: (empty)",
        "Abstained (exhausted): 2 proposals rejected at the question and nothing to backtrack "
        "to; abstained (no scored final answer seen)",
        # the repeat at the question took the score its twin had: one DM call
        "Reasoner calls 2 (tokens 0+0), DM calls 1, rejections 2, backtracks 0",
    ]
    partial = {"question": "q", "thoughts": [dict(out["thoughts"][0], status="proposed")]}
    assert "Run in progress (1 thoughts, 1 awaiting a decision)" in format_thought_tree(partial)
    # an abstention at the question (empty path) draws too: no path edges, two rejections
    drawing = draw_thought_tree(out).tree_drawing
    assert [e.kind for e in drawing.edges] == ["tree", "tree"]


def test_table(run) -> None:
    _, _, _, final = run
    table = thought_table(final, **THRESHOLDS)
    assert table.row_count == len(final["thoughts"])
    assert [c.header for c in table.columns] == [
        "id",
        "parent",
        "depth",
        "score",
        "status",
        "path",
        "thought",
        "note",
    ]
    console = Console(file=io.StringIO(), width=220, record=True)
    console.print(table)
    text = console.export_text()
    rows = [line for line in text.splitlines() if line.startswith("│")]
    assert len(rows) == 5
    assert "│ 0  │ -      │ 1     │ 0.900 ≥ acc 0.50 │ ↩ abandoned" in rows[0]
    assert "backtracked after 2 rejections below it" in rows[0]
    assert "0.100 < acc 0.50 │ ✗ rejected" in rows[1]
    assert "0.950 ≥ ans 0.70 │ ★ answer" in rows[4] and "│ ✓    │ Answer: 11" in rows[4]
    assert "Accepted path: #3 → #4. Answer: 11 (answered" in text


def test_decision_log_and_live_printer(run) -> None:
    _, _, events, final = run
    log = decision_log([*events, {"type": "something.else"}])
    assert log.splitlines() == [
        "  1.  continue  depth 0  #0 0.900 ≥ acc 0.50  'Tom starts with 5.'",
        "  2. backtrack  depth 1  #1 0.100 < acc 0.50  '5 - 6 = -1'",
        "  3. backtrack  depth 1  #2 0.200 < acc 0.50  'He sells them.'  ↩ popped #0",
        "  4.  continue  depth 0  #3 0.800 ≥ acc 0.50  '5 + 6 = 11'",
        "  5.    answer  depth 1  #4 0.950 ≥ ans 0.70  'Answer: 11'  → answer '11'",
    ]
    printed: list[str] = []
    state = stream_decisions(scripted_graph(), {"question": QUESTION}, out=printed.append)
    assert printed == log.splitlines()
    assert state["answer"] == "11" and state["thoughts"] == final["thoughts"]


async def test_async_live_printer_and_stop_lines() -> None:
    printed: list[str] = []
    state = await astream_decisions(
        scripted_graph(replies=["5 - 6 = -1"]), {"question": QUESTION}, out=printed.append
    )
    # the last try at the question was asked as the answer; the DM did not trust it, but it
    # is the best final answer seen when the budget ran out
    assert state["abstained"] is False and state["answer"] == "5 - 6 = -1"
    assert printed[-1] == (
        "  2.      stop  depth 0  #1 0.500 < ans 0.70  'Answer: 5 - 6 = -1'  → answer "
        "'5 - 6 = -1' (exhausted)"
    )
    printed.clear()
    abstaining = CONFIG.model_copy(update={"on_budget_exhausted": "abstain"})
    graph = scripted_graph(replies=["5 - 6 = -1"], config=abstaining)
    state = await astream_decisions(graph, {"question": QUESTION}, out=printed.append)
    assert state["abstained"] is True
    assert printed[-1].endswith("'Answer: 5 - 6 = -1'  → abstained (exhausted)")
    failed = {"type": "drr.decision", "route": "stop", "thought": None, "depth": 0}
    failed |= {"abstained": True, "stop_reason": "reasoner_error", "error": "boom"}
    assert (
        format_decision(failed) == "     stop  depth 0  → abstained (reasoner_error)  error: boom"
    )


# -- picture ------------------------------------------------------------------------------------


def test_drawing_content(run, tmp_path) -> None:
    _, _, _, final = run
    fig = draw_thought_tree(final, **THRESHOLDS)
    drawing = fig.tree_drawing
    assert drawing == layout_thought_tree(final, **THRESHOLDS)

    # nodes: the question and every thought, by depth (x) and sibling order (y, top down)
    assert [n.id for n in drawing.nodes] == [None, 0, 1, 2, 3, 4]
    assert [(n.x, n.status) for n in drawing.nodes] == [
        (0.0, "question"),
        (1.0, "abandoned"),
        (2.0, "rejected"),
        (2.0, "rejected"),
        (1.0, "accepted"),
        (2.0, "answer"),
    ]
    assert drawing.node(1).y > drawing.node(2).y > drawing.node(4).y
    assert [n.id for n in drawing.nodes if n.on_path] == [None, 3, 4]
    # labels: id, score against the threshold, shortened text
    assert drawing.node(None).label == (
        "Question\nTom has 5 apples and buys 6\nmore. How many apples does he\nhave?"
    )
    assert drawing.node(2).label == "#2  0.200 < acc 0.50\nHe sells them."
    assert drawing.node(4).label == "#4  0.950 ≥ ans 0.70\nAnswer: 11"
    # edges: parent → child, the accepted path, and the backtrack from #0 to the question
    assert drawing.edges == [
        DrawnEdge(None, 0, "tree"),
        DrawnEdge(0, 1, "tree"),
        DrawnEdge(0, 2, "tree"),
        DrawnEdge(None, 3, "path"),
        DrawnEdge(3, 4, "path"),
        DrawnEdge(0, None, "backtrack"),
    ]
    assert drawing.title.startswith("Answer: 11 (answered")
    assert "backtrack" in drawing.legend and "abandoned (backtracked)" in drawing.legend

    # ... and that is what the figure holds
    (ax,) = fig.axes
    assert [t.get_text() for t in ax.texts] == drawing.labels
    arrows = {p.get_gid(): p for p in ax.patches if (p.get_gid() or "").startswith("edge:")}
    assert set(arrows) == {
        "edge:tree:q->0",
        "edge:tree:0->1",
        "edge:tree:0->2",
        "edge:path:q->3",
        "edge:path:3->4",
        "edge:backtrack:0->q",
    }
    backtrack = arrows["edge:backtrack:0->q"]
    assert backtrack.get_linestyle() == "--"
    assert matplotlib.colors.to_hex(backtrack.get_edgecolor()) == "#c62828"
    boxes = {p.get_gid() for p in ax.patches if (p.get_gid() or "").startswith("node:")}
    assert boxes == {"node:q", "node:0", "node:1", "node:2", "node:3", "node:4"}
    assert ax.get_title().startswith("Answer: 11")
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert {"rejected", "accepted path", "backtrack"} <= set(legend)

    png = tmp_path / "tree.png"
    fig.savefig(png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with matplotlib.rc_context({"svg.fonttype": "none"}):  # keep text as text
        svg = tmp_path / "tree.svg"
        fig.savefig(svg)
    content = svg.read_text()
    for piece in ("#2  0.200 &lt; acc 0.50", "He sells them.", "Answer: 11", "backtrack"):
        assert piece in content


def test_drawing_into_given_axes(run) -> None:
    from matplotlib.figure import Figure

    _, _, _, final = run
    fig = Figure()
    ax = fig.add_subplot()
    assert draw_thought_tree(_without_thresholds(final), ax=ax) is fig
    assert ax.get_legend() is not None
    assert "#3  0.800\n5 + 6 = 11" in [t.get_text() for t in ax.texts]  # no thresholds given


# -- replay -------------------------------------------------------------------------------------


def test_replay_steps_follow_the_run(run) -> None:
    graph, thread, events, final = run
    steps = replay(graph, thread)
    assert [s.index for s in steps] == list(range(len(steps)))
    assert [s.step for s in steps] == list(range(-1, len(steps) - 1))
    assert [s.node for s in steps] == ["__start__"] + ["reason", "score", "decide"] * 5
    # the decide steps took exactly the routes the live run streamed
    decided = [s for s in steps if s.node == "decide"]
    assert [s.route for s in decided] == [e["route"] for e in events]
    assert [s.route for s in steps if s.node != "decide"] == [None] * 11
    assert [s.popped for s in decided] == [None, None, 0, None, None]
    assert [[t["id"] for t in s.added] for s in steps if s.node == "reason"] == [
        [i] for i in range(5)
    ]
    score_steps = [s for s in steps if s.node == "score"]
    assert [[t["score"] for t in s.changed] for s in score_steps] == [[SCORES[r]] for r in REPLIES]
    assert [s.path for s in decided] == [[0], [0], [], [3], [3, 4]]
    assert [s.counters["backtracks"] for s in decided] == [0, 0, 1, 1, 1]
    assert {t["id"]: t["status"] for t in decided[2].changed} == {2: "rejected", 0: "abandoned"}
    last = steps[-1]
    assert last.next == () and last.answer == "11" and last.stop_reason == "answered"
    assert last.values == final
    assert steps[-2].next == ("decide",)
    assert graph.get_state(decided[2].config).values == decided[2].values
    assert decided[2].summary == ("[9] decide → backtrack: rejected #2 (0.200); popped #0; path []")
    assert (
        last.summary
        == "[15] decide → answer: answer #4 (0.950); answer '11' (answered); path [3, 4]"
    )
    # replay up to a given checkpoint
    upto = replay(graph, decided[2].config)
    assert [s.node for s in upto] == [s.node for s in steps[:10]]


async def test_areplay_matches_an_async_run() -> None:
    graph = scripted_graph(InMemorySaver())
    thread = {"configurable": {"thread_id": "async"}}
    events = [e async for e in graph.astream({"question": QUESTION}, thread, stream_mode="custom")]
    steps = await areplay(graph, thread)
    assert [s.route for s in steps if s.route] == [e["route"] for e in events]
    assert steps[-1].answer == "11"
    assert [s.summary for s in steps] == [s.summary for s in replay(graph, thread)]


def test_replay_of_a_crashed_run_ends_with_the_failed_step() -> None:
    model = FakeListChatModel(responses=REPLIES)
    calls = {"n": 0}

    def dm(ctx: Any) -> float:
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("DM down")
        return SCORES[ctx.candidate]

    config = CONFIG.model_copy(update={"on_scorer_error": "raise", "scorer_retries": 0})
    graph = build_graph(model, FunctionScorer(dm), config, checkpointer=InMemorySaver())
    thread = {"configurable": {"thread_id": "crash"}}
    with pytest.raises(Exception, match="DM down"):
        graph.invoke({"question": QUESTION}, thread)
    steps = replay(graph, thread)
    assert [s.node for s in steps] == ["__start__", "reason", "score", "decide", "reason", "score"]
    assert "DM down" in (steps[-1].error or "")
    assert steps[-1].route is None and steps[-1].added == [] and steps[-1].changed == []
    assert all(s.error is None for s in steps[:-1])


def test_replay_of_an_abstention_on_a_failed_reasoner() -> None:
    down = ScriptedChatModel(fail_from=1, error=ConnectionError("no Reasoner"))
    config = CONFIG.model_copy(update={"reasoner_retries": 0})
    graph = build_graph(down, constant_dm(1.0), config, checkpointer=InMemorySaver())
    thread = {"configurable": {"thread_id": "down"}}
    graph.invoke({"question": QUESTION}, thread)  # abstains (on_reasoner_error="abstain")
    steps = replay(graph, thread)
    assert [(s.node, s.route) for s in steps] == [("__start__", None), ("reason", "stop")]
    assert steps[-1].abstained and steps[-1].stop_reason == "reasoner_error"


def test_clear_errors() -> None:
    graph = scripted_graph(InMemorySaver())
    with pytest.raises(ValueError, match="thread_id"):
        replay(graph, {})
    with pytest.raises(TypeError, match="DRR state dict"):
        format_thought_tree(["not", "a", "state"])
    with pytest.raises(ValueError, match="no 'question'"):
        draw_thought_tree({"thoughts": []})
    graph.invoke({"question": QUESTION}, {"configurable": {"thread_id": "t"}})
    bad = {"configurable": {"thread_id": "t", "checkpoint_id": "nope"}}
    with pytest.raises(ValueError, match="not in this thread's history"):
        replay(graph, bad)
