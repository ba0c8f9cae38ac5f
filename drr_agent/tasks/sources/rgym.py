"""reasoning-gym generators: unlimited items with gold answers, made on the spot.

``basic_arithmetic``, ``chain_sum`` and ``products`` default to the easy settings under which
the embedded Reasoner has measurable headroom (``docs/environment.md``; the README for
``products``);
``rg:<name>`` loads any other reasoning-gym dataset with reasoning-gym's own defaults,
overridden by the keyword arguments given.
reasoning-gym is imported only when one of these tasks is loaded (it takes ~2 s).

Two facts about reasoning-gym 0.1.25 worth knowing:

- Item ``i`` is drawn from ``Random(seed + i)``, so seed ``s + 1`` gives seed ``s``'s items
  shifted by one. Never take train items from one seed and held-out items from another:
  generate one set and split it with `split_task`.
- ``basic_arithmetic`` draws a d-digit term from ``randint(0, 10**d)``, so "one-digit" terms
  run from 0 to 10, and with two terms and +/- there are only 242 distinct questions: 200
  items hold ~140 distinct ones. `split_task` keeps repeated questions in one part.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from drr_agent.tasks.base import AnswerType, Task, TaskItem
from drr_agent.tasks.errors import TaskSourceMissingError
from drr_agent.tasks.instructions import instruction_for
from drr_agent.tasks.sources._common import (
    canonical_gold,
    check_limit,
    is_plain_number,
    jsonable,
    package_version,
)

__all__ = [
    "BASIC_ARITHMETIC_DEFAULTS",
    "CHAIN_SUM_DEFAULTS",
    "DEFAULT_SIZE",
    "PRODUCTS_DEFAULTS",
    "load_basic_arithmetic",
    "load_chain_sum",
    "load_products",
    "load_reasoning_gym",
]

DEFAULT_SIZE = 200
"""Items generated when no ``limit`` is given."""

BASIC_ARITHMETIC_DEFAULTS: dict[str, Any] = {
    "min_terms": 2,
    "max_terms": 2,
    "min_digits": 1,
    "max_digits": 1,
    "operators": ("+", "-"),
    "allow_parentheses": False,
    "allow_negation": False,
}
PRODUCTS_DEFAULTS: dict[str, Any] = {
    "min_terms": 2,
    "max_terms": 2,
    "min_digits": 1,
    "max_digits": 1,
    "allow_negation": False,
}
CHAIN_SUM_DEFAULTS: dict[str, Any] = {
    "min_terms": 2,
    "max_terms": 2,
    "min_digits": 1,
    "max_digits": 2,
    "allow_negation": False,
}


def _import_reasoning_gym() -> Any:
    try:
        import reasoning_gym
    except ImportError as exc:
        raise TaskSourceMissingError(
            "reasoning-gym tasks need the `reasoning-gym` package: "
            "pip install reasoning-gym==0.1.25"
        ) from exc
    return reasoning_gym


def _generate(
    dataset: str,
    *,
    task_name: str,
    limit: int | None,
    seed: int,
    answer_type: AnswerType | None,
    config: dict[str, Any],
) -> Task:
    size = check_limit(limit) or DEFAULT_SIZE
    for reserved, instead in (("size", "limit"), ("seed", "seed")):
        if reserved in config:
            raise ValueError(f"pass {instead}= to load_task instead of {reserved}= in the params")
    rg = _import_reasoning_gym()
    registry = rg.factory.DATASETS
    if dataset not in registry:
        raise ValueError(
            f"reasoning-gym has no dataset {dataset!r}; known: {', '.join(sorted(registry))}"
        )
    config_cls = registry[dataset][1]
    fields = {f.name for f in dataclasses.fields(config_cls)} - {"size", "seed"}
    unknown = sorted(set(config) - fields)
    if unknown:
        raise ValueError(
            f"reasoning-gym dataset {dataset!r} has no setting(s) {unknown}; "
            f"its settings are: {', '.join(sorted(fields))}"
        )
    try:
        generator = rg.create_dataset(dataset, size=size, seed=seed, **config)
    except AssertionError as exc:  # reasoning-gym validates its configs with asserts
        raise ValueError(f"invalid settings for reasoning-gym {dataset!r}: {exc}") from exc

    entries = [generator[i] for i in range(size)]
    if answer_type is None:
        golds = [str(e.get("answer", "")) for e in entries]
        answer_type = "number" if golds and all(map(is_plain_number, golds)) else "text"
    items = []
    for index, entry in enumerate(entries):
        item_id = f"{dataset}/{seed}/{index}"
        metadata = jsonable(entry.get("metadata") or {})
        metadata["raw_answer"] = entry.get("answer")
        items.append(
            TaskItem(
                id=item_id,
                question=entry["question"],
                gold=canonical_gold(entry.get("answer"), answer_type, f"{task_name} {item_id}"),
                answer_type=answer_type,
                metadata=metadata,
            )
        )
    return Task(
        name=task_name,
        source=f"reasoning-gym=={package_version('reasoning-gym')}",
        items=tuple(items),
        answer_type=answer_type,
        instruction=instruction_for(answer_type),
        params=jsonable({"dataset": dataset, "size": size, "seed": seed, **config}),
    )


def load_reasoning_gym(
    dataset: str,
    *,
    limit: int | None = None,
    seed: int = 0,
    path: None = None,
    answer_type: AnswerType | None = None,
    **config: Any,
) -> Task:
    """Any reasoning-gym dataset (task name ``rg:<dataset>``).

    Args:
        dataset: A reasoning-gym dataset name (``rg.factory.DATASETS``).
        limit: Items to generate (default `DEFAULT_SIZE`).
        seed: The generator's seed; item ``i`` is the same for the same seed and settings.
        path: Not used (generated tasks have no file); must be None.
        answer_type: How to check answers; by default ``"number"`` when every gold answer is
            a plain number, else ``"text"``. reasoning-gym's own per-dataset scorers are
            not used: datasets with structured answers may need ``"text"`` or a custom check.
        **config: reasoning-gym settings of that dataset (e.g. ``max_terms=3``).
    """
    if path is not None:
        raise ValueError("reasoning-gym tasks are generated; they take no path=")
    return _generate(
        dataset,
        task_name=f"rg:{dataset}",
        limit=limit,
        seed=seed,
        answer_type=answer_type,
        config=config,
    )


def _load_preset(
    dataset: str,
    defaults: dict[str, Any],
    limit: int | None,
    seed: int,
    path: None,
    config: dict[str, Any],
) -> Task:
    """A reasoning-gym dataset under our defaults, named after the dataset (no ``rg:``)."""
    if path is not None:
        raise ValueError(f"{dataset} is generated; it takes no path=")
    return _generate(
        dataset,
        task_name=dataset,
        limit=limit,
        seed=seed,
        answer_type="number",
        config={**defaults, **config},
    )


def load_basic_arithmetic(
    *, limit: int | None = None, seed: int = 0, path: None = None, **config: Any
) -> Task:
    """Two one-digit terms added or subtracted ("Calculate 4 + 3."), unless overridden.

    Defaults: `BASIC_ARITHMETIC_DEFAULTS`; any keyword overrides one of them or sets another
    reasoning-gym ``basic_arithmetic`` setting. Ids: ``basic_arithmetic/<seed>/<index>``.
    """
    return _load_preset("basic_arithmetic", BASIC_ARITHMETIC_DEFAULTS, limit, seed, path, config)


def load_chain_sum(
    *, limit: int | None = None, seed: int = 0, path: None = None, **config: Any
) -> Task:
    """Two terms of one or two digits added or subtracted, unless overridden.

    Defaults: `CHAIN_SUM_DEFAULTS`. Ids: ``chain_sum/<seed>/<index>``.
    """
    return _load_preset("chain_sum", CHAIN_SUM_DEFAULTS, limit, seed, path, config)


def load_products(
    *, limit: int | None = None, seed: int = 0, path: None = None, **config: Any
) -> Task:
    """The product of two one-digit numbers ("Solve the following multiplication: 7 * 8."),
    unless overridden.

    Defaults: `PRODUCTS_DEFAULTS`. Unlike ``basic_arithmetic``'s, a "one-digit" term runs from
    0 to 9, so there are only 100 distinct questions. Ids: ``products/<seed>/<index>``.
    """
    return _load_preset("products", PRODUCTS_DEFAULTS, limit, seed, path, config)
