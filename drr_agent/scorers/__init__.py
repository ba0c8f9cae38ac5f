"""DM scorers behind one interface: in-process Hugging Face, plain functions and rule checkers,
a DM served by vLLM (micro-batched over HTTP), the Reasoner as its own critic (self-critique
baseline)."""

from drr_agent.models import embedded_dm_base_path
from drr_agent.scorers.base import FunctionScorer, StepContext, StepScorer, dm_text_pair
from drr_agent.scorers.card import DM_METADATA_FILE, DMCard
from drr_agent.scorers.hf import HFScorer
from drr_agent.scorers.loading import load_dm
from drr_agent.scorers.parts import DMPart, dm_parts
from drr_agent.scorers.remote import RemoteScorer
from drr_agent.scorers.rules import arithmetic_check, arithmetic_scorer, check_equations
from drr_agent.scorers.self_critique import SelfCritiqueScorer

__all__ = [
    "DM_METADATA_FILE",
    "DMCard",
    "DMPart",
    "FunctionScorer",
    "HFScorer",
    "RemoteScorer",
    "SelfCritiqueScorer",
    "StepContext",
    "StepScorer",
    "arithmetic_check",
    "arithmetic_scorer",
    "check_equations",
    "dm_parts",
    "dm_text_pair",
    "embedded_dm_base_path",
    "load_dm",
]
