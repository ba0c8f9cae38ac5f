"""Plots of an evaluation, written as PNG files with matplotlib's Agg canvas.

Figures are built with ``matplotlib.figure.Figure`` on a ``FigureCanvasAgg``, not through
``pyplot``: no display is needed, and importing this module never switches the backend of a
notebook or app that uses matplotlib itself.

- `plot_accuracy_vs_cost`: one point per method at (cost per item, accuracy) with its 95%
  Wilson interval as the error bar, against three costs side by side: Reasoner tokens, compute
  (every model, the DM's included: `drr_agent.usage`) and wall time — accuracy next to what
  it cost, by every measure a reader may care about.
- `plot_backtracks`: where the graph methods (``drr``, ``self_critique``) backtracked, read off
  the thought trees the records keep: pops by the depth of the abandoned thought, rejections by
  depth, and how many backtracks each item needed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from drr_agent.evaluation.records import EvalRecord
from drr_agent.evaluation.summary import EvalSummary

ACCURACY_PLOT = "accuracy_vs_tokens.png"
BACKTRACK_PLOT = "backtracks.png"


def _figure(size: tuple[float, float]) -> Figure:
    fig = Figure(figsize=size)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: Path) -> Path:
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    return path


_COSTS = (
    ("mean_tokens", "Reasoner tokens per item (prompt + completion)", False),
    ("mean_compute", "compute per item, every model (FLOPs)", True),
    ("mean_latency_s", "wall time per item (s)", False),
)


def plot_accuracy_vs_cost(summary: EvalSummary, path: str | Path) -> Path:
    """Accuracy (with 95% CI) against Reasoner tokens, compute and wall time per item, one
    point per method in each panel (a method without a compute figure is left out there)."""
    path = Path(path)
    fig = _figure((15, 4.5))
    axes = fig.subplots(1, len(_COSTS), sharey=True)
    for ax, (field, label, log) in zip(axes, _COSTS, strict=True):
        for index, row in enumerate(summary.methods):
            cost = getattr(row, field)
            if cost is None:
                continue
            ax.errorbar(
                cost,
                row.accuracy,
                yerr=[[row.accuracy - row.ci_low], [row.ci_high - row.accuracy]],
                fmt="o",
                capsize=4,
                color=f"C{index}",
                label=f"{row.method} (n={row.n})",
            )
        if log and ax.has_data():
            ax.set_xscale("log")
        if not ax.has_data():
            ax.text(0.5, 0.5, "not counted in this run", ha="center", transform=ax.transAxes)
        ax.set_xlabel(label)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("accuracy (95% Wilson CI)")
    axes[0].set_ylim(-0.02, 1.02)
    axes[0].legend(fontsize=8, loc="best")
    fig.suptitle(f"{summary.task}: accuracy vs cost")
    return _save(fig, path)


GRAPH_METHODS = ("drr", "self_critique", "stepwise", "lp_rank", "oracle")


def plot_backtracks(
    records: Sequence[EvalRecord], path: str | Path, methods: Sequence[str] = GRAPH_METHODS
) -> Path:
    """Bar charts of where graph methods backtracked and rejected, and backtracks per item."""
    path = Path(path)
    shown = [m for m in methods if any(r.method == m and r.error is None for r in records)]
    fig = _figure((13, 4))
    axes = fig.subplots(1, 3)
    panels = (
        ("backtrack_depths", "backtracks (pops) by depth of the abandoned thought", "depth"),
        ("rejection_depths", "rejected thoughts by depth", "depth"),
    )
    width = 0.8 / max(1, len(shown))

    def bars(ax: Any, offset: int, counts: Counter[int], method: str) -> None:
        """One method's bars, its group centred on each integer category."""
        xs = sorted(counts)
        shift = (offset - (len(shown) - 1) / 2) * width
        ax.bar([x + shift for x in xs], [counts[x] for x in xs], width, label=method)

    for ax, (key, title, xlabel) in zip(axes[:2], panels, strict=True):
        for offset, method in enumerate(shown):
            counts = Counter(
                d
                for r in records
                if r.method == method and r.error is None
                for d in r.details.get(key, [])
            )
            bars(ax, offset, counts, method)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("count")
    per_item = axes[2]
    for offset, method in enumerate(shown):
        counts = Counter(r.backtracks for r in records if r.method == method and r.error is None)
        bars(per_item, offset, counts, method)
    per_item.set_title("items by number of backtracks", fontsize=9)
    per_item.set_xlabel("backtracks in the item's run")
    per_item.set_ylabel("items")
    for ax in axes:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3, axis="y")
        if shown:
            ax.legend(fontsize=8)
        else:
            ax.text(0.5, 0.5, "no graph method run", ha="center", transform=ax.transAxes)
    return _save(fig, path)


def write_plots(
    summary: EvalSummary, records: Sequence[EvalRecord], out_dir: str | Path
) -> list[Path]:
    """Both plots into ``out_dir``; returns their paths."""
    out = Path(out_dir)
    return [
        plot_accuracy_vs_cost(summary, out / ACCURACY_PLOT),
        plot_backtracks(records, out / BACKTRACK_PLOT),
    ]
