"""`TrainConfig`: every setting of `drr_agent.offline.train.train_dm` (and of ``drr train``).

One frozen, validated model, so a run's settings are checked before anything loads and are
recorded whole in the DM card (``training``), where a reader can see how the DM was made.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import ConfigDict, Field, model_validator

from drr_agent.offline.training.recipe import DMRecipe
from drr_agent.scorers.lookahead import LookaheadSpec

__all__ = ["LABELS", "TrainConfig"]

LABELS = {0: "bad", 1: "good"}
"""Label names of every DM `train_dm` trains; index 1 (``good``) is the positive label."""


class TrainConfig(DMRecipe):
    r"""Settings of `train_dm` (and of ``drr train``): a `DMRecipe` (what makes the DM, every
    field of which is a setting here too) and where and how this run trains it.

    Parameters:
        output_dir (`Path`, *optional*, defaults to `"drr-dm"`):
            Folder the trained DM is written to. Written atomically: the model is staged next
            to it and moved into place only when complete.
        overwrite_output_dir (`bool`, *optional*, defaults to `False`):
            Replace an existing non-empty ``output_dir``. Off so a trained DM is never lost by
            accident; the check runs before training.
        name (`str` or `None`, *optional*, defaults to `None`):
            DM name recorded in ``drr_dm.json`` (shown by the graph and in eval reports).
            `None` uses the name of ``output_dir``.
        weight_decay (`float`, *optional*, defaults to `0.01`):
            AdamW weight decay (Trainer's default is 0.0; a little decay is the common choice
            for fine-tuning BERT-style encoders).
        warmup_ratio (`float`, *optional*, defaults to `0.1`):
            Share of the optimisation steps with a linear learning-rate warm-up (Trainer's
            default is no warm-up); protects the pretrained encoder from the large early
            gradients of the freshly initialised head.
        eval_fraction (`float`, *optional*, defaults to `0.2`):
            Used only when `train_dm` gets no ``dev`` rows: the share of the training
            *questions* (normalised text, never single steps or items) held out for early
            stopping and the choice of thresholds. `0` trains on everything (then no
            thresholds are written and the graph uses its defaults).
        class_weighting (`bool`, *optional*, defaults to `True`):
            Weight the loss by the inverse label balance of the training split
            (``w_c = N / (2 * mass_c)``, where ``mass_good = sum(label)`` and
            ``mass_bad = sum(1 - label)``), so a DM trained on mostly-wrong traces does not
            learn to reject everything.
        early_stopping_patience (`int` or `None`, *optional*, defaults to `2`):
            Stop after this many evaluations without improvement of
            ``early_stopping_metric``. `None` trains for all ``epochs``. Either way the best
            evaluated model is the one exported (``load_best_model_at_end``). Needs
            ``eval_fraction > 0``.
        early_stopping_metric (`"auroc"` or `"loss"`, *optional*, defaults to `"auroc"`):
            What "best" means on the eval split: step-level AUROC (what the graph needs: a
            good ranking; thresholds are chosen afterwards) or the (class-weighted) loss.
        eval_steps (`int` or `None`, *optional*, defaults to `None`):
            Evaluate every this many optimisation steps; `None` evaluates once per epoch.
        seed (`int`, *optional*, defaults to `42`):
            Seeds the item split, the head initialisation, shuffling and dropout
            (``set_seed``).
        min_examples (`int`, *optional*, defaults to `20`):
            Fewest training examples accepted; fewer stops before training with the counts.
        trust_remote_code (`bool`, *optional*, defaults to `False`):
            Let transformers run code shipped with ``base_model``. Off unless you trust it.
        use_cpu (`bool`, *optional*, defaults to `False`):
            Train on the CPU even when a GPU is visible (Trainer picks the device otherwise).
        pair_batch_size (`int`, *optional*, defaults to `16`):
            Sibling pairs per optimisation step (``pair_weight > 0``).
        likelihood_lookahead (`LookaheadSpec`, *optional*, defaults to the embedded Reasoner
            under the default instruction):
            The Reasoner whose greedy forced answer after each step the head reads, when
            ``likelihood_features`` names `~drr_agent.scorers.likelihood.LOOKAHEAD_FEATURES`
            (`drr_agent.scorers.lookahead`); recorded in the card so the loaded DM asks the
            same Reasoner, under the same instruction. Training reads the answers the labels
            recorded (``drr labels --lookahead``) and asks the Reasoner for the rest."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    output_dir: Path = Path("drr-dm")
    overwrite_output_dir: bool = False
    name: str | None = None
    weight_decay: float = Field(default=0.01, ge=0)
    warmup_ratio: float = Field(default=0.1, ge=0, lt=1)
    eval_fraction: float = Field(default=0.2, ge=0, lt=1)
    class_weighting: bool = True
    early_stopping_patience: int | None = Field(default=2, ge=1)
    early_stopping_metric: Literal["auroc", "loss"] = "auroc"
    eval_steps: int | None = Field(default=None, ge=1)
    seed: int = 42
    min_examples: int = Field(default=20, ge=2)
    trust_remote_code: bool = False
    use_cpu: bool = False
    pair_batch_size: int = Field(default=16, ge=1)
    likelihood_lookahead: LookaheadSpec = Field(default_factory=LookaheadSpec)

    @classmethod
    def from_recipe(cls, recipe: DMRecipe, **run: object) -> TrainConfig:
        """``recipe``'s DM, trained as ``run`` says (``output_dir``, ``seed``, ...)."""
        return cls.model_validate(recipe.model_dump() | run)

    @property
    def recipe(self) -> DMRecipe:
        """The recipe alone, without where and how this run trains it."""
        return DMRecipe.model_validate(
            {name: getattr(self, name) for name in DMRecipe.model_fields}
        )

    @model_validator(mode="after")
    def _early_stopping_needs_eval(self) -> TrainConfig:
        if self.eval_fraction == 0 and self.early_stopping_patience is not None:
            raise ValueError(
                "early_stopping_patience needs an eval split: set eval_fraction > 0, or "
                "early_stopping_patience=None to train for all epochs"
            )
        return self

    @property
    def dm_name(self) -> str:
        return self.name or self.output_dir.name
