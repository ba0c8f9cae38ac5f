"""Benchmark: the DM on MiniLM, or on the Reasoner's own SmolLM2 (full / LoRA / head).

Trains one DM per variant with `drr_agent.offline.train.train_dm` on the *same* labelled
steps — rows with ``split == "train"`` — with early stopping and thresholds on the rows with
``split == "dev"`` (passed as ``dev=``; no test rows are read), and reports for each, on those
dev rows, what `train_dm`'s own report measures through the reloaded, exported folder
(`HFScorer`): step AUROC, ECE, sibling-pair and minimal-pair accuracy; plus the wall time of
the `train_dm` call (and of its Trainer loop alone), and the in-process scoring latency of
the exported DM — ms per scored step at batch 1 and batch 8, with ``torch.set_num_threads(1)``
and ``(2)``, measured side by side in this run on the same dev contexts.

Variants (``--variants``):

- ``minilm-full``: all-MiniLM-L6-v2 (22.7 M), all weights — today's DM.
- ``smollm2-full``: SmolLM2-135M-Instruct (``base_model="embedded-smollm2"``), all weights.
- ``smollm2-lora``: the same with LoRA adapters on every linear layer (``tune="lora"``,
  r 16, alpha 32), merged on export.
- ``smollm2-head``: the same with a frozen backbone; only the 2 x 576 head trains
  (``tune="head"``).

Every variant gets the quickstart's settings (``max_length`` 96, 2 epochs) unless told
otherwise, and a learning rate for what it trains (``--learning-rates`` overrides). On a
busy 2-core CPU the SmolLM2 variants are slow, so ``--max-train`` / ``--max-dev`` keep a
seeded sample of whole *questions* (never single steps: sibling pairs stay together) until
that many rows; the sample is the same for every variant.

    .venv/bin/python -m evals.benchmarks.dm_backbones --labels runs/qs-a/labels.jsonl \\
        --out runs/backbones --seed 0

writes ``results.json`` and ``results.md`` to ``--out`` (DM folders are removed after they are
measured unless ``--keep-models``). The machine is shared: compare variants within one run.
Measured on a shared 2-core CPU (load ~4): ``--max-train 96 --max-dev 80 --epochs 1
--batch-size 8`` (105 train / 82 dev rows) runs all four variants in ~15 min; on all rows with
the quickstart's settings (``--epochs 2 --batch-size 32``) MiniLM takes ~1.2 min and the
SmolLM2 head ~5 min on idle cores, full and LoRA several times that.
"""

from __future__ import annotations

import argparse
import copy
import importlib.metadata
import json
import os
import platform
import random
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from drr_agent.offline.jsonl import RecordFile
from drr_agent.offline.records import StepExample
from drr_agent.offline.train import EMBEDDED_REASONER_BASE, TrainConfig, train_dm
from drr_agent.scorers import HFScorer
from drr_agent.tasks.splits import question_key
from evals.benchmarks.dm_timing import TrainerClock, scoring_latency, train_rates


@dataclass(frozen=True)
class Variant:
    base_model: str | None
    tune: str
    learning_rate: float
    label: str


VARIANTS: dict[str, Variant] = {
    # the quickstart's MiniLM learning rate
    "minilm-full": Variant(None, "full", 1e-4, "MiniLM-L6 (22.7M), full"),
    # usual ranges: full fine-tune of a 135M decoder ~5e-5; LoRA ~5e-4; a linear head ~1e-3+
    "smollm2-full": Variant(EMBEDDED_REASONER_BASE, "full", 5e-5, "SmolLM2-135M, full"),
    "smollm2-lora": Variant(EMBEDDED_REASONER_BASE, "lora", 5e-4, "SmolLM2-135M, LoRA r16"),
    "smollm2-head": Variant(EMBEDDED_REASONER_BASE, "head", 2e-3, "SmolLM2-135M, head only"),
}


# --------------------------------------------------------------------------- data


def sample_by_question(rows: Sequence[StepExample], max_rows: int, seed: int) -> list[StepExample]:
    """Whole questions in a seeded order until at least ``max_rows`` rows (0: all rows)."""
    if max_rows <= 0 or len(rows) <= max_rows:
        return list(rows)
    groups: dict[tuple[str, str], list[StepExample]] = {}
    for row in rows:
        groups.setdefault((row.task, question_key(row.question)), []).append(row)
    keys = sorted(groups)
    random.Random(seed).shuffle(keys)
    chosen: set[tuple[str, str]] = set()
    count = 0
    for key in keys:
        if count >= max_rows:
            break
        chosen.add(key)
        count += len(groups[key])
    return [r for r in rows if (r.task, question_key(r.question)) in chosen]


