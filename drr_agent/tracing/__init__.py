"""Decision tracing: see what the DM decided, as text, as a table, as a picture, step by step.

A finished (or checkpointed) DRR run holds its whole thought tree — every proposed thought
with its parent, DM score and status — plus the accepted path and the outcome. This package
turns it into what a person reads:

- `format_thought_tree`: a compact indented tree (by parent) with each thought's score against
  its threshold (and, where the run had them, the Reasoner's log-prob and the blended score
  candidates were ranked by), its status and text, the accepted path, and the answer or
  abstention; with ``wrap=`` a terminal's width, each text wrapped whole under its node
  instead of cut (what ``drr solve`` prints below 120 columns).
- `format_counters`: the run's cost (Reasoner calls and tokens, DM calls, rejections,
  backtracks) on one line.
- `thought_table`: the same as a ``rich`` table (prints in terminals and notebooks).
  (Both in `drr_agent.tracing.text`.)
- `draw_thought_tree`: a matplotlib picture — nodes by depth and sibling order, coloured by
  status, the accepted path in bold, backtracks as dashed red arrows — whose content is also
  returned as data (`TreeDrawing`, see `layout_thought_tree`) so it can be checked
  (`drr_agent.tracing.picture`).
- `replay` / `areplay`: walk a checkpointed run's LangGraph state history, one `ReplayStep` per
  super-step (which node ran, the route it took, the thoughts it added or changed)
  (`drr_agent.tracing.replay`).
- `format_decision`, `decision_log`, `stream_decisions` / `astream_decisions`: the decision
  events of ``graph.stream(..., stream_mode="custom")`` as one line each, live or afterwards
  (`drr_agent.tracing.events`).

Every function takes what a run gives you: the state dict returned by ``graph.invoke``, a
`DRRResult`, or a LangGraph ``StateSnapshot`` (``graph.get_state(config)``), read as one
`DRRResult` (`drr_agent.tracing._view.as_result`). Scores are
compared with the thresholds the run applied (``decide`` stores them in the state); pass
``accept_threshold`` / ``answer_threshold`` to compare with others. When only the accept
threshold is known, final answers are compared with it too (as `DRRConfig.thresholds` does).
"""

from drr_agent.tracing.events import (
    astream_decisions,
    decision_log,
    format_decision,
    stream_decisions,
)
from drr_agent.tracing.picture import (
    DrawnEdge,
    DrawnNode,
    TreeDrawing,
    draw_thought_tree,
    layout_thought_tree,
)
from drr_agent.tracing.replay import ReplayStep, areplay, replay
from drr_agent.tracing.text import format_counters, format_thought_tree, thought_table

__all__ = [
    "DrawnEdge",
    "DrawnNode",
    "ReplayStep",
    "TreeDrawing",
    "areplay",
    "astream_decisions",
    "decision_log",
    "draw_thought_tree",
    "format_counters",
    "format_decision",
    "format_thought_tree",
    "layout_thought_tree",
    "replay",
    "stream_decisions",
    "thought_table",
]
