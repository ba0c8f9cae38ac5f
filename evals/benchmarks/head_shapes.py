"""Which head, on which labels and how many rows, makes the best critic of dev steps?

The likelihood head (`drr_agent.scorers.likelihood.LikelihoodHead`) turns the verifier's token
statistics and the classifier's logit into the DM's score. This benchmark reads a quickstart
run's train and dev steps once through the run's own DM (its classifier and verifier, as
`load_dm` loads them: the head is refitted here), then fits one head per combination of

- ``--hidden``: tanh units (0: the logistic regression of earlier rounds),
- ``--rows``: training rows (a seeded sample, as ``likelihood_rows`` takes; ``all``),
- ``--labels``: label kinds of the *same* steps — the run's own labels and any other
  labelling of its traces (``name=path``, e.g. four sampled answers per step from
  ``drr labels --kind answer --rollouts 4 --temperature 0.8 --max-tokens 64``) —

and reports the dev metrics of each head against every label kind (``evaluate_scores``:
AUROC, ECE, sibling pairs; minimal pairs need the verifier again and are left to ``drr
dm-eval``). Heads with a hidden layer are fitted from ``--seeds`` starts each, reported apart,
since one start is what a DM gets, and then as the mean of the starts' logits (an ensemble,
which is itself one head: its hidden layers side by side, the output weights divided by the
number of starts — does averaging starts help more than picking one?). Nothing here reads
the test split.

    .venv/bin/python -m evals.benchmarks.head_shapes --run runs/quickstart \\
        --labels r4=runs/r4/labels.jsonl --hidden 0,8 --rows 320,all \\
        --out runs/quickstart/head-shapes.json

Cost: the verifier reads each train and dev row once (~3 min for the quickstart's 1511 rows
in bfloat16 on 2 cores); the fits take seconds.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import numpy as np

from drr_agent.offline.dm_eval import evaluate_scores
from drr_agent.offline.jsonl import RecordFile
from drr_agent.offline.records import StepExample
from drr_agent.offline.run_folder import RunFolder
from drr_agent.scorers import load_dm
from drr_agent.scorers.likelihood import LikelihoodHead, LikelihoodScorer

METRICS = ("auroc", "auroc_non_final", "auroc_final", "ece", "brier", "sibling_pair_accuracy")


def _by_step(path: Path, split: str) -> dict[tuple[str, int, int], StepExample]:
    rows = RecordFile(path, StepExample).read()
    return {(e.item_id, e.sample_index, e.step_index): e for e in rows if e.split == split}


def _aligned(kinds: dict[str, Path], split: str) -> dict[str, list[StepExample]]:
    """Each label kind's rows of ``split``, in one order; only steps every kind labels."""
    tables = {name: _by_step(path, split) for name, path in kinds.items()}
    keys = sorted(set.intersection(*(set(t) for t in tables.values())))
    if not keys:
        raise SystemExit(f"no {split} step is labelled by every one of {sorted(kinds)}")
    return {name: [table[k] for k in keys] for name, table in tables.items()}


def _inputs(dm: LikelihoodScorer, rows: list[StepExample]) -> np.ndarray:
    """The head's inputs for ``rows``; a lookahead head takes the answers the labels recorded."""
    if dm.lookahead is not None:
        dm.lookahead.remember_recorded(rows)
    return dm.inputs([e.context for e in rows])


