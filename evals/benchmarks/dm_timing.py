"""What training and scoring a DM costs in time: a clock around ``transformers.Trainer`` for
one `train_dm` call, the split of that call's wall time it allows, and the in-process scoring
latency of an exported DM per batch size and torch thread count (see
`evals.benchmarks.dm_backbones`)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from typing import Any

from drr_agent.scorers import HFScorer, StepContext


class TrainerClock:
    """Times ``transformers.Trainer.train`` (the training loop with its per-epoch dev
    evaluations and best-checkpoint saves), ``Trainer.evaluate`` (those evaluations) and the
    checkpoint saves and best-model reload inside it, by wrapping them for the duration of one
    `train_dm` call, so the report can split its wall time into optimisation, evaluation and
    fixed costs. The library is not changed."""

    def __init__(self) -> None:
        from transformers import Trainer

        self.seconds: dict[str, float] = dict.fromkeys(
            ("train", "evaluate", "_save_checkpoint", "_load_best_model"), 0.0
        )
        self.evaluations = 0
        originals = {name: getattr(Trainer, name) for name in self.seconds}
        clock = self

        def wrap(name: str) -> Any:
            original = originals[name]

            def timed(trainer: Any, *args: Any, **kwargs: Any) -> Any:
                started = time.perf_counter()
                try:
                    return original(trainer, *args, **kwargs)
                finally:
                    clock.seconds[name] += time.perf_counter() - started
                    clock.evaluations += name == "evaluate"

            return timed

        for name in originals:
            setattr(Trainer, name, wrap(name))
        self._originals = originals
        self._trainer = Trainer

    def close(self) -> None:
        for name, original in self._originals.items():
            setattr(self._trainer, name, original)


def train_rates(clock: TrainerClock, result: Any, n_train: int, n_dev: int, epochs: float) -> dict:
    """Seconds per train row and epoch (optimisation only, this batch size), per dev context
    scored by Trainer's evaluation, and the rest of `train_dm` (loading, checkpoints, export,
    reload). Indicative only: small runs carry warm-up costs, and the machine's load varies —
    they do not scale reliably to other sizes (measured: MiniLM's rate here predicts a
    full-data time several times the quickstart's real one)."""
    checkpoints = clock.seconds["_save_checkpoint"] + clock.seconds["_load_best_model"]
    optimise = max(clock.seconds["train"] - clock.seconds["evaluate"] - checkpoints, 0.0)
    evaluated = n_dev * clock.evaluations
    report = result.eval_report
    final_contexts = n_dev + 2 * (report.minimal_pairs if report is not None else 0)
    eval_rate = clock.seconds["evaluate"] / evaluated if evaluated else None
    final_scoring = final_contexts * eval_rate if eval_rate else 0.0
    return {
        "train_s_per_row_epoch": optimise / (n_train * max(result.epochs_run, 1e-9)),
        "eval_s_per_context": eval_rate,
        "minimal_pairs_per_dev_row": (report.minimal_pairs / n_dev) if report else 0.0,
        "checkpoint_s": checkpoints,
        "other_s": max(
            result.wall_time_s - clock.seconds["train"] - final_scoring + checkpoints, 0.0
        ),
    }


def scoring_latency(
    scorer: HFScorer, contexts: Sequence[StepContext], threads: Sequence[int], repeats: int
) -> dict[str, dict[str, float]]:
    """ms per scored step at batch 1 and batch 8 for each torch thread count, interleaved."""
    import torch

    before = torch.get_num_threads()
    out: dict[str, dict[str, float]] = {}
    batch8 = [list(contexts[i : i + 8]) for i in range(0, len(contexts) - 7, 8)]
    try:
        for n in threads:
            torch.set_num_threads(n)
            scorer.score(list(contexts[:8]))  # warm-up: allocations, oneDNN kernels
            scorer.score([contexts[0]])
            one: list[float] = []
            eight: list[float] = []
            for r in range(repeats):
                for i, chunk in enumerate(batch8):
                    started = time.perf_counter()
                    scorer.score(chunk)
                    eight.append((time.perf_counter() - started) / len(chunk))
                    item = contexts[(r * len(batch8) + i) % len(contexts)]
                    started = time.perf_counter()
                    scorer.score([item])
                    one.append(time.perf_counter() - started)
            out[str(n)] = {
                "b1_ms": 1000 * statistics.median(one),
                "b8_ms": 1000 * statistics.median(eight),
                "calls_b1": len(one),
                "calls_b8": len(eight),
            }
    finally:
        torch.set_num_threads(before)
    return out
