"""Choose the graph's search settings on dev: candidates per step K and the blend weight β.

Every choice is made on the split's *dev* questions and only then run once on *test*. This
script takes a finished quickstart folder (its plan, task, split, DM and self-critique
thresholds; ``--dm`` another DM), evaluates ``stepwise``, ``lp_rank``, ``drr`` and ``oracle``
on the dev questions for each (K, β) of a grid — the same library calls ``drr eval`` makes —
and writes one table with every setting's dev accuracy, its paired difference to ``stepwise``
and its tokens, plus the setting it picks: the highest ``drr`` dev accuracy, ties to the
cheaper setting.

    .venv/bin/python -m evals.benchmarks.dev_sweep --run runs/quickstart --candidates 1,3 \\
        --dm-weights 1,0.5 --out runs/quickstart/dev-sweep

Each setting is its own resumable ``drr eval`` folder under ``--out``.

``--part test`` runs the setting chosen on dev once on the *test* questions (one ``--candidates``,
one ``--dm-weights`` and at most one ``--thresholds`` pair: a grid there would be a choice made
on test), for the methods whose numbers the README reports beside the quickstart's:

    .venv/bin/python -m evals.benchmarks.dev_sweep --run runs/quickstart --part test \
        --candidates 3 --dm-weights 0.5 --out runs/quickstart/test-k3

``--retries listed`` asks for a retry with a prompt that lists the rejected steps
(`StepPrompt.list_rejected`) instead of the embedded Reasoner's default, a fresh sample of the
greedy step's own prompt (``plain``). ``--part train`` measures the DM-free methods
(``stepwise``, ``lp_rank``, ``oracle``) on the train questions too — choices about the search
itself (how retries are proposed) may use them, since nothing there depends on the DM; ``drr``
is refused there, its DM was trained on those questions.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path

from drr_agent.config import DRRConfig
from drr_agent.evaluation.methods import MethodContext, MethodSettings
from drr_agent.evaluation.runner import run_eval
from drr_agent.offline.run_folder import RunFolder
from drr_agent.quickstart import QuickstartPlan
from drr_agent.reasoners.embedded import EMBEDDED_PROMPT
from drr_agent.scorers import load_dm
from drr_agent.tasks.splits import TaskSplit

METHODS = ("stepwise", "lp_rank", "drr", "oracle")


def _floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x.strip()]


async def sweep(
    run: Path,
    out: Path,
    ks: list[int],
    betas: list[float],
    methods: tuple[str, ...] = METHODS,
    dm: Path | None = None,
    thresholds: list[tuple[float | None, float | None]] | None = None,
    part: str = "dev",
    list_rejected: bool = False,
    overrides: dict[str, object] | None = None,
) -> list[dict]:
    folder = RunFolder(run)
    plan = QuickstartPlan.load(folder.plan)
    task = plan.task.load()
    split = TaskSplit.load(folder.split)
    dev = split.subtask(task, part)
    critic = folder.critic_thresholds
    settings = MethodSettings(
        k=plan.k,
        temperature=plan.temperature,
        max_tokens=plan.max_tokens,
        seed=plan.seed,
        critic_thresholds=json.loads(critic.read_text()) if critic.is_file() else None,
    )
    reasoner = plan.step_reasoner(
        prompt=EMBEDDED_PROMPT.model_copy(update={"list_rejected": list_rejected})
    )
    scorer = load_dm(dm or folder.dm, num_threads=1)
    rows = []
    grid = [
        (k, beta, accept, answer)
        for k in ks
        for beta in (betas if k > 1 else [1.0])  # one candidate: nothing to rank
        for accept, answer in thresholds or [(None, None)]
    ]
    for k, beta, accept, answer in grid:
        update = {"candidates_per_step": k, "dm_weight": beta}
        folder = f"{part}-k{k}-b{beta:g}" if part != "dev" else f"k{k}-b{beta:g}"
        if list_rejected:
            folder += "-listed"
        if accept is not None or answer is not None:
            update |= {"accept_threshold": accept, "answer_threshold": answer}
            folder += f"-acc{accept}-ans{answer}"
        if overrides:
            update |= overrides
            folder += "-" + "-".join(f"{k}={v}" for k, v in sorted(overrides.items()))
        config = DRRConfig.model_validate(plan.graph.model_dump() | update)
        ctx = MethodContext(dev, reasoner, scorer, config, settings)
        summary = await run_eval(
            dev,
            dev.items,
            list(methods),
            ctx,
            out / folder,
            concurrency=plan.concurrency,
            progress=True,
            plots=False,
        )
        diffs = {(c.method, c.baseline): c for c in summary.comparisons}
        row = {
            "candidates": k,
            "dm_weight": beta,
            "accept_threshold": accept,
            "answer_threshold": answer,
            "n": summary.items,
        }
        for m in METHODS:
            row[m] = summary.method(m).accuracy if m in methods else None
            row[f"{m}_tokens"] = summary.method(m).mean_tokens if m in methods else None
        d = diffs.get(("drr", "stepwise"))
        row["drr_minus_stepwise"] = None if d is None else [d.diff, d.ci_low, d.ci_high]
        rows.append(row)
    return rows


def _pair(row: dict) -> str:
    if row["accept_threshold"] is None and row["answer_threshold"] is None:
        return "the DM's"
    return " / ".join(
        "DM's" if row[k] is None else f"{row[k]:g}"
        for k in ("accept_threshold", "answer_threshold")
    )


def _field(text: str) -> tuple[str, object]:
    """``"greedy_margin=0.05"`` → ("greedy_margin", "0.05"): pydantic converts the value."""
    name, sep, value = text.partition("=")
    if not sep or name not in DRRConfig.model_fields:
        raise SystemExit(f"--set {text!r}: expected FIELD=VALUE with a DRRConfig field")
    return name, value


def _thresholds(text: str) -> list[tuple[float | None, float | None]]:
    """``"0.25:0.2,0.15:-"`` → [(0.25, 0.2), (0.15, None)] (``-``: the DM's own)."""
    pairs = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        accept, _, answer = part.partition(":")
        pairs.append(tuple(None if v in ("", "-") else float(v) for v in (accept, answer)))
    return pairs  # type: ignore[return-value]


def _markdown(rows: list[dict], chosen: dict | None) -> str:
    """The table of ``rows``, then the setting ``chosen`` on dev (``None``: a test run)."""
    lines = [
        "| K | β | thresholds (acc / ans) | n | stepwise | lp_rank | drr | oracle "
        "| drr − stepwise [95% CI] | drr tokens |",
        "|---:|---:|---|---:|---:|---:|---:|---:|---|---:|",
    ]
    for r in rows:
        d = r["drr_minus_stepwise"]
        diff = "-" if d is None else f"{d[0]:+.3f} [{d[1]:+.3f}, {d[2]:+.3f}]"
        acc = [("-" if r[m] is None else f"{r[m]:.3f}") for m in METHODS]
        lines.append(
            f"| {r['candidates']} | {r['dm_weight']:g} | {_pair(r)} | {r['n']} | {' | '.join(acc)} "
            f"| {diff} | {'-' if r['drr_tokens'] is None else format(r['drr_tokens'], '.1f')} |"
        )
    if chosen is not None:
        lines += [
            "",
            f"Chosen on dev: K = {chosen['candidates']}, β = {chosen['dm_weight']:g}, "
            f"thresholds {_pair(chosen)}.",
        ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, required=True, help="a finished quickstart folder")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--dm", type=Path, default=None, help="a DM folder (default: the run's)")
    parser.add_argument("--candidates", default="1,3")
    parser.add_argument(
        "--thresholds",
        default="",
        help="accept:answer pairs to try, e.g. '0.25:0.2,0.15:-' ('-': the DM's own; "
        "default: only the DM's own)",
    )
    parser.add_argument("--dm-weights", default="1,0.5")
    parser.add_argument(
        "--methods", default=",".join(METHODS), help="a subset of " + ",".join(METHODS)
    )
    parser.add_argument("--part", default="dev", choices=("dev", "train", "test"))
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="a DRRConfig field for every setting, e.g. on_point_spent=best (repeatable)",
    )
    parser.add_argument(
        "--retries",
        default="plain",
        choices=("plain", "listed"),
        help="plain: a retry resamples the greedy step's prompt (the embedded default); "
        "listed: its prompt lists the rejected steps",
    )
    args = parser.parse_args()
    out = args.out or RunFolder(args.run).dev_sweep
    ks = [int(k) for k in _floats(args.candidates)]
    methods = tuple(m for m in args.methods.split(",") if m)
    if not methods or not set(methods) <= set(METHODS):
        parser.error(f"--methods must be a subset of {','.join(METHODS)}")
    if args.part == "train" and "drr" in methods:
        parser.error("drr is not evaluated on train: its DM was trained on those questions")
    betas, pairs = _floats(args.dm_weights), _thresholds(args.thresholds)
    if args.part == "test" and (len(ks) != 1 or len(betas) != 1 or len(pairs) > 1):
        parser.error(
            "--part test runs one setting, the one chosen on dev: one --candidates, one "
            "--dm-weights, at most one --thresholds pair"
        )
    rows = asyncio.run(
        sweep(
            args.run,
            out,
            ks,
            betas,
            methods,
            args.dm,
            pairs or None,
            args.part,
            args.retries == "listed",
            dict(_field(text) for text in args.set),
        )
    )
    key = "drr" if "drr" in methods else methods[0]
    chosen = None  # a test run reports its one setting; nothing is chosen there
    if args.part != "test":
        chosen = max(rows, key=lambda r: (r[key], -r[f"{key}_tokens"]))
    (out / "sweep.json").write_text(json.dumps({"rows": rows, "chosen": chosen}, indent=2))
    table = _markdown(rows, chosen)
    (out / "sweep.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
