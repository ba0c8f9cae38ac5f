"""Paired comparisons of methods on the same items, and the critic's efficiency.

Every method of a run answers the same items, so two methods are compared item by item rather
than by their separate accuracies: which items each got right cancels most of the item-to-item
variance (hard items are hard for both), and the resulting intervals are much narrower than
two overlapping Wilson intervals suggest. This module provides, with numpy only:

- `mcnemar_exact`: McNemar's exact test on the discordant items. With ``b`` items that method
  A got right and B wrong, and ``c`` the other way round, under "A and B are equally good" each
  discordant item is a fair coin, so the two-sided p-value is the binomial tail::

      p = min(1, 2 * sum_{k <= min(b, c)} C(b + c, k) / 2^(b + c))      (1 when b + c = 0)

  e.g. b = 1, c = 4: 2 * (1 + 5) / 32 = 0.375. Items both got right or both wrong carry no
  evidence either way and do not enter.
- `paired_bootstrap`: ``diff = mean(a) - mean(b)`` on the same items, with a percentile
  interval from resampling the items with replacement (the same resampled items for both, which
  is what keeps the pairing).
- `compare` / `compare_all` → `PairedComparison`: the above for two methods' `EvalRecord`s,
  paired by ``item_id``; a record with ``error`` set counts as wrong, as in `evaluation.summary`.
  `DEFAULT_PAIRS` lists the comparisons the summary reports (those whose methods both ran).
- `critic_efficiency` → `CriticEfficiency`: how much of the room a critic could fill it fills.
  ``stepwise`` (greedy steps, no critic) is the floor and ``oracle`` (a critic that knows the
  gold answer) the ceiling, so on the items all three share::

      efficiency = (acc(method) - acc(floor)) / (acc(ceiling) - acc(floor))

  0 means the critic adds nothing over the floor, 1 that it is as good as the gold-aware one
  (values outside [0, 1] happen: below the floor, or above the ceiling by chance). The interval
  resamples items as above; resamples whose denominator (the gap) is <= 0 have no efficiency
  and are dropped, and how many were is reported. When the observed gap is <= 0 the ceiling
  does not beat the floor, the ratio means nothing, and the value is ``None`` with a note.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict

from drr_agent.evaluation.records import EvalRecord

RESAMPLES = 10_000
"""Default number of bootstrap resamples."""

DEFAULT_PAIRS: tuple[tuple[str, str], ...] = (
    ("drr", "stepwise"),
    ("drr", "cot"),
    ("drr", "self_consistency"),
    ("drr", "lp_rank"),
    ("drr", "self_critique"),
    ("oracle", "stepwise"),
    ("lp_rank", "stepwise"),
    ("stepwise", "cot"),
    ("drr_vote", "stepwise_vote"),
    ("drr_vote", "self_consistency"),
    ("stepwise_vote", "self_consistency"),
    ("dm_vote", "self_consistency"),
    ("dm_vote", "deepconf"),
    ("best_of_n_dm", "self_consistency"),
)
"""(method, baseline) pairs the summary reports, when both methods are in the run: DRR against
each baseline, and the oracle and log-prob ranking against greedy steps (what any critic, and
the Reasoner's own ranking, add), greedy steps against whole-trace CoT, and the graph's votes
against each other (what the DM adds) and against self-consistency's; the DM-weighted samples
(``dm_vote``, ``best_of_n_dm``) against the same samples voted plainly and by their token
confidence (what the DM adds over no training)."""

_BLOCK = 1_000_000
"""Most indices drawn at once, so that memory stays bounded at large ``n``."""


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value from the discordant counts (see the module docstring).

    ``b``: items A got right and B wrong; ``c``: A wrong and B right. Computed in exact integer
    arithmetic, so large counts neither overflow nor lose the tail.
    """
    if b < 0 or c < 0:
        raise ValueError(f"discordant counts must be >= 0, got b={b}, c={c}")
    n = b + c
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(b, c) + 1))
    return min(1.0, 2 * tail / 2**n)


