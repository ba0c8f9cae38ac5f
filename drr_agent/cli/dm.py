"""``drr dm-info``: what a DM folder is and what scoring one step with it runs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from drr_agent.cli._common import app, console, fail
from drr_agent.errors import DMLoadError
from drr_agent.scorers.card import DMCard
from drr_agent.scorers.parts import dm_parts, format_parameters, total_parameters


@app.command("dm-info")
def dm_info(
    dm: Annotated[Path, typer.Argument(help="A DM folder (e.g. written by `drr train`).")],
) -> None:
    """Print a DM's parts (every model it runs per scored step, with its size and source),
    thresholds and training data. Nothing is loaded: the card and the weights' headers."""
    try:
        card = DMCard.load(dm)
        parts = dm_parts(dm)
    except DMLoadError as exc:
        raise fail(str(exc), code=2) from exc
    head = card.likelihood_head
    thresholds = head.thresholds if head is not None else card.thresholds
    console.print(f"[bold]{card.name or dm.name}[/bold]  ({dm})")
    table = Table("role", "model", "parameters", "per scored step", "from")
    for part in parts:
        size = format_parameters(part.parameters)
        table.add_row(part.role, part.model, size, part.per_step, part.source)
    console.print(table)
    total = format_parameters(total_parameters(parts))
    console.print(f"every model together: {total} parameters")
    shown = ", ".join(f"{k} {v:.3f}" for k, v in thresholds.items()) or "none (graph defaults)"
    console.print(f"thresholds ({'head' if head else 'classifier'}): {shown}")
    train = (card.data or {}).get("train") or {}
    if train:
        console.print(
            f"trained on {train.get('examples')} steps of {train.get('questions')} questions "
            f"({', '.join(train.get('tasks', {})) or 'unknown tasks'})"
        )
    console.print(f"load it whole with: drr_agent.load_dm({str(dm)!r})")
