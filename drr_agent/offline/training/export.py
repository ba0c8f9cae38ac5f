"""The DM folder on disk: checked before training, written whole or not at all, verified.

A DM is never half-written where the graph would load it: the model, tokenizer, card and
model card go into a staging folder beside ``output_dir`` and are moved into place only when
complete (`staged`); Trainer's checkpoints go into a work folder beside it too (`work_folder`),
not /tmp, so they live on the same disk and a killed run's leftovers — both named after the
dead process's pid — are found and removed by the next run. Once in place the folder is
reloaded as the graph loads it (`verify_export`).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from drr_agent.errors import DMLoadError
from drr_agent.offline.distributed import Processes
from drr_agent.offline.training.config import LABELS, TrainConfig
from drr_agent.offline.training.quiet import quiet_transformers
from drr_agent.scorers.hf import HFScorer
from drr_agent.scorers.likelihood import LikelihoodScorer
from drr_agent.scorers.loading import load_dm

__all__ = ["check_output_dir", "save_model", "staged", "verify_export", "work_folder"]


def check_output_dir(config: TrainConfig) -> Path:
    """The absolute ``output_dir``; refuses (before training) a file there, or a non-empty
    folder unless ``overwrite_output_dir``, so a trained DM is never replaced by accident."""
    out = config.output_dir.expanduser().resolve()
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"output_dir {out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not config.overwrite_output_dir:
        raise FileExistsError(
            f"output_dir {out} is not empty; choose another folder or set "
            "overwrite_output_dir=True (--overwrite)"
        )
    return out


@contextmanager
def work_folder(out: Path, procs: Processes) -> Iterator[str]:
    """Trainer's checkpoint folder beside ``out`` for the block, removed after it. Under a
    launcher every process trains in rank 0's (the best checkpoint is reloaded by all of
    them), so call it after ``procs.start()``."""
    if procs.is_main:
        out.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale(out)
    work_dir = procs.share(
        tempfile.mkdtemp(prefix=f".{out.name}.work-{os.getpid()}-", dir=out.parent)
        if procs.is_main
        else None
    )
    try:
        yield work_dir
    finally:
        if procs.is_main:
            shutil.rmtree(work_dir, ignore_errors=True)


@contextmanager
def staged(out: Path) -> Iterator[Path]:
    """A fresh staging folder beside ``out``, moved into place as ``out`` when the block
    ends normally and deleted when it fails."""
    staging = out.parent / f".{out.name}.partial-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    staging.mkdir()  # not mkdtemp: the exported folder gets the usual (umask) permissions
    try:
        yield staging
        _move_into_place(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def save_model(model: Any, tokenizer: Any, folder: Path, max_length: int, quiet: bool) -> None:
    """Save ``model`` and ``tokenizer`` as a plain sequence-classification folder (safetensors;
    LoRA adapters merged in), the tokenizer recording the trained window."""
    tokenizer.model_max_length = max_length  # HFScorer's default window = the trained one
    if hasattr(model, "merge_and_unload"):  # tune="lora": fold the adapters into the weights
        model = model.merge_and_unload()
    with quiet_transformers(quiet):
        model.save_pretrained(folder, safe_serialization=True)
        tokenizer.save_pretrained(folder)


def verify_export(
    out: Path, thresholds: dict[str, float], max_length: int, quiet: bool = True
) -> list[str]:
    """Reload the exported folder as the graph will (`load_dm`, no untrained-head escape
    hatch): the DM it serves must read the thresholds that were written. Returns notes (a
    serving window that differs from the trained one)."""
    with quiet_transformers(quiet):
        dm = load_dm(out)
    if dm.thresholds != thresholds:
        raise DMLoadError(
            f"{out}: load_dm reads thresholds {dm.thresholds}, but {thresholds} were written"
        )
    scorer = dm.classifier if isinstance(dm, LikelihoodScorer) else dm
    if scorer is None:  # a head alone: the card is the DM, nothing else to reload
        return []
    assert isinstance(scorer, HFScorer)
    if scorer.model.config.id2label[scorer.positive_index] != LABELS[1]:
        raise DMLoadError(f"{out}: HFScorer does not take {LABELS[1]!r} as the positive label")
    if scorer.max_length != max_length:
        return [
            f"HFScorer serves this DM with a {scorer.max_length}-token window by default "
            f"(trained with {max_length}); pass max_length={max_length}"
        ]
    return []


def _move_into_place(staging: Path, out: Path) -> None:
    """Rename ``staging`` to ``out``; an existing ``out`` (``overwrite_output_dir``) is moved
    aside first and deleted only after the new folder is in place."""
    if out.exists():
        backup = out.with_name(f".{out.name}.replaced-{os.getpid()}")
        out.rename(backup)
        staging.rename(out)
        shutil.rmtree(backup, ignore_errors=True)
    else:
        staging.rename(out)


def _remove_stale(out: Path) -> None:
    """Delete what a killed `train_dm` left next to ``out``: its staging folder and Trainer's
    work folder, both named after the dead process. A killed training restarts from scratch
    (its checkpoints are not resumed: on these label sets a run takes minutes, and a resumed
    optimiser state would tie the DM to the killed run's settings); the next run finds the
    folders of processes that no longer exist and removes them. Another live training into
    the same folder keeps its own."""
    for kind in ("partial", "work"):
        for folder in out.parent.glob(f".{out.name}.{kind}-*"):
            pid = folder.name.removeprefix(f".{out.name}.{kind}-").split("-", 1)[0]
            if pid.isdigit() and not _alive(int(pid)):
                shutil.rmtree(folder, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True
