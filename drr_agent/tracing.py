"""Decision tracing: see what the DM decided, as text, as a table, as a picture, step by step.

A finished (or checkpointed) DRR run holds its whole thought tree — every proposed thought
with its parent, DM score and status — plus the accepted path and the outcome. This module
turns it into what a person reads:

- `format_thought_tree`: a compact indented tree (by parent) with each thought's score against
  its threshold (and, where the run had them, the Reasoner's log-prob and the blended score
  candidates were ranked by), its status and text, the accepted path, and the answer or
  abstention.
- `thought_table`: the same as a ``rich`` table (prints in terminals and notebooks).
- `draw_thought_tree`: a matplotlib picture — nodes by depth and sibling order, coloured by
  status, the accepted path in bold, backtracks as dashed red arrows — whose content is also
  returned as data (`TreeDrawing`, see `layout_thought_tree`) so it can be checked.
- `replay` / `areplay`: walk a checkpointed run's LangGraph state history, one `ReplayStep` per
  super-step (which node ran, the route it took, the thoughts it added or changed).
- `format_decision`, `decision_log`, `stream_decisions` / `astream_decisions`: the decision
  events of ``graph.stream(..., stream_mode="custom")`` as one line each, live or afterwards.

Every function takes what a run gives you: the state dict returned by ``graph.invoke``, a
`DRRResult`, or a LangGraph ``StateSnapshot`` (``graph.get_state(config)``). Scores are
compared with the thresholds the run applied (``decide`` stores them in the state); pass
``accept_threshold`` / ``answer_threshold`` to compare with others. When only the accept
threshold is known, final answers are compared with it too (as `DRRConfig.thresholds` does).
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import TYPE_CHECKING, Any, Literal

from drr_agent.state import DecisionEvent, DRRResult, Route

if TYPE_CHECKING:
    from langchain_core.runnables import RunnableConfig
    from langgraph.types import StateSnapshot
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from rich.table import Table

__all__ = [
    "DrawnEdge",
    "DrawnNode",
    "ReplayStep",
    "TreeDrawing",
    "areplay",
    "astream_decisions",
    "decision_log",
    "draw_thought_tree",
    "format_decision",
    "format_thought_tree",
    "layout_thought_tree",
    "replay",
    "stream_decisions",
    "thought_table",
]

# -- the run, whatever form it comes in -------------------------------------------------------

_MARKS = {
    "accepted": "●",
    "answer": "★",
    "rejected": "✗",
    "abandoned": "↩",
    "not_chosen": "○",
    "proposed": "?",
}
"""One glyph per thought status in the text tree."""

_STATUS_WORDS = {
    "accepted": "accepted",
    "answer": "answer",
    "rejected": "rejected",
    "abandoned": "abandoned (backtracked)",
    "not_chosen": "not chosen",
    "proposed": "proposed (not decided yet)",
}

_SCORE_REASONS = ("score ", "final answer trusted", "final answer not trusted")


@dataclass(frozen=True)
class _Run:
    """The parts of a run that tracing reads, from a state dict, a DRRResult or a snapshot."""

    question: str
    thoughts: list[dict[str, Any]]
    path: list[int]
    answer: str | None
    abstained: bool
    stop_reason: str | None
    stop_detail: str | None
    counters: dict[str, int]
    accept: float | None
    answer_threshold: float | None

    @property
    def finished(self) -> bool:
        return self.stop_reason is not None

    def threshold_for(self, thought: Mapping[str, Any]) -> tuple[str, float | None]:
        """(kind, value) of the threshold this thought's score was compared with."""
        if thought.get("answer") is not None:
            return "ans", self.answer_threshold
        return "acc", self.accept

    def children(self) -> dict[int | None, list[dict[str, Any]]]:
        kids: dict[int | None, list[dict[str, Any]]] = {}
        for t in self.thoughts:
            kids.setdefault(t["parent"], []).append(t)
        return kids


_COUNTER_KEYS = (
    "reasoner_calls",
    "prompt_tokens",
    "completion_tokens",
    "dm_calls",
    "dm_items",
    "rejections",
    "backtracks",
)


