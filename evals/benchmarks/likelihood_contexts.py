"""Which reading of a step makes the verifier's likelihood head the best critic, on dev?

The likelihood head (`drr_agent.scorers.likelihood`) reads token statistics of each step under a
causal LM. What the LM reads the step *after* matters: in the ``plain`` context a wrong answer
that repeats a wrong accepted step follows from that step, and the LM finds it likely; in the
``question`` context it is read against the problem alone. This benchmark computes the features
of a quickstart run's train and dev steps (and the dev minimal pairs) once per context, takes
the classifier's scores from a trained DM folder (its classifier only: the head is refitted
here), fits one head per context and statistics set on *all* train rows, and reports the dev
metrics side by side. Nothing here touches the test split; the choice it informs (the context
and the head's statistics) is made on dev.

    .venv/bin/python -m evals.benchmarks.likelihood_contexts --run runs/quickstart \\
        --dm runs/qwen-dm --contexts plain,question --out runs/quickstart/likelihood-contexts.json

``--contexts question,question+8`` compares the question context read alone and after 8 worked
examples (right steps of training questions, `drr_agent.offline.train.preamble_of`; their
questions leave the head's rows, as in ``drr train --likelihood-examples``); ``--train-rows
320`` fits each head on a seeded sample of train rows, as the recipe does.

Cost: each context reads every train and dev row once (~0.5-0.6 s a row for the embedded
verifier on 2 cores: ~25 min for the quickstart's 1019 + 492 rows and 268 pairs).
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import numpy as np

from drr_agent.offline.dm_eval import DEFAULT_PAIR_LIMIT, evaluate_scores
from drr_agent.offline.jsonl import RecordFile
from drr_agent.offline.pairs import _tagged_minimal_pairs, pair_accuracy
from drr_agent.offline.records import StepExample
from drr_agent.offline.run_folder import RunFolder
from drr_agent.offline.train import preamble_of
from drr_agent.scorers.base import StepContext
from drr_agent.scorers.hf import HFScorer
from drr_agent.scorers.likelihood import (
    DEFAULT_HEAD_FEATURES,
    EMBEDDED_VERIFIER_MODEL,
    LIKELIHOOD_FEATURES,
    LikelihoodHead,
    ReasonerLikelihood,
    head_inputs,
)

HEADS = {
    "default": DEFAULT_HEAD_FEATURES,
    "default + claim": LIKELIHOOD_FEATURES,
}


def _contexts(examples: list[StepExample]) -> list[StepContext]:
    return [StepContext(e.question, tuple(e.previous), e.step) for e in examples]


def _reading(name: str) -> tuple[str, int]:
    """``"question+8"`` → the question context after 8 worked examples."""
    context, _, examples = name.partition("+")
    return context, int(examples or 0)


def measure(
    run: Path,
    dm: Path,
    model: str,
    readings: list[str],
    max_length: int,
    train_rows: int | None = None,
    seed: int = 0,
) -> dict:
    labels = RecordFile(RunFolder(run).labels, StepExample).read()
    all_train = [e for e in labels if e.split == "train"]
    dev = [e for e in labels if e.split == "dev"]
    tagged = _tagged_minimal_pairs(dev, DEFAULT_PAIR_LIMIT, 0)
    answer = np.array([is_answer for _, _, is_answer in tagged], dtype=bool)
    classifier = HFScorer(dm, max_length=max_length)  # the classifier alone, not the card's head
    rows = []
    for reading in readings:
        context, examples = _reading(reading)
        # as the recipe does: the examples' questions leave the head's rows, then the sample
        preamble, shown = preamble_of(all_train, examples, context, seed)
        train = [e for e in all_train if e.question not in shown]
        if train_rows is not None and len(train) > train_rows:
            train = random.Random(seed).sample(train, train_rows)
        parts = {
            "train": _contexts(train),
            "dev": _contexts(dev),
            "pairs": [c for right, wrong, _ in tagged for c in (right, wrong)],
        }
        likelihood = ReasonerLikelihood(model, context=context, preamble=preamble)
        started = time.perf_counter()
        x = {
            n: head_inputs(likelihood.features(items), classifier.score(items))
            for n, items in parts.items()
        }
        seconds = time.perf_counter() - started
        for head_name, features in HEADS.items():
            head = LikelihoodHead.fit(
                x["train"], [e.label for e in train], features=features, model=model
            )
            report = evaluate_scores(head.probabilities(x["dev"]).tolist(), dev)
            pairs = head.probabilities(x["pairs"])
            right, wrong = pairs[0::2], pairs[1::2]
            rows.append(
                {
                    "context": reading,
                    "head": head_name,
                    "train_rows": len(train),
                    "dev_auroc": report.auroc,
                    "dev_auroc_final": report.auroc_final,
                    "dev_ece": report.ece,
                    "sibling_pairs": report.sibling_pair_accuracy,
                    "minimal_pairs": pair_accuracy(right, wrong),
                    "minimal_pairs_final": pair_accuracy(right[answer], wrong[answer]),
                    "seconds_per_row": seconds / sum(map(len, parts.values())),
                }
            )
    return {
        "run": str(run),
        "dm": str(dm),
        "model": model,
        "train_rows": train_rows or len(all_train),
        "dev_rows": len(dev),
        "sibling_pairs_n": evaluate_scores([0.5] * len(dev), dev).sibling_pairs,
        "minimal_pairs_n": len(tagged),
        "rows": rows,
    }


def _markdown(result: dict) -> str:
    lines = [
        f"Dev steps of {result['run']} ({result['dev_rows']}; heads fitted on "
        f"{result['train_rows']} train rows; {result['sibling_pairs_n']} sibling pairs, "
        f"{result['minimal_pairs_n']} minimal pairs), likelihood model {result['model']}",
        "",
        "| context | head | AUROC (answers) | ECE | sibling pairs | minimal pairs (answers) "
        "| s / row |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in result["rows"]:
        lines.append(
            f"| {r['context']} | {r['head']} | {r['dev_auroc']:.3f} ({r['dev_auroc_final']:.3f}) "
            f"| {r['dev_ece']:.3f} | {r['sibling_pairs']:.3f} | {r['minimal_pairs']:.3f} "
            f"({r['minimal_pairs_final']:.3f}) | {r['seconds_per_row']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", type=Path, required=True, help="A quickstart run folder.")
    parser.add_argument("--dm", type=Path, required=True, help="A DM folder (its classifier).")
    parser.add_argument("--model", default=EMBEDDED_VERIFIER_MODEL)
    parser.add_argument(
        "--contexts",
        default="plain,question",
        help="Readings, comma-separated: a context, or context+K for K worked examples first.",
    )
    parser.add_argument(
        "--train-rows", type=int, default=None, help="Fit heads on a seeded sample (as the recipe)."
    )
    parser.add_argument("--seed", type=int, default=0, help="The examples' and rows' draw.")
    parser.add_argument("--max-length", type=int, default=96, help="The DM's training value.")
    parser.add_argument("--out", type=Path, required=True, help="Where to write the JSON.")
    args = parser.parse_args()
    contexts = [c.strip() for c in args.contexts.split(",") if c.strip()]
    result = measure(
        args.run, args.dm, args.model, contexts, args.max_length, args.train_rows, args.seed
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(_markdown(result))


if __name__ == "__main__":
    main()
