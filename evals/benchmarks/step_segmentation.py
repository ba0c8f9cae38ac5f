"""How do different step formats cut a Reasoner's whole traces into steps?

The graph's step budget (``max_steps``) counts steps, and the DM judges one step at a time, so
the cut matters before any critic is involved: cut by lines, an instruct model's LaTeX display
(``\\[``, the formula, ``\\]``) is three "steps" and a heading is one, and eight lines end a
GSM8K solution halfway. This benchmark reads whole traces (``drr traces`` records, or the
``cot`` records of a ``drr eval`` run: their steps joined as the model wrote them, a blank line
apart) and reports, per format: steps per trace (mean, 90th percentile, share over a step
budget), and the share of steps that cannot stand alone — a bare display delimiter, a heading
or lead-in ending with a colon, a step under 24 characters.

Choose a format's settings on **dev** traces only:

    .venv/bin/python -m evals.benchmarks.step_segmentation \\
        --records runs/gsm8k-dev/records.jsonl --budget 10

Cost: seconds (no model runs).
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from drr_agent.steps import BLOCK_STEPS, StepFormat

_BARE = re.compile(r"^(?:\\\[|\\\]|\$\$|```\w*)$")
_LEAD_IN = re.compile(r"^(?:#{1,6}\s.*|\*\*[^*]+\*\*:?|.*:)$")

FORMATS: dict[str, StepFormat] = {
    "lines": StepFormat(),
    "paragraphs": StepFormat(separator="\n\n", strip_numbering=False),
    **{
        f"blocks(min {n})": BLOCK_STEPS.model_copy(update={"min_step_chars": n})
        for n in (0, 24, 48)
    },
}
"""The formats compared: lines (SmolLM2's), bare paragraphs, and `BLOCK_STEPS` with the
minimum step length that joins a short piece to the next."""


def _texts(path: Path) -> list[str]:
    """Whole trace texts from trace records (``text``) or ``cot`` eval records (steps)."""
    texts = []
    for line in path.read_text().splitlines():
        row = json.loads(line)
        if isinstance(row.get("text"), str):
            texts.append(row["text"])
        elif row.get("method") == "cot" and row.get("details", {}).get("steps"):
            texts.append("\n\n".join(row["details"]["steps"]))
    return texts


def _quantile(values: list[int], q: float) -> int:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0


def measure(texts: list[str], fmt: StepFormat, budget: int) -> dict[str, float]:
    """Steps per trace and the share of steps that cannot stand alone, under ``fmt``."""
    counts, steps = [], []
    for text in texts:
        cut = fmt.split(text)
        counts.append(len(cut))
        steps.extend(cut)
    n = max(1, len(steps))
    last_lines = [s.strip().splitlines()[-1].strip() for s in steps]
    return {
        "traces": len(texts),
        "steps_mean": sum(counts) / max(1, len(counts)),
        "steps_p90": _quantile(counts, 0.9),
        "over_budget": sum(c > budget for c in counts) / max(1, len(counts)),
        "bare_display": sum(bool(_BARE.match(s.strip())) for s in steps) / n,
        "ends_in_lead_in": sum(bool(_LEAD_IN.match(last)) for last in last_lines) / n,
        "under_24_chars": sum(len(s) < 24 for s in steps) / n,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=Path, required=True, action="append")
    parser.add_argument("--budget", type=int, default=10, help="the graph's max_steps")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    texts = [t for path in args.records for t in _texts(path)]
    if not texts:
        raise SystemExit(f"no traces in {', '.join(map(str, args.records))}")
    rows = {name: measure(texts, fmt, args.budget) for name, fmt in FORMATS.items()}
    header = f"{'format':<16}" + "".join(f"{k:>16}" for k in next(iter(rows.values())))
    print(header)
    for name, row in rows.items():
        print(f"{name:<16}" + "".join(f"{v:>16.3g}" for v in row.values()))
    if args.out:
        args.out.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