def _as_run(
    result_or_state: Any, accept_threshold: float | None, answer_threshold: float | None
) -> _Run:
    source = result_or_state
    if not isinstance(source, Mapping) and hasattr(source, "next") and hasattr(source, "values"):
        source = source.values  # a LangGraph StateSnapshot
    if isinstance(source, DRRResult):
        data: Mapping[str, Any] = source.model_dump()
        counters = {k: int(data[k]) for k in _COUNTER_KEYS}
    elif isinstance(source, Mapping):
        data = source
        raw = data.get("counters")
        if isinstance(raw, Mapping):
            counters = {k: int(v) for k, v in raw.items()}
        else:  # a DRRResult.model_dump(): counters at the top level
            counters = {k: int(data[k]) for k in _COUNTER_KEYS if k in data}
    else:
        raise TypeError(
            "expected a DRR state dict (graph.invoke's result), a DRRResult or a StateSnapshot, "
            f"got {type(result_or_state).__name__}"
        )
    if "question" not in data:
        raise ValueError("the state has no 'question': is it a DRR run's state?")
    accept = accept_threshold if accept_threshold is not None else data.get("accept_threshold")
    answer = answer_threshold if answer_threshold is not None else data.get("answer_threshold")
    if answer is None:
        answer = accept
    return _Run(
        question=str(data["question"]),
        thoughts=[dict(t) for t in data.get("thoughts") or []],
        path=list(data.get("path") or []),
        answer=data.get("answer"),
        abstained=bool(data.get("abstained", False)),
        stop_reason=data.get("stop_reason"),
        stop_detail=data.get("stop_detail"),
        counters=counters,
        accept=None if accept is None else float(accept),
        answer_threshold=None if answer is None else float(answer),
    )


def _one_line(text: str | None, width: int) -> str:
    flat = " ".join((text or "").split())
    if not flat:
        return "(empty)"
    return flat if len(flat) <= width else flat[: max(1, width - 1)] + "…"


def _score_vs(run: _Run, thought: Mapping[str, Any]) -> str:
    """``0.900 ≥ acc 0.50``; the score alone when the threshold is unknown; ``—`` if unscored."""
    score = thought.get("score")
    if score is None:
        return "—"
    kind, threshold = run.threshold_for(thought)
    if threshold is None:
        return f"{score:.3f}"
    sign = "≥" if score >= threshold else "<"
    return f"{score:.3f} {sign} {kind} {threshold:.2f}"


def _ranking(thought: Mapping[str, Any]) -> str:
    """``lp -0.42 → rank 0.775``: the Reasoner's mean token log-prob and the blended rank
    score (`policy.rank_score`), where the run had them; '' when ranking was by the DM alone
    (no log-prob, and a rank that is the score itself says nothing new)."""
    logprob, rank = thought.get("logprob"), thought.get("rank_score")
    parts = [] if logprob is None else [f"lp {logprob:.2f}"]
    if rank is not None and rank != thought.get("score"):
        parts.append(f"rank {rank:.3f}")
    return " → ".join(parts)


def _score_and_rank(run: _Run, thought: Mapping[str, Any]) -> str:
    """`_score_vs`, followed by `_ranking` when there is one."""
    ranking = _ranking(thought)
    return _score_vs(run, thought) + (f"  {ranking}" if ranking else "")


def _note(thought: Mapping[str, Any]) -> str:
    """The parts of the decision's reason that the score comparison does not already say."""
    parts = [p.strip() for p in str(thought.get("reason") or "").split(";")]
    return "; ".join(p for p in parts if p and not p.startswith(_SCORE_REASONS))


def _outcome(run: _Run) -> str:
    if not run.finished:
        pending = sum(1 for t in run.thoughts if t["status"] == "proposed")
        return f"Run in progress ({len(run.thoughts)} thoughts, {pending} awaiting a decision)"
    if run.abstained or run.answer is None:
        return f"Abstained ({run.stop_reason}): {run.stop_detail}"
    return f"Answer: {run.answer} ({run.stop_reason}: {run.stop_detail})"


def _path_text(run: _Run) -> str:
    return " → ".join(f"#{i}" for i in run.path) if run.path else "(empty)"


def _thresholds_text(run: _Run) -> str:
    if run.accept is None:
        return "thresholds unknown (pass accept_threshold= / answer_threshold=)"
    return f"thresholds: accept {run.accept:.2f}, answer {run.answer_threshold:.2f}"


def _counters_text(run: _Run) -> str:
    c = run.counters
    if not c:
        return ""
    return (
        f"Reasoner calls {c.get('reasoner_calls', 0)}, DM calls {c.get('dm_calls', 0)}, "
        f"rejections {c.get('rejections', 0)}, backtracks {c.get('backtracks', 0)}"
    )


# -- text -------------------------------------------------------------------------------------