def _counts(rows: Sequence[StepExample]) -> dict[str, int]:
    good = sum(r.hard_label for r in rows)
    return {
        "rows": len(rows),
        "questions": len({(r.task, question_key(r.question)) for r in rows}),
        "good": good,
        "bad": len(rows) - good,
    }


# --------------------------------------------------------------------------- measurements


def _parameters(model: Any, config: TrainConfig) -> dict[str, int]:
    """Total parameters of the exported classifier and how many ``config.tune`` trains."""
    from drr_agent.offline.training.backbone import prepare_tuning as _prepare_tuning

    total = sum(p.numel() for p in model.parameters())
    if config.tune == "full":
        return {"total": total, "trainable": total}
    wrapped = _prepare_tuning(copy.deepcopy(model), config)
    trainable = sum(p.numel() for p in wrapped.parameters() if p.requires_grad)
    del wrapped
    return {"total": total, "trainable": trainable}


def _report_fields(report: Any) -> dict[str, Any]:
    if report is None:
        return {}
    keys = (
        "n",
        "auroc",
        "auroc_non_final",
        "auroc_final",
        "ece",
        "brier",
        "accuracy_at_threshold",
        "sibling_pairs",
        "sibling_pair_accuracy",
        "minimal_pairs",
        "minimal_pair_accuracy",
        "minimal_pairs_final",
        "minimal_pair_accuracy_final",
        "accept_threshold",
        "answer_threshold",
    )
    return {k: getattr(report, k) for k in keys}


def run_variant(
    name: str,
    variant: Variant,
    train: Sequence[StepExample],
    dev: Sequence[StepExample],
    args: argparse.Namespace,
    learning_rate: float,
) -> dict[str, Any]:
    out_dir = args.out / "models" / name
    config = TrainConfig(
        base_model=variant.base_model,
        output_dir=out_dir,
        overwrite_output_dir=True,
        name=f"bench-{name}",
        tune=variant.tune,  # type: ignore[arg-type]
        epochs=args.epochs,
        learning_rate=learning_rate,
        batch_size=args.batch_size,
        max_length=args.max_length,
        early_stopping_patience=args.patience,
        seed=args.seed,
    )
    load_before = os.getloadavg()[0]
    clock = TrainerClock()
    try:
        result = train_dm(train, config, progress=args.progress, dev=dev)
    finally:
        clock.close()
    scorer = HFScorer(result.output_dir, batch_size=8)
    rng = random.Random(args.seed)
    contexts = [e.context for e in rng.sample(list(dev), min(args.latency_steps, len(dev)))]
    latency = scoring_latency(scorer, contexts, args.threads, args.latency_repeats)
    params = _parameters(scorer.model, config)
    del scorer
    if not args.keep_models:
        shutil.rmtree(out_dir, ignore_errors=True)
    return {
        "variant": name,
        "label": variant.label,
        "base_model": result.base_model,
        "tune": variant.tune,
        "learning_rate": learning_rate,
        "parameters": params,
        "epochs_run": result.epochs_run,
        "stopped_early": result.stopped_early,
        "best_metric": result.best_metric,
        "train_wall_s": result.wall_time_s,
        "trainer_loop_s": clock.seconds["train"],
        "trainer_evaluate_s": clock.seconds["evaluate"],
        "trainer_evaluations": clock.evaluations,
        "rates": train_rates(clock, result, len(train), len(dev), args.epochs),
        "dev": _report_fields(result.eval_report),
        "latency": latency,
        "load_avg_1min": {"before": load_before, "after": os.getloadavg()[0]},
        "notes": result.notes,
    }


# --------------------------------------------------------------------------- output


