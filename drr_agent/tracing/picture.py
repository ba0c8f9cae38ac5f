"""The thought tree as a picture: `layout_thought_tree` places it, `draw_thought_tree` draws it.

The layout is returned as data (`TreeDrawing`) so tests and other plots can use exactly what
is drawn; the drawing is a plain matplotlib ``Figure`` (no pyplot state).
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from drr_agent.state import DRRResult, Thought
from drr_agent.tracing._view import as_result, children, note, outcome, score_vs

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

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


def _node_label(run: DRRResult, t: Thought) -> str:
    """``#id  score vs threshold``, up to two lines of text, and the note (e.g. a repeat)."""
    score = score_vs(t, run.accept_threshold, run.answer_threshold)
    lines = [f"#{t['id']}  {score}", *_wrapped(t["text"], 2)]
    why = note(t)
    if why:
        lines.append(textwrap.shorten(f"({why})", _WRAP + 4, placeholder=" …)"))
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
    run = as_result(result_or_state, accept_threshold, answer_threshold)
    kids = children(run)
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
    title = outcome(run)
    if run.accept_threshold is not None:
        title += f"\naccept ≥ {run.accept_threshold:.2f}, answer ≥ {run.answer_threshold:.2f}"
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