def format_thought_tree(
    result_or_state: Any,
    *,
    accept_threshold: float | None = None,
    answer_threshold: float | None = None,
    width: int = 72,
) -> str:
    """The thought tree as indented text, one line per thought, children under their parent.

    Each line reads ``<glyph> #<id> <score vs threshold> [<ranking>] <status> <text> [<note>]``
    (the ranking, ``lp -0.42 → rank 0.775``, only where the run had log-probs) with glyphs
    ● accepted, ★ answer, ✗ rejected, ↩ abandoned by a backtrack, ○ not chosen (a sibling
    ranked higher), ? not decided yet. The footer gives the accepted path, the answer
    or abstention with the stop reason, and the counters.

    Args:
        result_or_state: ``graph.invoke``'s state, a `DRRResult` or a ``StateSnapshot``.
        accept_threshold / answer_threshold: The thresholds the run used (see module docs).
        width: Thought texts longer than this are cut with "…".
    """
    run = _as_run(result_or_state, accept_threshold, answer_threshold)
    kids = run.children()
    path = set(run.path)
    lines = [f"Question: {_one_line(run.question, 200)}", f"({_thresholds_text(run)})"]

    def walk(parent: int | None, prefix: str) -> None:
        children = kids.get(parent, [])
        for n, t in enumerate(children):
            last = n == len(children) - 1
            branch = "└── " if last else "├── "
            status = t["status"]
            on_path = " [path]" if t["id"] in path else ""
            note = _note(t)
            lines.append(
                f"{prefix}{branch}{_MARKS.get(status, '?')} #{t['id']}  {_score_and_rank(run, t)}  "
                f"{_STATUS_WORDS.get(status, status)}{on_path}  {_one_line(t['text'], width)}"
                + (f"  [{note}]" if note else "")
            )
            walk(t["id"], prefix + ("    " if last else "│   "))

    walk(None, "")
    if not run.thoughts:
        lines.append("(no thoughts)")
    lines.append(f"Accepted path: {_path_text(run)}")
    lines.append(_outcome(run))
    counters = _counters_text(run)
    if counters:
        lines.append(counters)
    return "\n".join(lines)


_ROW_STYLES = {
    "accepted": "green",
    "answer": "bold green",
    "rejected": "red",
    "abandoned": "yellow",
    "not_chosen": "dim",
    "proposed": "cyan",
}


def thought_table(
    result_or_state: Any,
    *,
    accept_threshold: float | None = None,
    answer_threshold: float | None = None,
) -> Table:
    """The thought tree as a ``rich`` table: one row per thought, in proposal order.

    Columns: id, parent (``-`` = the question), depth, score vs its threshold, then ``lp``
    (mean token log-prob) and ``rank`` (the blended score candidates were ranked by) when
    any thought has them, status, whether it is on the accepted path, text and the decision's
    note. The caption holds the accepted path and the answer or abstention with the stop
    reason. Print it with ``rich.print(table)`` (terminals and notebooks).
    """
    from rich.table import Table

    run = _as_run(result_or_state, accept_threshold, answer_threshold)
    table = Table(
        title=f"Thought tree — {_one_line(run.question, 100)}",
        caption=(f"Accepted path: {_path_text(run)}. {_outcome(run)}. {_thresholds_text(run)}."),
        caption_justify="left",
    )
    ranked = any(_ranking(t) for t in run.thoughts)
    columns = ("id", "parent", "depth", "score", *(("lp", "rank") if ranked else ()))
    for column in (*columns, "status", "path", "thought", "note"):
        table.add_column(column, overflow="fold", no_wrap=column not in ("thought", "note"))
    path = set(run.path)
    for t in run.thoughts:
        lp, rank = t.get("logprob"), t.get("rank_score")
        table.add_row(
            str(t["id"]),
            "-" if t["parent"] is None else str(t["parent"]),
            str(t["depth"]),
            _score_vs(run, t),
            *(
                ("—" if lp is None else f"{lp:.2f}", "—" if rank is None else f"{rank:.3f}")
                if ranked
                else ()
            ),
            f"{_MARKS.get(t['status'], '?')} {t['status']}",
            "✓" if t["id"] in path else "",
            _one_line(t["text"], 200),
            _note(t),
            style=_ROW_STYLES.get(t["status"]),
        )
    return table


# -- picture ----------------------------------------------------------------------------------

EdgeKind = Literal["tree", "path", "backtrack"]