def _bootstrap_means(columns: np.ndarray, resamples: int, seed: int) -> np.ndarray:
    """Column means over ``resamples`` resamplings of the rows of ``columns`` (shape (n, k)).

    Every column sees the same resampled rows (items), which is what makes it paired. Returns
    shape ``(resamples, k)``; indices are drawn as a matrix, in blocks to bound memory.
    """
    n = columns.shape[0]
    rng = np.random.default_rng(seed)
    block = max(1, _BLOCK // n)
    out = []
    for start in range(0, resamples, block):
        idx = rng.integers(0, n, size=(min(block, resamples - start), n))
        out.append(columns[idx].mean(axis=1))
    return np.concatenate(out, axis=0)


def _interval(values: np.ndarray, level: float) -> tuple[float, float]:
    low, high = np.quantile(values, [(1 - level) / 2, (1 + level) / 2])
    return float(low), float(high)


def _check(resamples: int, level: float) -> None:
    if resamples < 1:
        raise ValueError(f"resamples must be >= 1, got {resamples}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")


def paired_bootstrap(
    a: Sequence[bool],
    b: Sequence[bool],
    *,
    resamples: int = RESAMPLES,
    seed: int = 0,
    level: float = 0.95,
) -> tuple[float, float, float]:
    """``(mean(a) - mean(b), low, high)``: the paired difference and its percentile interval.

    ``a[i]`` and ``b[i]`` are two methods' outcomes on the same item ``i``; items are resampled
    with replacement (seeded, so a summary is reproducible) and the difference taken on each
    resample, whose ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles bound the interval.
    """
    _check(resamples, level)
    if len(a) != len(b):
        raise ValueError(f"paired outcomes need the same length, got {len(a)} and {len(b)}")
    if not a:
        raise ValueError("no items to compare")
    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    diffs = _bootstrap_means(d[:, None], resamples, seed)[:, 0]
    return (float(d.mean()), *_interval(diffs, level))


class PairedComparison(BaseModel):
    """``method`` against ``baseline`` on the items both ran (see the module docstring).

    ``diff = method_accuracy - baseline_accuracy`` (positive: ``method`` is better), with its
    paired bootstrap interval; ``wins``: items only ``method`` got right, ``losses``: items only
    ``baseline`` did; ``mcnemar_p``: McNemar's exact test on those two counts.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    method: str
    baseline: str
    n: int
    method_accuracy: float
    baseline_accuracy: float
    diff: float
    ci_low: float
    ci_high: float
    wins: int
    losses: int
    mcnemar_p: float


def _outcomes(records: Iterable[EvalRecord], method: str) -> dict[str, bool]:
    """``item_id -> right`` for ``method``; an errored record is wrong (as in the summary)."""
    return {r.item_id: r.correct and r.error is None for r in records if r.method == method}


def compare(
    records: Iterable[EvalRecord],
    method: str,
    baseline: str,
    *,
    resamples: int = RESAMPLES,
    seed: int = 0,
    level: float = 0.95,
) -> PairedComparison | None:
    """`PairedComparison` of two methods paired by ``item_id``.

    ``None`` when either method has no records or they share no item (nothing to pair).
    """
    records = list(records)
    ours, theirs = _outcomes(records, method), _outcomes(records, baseline)
    shared = sorted(ours.keys() & theirs.keys())
    if not shared:
        return None
    a, b = [ours[i] for i in shared], [theirs[i] for i in shared]
    diff, low, high = paired_bootstrap(a, b, resamples=resamples, seed=seed, level=level)
    wins = sum(x and not y for x, y in zip(a, b, strict=True))
    losses = sum(y and not x for x, y in zip(a, b, strict=True))
    return PairedComparison(
        method=method,
        baseline=baseline,
        n=len(shared),
        method_accuracy=sum(a) / len(a),
        baseline_accuracy=sum(b) / len(b),
        diff=diff,
        ci_low=low,
        ci_high=high,
        wins=wins,
        losses=losses,
        mcnemar_p=mcnemar_exact(wins, losses),
    )


def compare_all(
    records: Iterable[EvalRecord],
    methods: Sequence[str],
    pairs: Sequence[tuple[str, str]] = DEFAULT_PAIRS,
    *,
    resamples: int = RESAMPLES,
    seed: int = 0,
    level: float = 0.95,
) -> list[PairedComparison]:
    """The `compare` of every pair in ``pairs`` whose two methods are both in ``methods``."""
    records = list(records)
    out = []
    for method, baseline in pairs:
        if method in methods and baseline in methods:
            row = compare(records, method, baseline, resamples=resamples, seed=seed, level=level)
            if row is not None:
                out.append(row)
    return out


class CriticEfficiency(BaseModel):
    """The share of the floor-to-ceiling gap ``method`` closes (see the module docstring).

    ``efficiency``, ``ci_low`` and ``ci_high`` are ``None`` when the observed ``gap`` is <= 0
    (``note`` says so) or when every resample was dropped; ``dropped``: resamples whose gap was
    <= 0, left out of the interval.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    method: str
    floor: str
    ceiling: str
    n: int
    method_accuracy: float
    floor_accuracy: float
    ceiling_accuracy: float
    gap: float
    efficiency: float | None
    ci_low: float | None = None
    ci_high: float | None = None
    level: float = 0.95
    resamples: int = 0
    dropped: int = 0
    note: str | None = None


def critic_efficiency(
    records: Iterable[EvalRecord],
    method: str = "drr",
    floor: str = "stepwise",
    ceiling: str = "oracle",
    *,
    resamples: int = RESAMPLES,
    seed: int = 0,
    level: float = 0.95,
) -> CriticEfficiency | None:
    """`CriticEfficiency` of ``method`` on the items it, ``floor`` and ``ceiling`` all share.

    ``None`` when one of the three has no records or they share no item.
    """
    _check(resamples, level)
    records = list(records)
    outcomes = [_outcomes(records, m) for m in (method, floor, ceiling)]
    shared = sorted(set.intersection(*(set(o) for o in outcomes)))
    if not shared:
        return None
    columns = np.array([[o[i] for o in outcomes] for i in shared], dtype=float)
    right_m, right_f, right_c = (int(x) for x in columns.sum(axis=0))
    n = len(shared)
    acc_m, acc_f, acc_c = right_m / n, right_f / n, right_c / n
    gap = acc_c - acc_f
    base = {
        "method": method,
        "floor": floor,
        "ceiling": ceiling,
        "n": n,
        "method_accuracy": acc_m,
        "floor_accuracy": acc_f,
        "ceiling_accuracy": acc_c,
        "gap": gap,
        "level": level,
    }
    if right_c <= right_f:
        note = f"{ceiling} does not beat {floor} on these items, so efficiency is undefined"
        return CriticEfficiency(**base, efficiency=None, note=note)
    means = _bootstrap_means(columns, resamples, seed)
    gaps = means[:, 2] - means[:, 1]
    kept = gaps > 0
    low = high = None
    if kept.any():
        low, high = _interval((means[kept, 0] - means[kept, 1]) / gaps[kept], level)
    return CriticEfficiency(
        **base,
        efficiency=(right_m - right_f) / (right_c - right_f),  # from counts: exact ratios
        ci_low=low,
        ci_high=high,
        resamples=resamples,
        dropped=int((~kept).sum()),
        note=None if low is not None else "every resample had a gap <= 0; no interval",
    )
