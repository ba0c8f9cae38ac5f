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

``--graph-records`` adds what the graph needs from a head: the candidates a graph wrote on the
*dev* questions (a ``records.jsonl`` of ``drr eval`` or ``dev_sweep``; every thought of every
method, each once), judged by the gold-aware oracle's verdict (`oracle_verdict`: a wrong
equation or answer is wrong, a step without either neutral) — each head's AUROC against it on
first steps and on final answers, and how often its veto, at the thresholds it chose on the
dev rows, disagrees with the oracle's (the "veto error" of ``critic_quality``). The rollout
labels say whether the Reasoner *went on* to succeed; the graph needs to know whether a step is
*right*; this is where a head that fits the first can fail the second.

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

from drr_agent.evaluation.methods import oracle_verdict
from drr_agent.evaluation.records import EvalRecord
from drr_agent.offline.dm_eval import DEFAULT_PAIR_LIMIT, auroc, evaluate_scores
from drr_agent.offline.jsonl import RecordFile
from drr_agent.offline.pairs import _tagged_minimal_pairs, pair_accuracy
from drr_agent.offline.records import StepExample
from drr_agent.offline.run_folder import RunFolder
from drr_agent.offline.train import preamble_of
from drr_agent.quickstart import QuickstartPlan
from drr_agent.scorers.base import StepContext
from drr_agent.scorers.hf import HFScorer
from drr_agent.scorers.likelihood import (
    CLAIM_HEAD_INPUTS,
    DEFAULT_HEAD_INPUTS,
    EMBEDDED_VERIFIER_MODEL,
    VERIFIER_HEAD_INPUTS,
    LikelihoodHead,
    ReasonerLikelihood,
    head_inputs,
)
from drr_agent.tasks.splits import TaskSplit

HEADS = {
    "default": DEFAULT_HEAD_INPUTS,
    "everything (quickstart to 2685fac)": VERIFIER_HEAD_INPUTS,
    "claim log-prob + gap": ("claim_logprob", "claim_min_gap"),
    "claim prob": CLAIM_HEAD_INPUTS,
    "claim prob + gap": ("claim_prob", "claim_min_gap"),
    "claim prob by kind": ("claim_prob", "is_answer", "answer_claim_prob"),
}


def _graph_candidates(run: Path, records: Path) -> tuple[list[StepContext], np.ndarray, np.ndarray]:
    """(each distinct candidate the graphs of ``records`` wrote, in its context; the oracle's
    verdict, 1 / 0 / 0.5 neutral; whether it is a final answer). Refuses non-dev items."""
    folder = RunFolder(run)
    task = QuickstartPlan.load(folder.plan).task.load()
    dev = {item.id: item for item in TaskSplit.load(folder.split).items(task, "dev")}
    seen: dict[tuple, tuple[float, bool]] = {}
    for record in RecordFile(records, EvalRecord).read():
        if record.item_id not in dev:
            raise SystemExit(f"{records}: item {record.item_id} is not a dev question of {run}")
        thoughts = {t["id"]: t for t in (record.details or {}).get("thoughts", [])}
        for t in thoughts.values():
            steps, parent = [], t["parent"]
            while parent is not None:
                steps.append(thoughts[parent]["text"])
                parent = thoughts[parent]["parent"]
            key = (record.question, tuple(reversed(steps)), t["text"])
            verdict = oracle_verdict(dev[record.item_id], task, t["text"])
            seen[key] = (verdict, t["answer"] is not None)
    contexts = [StepContext(*key) for key in seen]
    verdicts, final = (np.array(column) for column in zip(*seen.values(), strict=True))
    return contexts, verdicts, final.astype(bool)


def _graph_metrics(
    p: np.ndarray, verdict: np.ndarray, final: np.ndarray, accept: float, answer: float
) -> dict:
    judged = verdict != 0.5
    passed = p >= np.where(final, answer, accept)
    wanted = verdict != 0.0  # the oracle passes right and neutral steps
    return {
        "graph_auroc_steps": auroc(p[~final & judged], verdict[~final & judged] == 1.0),
        "graph_auroc_answers": auroc(p[final], verdict[final] == 1.0),
        "veto_error_steps": float(np.mean(passed[~final] != wanted[~final])),
        "veto_error_answers": float(np.mean(passed[final] != wanted[final])),
    }


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
    graph_records: Path | None = None,
) -> dict:
    labels = RecordFile(RunFolder(run).labels, StepExample).read()
    all_train = [e for e in labels if e.split == "train"]
    dev = [e for e in labels if e.split == "dev"]
    tagged = _tagged_minimal_pairs(dev, DEFAULT_PAIR_LIMIT, 0)
    answer = np.array([is_answer for _, _, is_answer in tagged], dtype=bool)
    # the classifier alone, not the card's head
    classifier = HFScorer(dm, max_length=max_length, classifier_only=True)
    graph = _graph_candidates(run, graph_records) if graph_records else None
    rows = []
    for reading in readings:
        context, examples = _reading(reading)
        # as the recipe does: the examples' questions leave the head's rows, then the sample
        preamble, shown = preamble_of(all_train, examples, context, seed)
        train = [e for e in all_train if e.question not in shown]
        if train_rows is not None and len(train) > train_rows:
            train = random.Random(seed).sample(train, train_rows)
        parts = {
            "train": [e.context for e in train],
            "dev": [e.context for e in dev],
            "pairs": [c for right, wrong, _ in tagged for c in (right, wrong)],
        }
        if graph is not None:
            parts["graph"] = graph[0]
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
            if graph is not None:
                p = head.probabilities(x["graph"])
                rows[-1] |= _graph_metrics(
                    p, graph[1], graph[2], report.accept_threshold, report.answer_threshold
                )
    return {
        "run": str(run),
        "dm": str(dm),
        "model": model,
        "train_rows": train_rows or len(all_train),
        "dev_rows": len(dev),
        "sibling_pairs_n": evaluate_scores([0.5] * len(dev), dev).sibling_pairs,
        "minimal_pairs_n": len(tagged),
        "graph_candidates": None if graph is None else len(graph[0]),
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
    if result["graph_candidates"]:
        lines += [
            "",
            f"The graph's own {result['graph_candidates']} dev candidates against the oracle's "
            "verdict (veto error at the head's dev thresholds):",
            "",
            "| context | head | AUROC first steps | AUROC answers | veto error steps "
            "| veto error answers |",
            "|---|---|---:|---:|---:|---:|",
        ]
        for r in result["rows"]:
            lines.append(
                f"| {r['context']} | {r['head']} | {r['graph_auroc_steps']:.3f} "
                f"| {r['graph_auroc_answers']:.3f} | {r['veto_error_steps']:.3f} "
                f"| {r['veto_error_answers']:.3f} |"
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
    parser.add_argument(
        "--graph-records",
        type=Path,
        default=None,
        help="A records.jsonl of graphs run on the dev questions: judge the heads on them too.",
    )
    parser.add_argument("--out", type=Path, required=True, help="Where to write the JSON.")
    args = parser.parse_args()
    contexts = [c.strip() for c in args.contexts.split(",") if c.strip()]
    result = measure(
        args.run,
        args.dm,
        args.model,
        contexts,
        args.max_length,
        args.train_rows,
        args.seed,
        args.graph_records,
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(_markdown(result))


if __name__ == "__main__":
    main()