_COLOURS = {
    "question": "#bbdefb",
    "accepted": "#a5d6a7",
    "answer": "#43a047",
    "rejected": "#ef9a9a",
    "abandoned": "#ffcc80",
    "not_chosen": "#e0e0e0",
    "proposed": "#ffffff",
}
_LEGEND_NAMES = {
    "question": "question",
    "accepted": "accepted",
    "answer": "answer",
    "rejected": "rejected",
    "abandoned": "abandoned (backtracked)",
    "not_chosen": "not chosen",
    "proposed": "awaiting decision",
}
_NODE_W = 0.78  # box width, in depth units
_NODE_H = 0.8  # box height, in sibling slots
_WRAP = 30  # characters per text line inside a box


@dataclass(frozen=True)
class DrawnNode:
    """One box of the picture: a thought (``id``) or the question (``id=None``)."""

    id: int | None
    x: float
    y: float
    status: str
    label: str
    score: float | None
    on_path: bool


@dataclass(frozen=True)
class DrawnEdge:
    """An arrow: ``tree`` (parent → child), ``path`` (on the accepted path) or ``backtrack``
    (from an abandoned thought back to the point the run returned to)."""

    source: int | None
    target: int | None
    kind: EdgeKind


@dataclass(frozen=True)
class TreeDrawing:
    """What `draw_thought_tree` draws, as data: check it in tests, reuse it in other plots."""

    title: str
    nodes: list[DrawnNode]
    edges: list[DrawnEdge]
    legend: list[str] = field(default_factory=list)

    def node(self, id: int | None) -> DrawnNode:
        for n in self.nodes:
            if n.id == id:
                return n
        raise KeyError(id)

    @property
    def labels(self) -> list[str]:
        return [n.label for n in self.nodes]


def _wrapped(text: str | None, lines: int) -> list[str]:
    flat = " ".join((text or "").split()) or "(empty)"
    return textwrap.wrap(flat, _WRAP, max_lines=lines, placeholder=" …")


def _node_label(run: _Run, t: Mapping[str, Any]) -> str:
    """``#id  score vs threshold``, up to two lines of text, and the note (e.g. a repeat)."""
    lines = [f"#{t['id']}  {_score_vs(run, t)}", *_wrapped(t["text"], 2)]
    note = _note(t)
    if note:
        lines.append(textwrap.shorten(f"({note})", _WRAP + 4, placeholder=" …)"))
    return "\n".join(lines)


def layout_thought_tree(
    result_or_state: Any,
    *,
    accept_threshold: float | None = None,
    answer_threshold: float | None = None,
) -> TreeDrawing:
    """Place the tree: ``x`` = depth (the question at 0), ``y`` = sibling order, top down.

    Leaves take consecutive rows in depth-first order (children in proposal order); a parent
    sits at the middle of its children. Returns the nodes with their labels, the edges (the
    accepted path as ``path`` edges, a ``backtrack`` edge from every abandoned thought to its
    parent) and the title; `draw_thought_tree` renders exactly this.
    """
    run = _as_run(result_or_state, accept_threshold, answer_threshold)
    kids = run.children()
    on_path = set(run.path)
    rows: dict[int | None, float] = {}
    next_row = 0

    def place(node: int | None) -> float:
        nonlocal next_row
        children = kids.get(node, [])
        if not children:
            rows[node] = float(next_row)
            next_row += 1
        else:
            ys = [place(c["id"]) for c in children]
            rows[node] = (ys[0] + ys[-1]) / 2
        return rows[node]

    place(None)
    question = _wrapped(run.question, 3)
    nodes = [
        DrawnNode(
            id=None,
            x=0.0,
            y=-rows[None],
            status="question",
            label="\n".join(["Question", *question]),
            score=None,
            on_path=True,
        )
    ]
    edges: list[DrawnEdge] = []
    # (parent, child) along the accepted path; an empty path (abstained at the question) has none
    path_edges = set(zip([None, *run.path], run.path, strict=False))
    for t in run.thoughts:
        tid = t["id"]
        nodes.append(
            DrawnNode(
                id=tid,
                x=float(t["depth"]),
                y=-rows[tid],
                status=t["status"],
                label=_node_label(run, t),
                score=t.get("score"),
                on_path=tid in on_path,
            )
        )
        kind: EdgeKind = "path" if (t["parent"], tid) in path_edges else "tree"
        edges.append(DrawnEdge(t["parent"], tid, kind))
    for t in run.thoughts:
        if t["status"] == "abandoned":
            edges.append(DrawnEdge(t["id"], t["parent"], "backtrack"))
    present = {n.status for n in nodes}
    legend = [_LEGEND_NAMES[s] for s in _LEGEND_NAMES if s in present]
    legend.append("accepted path")
    if any(e.kind == "backtrack" for e in edges):
        legend.append("backtrack")
    title = _outcome(run)
    if run.accept is not None:
        title += f"\naccept ≥ {run.accept:.2f}, answer ≥ {run.answer_threshold:.2f}"
    return TreeDrawing(title=title, nodes=nodes, edges=edges, legend=legend)


