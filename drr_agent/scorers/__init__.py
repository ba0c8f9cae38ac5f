"""DM scorers behind one interface: in-process Hugging Face, plain functions remote ones later."""

from drr_agent.scorers.base import FunctionScorer, StepContext, StepScorer, dm_text_pair
from drr_agent.scorers.embedded import embedded_dm_base_path
from drr_agent.scorers.hf import DM_METADATA_FILE, HFScorer

__all__ = [
    "DM_METADATA_FILE",
    "FunctionScorer",
    "HFScorer",
    "StepContext",
    "StepScorer",
    "dm_text_pair",
    "embedded_dm_base_path",
]
