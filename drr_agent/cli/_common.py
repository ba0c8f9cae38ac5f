"""What every ``drr`` subcommand shares: the Typer app, consoles, Reasoner options."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import click
import typer
from rich.console import Console
from typer.core import TyperGroup

from drr_agent.config import DRRConfig
from drr_agent.reasoners.base import Reasoner
from drr_agent.reasoners.sampling import STEP_MAX_TOKENS, STEP_TEMPERATURE

if TYPE_CHECKING:
    from drr_agent.tasks.spec import TaskSpec


class _Commands(TyperGroup):
    """The ``drr`` group: an error about a file or folder that no command caught (a path that
    cannot be read or written) is one line naming the path, never a traceback."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except OSError as exc:
            if exc.filename is None:  # a socket, a process: not about a path the user gave
                raise
            where = f"{exc.filename}" + (f" -> {exc.filename2}" if exc.filename2 else "")
            raise fail(f"{where}: {exc.strerror or exc}") from exc


app = typer.Typer(
    cls=_Commands,
    name="drr",
    help="DRR: a trained Discriminative Model steers a Reasoner LLM step by step.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console()
err_console = Console(stderr=True, soft_wrap=True)  # errors stay greppable, unwrapped

EMBEDDED = "embedded"


class Style(StrEnum):
    prefill = "prefill"
    chat = "chat"


ReasonerOpt = Annotated[
    str,
    typer.Option(
        help="'embedded' (SmolLM2-135M on CPU), 'embedded-qwen2.5-0.5b' (Qwen2.5-Coder-0.5B-"
        "Instruct on CPU) or an OpenAI-compatible API URL; several replicas of one model "
        "comma-separated (requests spread, a failing one is skipped)."
    ),
]


class ExecutorChoice(StrEnum):
    local = "local"
    ray = "ray"


ExecutorOpt = Annotated[
    ExecutorChoice,
    typer.Option(
        "--executor",
        help="Where the items run: in this process (local) or on a Ray cluster (ray: actors "
        "that each rebuild the Reasoner and DM; this process still writes every record).",
    ),
]
RayAddressOpt = Annotated[
    str,
    typer.Option(
        help="With --executor ray: 'auto' (the cluster `ray start` runs here), HOST:PORT, or "
        "'local' (a cluster of this process only)."
    ),
]
WorkersOpt = Annotated[
    int | None,
    typer.Option(min=1, help="With --executor ray: actors (default: one per cluster CPU)."),
]


def executor_option(executor: ExecutorChoice, concurrency: int, address: str, workers: int | None):
    """The `drr_agent.execution` executor the options name (``--concurrency`` per actor on Ray)."""
    from drr_agent.execution import executor_from_options

    return executor_from_options(executor.value, concurrency, address, workers)


ModelOpt = Annotated[str | None, typer.Option(help="Model name served at --reasoner URL.")]
StyleOpt = Annotated[
    Style | None, typer.Option(help="Prompt style; default prefill (embedded) / chat (URL).")
]
VllmOpt = Annotated[
    bool, typer.Option(help="The URL is a vLLM server (enables prefill continuation).")
]


def is_embedded(reasoner: str) -> bool:
    """Whether ``--reasoner`` names an embedded model (``embedded``, ``embedded-…``) rather
    than a server's URL."""
    return reasoner == EMBEDDED or reasoner.startswith(f"{EMBEDDED}-")


def make_reasoner(
    reasoner: str,
    model: str | None,
    style: Style | None,
    vllm: bool,
    *,
    temperature: float = STEP_TEMPERATURE,
    seed: int | None = None,
    max_tokens: int = STEP_MAX_TOKENS,
) -> Reasoner:
    """The Reasoner the options name (embedded by default)."""
    from drr_agent.reasoners import choose_reasoner

    sampling = {"temperature": temperature, "seed": seed, "max_tokens": max_tokens}
    chosen = style.value if style else None
    if is_embedded(reasoner):
        try:
            return choose_reasoner(None, reasoner, style=chosen, **sampling)  # type: ignore[arg-type]
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--reasoner") from exc
    from drr_agent.replicas import split_urls

    try:
        split_urls(reasoner)
    except ValueError as exc:
        raise typer.BadParameter(
            "expected 'embedded', an embedded Reasoner's name (embedded-smollm2, "
            f"embedded-qwen2.5-0.5b) or the http(s) URL(s) of an OpenAI-compatible API: {exc}",
            param_hint="--reasoner",
        ) from exc
    if not model:
        raise typer.BadParameter(
            "an OpenAI-compatible --reasoner needs --model", param_hint="--model"
        )
    return choose_reasoner(reasoner, model, style=chosen, vllm=vllm, **sampling)  # type: ignore[arg-type]


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print an error and return the exit to raise."""
    from rich.markup import escape

    err_console.print(f"[red]error:[/red] {escape(message)}")
    return typer.Exit(code)


USAGE = 2
"""Exit code of a usage error (an option's value, a path of the wrong kind), as Click's own."""


def _file_above(path: Path) -> Path | None:
    """The first ancestor of ``path`` that exists and is not a folder (``None``: none)."""
    for parent in path.parents:
        if parent.exists():
            return None if parent.is_dir() else parent
    return None


def input_file(path: Path, option: str, *, must_exist: bool = True) -> Path:
    """``path`` as an input file: a folder there, or no file (``must_exist``), is a usage
    error naming the option."""
    if path.is_dir():
        raise fail(f"{option} {path}: is a folder; give a file", USAGE)
    if must_exist and not path.exists():
        raise fail(f"{option} {path}: no such file", USAGE)
    return path


def invalid_option(exc: ValueError) -> str:
    """A refused option value in one line: a pydantic error names its fields as options
    (``max_steps`` as ``--max-steps``), without pydantic's links and input dumps."""
    from pydantic import ValidationError

    if not isinstance(exc, ValidationError):
        return f"invalid option: {exc}"
    parts = []
    for err in exc.errors():
        message = str(err["msg"]).removeprefix("Value error, ")
        fields = [str(p) for p in err["loc"] if isinstance(p, str)]
        option = f"--{fields[0].replace('_', '-')}: " if fields else ""
        parts.append(option + message)
    return "invalid option: " + "; ".join(parts)


def output_file(path: Path, option: str = "--out") -> Path:
    """``path`` as a file to write: refuse a folder there, or a file where a folder above
    it belongs, before anything runs."""
    if path.is_dir():
        raise fail(f"{option} {path}: is a folder; give the path of a file", USAGE)
    above = _file_above(path)
    if above is not None:
        raise fail(f"{option} {path}: {above} is a file, not a folder", USAGE)
    return path


def output_folder(path: Path, option: str = "--out") -> Path:
    """``path`` as a folder to write into: refuse a file there or above it."""
    if path.exists() and not path.is_dir():
        raise fail(f"{option} {path}: is a file; give a folder", USAGE)
    above = _file_above(path)
    if above is not None:
        raise fail(f"{option} {path}: {above} is a file, not a folder", USAGE)
    return path


_NO_DM_MESSAGE = (
    "No trained DM given. Pass --dm PATH (a Hugging Face sequence-classification folder, "
    "e.g. one written by `drr train`) or set DRR_DM. To smoke-test the plumbing without a "
    "trained DM, pass --untrained-dm: the embedded MiniLM base with a random head (its scores "
    "are meaningless, so routing is too)."
)


def parse_params(pairs: list[str]) -> dict[str, object]:
    """``KEY=VALUE`` options as a dict (values parsed as JSON where they are JSON)."""
    params: dict[str, object] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"expected KEY=VALUE, got {pair!r}", param_hint="--param")
        try:
            params[key] = json.loads(value)
        except json.JSONDecodeError:
            params[key] = value
    return params


class OnBudget(StrEnum):
    answer_best = "answer_best"
    abstain = "abstain"


class OnPointSpent(StrEnum):
    """What the graph does when a point's retries are all rejected (`DRRConfig`)."""

    backtrack = "backtrack"
    best = "best"


GRAPH_DEFAULTS = DRRConfig()
"""`DRRConfig`'s defaults: the graph options below default to them (``--help`` shows them)."""

AcceptOpt = Annotated[float | None, typer.Option(min=0.0, max=1.0)]
AnswerOpt = Annotated[float | None, typer.Option(min=0.0, max=1.0)]
CandidatesOpt = Annotated[int, typer.Option(min=1, help="Graph candidates per step.")]
MaxStepsOpt = Annotated[int, typer.Option(min=1)]
MaxCallsOpt = Annotated[int, typer.Option(min=1)]
MaxBacktracksOpt = Annotated[int, typer.Option(min=0)]
MaxRetriesOpt = Annotated[
    int, typer.Option(min=1, help="Rejections at one point before the graph backtracks.")
]
OnBudgetOpt = Annotated[OnBudget, typer.Option()]
ReasonerTimeoutOpt = Annotated[
    float,
    typer.Option(
        min=1.0,
        help="Seconds one Reasoner call may take before it is retried (raise it where "
        "several long calls share few cores: a 512-token GSM8K trace on 2 busy cores can take "
        "minutes).",
    ),
]
OnPointSpentOpt = Annotated[
    OnPointSpent,
    typer.Option(
        help="When a point's retries are all rejected: backtrack, or accept the best-ranked "
        "of them."
    ),
]


def graph_config(
    *,
    accept_threshold: float | None,
    answer_threshold: float | None,
    candidates: int,
    dm_weight: float,
    max_steps: int,
    max_reasoner_calls: int,
    on_budget: OnBudget,
    max_backtracks: int = GRAPH_DEFAULTS.max_backtracks,
    max_retries_per_point: int = GRAPH_DEFAULTS.max_retries_per_point,
    on_point_spent: OnPointSpent = OnPointSpent.backtrack,
    reasoner_timeout_s: float = GRAPH_DEFAULTS.reasoner_timeout_s,
) -> DRRConfig:
    """The `DRRConfig` the graph options name (``drr solve`` and ``drr eval`` share them);
    a contradiction between them (e.g. fewer calls than steps) is pydantic's ``ValueError``."""
    return DRRConfig(
        accept_threshold=accept_threshold,
        answer_threshold=answer_threshold,
        candidates_per_step=candidates,
        dm_weight=dm_weight,
        max_steps=max_steps,
        max_reasoner_calls=max_reasoner_calls,
        max_backtracks=max_backtracks,
        max_retries_per_point=max_retries_per_point,
        on_point_spent=on_point_spent.value,
        on_budget_exhausted=on_budget.value,
        reasoner_timeout_s=reasoner_timeout_s,
    )


DmWeightOpt = Annotated[
    float,
    typer.Option(
        min=0.0,
        max=1.0,
        help="β: rank candidates by β·DM + (1−β)·the Reasoner's per-token probability "
        "(1: the DM alone).",
    ),
]
DmUrlOpt = Annotated[
    str | None,
    typer.Option(
        help="A DM served by `drr serve --dm` (vLLM), e.g. http://127.0.0.1:8001 (replicas "
        "comma-separated); with --dm the local folder supplies the tokenizer window and "
        "thresholds.",
        envvar="DRR_DM_URL",
    ),
]


def load_scorer(
    dm: Path | None,
    untrained_dm: bool,
    trust_remote_code: bool,
    beside_llama: bool,
    dm_url: str | None = None,
):
    """The DM the options name (`load_dm`); one torch thread beside the in-process llama.cpp
    Reasoner."""
    from drr_agent.scorers import load_dm

    if dm is None and dm_url is None and not untrained_dm:
        raise fail(_NO_DM_MESSAGE, 2)
    return load_dm(
        dm,
        url=dm_url,
        allow_untrained=untrained_dm,
        trust_remote_code=trust_remote_code,
        num_threads=1 if beside_llama else None,
    )


def task_spec(
    task: str,
    limit: int | None,
    task_seed: int,
    path: Path | None,
    param: list[str],
    distinct: bool = False,
) -> TaskSpec:
    """The `TaskSpec` the ``--task/--limit/--task-seed/--path/--param/--distinct`` options
    name."""
    from drr_agent.tasks.spec import TaskSpec

    return TaskSpec(
        name=task,
        limit=limit,
        seed=task_seed,
        path=str(path) if path else None,
        params=parse_params(param),
        distinct=distinct,
    )


def load_task_options(spec: TaskSpec):
    """``spec.load()``; a value the task refuses (an unknown ``--param``, a bad ``--task``
    name) is a usage error naming the option. Data errors keep their own message (the file
    and line)."""
    from drr_agent.errors import DRRError

    try:
        return spec.load()
    except DRRError:
        raise
    except ValueError as exc:
        option = "--param" if spec.params else "--task"
        raise fail(f"{option}: {exc}", USAGE) from exc


def split_options(task, test: float, split_seed: int, dev: float):
    """`split_task` with the ``--test`` / ``--dev`` amounts; amounts the task cannot give
    are a usage error naming the options."""
    from drr_agent.tasks import split_task

    try:
        return split_task(task, split_amount(test), split_seed, dev=split_amount(dev))
    except ValueError as exc:
        raise fail(f"--test / --dev: {exc}", USAGE) from exc


def split_amount(amount: float) -> int | float:
    """``--test`` / ``--dev``: a count when at least 1, else a fraction (as `split_task`
    takes them)."""
    return int(amount) if amount >= 1 else amount