def draw_thought_tree(
    result_or_state: Any,
    *,
    accept_threshold: float | None = None,
    answer_threshold: float | None = None,
    ax: Axes | None = None,
) -> Figure:
    """Draw the thought tree with matplotlib and return the figure.

    The question is the root on the left; each thought is a box at its depth (x) and sibling
    row (y), coloured by status, labelled with its id, score against the threshold and
    shortened text. Parent → child arrows are grey, the accepted path is drawn thick green,
    and each backtrack is a dashed red arrow from the abandoned thought back to its parent.
    The title gives the answer or abstention with the stop reason and the thresholds.

    The figure is a plain ``matplotlib.figure.Figure`` (no pyplot state): notebooks display
    it, ``fig.savefig(path)`` writes it. What was drawn is attached as ``fig.tree_drawing``
    (a `TreeDrawing`), and every box and arrow carries a ``gid`` (``node:<id>``,
    ``edge:<kind>:<source>-><target>``, the question being ``q``).

    Args:
        ax: Draw into this axes (its figure is returned) instead of a new figure.
    """
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch, Patch

    drawing = layout_thought_tree(
        result_or_state, accept_threshold=accept_threshold, answer_threshold=answer_threshold
    )
    depth = max(n.x for n in drawing.nodes)
    height = max(-n.y for n in drawing.nodes) + 1
    if ax is None:
        fig = Figure(
            figsize=(min(4.0 + 2.6 * depth, 40.0), min(2.4 + 0.85 * height, 60.0)),
            layout="constrained",
        )
        ax = fig.add_subplot()
        own_figure = True
    else:
        fig = ax.figure  # type: ignore[assignment]
        own_figure = False
    by_id = {n.id: n for n in drawing.nodes}

    def gid(i: int | None) -> str:
        return "q" if i is None else str(i)

    for edge in drawing.edges:
        if edge.kind == "backtrack":
            src, dst = by_id[edge.source], by_id[edge.target]
            start = (src.x - _NODE_W / 2, src.y + _NODE_H / 4)
            end = (dst.x + _NODE_W / 2, dst.y + _NODE_H / 4)
            style = {"color": "#c62828", "linestyle": "--", "linewidth": 1.6}
            connection = "arc3,rad=0.35"
        else:
            src, dst = by_id[edge.source], by_id[edge.target]
            start = (src.x + _NODE_W / 2, src.y)
            end = (dst.x - _NODE_W / 2, dst.y)
            style = (
                {"color": "#1b5e20", "linewidth": 2.6}
                if edge.kind == "path"
                else {"color": "#9e9e9e", "linewidth": 1.0}
            )
            connection = "arc3,rad=0.0"
        arrow = FancyArrowPatch(
            start,
            end,
            arrowstyle="-|>",
            mutation_scale=12,
            connectionstyle=connection,
            zorder=1,
            **style,
        )
        arrow.set_gid(f"edge:{edge.kind}:{gid(edge.source)}->{gid(edge.target)}")
        ax.add_patch(arrow)

    for node in drawing.nodes:
        box = FancyBboxPatch(
            (node.x - _NODE_W / 2, node.y - _NODE_H / 2),
            _NODE_W,
            _NODE_H,
            boxstyle="round,pad=0.0,rounding_size=0.06",
            facecolor=_COLOURS.get(node.status, "#ffffff"),
            edgecolor="#1b5e20" if node.on_path and node.id is not None else "#616161",
            linewidth=2.4 if node.on_path and node.id is not None else 0.8,
            zorder=2,
        )
        box.set_gid(f"node:{gid(node.id)}")
        ax.add_patch(box)
        text = ax.text(
            node.x,
            node.y,
            node.label,
            ha="center",
            va="center",
            fontsize=8,
            color="white" if node.status == "answer" else "black",
            zorder=3,
            clip_on=False,
        )
        text.set_gid(f"label:{gid(node.id)}")

    handles: list[Any] = [
        Patch(facecolor=_COLOURS[s], edgecolor="#616161", label=_LEGEND_NAMES[s])
        for s in _LEGEND_NAMES
        if _LEGEND_NAMES[s] in drawing.legend
    ]
    handles.append(Line2D([], [], color="#1b5e20", linewidth=2.6, label="accepted path"))
    if "backtrack" in drawing.legend:
        handles.append(
            Line2D([], [], color="#c62828", linestyle="--", linewidth=1.6, label="backtrack")
        )
    if own_figure:
        fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 4))
    else:
        ax.legend(handles=handles, loc="best", fontsize=7)
    # long stop details wrap to the figure's width instead of running off it
    width_chars = max(40, int(ax.get_figure().get_figwidth() * 14))
    title = "\n".join(textwrap.fill(line, width_chars) for line in drawing.title.split("\n"))
    ax.set_title(title, fontsize=9)
    ax.set_xlim(-_NODE_W / 2 - 0.15, depth + _NODE_W / 2 + 0.15)
    ax.set_ylim(-(height - 1) - _NODE_H / 2 - 0.3, _NODE_H / 2 + 0.3)
    ax.set_axis_off()
    fig.tree_drawing = drawing  # type: ignore[attr-defined]
    return fig  # type: ignore[return-value]


