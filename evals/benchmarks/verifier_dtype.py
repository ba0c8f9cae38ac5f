"""What the verifier's number format costs and changes: float32, bfloat16 and int8 side by side.

A likelihood DM (`drr_agent.scorers.likelihood`) spends most of its CPU time in the verifier
LM's forward passes. This benchmark reads the same dev steps of a quickstart run with the DM's
own verifier in each format, interleaved over ``--repeats`` rounds (so a noisy neighbour slows
every format alike), and reports per format: seconds, each feature's correlation with float32's
and the DM's dev metrics when its head reads that format's features (the head was fitted on
float32 or on `ReasonerLikelihood`'s ``"auto"`` choice; it is not refitted). int8 is PyTorch's
dynamic quantisation of every ``nn.Linear`` (the eager API, deprecated in favour of torchao,
which this project does not depend on).

    .venv/bin/python -m evals.benchmarks.verifier_dtype --run runs/quickstart \\
        --dm runs/quickstart/dm --rows 300 --out verifier-dtype.json
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from drr_agent.offline.dm_eval import evaluate_scores
from drr_agent.offline.jsonl import RecordFile
from drr_agent.offline.records import StepExample
from drr_agent.offline.run_folder import RunFolder
from drr_agent.scorers.likelihood import (
    LIKELIHOOD_FEATURES,
    LikelihoodScorer,
    head_inputs,
    lookahead_features,
)
from drr_agent.scorers.loading import load_dm

FORMATS = ("float32", "bfloat16", "int8")


def _variants(full: Any) -> dict[str, Any]:
    """The verifier in each format, all from the float32 weights (``full``, as loaded)."""
    import torch

    return {
        "float32": full,
        "bfloat16": copy.deepcopy(full).to(torch.bfloat16),
        "int8": torch.ao.quantization.quantize_dynamic(
            copy.deepcopy(full), {torch.nn.Linear}, dtype=torch.qint8
        ),
    }


def measure(run: Path, dm: Path, rows: int, repeats: int) -> dict:
    labels = RecordFile(RunFolder(run).labels, StepExample).read()
    dev = [e for e in labels if e.split == "dev"][:rows]
    if not dev:
        raise SystemExit(f"{run}: no dev rows in its labels")
    # float32 as loaded: "auto" would load bfloat16 here, and casting that back up is not
    # the float32 baseline (its weights would carry bfloat16's rounding)
    scorer = load_dm(dm, likelihood_dtype="float32")
    if not isinstance(scorer, LikelihoodScorer):
        raise SystemExit(f"{dm}: not a likelihood DM (its card has no likelihood head)")
    likelihood = scorer.likelihood
    items = [e.context for e in dev]
    base = scorer.classifier.score(items) if scorer.head.reads_classifier else None
    answers = None
    if scorer.lookahead is not None:  # the Reasoner's answers do not depend on the format
        scorer.lookahead.remember_recorded(dev)
        answers = scorer.lookahead.answers(items)
    variants = _variants(likelihood.lm)
    seconds: dict[str, list[float]] = {name: [] for name in FORMATS}
    features: dict[str, np.ndarray] = {}
    looks: dict[str, np.ndarray | None] = {}
    for _ in range(repeats):
        for name in FORMATS:
            likelihood.lm = variants[name]
            start = time.perf_counter()
            features[name] = likelihood.features(items, claims=scorer.head.reads_claims)
            if answers is not None:
                looks[name] = lookahead_features(likelihood, items, answers)
            seconds[name].append(time.perf_counter() - start)
    result: dict = {"run": str(run), "dm": str(dm), "rows": len(dev), "repeats": repeats}
    for name in FORMATS:
        x = head_inputs(features[name], base, looks.get(name))
        probabilities = scorer.head.probabilities(x)
        report = evaluate_scores(probabilities.tolist(), dev)
        correlation = {
            feature: float(np.corrcoef(features[name][:, j], features["float32"][:, j])[0, 1])
            for j, feature in enumerate(LIKELIHOOD_FEATURES)
            if np.nanstd(features["float32"][:, j]) > 0
        }
        result[name] = {
            "seconds": seconds[name],
            "speedup_vs_float32": float(np.mean(seconds["float32"]) / np.mean(seconds[name])),
            "min_feature_correlation": min(correlation.values()),
            "feature_correlation": correlation,
            "auroc": report.auroc,
            "ece": report.ece,
            "sibling_pairs": report.sibling_pairs,
            "sibling_pair_accuracy": report.sibling_pair_accuracy,
        }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True, help="a quickstart run folder")
    parser.add_argument("--dm", type=Path, required=True, help="a likelihood DM folder")
    parser.add_argument("--rows", type=int, default=300, help="dev rows read per format")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("verifier-dtype.json"))
    args = parser.parse_args()
    result = measure(args.run, args.dm, args.rows, args.repeats)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    for name in FORMATS:
        r = result[name]
        print(
            f"{name:9} {np.mean(r['seconds']):7.1f} s  ×{r['speedup_vs_float32']:.2f}  "
            f"min corr {r['min_feature_correlation']:.4f}  AUROC {r['auroc']:.4f}  "
            f"ECE {r['ece']:.3f}  sibling {r['sibling_pair_accuracy']}"
        )


if __name__ == "__main__":
    main()
