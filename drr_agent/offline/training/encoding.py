"""Labelled steps as the DM's tokenised inputs: the serving rule, applied at training time.

A step becomes ``dm_text_pair`` of its context cut to the window by `fit_to_window` (question
and candidate always kept, then the latest previous steps that fit) — what `HFScorer` does
when it serves the DM — so the model is trained on exactly the inputs it will be asked about.
Rows are tokenised once, unpadded; the collator pads each batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from drr_agent.offline.records import StepExample
from drr_agent.scorers.hf import fit_to_window

__all__ = ["encode", "encode_pairs", "step_dataset"]


def encode(
    examples: Sequence[StepExample], tokenizer: Any, max_length: int
) -> list[dict[str, Any]]:
    """One tokenised row per example (``input_ids``, ..., and the soft label as ``labels``)."""
    pairs = [fit_to_window(tokenizer, e.context, max_length) for e in examples]
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


def encode_pairs(
    pairs: Sequence[tuple[StepExample, StepExample]], tokenizer: Any, max_length: int
) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """``(better, worse)`` sibling pairs as tokenised rows without labels, the form
    `DMTrainer` pads and scores for its pairwise loss (the pair's order is its label)."""
    sides = [e for pair in pairs for e in pair]
    encoded = encode(sides, tokenizer, max_length) if sides else []
    rows = [{k: v for k, v in row.items() if k != "labels"} for row in encoded]
    return list(zip(rows[0::2], rows[1::2], strict=True))


def step_dataset(rows: list[dict[str, Any]]) -> Any:
    """``rows`` as the torch ``Dataset`` Trainer takes (built here: torch loads lazily)."""
    from torch.utils.data import Dataset

    class _StepDataset(Dataset):
        """Pre-tokenised steps; padding happens per batch in the collator."""

        def __len__(self) -> int:
            return len(rows)

        def __getitem__(self, index: int) -> dict[str, Any]:
            return rows[index]

    return _StepDataset()