# -- replay from checkpoints ------------------------------------------------------------------


@dataclass(frozen=True)
class ReplayStep:
    """One super-step of a checkpointed run: the node that ran and what it changed.

    Attributes:
        index: Position in the replay (0 = the input).
        step: LangGraph's step number (``-1`` for the input).
        node: The node that ran (``__start__`` for the input, else ``reason``, ``score``,
            ``decide``, or a parent graph's node; ``a+b`` when several ran in parallel).
        route: For ``decide``: ``continue`` / ``backtrack`` / ``answer`` / ``stop`` (what its
            decision event said); ``stop`` also for a ``reason``/``score`` that abstained on a
            failed dependency; ``None`` otherwise.
        added / changed: Thoughts this step appended to the tree / rewrote (scored, decided).
        popped: The thought a backtrack abandoned, if any.
        path / counters: The accepted path and the counters after the step.
        next: Nodes scheduled after this step (empty once the run ended).
        answer / abstained / stop_reason / stop_detail: The outcome, once the run ended.
        update: The node's raw state update, when the checkpointer kept it (a dict by node
            name when several nodes ran).
        values: The full state after the step (feed it to the drawing functions).
        config: The checkpoint config after the step: ``graph.get_state(step.config)``, or
            ``graph.invoke(None, step.config)`` to fork the run from here.
        error: The error of a step that failed (the last step of a crashed run).
    """

    index: int
    step: int
    node: str
    route: Route | None
    added: list[dict[str, Any]]
    changed: list[dict[str, Any]]
    popped: int | None
    path: list[int]
    counters: dict[str, int]
    next: tuple[str, ...]
    answer: str | None
    abstained: bool
    stop_reason: str | None
    stop_detail: str | None
    update: Any
    values: dict[str, Any]
    config: dict[str, Any]
    error: str | None = None

    @property
    def summary(self) -> str:
        """One line: ``[3] decide → backtrack: rejected #2 (0.200); popped #0; path []``."""
        head = f"[{self.index}] {self.node}"
        if self.route:
            head += f" → {self.route}"
        parts = []
        if self.added:
            parts.append(
                "proposed "
                + ", ".join(f"#{t['id']} {_one_line(t['text'], 40)!r}" for t in self.added)
            )
        for t in self.changed:
            if t["id"] == self.popped:
                continue
            score = "" if t.get("score") is None else f" ({t['score']:.3f})"
            parts.append(
                f"{t['status'] if t['status'] != 'proposed' else 'scored'} #{t['id']}{score}"
            )
        if self.popped is not None:
            parts.append(f"popped #{self.popped}")
        if self.error:
            parts.append(f"error: {self.error}")
        if self.stop_reason and (self.route in ("answer", "stop")):
            outcome = "abstained" if self.abstained else f"answer {self.answer!r}"
            parts.append(f"{outcome} ({self.stop_reason})")
        parts.append(f"path {self.path}")
        return head + ": " + "; ".join(parts)


def _thread_and_start(thread_config: Mapping[str, Any]) -> tuple[dict[str, Any], str | None]:
    """The config to list the thread's history with, and the checkpoint to replay up to."""
    configurable = dict(thread_config.get("configurable") or {})
    if "thread_id" not in configurable:
        raise ValueError(
            "replay needs the run's thread: {'configurable': {'thread_id': ...}} "
            "(the graph must have been compiled with a checkpointer)"
        )
    start = configurable.pop("checkpoint_id", None)
    return {**thread_config, "configurable": configurable}, start


