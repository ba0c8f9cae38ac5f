"""The quickstart: the whole DRR recipe in one resumable run (`run_quickstart`), sized by a
`QuickstartPlan` (`PLANS` names the measured ones). ``drr quickstart`` on the command line.

- `plan`: `QuickstartPlan` and `PLANS`;
- `run`: `run_quickstart` (split, traces, labels, DM, evaluation — each step resumable) and
  `evaluate_dm_lm` (the DM's own language model as the Reasoner, the row a reader asks for);
- `example`: the "Try it" question.
"""

from drr_agent.quickstart.example import EXAMPLE_QUESTION, example_question
from drr_agent.quickstart.plan import PLANS, QuickstartPlan
from drr_agent.quickstart.run import (
    DM_LM_METHODS,
    QuickstartMismatchError,
    QuickstartResult,
    evaluate_dm_lm,
    run_quickstart,
)

__all__ = [
    "DM_LM_METHODS",
    "EXAMPLE_QUESTION",
    "PLANS",
    "QuickstartMismatchError",
    "QuickstartPlan",
    "QuickstartResult",
    "evaluate_dm_lm",
    "example_question",
    "run_quickstart",
]
