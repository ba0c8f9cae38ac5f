"""Repeats over seeds: how much a method's accuracy moves when only its sampling seed does.

A single run's Wilson interval covers item sampling, not the Reasoner's own randomness: two
runs of the same stochastic method (sampled candidates, self-consistency's votes, the
llama.cpp batch order) on the same items differ by several points on CPU. ``drr eval --seeds
0,1,2`` runs the whole evaluation once per seed into ``<out>/seed-<s>/`` and
`summarize_seeds` reports, per method and per paired difference, the accuracy of each seed
and their mean ± sample standard deviation (n − 1), so a difference smaller than its spread
is read as what it is.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from drr_agent.evaluation.summary import EvalSummary
from drr_agent.offline.jsonl import write_json

SEEDS_JSON = "seeds.json"
SEEDS_MD = "seeds.md"


class SeedSpread(BaseModel):
    """One quantity (a method's accuracy, or a paired difference) over the seeds."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    values: list[float]
    mean: float
    sd: float | None  # None with a single seed


class SeedsSummary(BaseModel):
    """Accuracy and paired differences of every method, seed by seed."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    seeds: list[int]
    items: int
    methods: list[SeedSpread]
    differences: list[SeedSpread]

    def to_markdown(self) -> str:
        def row(s: SeedSpread, signed: bool) -> str:
            sd = "-" if s.sd is None else f"{s.sd:.3f}"
            values = ", ".join(f"{v:+.3f}" if signed else f"{v:.3f}" for v in s.values)
            return f"| {s.name} | {s.mean:.3f} ± {sd} | {values} |"

        lines = [
            f"# Over seeds {', '.join(map(str, self.seeds))}: {self.items} items each",
            "",
            "| method / difference | mean ± sd | per seed |",
            "|---|---|---|",
            *(row(s, signed=False) for s in self.methods),
            *(row(s, signed=True) for s in self.differences),
            "",
            "sd is the sample standard deviation over seeds (the Reasoner's randomness); each "
            "seed's own paired interval is in its `seed-<s>/summary.md`.",
        ]
        return "\n".join(lines) + "\n"


def _spread(name: str, values: list[float]) -> SeedSpread:
    sd = statistics.stdev(values) if len(values) > 1 else None
    return SeedSpread(name=name, values=values, mean=statistics.fmean(values), sd=sd)


def summarize_seeds(summaries: Mapping[int, EvalSummary]) -> SeedsSummary:
    """The spread over seeds of each method's accuracy and of each paired difference that
    every seed's summary reports."""
    if not summaries:
        raise ValueError("no seeds to summarise")
    seeds = sorted(summaries)
    first = summaries[seeds[0]]
    methods = [
        _spread(row.method, [summaries[s].method(row.method).accuracy for s in seeds])
        for row in first.methods
    ]
    differences = []
    for comparison in first.comparisons:
        name = f"{comparison.method} − {comparison.baseline}"
        values = []
        for s in seeds:
            match = [
                c
                for c in summaries[s].comparisons
                if (c.method, c.baseline) == (comparison.method, comparison.baseline)
            ]
            if match:
                values.append(match[0].diff)
        if len(values) == len(seeds):
            differences.append(_spread(name, values))
    return SeedsSummary(seeds=seeds, items=first.items, methods=methods, differences=differences)


def write_seeds(summary: SeedsSummary, out_dir: str | Path) -> Path:
    """Write ``seeds.json`` and ``seeds.md``; return the Markdown path."""
    out = Path(out_dir)
    write_json(out / SEEDS_JSON, summary.model_dump(mode="json"))
    (out / SEEDS_MD).write_text(summary.to_markdown(), encoding="utf-8")
    return out / SEEDS_MD