def _checkpoint_id(config: Mapping[str, Any] | None) -> str | None:
    if not config:
        return None
    return (config.get("configurable") or {}).get("checkpoint_id")


def _lineage(history: Sequence[StateSnapshot], start: str | None) -> list[StateSnapshot]:
    """The snapshots leading to ``start`` (default: the latest), oldest first.

    Following parent links rather than time order keeps a forked thread's other branches out.
    """
    if not history:
        return []
    by_id = {_checkpoint_id(s.config): s for s in history}
    current = by_id.get(start) if start else history[0]
    if current is None:
        raise ValueError(f"checkpoint {start!r} is not in this thread's history")
    chain = []
    while current is not None:
        chain.append(current)
        current = by_id.get(_checkpoint_id(current.parent_config))
    return chain[::-1]


def _route(
    node: str, update: Any, before: Mapping[str, Any], after: Mapping[str, Any]
) -> Route | None:
    finished = (
        "stop_reason" in update
        if isinstance(update, Mapping)
        else (after.get("stop_reason") is not None and before.get("stop_reason") is None)
    )
    stop_reason = after.get("stop_reason")
    if node == "decide":
        if finished:
            return "answer" if stop_reason == "answered" else "stop"
        grew = len(after.get("path") or []) > len(before.get("path") or [])
        return "continue" if grew else "backtrack"
    if node in ("reason", "score") and finished:
        return "stop"
    return None


def _replay_step(index: int, before: StateSnapshot, after: StateSnapshot | None) -> ReplayStep:
    tasks = list(before.tasks)
    if len(tasks) == 1:
        node, update = tasks[0].name, tasks[0].result
    else:  # a parent graph may run several nodes in one super-step
        node = "+".join(t.name for t in tasks) or "+".join(before.next) or "?"
        update = {t.name: t.result for t in tasks}
    errors = [str(t.error) for t in tasks if t.error is not None]
    error = "; ".join(errors) or None
    old = before.values or {}
    new = (after.values if after is not None else old) or {}
    old_tree = {t["id"]: t for t in old.get("thoughts") or []}
    added, changed = [], []
    for t in new.get("thoughts") or []:
        if t["id"] not in old_tree:
            added.append(dict(t))
        elif old_tree[t["id"]] != t:
            changed.append(dict(t))
    popped = next(
        (t["id"] for t in changed if t["status"] == "abandoned"),
        None,
    )
    return ReplayStep(
        index=index,
        step=int((before.metadata or {}).get("step", -1)),
        node=node,
        route=None if after is None else _route(node, update, old, new),
        added=added,
        changed=changed,
        popped=popped,
        path=list(new.get("path") or []),
        counters=dict(new.get("counters") or {}),
        next=tuple(after.next) if after is not None else tuple(before.next),
        answer=new.get("answer"),
        abstained=bool(new.get("abstained", False)),
        stop_reason=new.get("stop_reason"),
        stop_detail=new.get("stop_detail"),
        update=update,
        values=dict(new),
        config=dict(after.config if after is not None else before.config),
        error=error,
    )


def _steps(chain: Sequence[StateSnapshot]) -> list[ReplayStep]:
    steps = [_replay_step(i, before, after) for i, (before, after) in enumerate(pairwise(chain))]
    if chain and chain[-1].next and any(t.error for t in chain[-1].tasks):
        steps.append(_replay_step(len(steps), chain[-1], None))  # the step that crashed
    return steps


def replay(graph: Any, thread_config: Mapping[str, Any]) -> list[ReplayStep]:
    """Replay a checkpointed run, one `ReplayStep` per super-step, oldest first.

    Walks ``graph.get_state_history(thread_config)`` along parent links from the thread's
    latest checkpoint (or from ``thread_config["configurable"]["checkpoint_id"]``, if given)
    back to the input. The ``decide`` steps' routes are the routes of the run's decision
    events, in order. A run that crashed ends with the failed step (``error`` set, nothing
    changed); resume it with ``graph.invoke(None, thread_config)``.

    Args:
        graph: The compiled graph, with the checkpointer the run used.
        thread_config: ``{"configurable": {"thread_id": ...}}`` of the run.
    """
    config, start = _thread_and_start(thread_config)
    history = list(graph.get_state_history(config))
    return _steps(_lineage(history, start))


