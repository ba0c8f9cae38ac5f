"""`run_quickstart`: the whole DRR recipe in one resumable run — distill, reinforce, reason,
compare.

`run_quickstart` chains the library's own steps on one task — the same functions ``drr traces``,
``drr labels``, ``drr train`` and ``drr eval`` call, never a re-implementation:

1. split the task's distinct questions into *train*, *dev* and *test* (seeded, by question);
2. sample the Reasoner's own traces on the train and dev questions (`sample_traces`);
3. label every step by what the Reasoner answers when asked to conclude right after it —
   the graph's own forced answer (`mc_examples` with ``continuation="answer"``; or, with
   ``labels="outcome"``, by the outcome of its trace, `outcome_examples`);
4. fine-tune the DM on the train labels, early stopping and thresholds chosen on the dev
   labels (`train_dm`); pick the self-critique baseline's thresholds on the same dev steps
   (`calibrate_thresholds`), so both critics are tuned alike;
5. evaluate the methods on the test questions, which nothing above saw or chose on
   (`evaluation.run_eval`), with paired differences and the oracle's ceiling in the summary;
6. when the DM reads a language model other than the Reasoner (the default's verifier), run
   that model as the Reasoner with no critic on the same questions (`evaluate_dm_lm`): the
   alternative a user has to the DM.

Everything lands in one run folder, laid out so each file also works with the single-step
commands (``drr eval --traces <run>/traces.jsonl --dm <run>/dm``); `RunFolder` names its files
(the plan ``quickstart.json``, the traces with their task spec and split, the labels, ``dm/``,
the self-critique thresholds, ``eval/`` and ``eval-dm-lm/``).

Every step resumes: an interrupted quickstart continues where it stopped (traces and eval
records are appended as produced; a finished DM is reused). A trace or an evaluation record
that failed — a call timed out on busy cores — is made again on resume, not kept as a wrong
answer.
"""

from __future__ import annotations

import asyncio
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from drr_agent.errors import DRRError
from drr_agent.execution import Executor
from drr_agent.offline.run_folder import RunFolder
from drr_agent.quickstart.example import example_question
from drr_agent.quickstart.plan import PLANS, QuickstartPlan
from drr_agent.scorers.lookahead import AnswerLookahead

if TYPE_CHECKING:
    from drr_agent.tasks.base import TaskItem

__all__ = [
    "DM_LM_METHODS",
    "QuickstartMismatchError",
    "QuickstartResult",
    "evaluate_dm_lm",
    "run_quickstart",
]


class QuickstartResult(BaseModel):
    """Where a quickstart put things, the evaluation's summary table, and a test question
    to try the DM on (`example_question`: one the run's ``drr`` answered right)."""

    out: Path
    dm: Path
    eval_dir: Path
    table: str
    summary: dict[str, Any]
    example_question: str


class QuickstartMismatchError(DRRError, ValueError):
    """The run folder holds a quickstart with another plan."""


def _check_plan(run: RunFolder, plan: QuickstartPlan, force: bool) -> None:
    from drr_agent.scorers import DM_METADATA_FILE

    path = run.plan
    recorded = QuickstartPlan.load(path) if path.exists() else plan
    if recorded != plan and not force:
        raise QuickstartMismatchError(
            f"{path} records another plan; use another folder, or force=True (--force) "
            "to continue with this one"
        )
    # a finished DM is reused, so one of another recipe would be evaluated as this plan's
    if recorded.dm != plan.dm and (run.dm / DM_METADATA_FILE).is_file():
        raise QuickstartMismatchError(
            f"{run.dm} holds a DM of the recorded plan's recipe, not this plan's: move it (and "
            f"{run.eval}, whose drr records it made) away to train this plan's DM here"
        )
    run.root.mkdir(parents=True, exist_ok=True)
    path.write_text(plan.model_dump_json(indent=2) + "\n")


def _fit_parts(n: int, test: int, dev: int) -> tuple[int, int]:
    """Test and dev sizes that leave at least a third of ``n`` items to train on.

    A task with few distinct questions (``products``: 100) cannot give the plan's 120 test
    questions; it keeps the plan's test : dev ratio and reports its smaller n.
    """
    room = n - math.ceil(n / 3)
    if test + dev <= room:
        return test, dev
    scale = room / (test + dev)
    fitted_dev = max(1, int(dev * scale))
    return max(1, room - fitted_dev), fitted_dev


def _say(progress: bool, message: str) -> None:
    if progress:
        from rich.console import Console

        Console(stderr=True).print(f"[bold]quickstart[/bold] {message}")


