"""What training optimises and what early stopping watches.

`WeightedSoftBCE` is the pointwise loss on the probability `HFScorer` reports, weighted by
`class_weights` so a DM trained on mostly-wrong traces does not learn to reject everything;
`compute_metrics` is the eval-time AUROC (the ranking the graph needs) and Brier score that
``TrainConfig.early_stopping_metric`` chooses the exported checkpoint by.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from drr_agent.offline.dm_eval import auroc
from drr_agent.offline.records import StepExample
from drr_agent.offline.training.config import LABELS

__all__ = ["WeightedSoftBCE", "class_weights", "compute_metrics"]


class WeightedSoftBCE:
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


def class_weights(examples: Sequence[StepExample]) -> dict[str, float]:
    """``w_c = N / (2 * mass_c)`` over soft label mass (``mass_good = sum(label)``): the
    inverse balance, 1.0 each when balanced (`check_training_data` rules out a zero mass)."""
    good = sum(e.label for e in examples)
    bad = len(examples) - good
    return {LABELS[0]: len(examples) / (2 * bad), LABELS[1]: len(examples) / (2 * good)}


def compute_metrics(eval_pred: Any) -> dict[str, float]:
    """Trainer's eval metrics of ``sigmoid(logit_good - logit_bad)``: AUROC against the hard
    labels (NaN, not `None`, for one class: Trainer compares numbers) and the Brier score."""
    import numpy as np

    logits = np.asarray(eval_pred.predictions, dtype=np.float64)
    labels = np.asarray(eval_pred.label_ids, dtype=np.float64)
    prob = 1.0 / (1.0 + np.exp(-(logits[:, 1] - logits[:, 0])))
    value = auroc(prob, labels >= 0.5)
    return {
        "auroc": float("nan") if value is None else value,
        "brier": float(np.mean((prob - labels) ** 2)),
    }