def _fmt(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def to_markdown(results: dict[str, Any]) -> str:
    s = results["settings"]
    threads = [str(t) for t in s["threads"]]
    head = (
        "| variant | dev AUROC | ECE | sibling-pair acc | minimal-pair acc | train time | "
        + " | ".join(f"ms/step b1 (t{t}) | ms/step b8 (t{t})" for t in threads)
        + " |"
    )
    lines = [
        "# DM backbones",
        "",
        f"Labels `{s['labels']}`; seed {s['seed']}; {results['created']}.",
        "",
        f"- train rows: {s['train']['rows']} from {s['train']['questions']} questions "
        f"({s['train']['good']} good / {s['train']['bad']} bad) of {s['train_available']} "
        f"train rows (`--max-train {s['max_train']}`, whole questions)",
        f"- dev rows: {s['dev']['rows']} from {s['dev']['questions']} questions "
        f"({s['dev']['good']} good / {s['dev']['bad']} bad) of {s['dev_available']} dev rows "
        f"(`--max-dev {s['max_dev']}`); early stopping, thresholds and every metric below",
        f"- epochs {s['epochs']:g}, batch {s['batch_size']}, max_length {s['max_length']}, "
        f"patience {s['patience']}; learning rates: "
        + ", ".join(f"{k} {v:g}" for k, v in s["learning_rates"].items()),
        f"- machine: {s['cpus']} CPUs, torch {s['torch']}, transformers {s['transformers']}; "
        f"load average at start {s['load_avg_start']:.2f} (shared machine: compare within "
        "this run)",
        "- train time: the whole `train_dm` call (load, train with per-epoch dev evaluation, "
        "export, dev scoring incl. minimal pairs, reload check); the Trainer loop alone in "
        "the second table. ms/step: median in-process `HFScorer.score` time per step "
        f"(tokenisation included) over {s['latency_steps']} dev contexts, batch 1 and batch 8 "
        "interleaved, with torch.set_num_threads(t)",
        "",
        head,
        "|" + "---|" * (6 + 2 * len(threads)),
    ]
    for r in results["variants"]:
        d = r["dev"]
        lat = r["latency"]
        lines.append(
            f"| {r['label']} | {_fmt(d.get('auroc'))} | {_fmt(d.get('ece'))} | "
            f"{_fmt(d.get('sibling_pair_accuracy'))} ({d.get('sibling_pairs', 0)}) | "
            f"{_fmt(d.get('minimal_pair_accuracy'))} ({d.get('minimal_pairs', 0)}) | "
            f"{r['train_wall_s'] / 60:.1f} min | "
            + " | ".join(f"{lat[t]['b1_ms']:.1f} | {lat[t]['b8_ms']:.1f}" for t in threads)
            + " |"
        )
    lines += [
        "",
        "| variant | trainable / total params | lr | epochs run | Trainer loop (of it "
        "dev eval) | s / train row / epoch | s / dev context (Trainer eval) | "
        "AUROC non-final / final | minimal-pair acc (answers) | load avg before → after |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results["variants"]:
        d, p, rate = r["dev"], r["parameters"], r["rates"]
        lines.append(
            f"| {r['label']} | {p['trainable'] / 1e6:.3g}M / {p['total'] / 1e6:.4g}M | "
            f"{r['learning_rate']:g} | {r['epochs_run']:g} | {r['trainer_loop_s'] / 60:.1f} min "
            f"({r['trainer_evaluate_s'] / 60:.1f}) | {rate['train_s_per_row_epoch']:.2f} | "
            f"{_fmt(rate['eval_s_per_context'], 3)} | "
            f"{_fmt(d.get('auroc_non_final'))} / {_fmt(d.get('auroc_final'))} | "
            f"{_fmt(d.get('minimal_pair_accuracy_final'))} ({d.get('minimal_pairs_final', 0)}) | "
            f"{r['load_avg_1min']['before']:.2f} → {r['load_avg_1min']['after']:.2f} |"
        )
    lines += [
        "",
        f"Rates are at batch {s['batch_size']} under this run's load (1-min load average in the "
        "last column; 2 cores): indicative, not a forecast for other sizes.",
    ]
    if results.get("smollm2_export_s") is not None:
        lines += [
            "",
            f"SmolLM2 base folder (de-quantised GGUF, cached): {results['smollm2_export_s']:.1f} s "
            "before the first SmolLM2 variant, not counted in its train time.",
        ]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- main


def _learning_rates(text: str) -> dict[str, float]:
    chosen: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, value = part.partition("=")
        if name not in VARIANTS or not value:
            raise SystemExit(
                f"--learning-rates: expected VARIANT=LR with a variant of {list(VARIANTS)}"
            )
        chosen[name] = float(value)
    return chosen


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--labels", type=Path, required=True, help="Labelled steps (drr labels).")
    parser.add_argument("--out", type=Path, required=True, help="Folder for results.json/.md.")
    parser.add_argument("--seed", type=int, default=0, help="Seeds samples, training, pairs.")
    parser.add_argument(
        "--variants", default=",".join(VARIANTS), help=f"Comma list of {', '.join(VARIANTS)}."
    )
    parser.add_argument(
        "--max-train", type=int, default=0, help="Train rows kept (whole questions); 0 = all."
    )
    parser.add_argument(
        "--max-dev", type=int, default=0, help="Dev rows kept (whole questions); 0 = all."
    )
    parser.add_argument("--epochs", type=float, default=2.0)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=96)
    parser.add_argument("--patience", type=int, default=2, help="Early-stopping patience.")
    parser.add_argument(
        "--learning-rates", default="", help="Overrides, e.g. smollm2-head=1e-3,minilm-full=5e-5."
    )
    parser.add_argument("--threads", default="1,2", help="torch thread counts for the latency.")
    parser.add_argument("--latency-steps", type=int, default=16, help="Dev contexts timed.")
    parser.add_argument("--latency-repeats", type=int, default=2)
    parser.add_argument("--keep-models", action="store_true", help="Keep the trained DMs.")
    parser.add_argument("--progress", action="store_true", help="Trainer progress and logs.")
    args = parser.parse_args(argv)
    args.threads = [int(t) for t in args.threads.split(",") if t.strip()]
    names = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        raise SystemExit(f"unknown variants {unknown}; choose from {list(VARIANTS)}")
    overrides = _learning_rates(args.learning_rates)
    if args.latency_steps < 8:
        raise SystemExit("--latency-steps must be at least 8 (one batch of 8)")

    import torch
    import transformers

    rows = RecordFile(args.labels, StepExample).read()
    train_all = [r for r in rows if r.split == "train"]
    dev_all = [r for r in rows if r.split == "dev"]  # test rows are never read
    if not train_all or not dev_all:
        raise SystemExit(f"{args.labels}: needs rows of split 'train' and 'dev'")
    train = sample_by_question(train_all, args.max_train, args.seed)
    dev = sample_by_question(dev_all, args.max_dev, args.seed)
    args.out.mkdir(parents=True, exist_ok=True)

    export_s = None
    if any(VARIANTS[n].base_model == EMBEDDED_REASONER_BASE for n in names):
        from drr_agent.offline.training.backbone import resolve_base as _resolve_base

        started = time.perf_counter()
        _resolve_base(TrainConfig(base_model=EMBEDDED_REASONER_BASE))  # export once (cached)
        export_s = time.perf_counter() - started

    results: dict[str, Any] = {
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "settings": {
            "labels": str(args.labels),
            "seed": args.seed,
            "variants": names,
            "max_train": args.max_train,
            "max_dev": args.max_dev,
            "train_available": len(train_all),
            "dev_available": len(dev_all),
            "train": _counts(train),
            "dev": _counts(dev),
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "max_length": args.max_length,
            "patience": args.patience,
            "learning_rates": {n: overrides.get(n, VARIANTS[n].learning_rate) for n in names},
            "threads": args.threads,
            "latency_steps": args.latency_steps,
            "latency_repeats": args.latency_repeats,
            "cpus": os.cpu_count(),
            "default_torch_threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "peft": _version("peft"),
            "python": platform.python_version(),
            "load_avg_start": os.getloadavg()[0],
        },
        "smollm2_export_s": export_s,
        "variants": [],
    }
    for name in names:
        lr = results["settings"]["learning_rates"][name]
        print(
            f"[dm_backbones] {name}: training on {len(train)} rows, dev {len(dev)} rows", flush=True
        )
        record = run_variant(name, VARIANTS[name], train, dev, args, lr)
        results["variants"].append(record)
        d = record["dev"]
        print(
            f"[dm_backbones] {name}: AUROC {_fmt(d.get('auroc'))}, minimal pairs "
            f"{_fmt(d.get('minimal_pair_accuracy'))}, {record['train_wall_s']:.0f} s",
            flush=True,
        )
        # written after every variant, so an interrupted run keeps what it measured
        (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
        (args.out / "results.md").write_text(to_markdown(results))
    if not args.keep_models:
        shutil.rmtree(args.out / "models", ignore_errors=True)
    print(to_markdown(results))
    return results


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


if __name__ == "__main__":
    main()
