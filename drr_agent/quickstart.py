"""The whole DRR recipe in one resumable run: distill, reinforce, reason, compare.

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
   (`evaluation.run_eval`), with paired differences and the oracle's ceiling in the summary.

Everything lands in one run folder, laid out so each file also works with the single-step
commands (``drr eval --traces <run>/traces.jsonl --dm <run>/dm``); `RunFolder` names its files
(the plan ``quickstart.json``, the traces with their task spec and split, the labels, ``dm/``,
the self-critique thresholds, ``eval/``).

Every step resumes: an interrupted quickstart continues where it stopped (traces and eval
records are appended as produced; a finished DM is reused).
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from drr_agent.config import DRRConfig
from drr_agent.errors import DRRError
from drr_agent.execution import Executor
from drr_agent.offline.run_folder import RunFolder
from drr_agent.offline.training.recipe import DM_RECIPES, DMRecipe
from drr_agent.prompts import DEFAULT_INSTRUCTION
from drr_agent.reasoners.sampling import STEP_MAX_TOKENS, STEP_TEMPERATURE, TRACE_TEMPERATURE
from drr_agent.scorers.lookahead import AnswerLookahead, LookaheadSpec
from drr_agent.tasks.spec import TaskSpec

if TYPE_CHECKING:
    from drr_agent.offline.train import TrainConfig
    from drr_agent.reasoners.base import Reasoner
    from drr_agent.tasks import TaskItem

__all__ = [
    "EXAMPLE_QUESTION",
    "PLANS",
    "QuickstartPlan",
    "QuickstartResult",
    "example_question",
    "run_quickstart",
]


class QuickstartPlan(BaseModel):
    """Sizes, seeds and budgets of a quickstart run.

    Attributes:
        task: The task (defaults: reasoning-gym ``basic_arithmetic`` with one-digit, two-term
            sums and differences, each of its 242 distinct questions once — the embedded
            Reasoner's greedy accuracy there was 0.38–0.50 and any of 8 samples held the gold
            answer for 0.85 of the items (``docs/environment.md``), so a critic has room to
            help).
        test: Test questions (count): reported, never chosen on.
        dev: Dev questions (count): the DM's and the self-critique baseline's thresholds
            and the DM's early stopping are chosen on their labelled steps.
        train: Train questions (count): the first ones of the rest, in the split's order;
            ``None`` (default): all the rest. A Reasoner that writes long traces on 2 cores
            cannot sample them all in a quickstart's time.
        samples: Traces sampled per train and dev item.
        temperature / max_tokens: Trace sampling.
        labels: ``"answer"`` (default): a step's label is whether the Reasoner, asked for the
            final answer right after it (as the graph asks), gets it right — greedy when
            ``label_rollouts`` is 1, else the fraction of that many samples. ``"outcome"``:
            the trace's own result, free but noisy (a right first step of a trace that
            drifts later is labelled wrong). The default is an earlier round's choice; the
            README says on which items it was made.
        label_rollouts: Answer rollouts per step (``labels="answer"``): 4 samples at
            ``temperature`` by default — on dev they let the head fit the labels' fractions
            (ECE 0.03 against 4-sample dev labels, 0.04-0.06 with one greedy answer against
            greedy labels; AUROC unchanged) for 2-3 more minutes of labelling (rollouts of
            one prefix share the server's prompt cache).
        siblings: First-step candidates the graph's own prompt proposes per train and dev
            question, each labelled by the answer after it, with ``sibling_answers`` answers
            after each (`drr_agent.offline.siblings`); added to the trace labels. 0: none.
        dm: What makes the DM (`DMRecipe`): by default ``DM_RECIPES["verifier"]``, the
            MiniLM classifier under a head of 8 tanh units over the verifier LM's
            (Qwen2.5-Coder-0.5B) reading of each step after the question alone and of the
            Reasoner's forced answer after it. The verifier reads the step after the question
            alone because the Reasoner's own LM believes its own mistakes, and in context a
            wrong answer that repeats a wrong accepted step looks likely; the inputs and the
            hidden layer were chosen on train + dev (docs: "Making a DM" and the results
            page). ``drr train --recipe verifier`` makes the same DM from the same labels.
        methods: Methods compared on the test items (`evaluation.methods.METHODS`); ``oracle`` is
            the ceiling (a gold-aware critic in the same graph), ``stepwise`` the ablation.
            ``self_critique`` (the Reasoner judging its own steps) left the small plan's
            default at 6ecac13: with the lookahead the DM's labels and training cost ~3 min
            more, and the self-critique baseline cost 4.5–5.5 min of the 30 (its dev
            thresholds and its evaluation, 15 Reasoner calls an item) while scoring below
            ``stepwise`` in every run (0.33–0.43); ``--size full`` and ``drr eval --methods
            self_critique`` still run it.
        graph: The graph's budgets for ``drr`` and ``self_critique``.
        step_temperature / step_max_tokens: The graph's step sampling.
        k: Samples of ``self_consistency`` / ``best_of_n_dm``.
        concurrency: Traces / evaluation jobs in flight (the embedded server has 8 slots).
        seed: Seeds the split, the sampling and training.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    task: TaskSpec = Field(
        default_factory=lambda: TaskSpec(
            name="basic_arithmetic", seed=42, limit=_ALL_BASIC_ARITHMETIC, distinct=True
        )
    )
    test: int = Field(default=120, ge=1)
    dev: int = Field(default=40, ge=1)
    train: int | None = Field(default=None, ge=1)
    samples: int = Field(default=4, ge=1)
    temperature: float = Field(default=TRACE_TEMPERATURE, ge=0.0)
    max_tokens: int = Field(default=160, ge=1)
    labels: Literal["answer", "outcome"] = "answer"
    label_rollouts: int = Field(default=4, ge=1)
    siblings: int = Field(default=0, ge=0)
    sibling_answers: int = Field(default=2, ge=1)
    dm: DMRecipe = Field(default_factory=lambda: DM_RECIPES["verifier"])
    methods: tuple[str, ...] = ("cot", "self_consistency", "stepwise", "drr", "oracle")
    graph: DRRConfig = Field(
        # short paths: SmolLM2 drifts after its first step ("2 + 6 = 8", "8 + 6 = 14", ...), so
        # the second step is asked as the answer (an earlier round's choice; see the README)
        default_factory=lambda: DRRConfig(max_steps=2, max_reasoner_calls=8, max_backtracks=3)
    )
    step_temperature: float = Field(default=STEP_TEMPERATURE, ge=0.0)
    step_max_tokens: int = Field(default=STEP_MAX_TOKENS, ge=1)
    k: int = Field(default=4, ge=1)
    concurrency: int = Field(default=8, ge=1)
    seed: int = 0
    reasoner: str = "embedded-smollm2"
    """The embedded Reasoner the recipe distils and steers (`EMBEDDED_REASONERS`). The recipe's
    budgets and DM were chosen with SmolLM2 on one-digit sums; ``embedded-qwen2.5-0.5b`` runs
    the same recipe on the stronger instruct model."""

    @classmethod
    def load(cls, path: str | Path) -> QuickstartPlan:
        """The plan a run folder recorded (its ``quickstart.json``)."""
        return cls.model_validate_json(Path(path).read_text())

    @model_validator(mode="before")
    @classmethod
    def _recipe_of_an_older_plan(cls, data: Any) -> Any:
        """A ``quickstart.json`` written before plans named their DM by a `DMRecipe` had
        the recipe's fields at the top level: they are its ``dm`` (so an older run folder
        still resumes)."""
        if isinstance(data, dict) and "dm" not in data:
            flat = {name: data.pop(name) for name in list(data) if name in DMRecipe.model_fields}
            if flat:
                data = data | {"dm": flat}
        return data

    @property
    def reads_lookahead(self) -> bool:
        """Whether this plan's DM reads the Reasoner's forced answer after each step: its
        labels then record that answer, and the DM asks the plan's Reasoner for it."""
        return self.dm.reads_lookahead

    def step_reasoner(self, **options: Any) -> Reasoner:
        """The embedded Reasoner at this plan's graph-step sampling (``options`` as for
        `embedded_reasoner`, e.g. another ``prompt``): what the plan's graphs run on."""
        from drr_agent.reasoners import embedded_reasoner

        return embedded_reasoner(
            temperature=self.step_temperature,
            max_tokens=self.step_max_tokens,
            seed=self.seed,
            model=self.reasoner,
            **options,
        )

    def train_config(
        self,
        output_dir: str | Path,
        *,
        seed: int | None = None,
        instruction: str = DEFAULT_INSTRUCTION,
    ) -> TrainConfig:
        """This plan's DM training into ``output_dir`` (``seed``: another training seed;
        ``instruction``: the task's, under which the lookahead asks the embedded Reasoner)."""
        from drr_agent.offline.train import TrainConfig

        return TrainConfig.from_recipe(
            self.dm,
            output_dir=output_dir,
            overwrite_output_dir=True,
            seed=self.seed if seed is None else seed,
            likelihood_lookahead=LookaheadSpec(instruction=instruction),
        )


_ALL_BASIC_ARITHMETIC = 3000
"""Items generated to see every one of basic_arithmetic's 242 distinct questions (seed 42)."""

PLANS: dict[str, QuickstartPlan] = {
    # the 242 distinct questions: 82 train x 4 traces, 40 dev x 4 traces, 120 test; five methods
    "small": QuickstartPlan(),
    # the same split, 8 traces per question, 3 epochs, self_critique and best_of_n_dm too
    "full": QuickstartPlan(
        samples=8,
        dm=DM_RECIPES["verifier"].model_copy(update={"epochs": 3.0}),
        methods=(
            "cot",
            "self_consistency",
            "stepwise",
            "self_critique",
            "drr",
            "best_of_n_dm",
            "oracle",
        ),
    ),
    # the embedded Qwen (494 M) on sums of four two-digit terms, where its samples hold
    # room (on the 40 dev questions: cot 0.425, pass@4 0.700, the oracle critic 0.600),
    # steered by the light DM: a logistic head over the Qwen's own token log-probs (9
    # parameters, no model of its own), trained on outcome labels (free: no rollouts)
    "qwen-light": QuickstartPlan(
        task=TaskSpec(
            name="chain_sum",
            limit=600,
            distinct=True,
            params={"min_terms": 4, "max_terms": 4, "min_digits": 2, "max_digits": 2},
        ),
        reasoner="embedded-qwen2.5-0.5b",
        train=60,
        max_tokens=200,
        labels="outcome",
        dm=DM_RECIPES["light"],
        methods=("cot", "stepwise", "drr", "oracle"),
        graph=DRRConfig(max_steps=6, max_reasoner_calls=16),
        concurrency=6,
    ),
}


class QuickstartResult(BaseModel):
    """Where a quickstart put things, the evaluation's summary table, and a test question
    to try the DM on (`example_question`: one the run's ``drr`` answered right)."""

    out: Path
    dm: Path
    eval_dir: Path
    table: str
    summary: dict[str, Any]
    example_question: str


EXAMPLE_QUESTION = "Calculate 6 + 5."
"""The "Try it" question when the run's ``drr`` answered no test question right (a one-digit
sum, the default task's kind)."""


def example_question(eval_dir: str | Path, test_items: Sequence[TaskItem]) -> str:
    """The question the quickstart's "Try it" command suggests: one the run's ``drr`` method
    answered right on its test split, so the first thing a user tries is a question the DM
    handles.

    Among those, one answered with no rejection and no backtrack comes first (the graph's
    first proposals were right and accepted, so a rerun most likely goes the same way), then
    the test order. With none (no records, ``drr`` not among the methods, or every answer
    wrong): `EXAMPLE_QUESTION` on a numeric task, else the first test question.

    Args:
        eval_dir: The evaluation folder (its ``records.jsonl``, `EvalRecord` rows).
        test_items: The test split, in order.
    """
    from drr_agent.evaluation.records import RECORDS_FILE, EvalRecord
    from drr_agent.offline.jsonl import RecordFile

    order = {item.id: n for n, item in enumerate(test_items)}
    try:
        records = RecordFile(Path(eval_dir) / RECORDS_FILE, EvalRecord).read()
    except (DRRError, OSError):
        records = []
    right = [
        r
        for r in records
        if r.method == "drr" and r.correct and r.error is None and r.item_id in order
    ]
    if right:
        best = min(
            right,
            key=lambda r: (
                bool(r.backtracks or r.details.get("rejections")),
                order[r.item_id],
            ),
        )
        return test_items[order[best.item_id]].question.strip()
    if not test_items or test_items[0].answer_type == "number":
        return EXAMPLE_QUESTION
    return test_items[0].question.strip()


class QuickstartMismatchError(DRRError, ValueError):
    """The run folder holds a quickstart with another plan."""


def _check_plan(run: RunFolder, plan: QuickstartPlan, force: bool) -> None:
    path = run.plan
    if path.exists() and not force:
        recorded = QuickstartPlan.load(path)
        if recorded != plan:
            raise QuickstartMismatchError(
                f"{path} records another plan; use another folder, or force=True (--force) "
                "to continue with this one"
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
    from drr_agent.evaluation.methods import MethodContext, MethodSettings
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

    # 2. the Reasoner's own traces on the train and dev questions
    _say(progress, f"1/4 sampling {plan.samples} traces per train and dev question")
    for part in ("train", "dev"):
        traces = asyncio.run(
            sample_traces(
                task,
                split.items(task, part)[: plan.train if part == "train" else None],
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
                    split.items(task, part)[: plan.train if part == "train" else None],
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
        test_task,
        reasoner,
        scorer,
        plan.graph,
        MethodSettings(
            k=plan.k,
            temperature=plan.temperature,
            max_tokens=plan.max_tokens,
            seed=plan.seed,
            critic_thresholds=critic_thresholds,
        ),
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
        )
    )
    return QuickstartResult(
        out=out,
        dm=dm_dir,
        eval_dir=eval_dir,
        table=summary.to_markdown(),
        summary=summary.model_dump(mode="json"),
        example_question=example_question(eval_dir, test_items),
    )
