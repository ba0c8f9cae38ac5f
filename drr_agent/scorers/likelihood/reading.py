"""How a step is read: by which language model, and after what.

The LM is a local Hugging Face causal-LM folder or one of the embedded models
(`drr_agent.models`), named `EMBEDDED_LIKELIHOOD_MODEL` (the embedded Reasoner's own SmolLM2)
or `EMBEDDED_VERIFIER_MODEL` (the larger Qwen2.5-Coder-0.5B verifier) and read from their
de-quantised copies in the model cache (`embedded_likelihood_folder`). What the step is read
after is the `LikelihoodContext`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from drr_agent.models import embedded_reasoner_folder, embedded_verifier_folder

__all__ = [
    "EMBEDDED_LIKELIHOOD_MODEL",
    "EMBEDDED_VERIFIER_MODEL",
    "LikelihoodContext",
    "embedded_likelihood_folder",
]

EMBEDDED_LIKELIHOOD_MODEL = "embedded-smollm2"
"""`ReasonerLikelihood` model name for the embedded Reasoner's backbone (the default)."""

EMBEDDED_VERIFIER_MODEL = "embedded-qwen2.5-0.5b"
"""`ReasonerLikelihood` model name for the embedded verifier LM, Qwen2.5-Coder-0.5B-Instruct
(`drr_agent.models.registry`): a larger LM than the Reasoner, which knows the arithmetic the
Reasoner gets wrong."""


def embedded_likelihood_folder(name: str) -> Path | None:
    """The cached Hugging Face folder of an embedded likelihood model, by name (else None)."""
    folders = {
        EMBEDDED_LIKELIHOOD_MODEL: embedded_reasoner_folder,
        EMBEDDED_VERIFIER_MODEL: embedded_verifier_folder,
    }
    return folders[name]() if name in folders else None


LikelihoodContext = Literal["reasoner", "plain", "question"]
"""What a step is read after: ``"reasoner"``, the Reasoner's own prompt (the LM's chat template,
the instruction, the accepted steps as `StepPrompt` prefills them) — the step as the Reasoner
wrote it; ``"plain"``, just the question and the accepted steps, one per line — a few dozen
tokens instead of ~90, for a larger verifier LM that did not write the step (its cost is its
context length, and it needs no instruction to judge a sum); ``"question"``, the question
alone — the verifier judges each step against the problem, not against the accepted steps.
Why the last exists: after a wrong accepted step ("1 - 3 = 2") a wrong answer that repeats
it ("The answer is 2") *follows*, so in context the verifier finds it likely; measured on the
quickstart's dev steps (Qwen2.5-0.5B verifier, the same MiniLM classifier and head),
``"question"`` gave step AUROC 0.835 (final answers 0.860) and minimal pairs 0.98 against
``"plain"``'s 0.816 (0.820) and 0.92."""
