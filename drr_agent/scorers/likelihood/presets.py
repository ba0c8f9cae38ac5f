"""Named sets of head inputs, each named by what it reads (``drr train --likelihood-features``).

From the least to the most a head reads: `CLAIM_HEAD_INPUTS` (the claim against the question
alone), `IN_CONTEXT_HEAD_INPUTS` (the step in its context and the classifier: the default),
`IN_CONTEXT_AND_CLAIM_HEAD_INPUTS` (both), `LOOKAHEAD_HEAD_INPUTS` (both, and the verifier's
reading of the Reasoner's forced answer after the step: the quickstart's). The measurements
behind each choice are in the guide *Making a DM*, "What the head reads".
"""

from __future__ import annotations

from drr_agent.scorers.likelihood.features import (
    CLASSIFIER_FEATURE,
    EQUATION_FEATURES,
    IN_CONTEXT_FEATURES,
    LOOKAHEAD_FEATURES,
    SAMPLED_FEATURES,
)

__all__ = [
    "CLAIM_HEAD_INPUTS",
    "DEFAULT_HEAD_FEATURES",
    "DEFAULT_HEAD_INPUTS",
    "IN_CONTEXT_AND_CLAIM_HEAD_INPUTS",
    "IN_CONTEXT_HEAD_INPUTS",
    "LOOKAHEAD_HEAD_INPUTS",
    "SAMPLED_AND_CLASSIFIER_HEAD_INPUTS",
    "SAMPLED_AND_EQUATION_HEAD_INPUTS",
    "SAMPLED_HEAD_INPUTS",
    "VERIFIER_HEAD_INPUTS",
]

IN_CONTEXT_HEAD_INPUTS = (*IN_CONTEXT_FEATURES, CLASSIFIER_FEATURE)
"""The statistics of the step in its context (`IN_CONTEXT_FEATURES`) and the classifier's
logit."""

DEFAULT_HEAD_INPUTS = IN_CONTEXT_HEAD_INPUTS
"""What a head reads unless told otherwise (`LikelihoodHead.fit`, ``drr train``):
`IN_CONTEXT_HEAD_INPUTS`."""

DEFAULT_HEAD_FEATURES = IN_CONTEXT_FEATURES
"""The statistics `DEFAULT_HEAD_INPUTS` reads (`IN_CONTEXT_FEATURES`)."""

CLAIM_HEAD_INPUTS = ("claim_prob",)
"""The claim against the question and nothing else: the best judge of the graph's first steps
(see `IN_CONTEXT_AND_CLAIM_HEAD_INPUTS`), and blind to everything else the rollout labels
reward. The quickstart's head read this before it read the step in context too."""

# spelled out rather than `HEAD_INPUTS`: a statistic added later must not join the
# quickstart's head without being chosen on dev
IN_CONTEXT_AND_CLAIM_HEAD_INPUTS = (
    *IN_CONTEXT_FEATURES,
    "claim_logprob",
    "claim_min_gap",
    "claim_prob",
    "is_answer",
    "answer_claim_prob",
    CLASSIFIER_FEATURE,
)
"""The classifier, the in-context statistics, the claim against the question, and the claim's
probability apart for final answers: everything but the lookahead (the quickstart's head
before it read the lookahead).

Why all of them: the rollout labels say whether the Reasoner *went on* to succeed, which
depends on the question (the classifier and the in-context statistics learn that) and on
whether the step is right (the claim). Without the claim a head judges the graph's own
candidates poorly; with the claim alone it fits the labels poorly (dev AUROC 0.77, sibling
pairs 0.75). Since a final answer's claim is restated (`ReasonerLikelihood._encode_claim`) and
answers have their own claim column, the claim keeps its weight beside the classifier.
Measured on the 40 dev questions of a quickstart run (heads fitted on the same 320 train rows,
thresholds on the dev rows; *Making a DM*, "What the head reads"): dev rows AUROC 0.855
against 0.767 for `CLAIM_HEAD_INPUTS`, sibling pairs 0.840 against 0.753, ECE 0.063 against
0.077, minimal pairs 0.985 / 0.987; on the graph's 346 dev candidates against the oracle's
verdict AUROC 0.894 / 0.992 on first steps / answers (claim alone 0.960 / 0.993), veto
error 0.255 / 0.059 (0.292 / 0.011); ``drr`` on the dev questions 0.625 for both (2 wins, 2
losses), 291 Reasoner tokens against 271."""

VERIFIER_HEAD_INPUTS = IN_CONTEXT_AND_CLAIM_HEAD_INPUTS
"""The former name of `IN_CONTEXT_AND_CLAIM_HEAD_INPUTS` (kept for scripts that use it)."""

LOOKAHEAD_HEAD_INPUTS = (*IN_CONTEXT_AND_CLAIM_HEAD_INPUTS, *LOOKAHEAD_FEATURES)
"""`IN_CONTEXT_AND_CLAIM_HEAD_INPUTS` and the verifier's reading of the Reasoner's forced answer
after the step (`LOOKAHEAD_FEATURES`), which estimates the labels' own question: what the
quickstart's head reads. Chosen on the quickstart's train and dev questions (8 tanh units, all
training rows): dev AUROC 0.902 → 0.954, intermediate steps 0.878 → 0.942, sibling pairs
0.896 → 0.924; 5-fold cross-validation by question over train + dev (without the classifier,
whose train logits are in-sample) 0.847 → 0.946."""

SAMPLED_HEAD_INPUTS = SAMPLED_FEATURES
"""The light DM's inputs: the statistics of the Reasoner's own token log-probs when it wrote
the step (`SAMPLED_FEATURES`, free with each step) and nothing else — no model runs to score a
step, the head's nine parameters are the whole critic. Chosen on the dev steps of the
``qwen-light`` quickstart (embedded Qwen, 4-term two-digit chain sums, outcome labels): AUROC
0.636 for a logistic head over these against 0.599 with the classifier's logit beside them
(whose training-row logits are in-sample, so the head over-trusts it: ECE 0.149) and 0.609
with 8 tanh units."""

SAMPLED_AND_CLASSIFIER_HEAD_INPUTS = (*SAMPLED_FEATURES, CLASSIFIER_FEATURE)
"""`SAMPLED_HEAD_INPUTS` and the classifier's logit: the classifier (MiniLM, 22.7 M) runs too."""

SAMPLED_AND_EQUATION_HEAD_INPUTS = (*SAMPLED_FEATURES, *EQUATION_FEATURES)
"""`SAMPLED_HEAD_INPUTS` and the step's equations recomputed (`EQUATION_FEATURES`): still no
model of its own (11 parameters), and it reads what the step *says*, not only how sure its
writer was."""
