"""drr-agent: a trained Discriminative Model steers a Reasoner LLM, step by step, in LangGraph.

Start with `build_graph(reasoner, load_dm(folder), config)`; see the README.
"""

from drr_agent.config import ContextCaps, DRRConfig
from drr_agent.errors import (
    ContextCapError,
    DMLoadError,
    DRRError,
    EmbeddedModelMissingError,
    InvalidQuestionError,
    QuestionTooLongError,
    ReasonerError,
    ScorerError,
)
from drr_agent.graph import build_graph
from drr_agent.prompts import StepPrompt
from drr_agent.reasoners import (
    Proposal,
    Reasoner,
    embedded_reasoner,
    openai_compatible_reasoner,
)
from drr_agent.scorers import FunctionScorer, HFScorer, StepContext, StepScorer, load_dm
from drr_agent.state import (
    Counters,
    DecisionEvent,
    DecisionRecord,
    DRRResult,
    DRRState,
    Thought,
)
from drr_agent.steps import StepFormat
from drr_agent.tool import DRR_TOOL_NAME, make_drr_tool
from drr_agent.tracing import (
    ReplayStep,
    TreeDrawing,
    areplay,
    astream_decisions,
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

__version__ = "0.1.0"

__all__ = [
    "DRR_TOOL_NAME",
    "ContextCapError",
    "ContextCaps",
    "Counters",
    "DMLoadError",
    "DRRConfig",
    "DRRError",
    "DRRResult",
    "DRRState",
    "DecisionEvent",
    "DecisionRecord",
    "EmbeddedModelMissingError",
    "FunctionScorer",
    "HFScorer",
    "InvalidQuestionError",
    "Proposal",
    "QuestionTooLongError",
    "Reasoner",
    "ReasonerError",
    "ReplayStep",
    "ScorerError",
    "StepContext",
    "StepFormat",
    "StepPrompt",
    "StepScorer",
    "Thought",
    "TreeDrawing",
    "areplay",
    "astream_decisions",
    "build_graph",
    "decision_log",
    "draw_thought_tree",
    "embedded_reasoner",
    "format_counters",
    "format_decision",
    "format_thought_tree",
    "layout_thought_tree",
    "load_dm",
    "make_drr_tool",
    "openai_compatible_reasoner",
    "replay",
    "stream_decisions",
    "thought_table",
]