def measure(
    run: Path, kinds: dict[str, Path], hidden: list[int], rows: list[int | None], seeds: int
) -> dict:
    folder = RunFolder(run)
    dm = load_dm(folder.dm)
    if not isinstance(dm, LikelihoodScorer):
        raise SystemExit(f"{folder.dm}: not a likelihood DM (its card has no head)")
    features = list(dm.head.features)
    train, dev = _aligned(kinds, "train"), _aligned(kinds, "dev")
    first = next(iter(kinds))
    x_train, x_dev = _inputs(dm, train[first]), _inputs(dm, dev[first])
    result: dict = {"run": str(run), "labels": {k: str(v) for k, v in kinds.items()}, "heads": []}
    result |= {"train_rows": len(x_train), "dev_rows": len(x_dev), "features": features}
    for fit_on in kinds:
        for count in rows:
            take = list(range(len(x_train)))
            if count is not None and count < len(take):
                take = sorted(random.Random(0).sample(take, count))
            labels = [train[fit_on][i].label for i in take]
            for units in hidden:
                starts = []
                for seed in range(seeds if units else 1):
                    head = LikelihoodHead.fit(
                        x_train[take], labels, features=features, hidden=units, seed=seed
                    )
                    starts.append(head.probabilities(x_dev))
                    result["heads"].append(_row(fit_on, len(take), units, seed, starts[-1], dev))
                if len(starts) > 1:  # an ensemble: the starts' mean logit
                    p = np.clip(np.asarray(starts), 1e-12, 1 - 1e-12)
                    logits = np.log(p) - np.log1p(-p)
                    mean = 1.0 / (1.0 + np.exp(-logits.mean(axis=0)))
                    ensemble = f"mean of {len(starts)}"
                    result["heads"].append(_row(fit_on, len(take), units, ensemble, mean, dev))
    return result


def _row(
    fit_on: str,
    rows: int,
    hidden: int,
    seed: int | str,
    p: np.ndarray,
    dev: dict[str, list[StepExample]],
) -> dict:
    """One head's report: its dev probabilities ``p`` read against every label kind."""
    scores = p.tolist()
    against = {
        kind: {m: getattr(evaluate_scores(scores, dev[kind]), m) for m in METRICS} for kind in dev
    }
    return {"labels": fit_on, "rows": rows, "hidden": hidden, "seed": seed, "dev": against}


def _markdown(result: dict) -> str:
    kinds = list(result["labels"])
    head = "| fitted on | rows | hidden | seed | " + " | ".join(
        f"{k}: AUROC (steps / answers) | ECE | sibling" for k in kinds
    )
    lines = [
        f"heads refitted on {result['train_rows']} train rows of {result['run']}, "
        f"{result['dev_rows']} dev rows",
        "",
        head + " |",
        "|---|---:|---:|---:|" + "---|---:|---:|" * len(kinds),
    ]
    for h in result["heads"]:
        cells = []
        for k in kinds:
            d = h["dev"][k]
            cells += [
                f"{d['auroc']:.3f} ({d['auroc_non_final']:.3f} / {d['auroc_final']:.3f})",
                f"{d['ece']:.3f}",
                f"{d['sibling_pair_accuracy']:.3f}",
            ]
        lines.append(
            f"| {h['labels']} | {h['rows']} | {h['hidden']} | {h['seed']} | "
            + " | ".join(cells)
            + " |"
        )
    return "\n".join(lines)


def _ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", type=Path, required=True, help="a quickstart run folder")
    parser.add_argument(
        "--labels",
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="another labelling of the run's train and dev steps (repeatable)",
    )
    parser.add_argument("--hidden", type=_ints, default=[0, 8])
    parser.add_argument("--rows", default="320,all", help="comma-separated counts or 'all'")
    parser.add_argument("--seeds", type=int, default=3, help="starts per hidden-layer head")
    parser.add_argument("--out", type=Path, help="write the result as JSON here")
    args = parser.parse_args()
    kinds = {"run": RunFolder(args.run).labels}
    for spec in args.labels:
        name, sep, path = spec.partition("=")
        if not sep or not name or name in kinds:
            raise SystemExit(f"--labels {spec!r}: expected a new NAME=PATH")
        kinds[name] = Path(path)
    rows = [None if v == "all" else int(v) for v in args.rows.split(",")]
    result = measure(args.run, kinds, args.hidden, rows, args.seeds)
    print(_markdown(result))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
