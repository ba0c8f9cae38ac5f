"""One Trainer run: the classifier fine-tuned on the training part, the best checkpoint kept.

`training_arguments` maps `TrainConfig` onto ``TrainingArguments`` (evaluation, best-checkpoint
saving and the global batch under a launcher); `fit` builds the `DMTrainer` with the loss, the
metrics, early stopping and the sibling pairs, trains, and returns the best evaluated model
with what the card records about the run. Loading the base and exporting are the recipe's
(`drr_agent.offline.train`); this module only trains.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from drr_agent.errors import DRRError
from drr_agent.offline.records import StepExample
from drr_agent.offline.training.config import TrainConfig
from drr_agent.offline.training.encoding import encode, encode_pairs, step_dataset
from drr_agent.offline.training.objective import WeightedSoftBCE, compute_metrics
from drr_agent.offline.training.quiet import quiet_transformers

__all__ = ["Fitted", "check_batch_split", "fit", "training_arguments"]


@dataclass(frozen=True)
class Fitted:
    """The trained classifier and what the card and `TrainResult` record about the run."""

    model: Any
    epochs_run: float
    best_metric: float | None
    """Best eval value of ``early_stopping_metric``; `None` without one (or NaN)."""
    run: dict[str, int]
    """``processes`` and ``optimizer_steps``, joined to the card's training settings."""


def check_batch_split(batch_size: int, world_size: int) -> None:
    """Under a launcher ``batch_size`` is the global batch: refuse one that does not divide
    over the processes (checked before the base loads)."""
    if batch_size % world_size:
        raise ValueError(
            f"batch_size {batch_size} does not split over {world_size} processes: "
            "under a launcher it is the global batch, so a run is the same optimisation on "
            "any number of processes; pick a multiple"
        )


def fit(
    model: Any,
    tokenizer: Any,
    train_part: Sequence[StepExample],
    eval_part: Sequence[StepExample],
    config: TrainConfig,
    weights: dict[str, float] | None,
    work_dir: str,
    *,
    world_size: int,
    progress: bool,
    say: Callable[[str], None],
) -> Fitted:
    """Train ``model`` on ``train_part``, evaluating on ``eval_part`` (if any) for early
    stopping and the best checkpoint, which Trainer keeps in ``work_dir`` and reloads.

    Raises:
        DRRError: A launcher started ``world_size`` processes but Trainer did not join them
            (each would train a DM of its own).
    """
    from transformers import DataCollatorWithPadding, EarlyStoppingCallback, PrinterCallback

    from drr_agent.offline.pairs import sibling_pairs
    from drr_agent.offline.training.trainer import DMTrainer

    args = training_arguments(config, work_dir, bool(eval_part), progress, world_size)
    if args.world_size != world_size:  # a launch Trainer did not join
        raise DRRError(
            f"{world_size} processes were launched but the Trainer trains as "
            f"{args.world_size}: each would train a DM of its own"
        )
    pairs = sibling_pairs(train_part) if config.pair_weight > 0 else []
    if config.pair_weight > 0:
        say(f"pairwise loss on {len(pairs)} sibling pairs (weight {config.pair_weight:g})")
    trainer = DMTrainer(
        model=model,
        args=args,
        data_collator=DataCollatorWithPadding(tokenizer),
        train_dataset=step_dataset(encode(train_part, tokenizer, config.max_length)),
        eval_dataset=(
            step_dataset(encode(eval_part, tokenizer, config.max_length)) if eval_part else None
        ),
        processing_class=tokenizer,
        compute_loss_func=(
            WeightedSoftBCE(weights["bad"], weights["good"]) if weights else WeightedSoftBCE()
        ),
        compute_metrics=compute_metrics if eval_part else None,
        callbacks=(
            [EarlyStoppingCallback(config.early_stopping_patience)]
            if eval_part and config.early_stopping_patience
            else None
        ),
        pairs=encode_pairs(pairs, tokenizer, config.max_length),
        pair_weight=config.pair_weight,
        pair_batch_size=config.pair_batch_size,
        pair_seed=config.seed,
    )
    if not progress:
        trainer.remove_callback(PrinterCallback)
    with quiet_transformers(not progress):
        trainer.train()
    state = trainer.state
    best = None if state.best_metric is None else float(state.best_metric)
    return Fitted(
        model=trainer.model,
        epochs_run=float(state.epoch or 0.0),
        best_metric=None if best is None or math.isnan(best) else best,
        run={"processes": args.world_size, "optimizer_steps": int(state.global_step)},
    )


def training_arguments(
    config: TrainConfig, work_dir: str, has_eval: bool, progress: bool, world_size: int = 1
) -> Any:
    """``TrainingArguments`` of one run. ``batch_size`` is split over ``world_size``; with an
    eval part Trainer evaluates per epoch (or ``eval_steps``), keeps only the best checkpoint
    (weights only: it is reloaded, never resumed) and reloads it at the end, so the best
    evaluated model is the one exported."""
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
