"""Task loaders, one module per source; `drr_agent.tasks.TASKS` registers them by name.

A loader is a function ``(*, limit, seed, path, **params) -> Task`` (prefix loaders such as
``rg:`` take the rest of the task name as their first argument). Heavy or optional packages
(reasoning-gym, datasets) are imported inside the loaders, so importing this is cheap.
"""

from drr_agent.tasks.sources.csqa import load_csqa
from drr_agent.tasks.sources.gsm8k import load_gsm8k
from drr_agent.tasks.sources.jsonl import load_jsonl
from drr_agent.tasks.sources.rgym import (
    load_basic_arithmetic,
    load_chain_sum,
    load_products,
    load_reasoning_gym,
)
from drr_agent.tasks.sources.strategyqa import load_strategyqa
from drr_agent.tasks.sources.svamp import load_svamp

__all__ = [
    "load_basic_arithmetic",
    "load_chain_sum",
    "load_csqa",
    "load_gsm8k",
    "load_jsonl",
    "load_products",
    "load_reasoning_gym",
    "load_strategyqa",
    "load_svamp",
]