async def areplay(graph: Any, thread_config: Mapping[str, Any]) -> list[ReplayStep]:
    """Async `replay` (for async checkpointers such as ``AsyncSqliteSaver``)."""
    config, start = _thread_and_start(thread_config)
    history = [s async for s in graph.aget_state_history(config)]
    return _steps(_lineage(history, start))


# -- decision events --------------------------------------------------------------------------


def format_decision(event: Mapping[str, Any]) -> str:
    """One decision event (``stream_mode="custom"``) as one line.

    ``continue  depth 0  #0 0.900 ≥ acc 0.50  'Add 5 and 6.'`` — then, where they apply,
    the thought a backtrack popped, the answer or abstention and the stop reason, the error.
    """
    route = str(event.get("route", "?"))
    thought = event.get("thought") or {}
    accept = event.get("accept_threshold")
    answer = event.get("answer_threshold", accept)
    run = _Run("", [], [], None, False, None, None, {}, accept, answer)
    line = f"{route:>9}  depth {event.get('depth', 0)}"
    if thought:
        line += f"  #{thought.get('id')} {_score_and_rank(run, thought)}  "
        line += repr(_one_line(thought.get("text"), 60))
    shown = {thought.get("id"), event.get("popped")}  # a popped thought is no candidate
    others = [c for c in event.get("candidates") or [] if c.get("id") not in shown]
    if others:
        line += f"  (+{len(others)} other candidate{'s' if len(others) > 1 else ''})"
    if event.get("popped") is not None:
        line += f"  ↩ popped #{event['popped']}"
    if route in ("answer", "stop"):
        if event.get("abstained"):
            line += f"  → abstained ({event.get('stop_reason', route)})"
        elif event.get("answer") is not None:
            line += f"  → answer {event['answer']!r}"
            if event.get("stop_reason"):
                line += f" ({event['stop_reason']})"
    if event.get("error"):
        line += f"  error: {event['error']}"
    return line


def decision_log(events: Iterable[Mapping[str, Any] | DecisionEvent]) -> str:
    """Decision events as a numbered log, one line each (non-DRR events are skipped)."""
    lines = [
        f"{n:>3}. {format_decision(e)}"
        for n, e in enumerate(
            (e for e in events if isinstance(e, Mapping) and e.get("type") == "drr.decision"),
            start=1,
        )
    ]
    return "\n".join(lines)


class _DecisionPrinter:
    """Numbers and prints decision events; keeps the outer graph's last state."""

    def __init__(self, out: Callable[[str], Any], subgraphs: bool) -> None:
        self.out, self.subgraphs = out, subgraphs
        self.count = 0
        self.final: dict[str, Any] = {}

    def __call__(self, chunk: Any) -> None:
        if self.subgraphs:
            namespace, mode, data = chunk
            if mode == "values" and namespace:
                return  # only the outer graph's state is the result
        else:
            mode, data = chunk
        if mode == "custom" and isinstance(data, Mapping) and data.get("type") == "drr.decision":
            self.count += 1
            self.out(f"{self.count:>3}. {format_decision(data)}")
        elif mode == "values":
            self.final = data


def stream_decisions(
    graph: Any,
    inputs: Any,
    config: RunnableConfig | None = None,
    *,
    context: Any = None,
    out: Callable[[str], Any] = print,
    subgraphs: bool = False,
) -> dict[str, Any]:
    """Run ``graph`` and print each decision as it is taken; return the final state.

    Streams ``stream_mode=["custom", "values"]``; every DRR decision event goes to ``out``
    (default ``print``) through `format_decision`, numbered. With ``subgraphs=True`` the
    decisions of a DRR graph nested in a parent graph (as a node, or called by a tool inside
    a node) are shown too.
    """
    printer = _DecisionPrinter(out, subgraphs)
    for chunk in graph.stream(
        inputs, config, context=context, stream_mode=["custom", "values"], subgraphs=subgraphs
    ):
        printer(chunk)
    return printer.final


async def astream_decisions(
    graph: Any,
    inputs: Any,
    config: RunnableConfig | None = None,
    *,
    context: Any = None,
    out: Callable[[str], Any] = print,
    subgraphs: bool = False,
) -> dict[str, Any]:
    """Async `stream_decisions`."""
    printer = _DecisionPrinter(out, subgraphs)
    async for chunk in graph.astream(
        inputs, config, context=context, stream_mode=["custom", "values"], subgraphs=subgraphs
    ):
        printer(chunk)
    return printer.final