def run_quickstart(
    out: str | Path,
    plan: QuickstartPlan | None = None,
    *,
    reasoner: Any = None,
    progress: bool = True,
    force: bool = False,
    executor: Executor | None = None,
) -> QuickstartResult:
    """Run (or resume) the whole recipe into ``out``; see the module docstring.

    Args:
        out: The run folder.
        plan: Sizes and budgets; ``PLANS["small"]`` by default.
        reasoner: A `Reasoner` (default: the embedded SmolLM2 at ``step_temperature``).
        progress: Progress bars and stage messages on stderr.
        force: Continue a folder whose recorded plan differs.
        executor: Where the traces, labels and evaluation run (default: this process; a
            `drr_agent.execution.RayExecutor` for a Ray cluster — the sibling candidates and
            the DM training stay here). Not part of the plan: it changes where, not what.
    """
    from drr_agent.evaluation.methods import MethodContext
    from drr_agent.evaluation.runner import check_methods, run_eval
    from drr_agent.offline.dm_eval import calibrate_thresholds
    from drr_agent.offline.jsonl import RecordFile
    from drr_agent.offline.labels import mc_examples, write_outcome_labels
    from drr_agent.offline.records import TraceRecord
    from drr_agent.offline.siblings import sibling_examples
    from drr_agent.offline.traces import sample_traces
    from drr_agent.offline.train import train_dm
    from drr_agent.scorers import DM_METADATA_FILE, SelfCritiqueScorer, load_dm
    from drr_agent.tasks import split_task

    plan = plan or PLANS["small"]
    check_methods(plan.methods)
    out = Path(out)
    run = RunFolder(out)
    _check_plan(run, plan, force)
    embedded = reasoner is None
    timeout_s = plan.method_settings().timeout_s  # of every Reasoner call outside the graph
    if reasoner is None:
        reasoner = plan.step_reasoner()

    # 1. split (saved beside the traces, where `drr eval --traces` looks for it)
    traces_file = run.traces
    task = plan.task.load()
    test, dev = _fit_parts(len(task.items), plan.test, plan.dev)
    if (test, dev) != (plan.test, plan.dev):
        _say(
            progress,
            f"{task.name} has {len(task.items)} items: {test} test and {dev} dev instead of "
            f"{plan.test} and {plan.dev}, so a third stays to train on",
        )
    split = split_task(task, test, plan.seed, dev=dev)
    plan.task.save(run.task_spec)
    split.save(run.split)
    test_task = split.subtask(task, "test")
    counts = split.counts()
    _say(
        progress,
        f"{task.name}: {min(counts['train'], plan.train or counts['train'])} train, "
        f"{counts['dev']} dev, {counts['test']} test questions → {out}",
    )

    def questions(part: str) -> tuple[TaskItem, ...]:
        """A part's questions: the train part cut to the plan's ``train``."""
        return split.items(task, part)[: plan.train if part == "train" else None]

    # 2. the Reasoner's own traces on the train and dev questions
    _say(progress, f"1/4 sampling {plan.samples} traces per train and dev question")
    for part in ("train", "dev"):
        traces = asyncio.run(
            sample_traces(
                task,
                questions(part),
                part,
                reasoner,
                traces_file,
                samples_per_item=plan.samples,
                temperature=plan.temperature,
                max_tokens=plan.max_tokens,
                seed=plan.seed,
                concurrency=plan.concurrency,
                executor=executor,
                force=force,
                progress=progress,
                timeout_s=timeout_s,
            )
        )

    # 3. labels: answer rollouts (appended as made, resumed) or outcomes (rewritten whole)
    records = RecordFile(traces_file, TraceRecord).read(repair=True)
    labels_file = run.labels
    if plan.labels == "answer":
        _say(progress, "2/4 labelling steps by the answer the Reasoner gives after each")
        examples = asyncio.run(
            mc_examples(
                records,
                task,
                reasoner,
                labels_file,
                rollouts=plan.label_rollouts,
                continuation="answer",
                temperature=0.0 if plan.label_rollouts == 1 else plan.temperature,
                max_tokens=plan.step_max_tokens,
                seed=plan.seed,
                concurrency=plan.concurrency,
                executor=executor,
                progress=progress,
                lookahead=plan.reads_lookahead,
                force=force,
                timeout_s=timeout_s,
            )
        )
    else:
        examples = write_outcome_labels(records, labels_file, replace=True)
    _say(
        progress,
        f"2/4 labelled {len(examples)} steps of {traces.traces_total} traces "
        f"(sample accuracy {traces.accuracy:.2f})",
    )

    if plan.siblings:
        _say(progress, f"2/4 labelling {plan.siblings} sibling candidates per question")
        for part in ("train", "dev"):
            siblings = asyncio.run(
                sibling_examples(
                    task,
                    questions(part),
                    part,
                    reasoner,
                    run.siblings,
                    candidates=plan.siblings,
                    answers=plan.sibling_answers,
                    seed=plan.seed,
                    concurrency=plan.concurrency,
                    force=force,
                    progress=progress,
                )
            )
        examples = [*examples, *siblings]
    train_examples = [e for e in examples if e.split == "train"]
    dev_examples = [e for e in examples if e.split == "dev"]

    # 4. the DM (reused when a finished one is there)
    dm_dir = run.dm
    # the DM asks the plan's Reasoner, under the task's instruction, as the labels did
    lookahead = None
    if plan.reads_lookahead:
        lookahead = AnswerLookahead(reasoner.derive(instruction=task.instruction))
    if not (dm_dir / DM_METADATA_FILE).is_file():
        _say(progress, "3/4 training the DM (early stopping and thresholds on dev)")
        train_dm(
            train_examples,
            plan.train_config(dm_dir, instruction=task.instruction),
            progress=progress,
            dev=dev_examples,
            lookahead=lookahead,
        )
    else:
        _say(progress, f"3/4 reusing the trained DM in {dm_dir}")

    # 5. the self-critique baseline's thresholds, picked on dev steps like the DM's
    critic_thresholds = None
    if "self_critique" in plan.methods:
        critic_file = run.critic_thresholds
        if critic_file.is_file():
            critic_thresholds = json.loads(critic_file.read_text())
        else:
            _say(progress, "calibrating the self-critique baseline's thresholds (dev steps)")
            critic = SelfCritiqueScorer.of(reasoner)
            report = calibrate_thresholds(critic, dev_examples, seed=plan.seed, progress=progress)
            critic_thresholds = report.thresholds
            critic_file.write_text(json.dumps(critic_thresholds, indent=2) + "\n")

    # 6. the comparison on the test questions
    test_items = test_task.items
    _say(progress, f"4/4 evaluating {', '.join(plan.methods)} on {len(test_items)} test items")
    # one torch thread beside the in-process llama.cpp Reasoner (see HFScorer.num_threads)
    scorer = load_dm(dm_dir, num_threads=1 if embedded else None, lookahead=lookahead)
    ctx = MethodContext(
        test_task, reasoner, scorer, plan.graph, plan.method_settings(critic_thresholds)
    )
    eval_dir = run.eval
    summary = asyncio.run(
        run_eval(
            test_task,
            test_items,
            list(plan.methods),
            ctx,
            eval_dir,
            concurrency=plan.concurrency,
            executor=executor,
            progress=progress,
            force=force,
            retry_errors=True,
        )
    )
    table = summary.to_markdown()
    alternative = plan.dm_lm_reasoner if embedded else None
    if alternative is not None:
        _say(progress, f"and {alternative}, the DM's own LM, as the Reasoner with no critic")
        table += "\n\n" + evaluate_dm_lm(
            plan, alternative, test_task, run.eval_dm_lm, progress=progress, force=force
        )
    return QuickstartResult(
        out=out,
        dm=dm_dir,
        eval_dir=eval_dir,
        table=table,
        summary=summary.model_dump(mode="json"),
        example_question=example_question(eval_dir, test_items),
    )


