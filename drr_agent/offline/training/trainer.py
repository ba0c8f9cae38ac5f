"""`DMTrainer`: Hugging Face `~transformers.Trainer` plus a pairwise ranking loss on siblings.

The graph asks its DM to *rank* candidates proposed at the same point, yet a pointwise loss
(`~drr_agent.offline.training.objective.WeightedSoftBCE`) mostly rewards knowing which
questions are hard: a DM can lower every step of a hard question and score well. GRACE
(Khalifa et al. 2023) trains its critic on pairs that share a prefix instead. `DMTrainer`
adds that to the pointwise loss, as TRL's trainers add what the base trainer lacks and
nothing else:

    loss = pointwise + pair_weight · mean(−log σ(m_better − m_worse))

where ``m = logit_good − logit_bad`` (so ``σ(m)`` is the probability `HFScorer` reports) and
the pairs are sibling candidates with different labels (`drr_agent.offline.pairs.sibling_pairs`:
same question, same previous steps). A Bradley–Terry loss on the margin: it only asks the
better sibling to score higher, leaving calibration to the pointwise term. Each training step
draws the next ``pair_batch_size`` pairs from a seeded, cycling order, so every epoch sees
every pair whatever the ratio of pairs to steps; evaluation (early stopping, `predict`) is
untouched.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from typing import Any

from transformers import Trainer

__all__ = ["DMTrainer"]


def _margin(model: Any, batch: dict[str, Any]) -> Any:
    logits = model(**batch).logits
    return (logits[:, 1] - logits[:, 0]).float()


class DMTrainer(Trainer):
    """`Trainer` whose training loss adds a pairwise term on encoded sibling pairs.

    Args:
        pairs: ``(better, worse)`` pairs, each side a tokenised row without labels
            (``input_ids``, ..., as `~drr_agent.offline.training.encoding.encode_pairs`
            makes them). Empty: plain `Trainer`.
        pair_weight: Weight of the pairwise term (0 turns it off).
        pair_batch_size: Pairs per training step.
        pair_seed: Seed of the order pairs are drawn in.
        **kwargs: Passed to `Trainer` (``processing_class`` pads the pairs).
    """

    def __init__(
        self,
        *args: Any,
        pairs: Sequence[tuple[dict[str, Any], dict[str, Any]]] = (),
        pair_weight: float = 0.0,
        pair_batch_size: int = 8,
        pair_seed: int = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.pairs = list(pairs)
        self.pair_weight = pair_weight
        self.pair_batch_size = pair_batch_size
        self._pair_order = self._cycle(pair_seed)

    def _cycle(self, seed: int) -> Iterator[int]:
        rng = random.Random(seed)
        while self.pairs:
            order = list(range(len(self.pairs)))
            rng.shuffle(order)
            yield from order

    def _pair_batch(self, device: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        chosen = [self.pairs[next(self._pair_order)] for _ in range(self.pair_batch_size)]
        pad = self.processing_class.pad  # type: ignore[union-attr]
        sides = []
        for side in (0, 1):
            batch = pad([p[side] for p in chosen], return_tensors="pt")
            sides.append({k: v.to(device) for k, v in batch.items()})
        return sides[0], sides[1]

    def compute_loss(
        self,
        model: Any,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: Any = None,
    ) -> Any:
        result = super().compute_loss(
            model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch
        )
        if not (model.training and self.pairs and self.pair_weight > 0):
            return result
        import torch.nn.functional as F

        better, worse = self._pair_batch(inputs["input_ids"].device)
        pairwise = -F.logsigmoid(_margin(model, better) - _margin(model, worse)).mean()
        if return_outputs:
            loss, outputs = result
            return loss + self.pair_weight * pairwise, outputs
        return result + self.pair_weight * pairwise