DM_LM_METHODS = ("cot", "stepwise")
"""What the DM's own LM runs as the Reasoner: its chain of thought and the same graph with no
critic (the DM's ``stepwise``), on the plan's budgets."""


def evaluate_dm_lm(
    plan: QuickstartPlan,
    model: str,
    test_task: Any,
    out: Path,
    *,
    progress: bool = True,
    force: bool = False,
) -> str:
    """`DM_LM_METHODS` with the embedded ``model`` as the Reasoner on the test questions, into
    ``out`` (resumable, as every evaluation); returns its table under a heading that says
    what it is. Why: a DM that reads a language model larger than its Reasoner has to beat
    that model answering alone, not only the Reasoner (issue: "the DM's largest model used
    as the Reasoner")."""
    from drr_agent.evaluation.methods import MethodContext
    from drr_agent.evaluation.runner import run_eval

    alone = plan.model_copy(update={"reasoner": model})
    ctx = MethodContext(test_task, alone.step_reasoner(), None, plan.graph, plan.method_settings())
    summary = asyncio.run(
        run_eval(
            test_task,
            test_task.items,
            list(DM_LM_METHODS),
            ctx,
            out,
            concurrency=plan.concurrency,
            progress=progress,
            force=force,
            retry_errors=True,
        )
    )
    return f"### The DM's own LM ({model}) as the Reasoner, no critic\n\n" + summary.to_markdown()
