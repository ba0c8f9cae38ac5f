"""Append-only JSON Lines files of validated records: the resume mechanism of long jobs.

A job writes one line per finished unit (a trace, a labelled step, an eval item) and flushes
it, so killing the job loses at most the unit in flight. On restart the job reads the file,
skips the keys already there and appends the rest — no loss, no duplicates. A line cut short
by a kill (the last line, with no newline) is dropped and rewritten; any other bad line is an
error naming the file, the line and the field.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Hashable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Generic, TypeVar

from pydantic import BaseModel, ValidationError

from drr_agent.errors import DRRError, describe_validation_error

M = TypeVar("M", bound=BaseModel)


class RecordFileError(DRRError, ValueError):
    """A JSON Lines file holds a line that is not a valid record."""


class RecordFileLockedError(DRRError):
    """Another process is writing the same record file."""


class RecordFile(Generic[M]):
    """A JSON Lines file of ``model`` records.

    Args:
        path: The file (created with its folder on first append).
        model: The pydantic model every line must validate as.
    """

    def __init__(self, path: str | os.PathLike[str], model: type[M]) -> None:
        self.path = Path(path)
        self.model = model

    def read(self, *, repair: bool = False) -> list[M]:
        """All records, validated. ``repair`` drops a truncated last line (a killed write)."""
        if not self.path.exists():
            return []
        raw = self.path.read_bytes()
        lines = raw.split(b"\n")
        complete = raw.endswith(b"\n") or not raw
        records: list[M] = []
        offset = 0
        for number, line in enumerate(lines, 1):
            is_tail = number == len(lines)
            if is_tail and complete:
                break
            try:
                if not line.strip():
                    raise RecordFileError(f"{self.path}:{number}: empty line")
                records.append(self.model.model_validate_json(line))
            except (ValidationError, RecordFileError) as exc:
                if is_tail and not complete:
                    if repair:  # cut short by a kill: forget it, it will be redone
                        with self.path.open("r+b") as fh:
                            fh.truncate(offset)
                        break
                    raise RecordFileError(
                        f"{self.path}:{number}: truncated last line (an interrupted write?); "
                        "resuming the job repairs it"
                    ) from exc
                if isinstance(exc, RecordFileError):
                    raise
                detail = describe_validation_error(exc)
                raise RecordFileError(
                    f"{self.path}:{number}: invalid {self.model.__name__}: {detail}"
                ) from exc
            offset += len(line) + 1
        return records

    def append(self, records: Iterable[M]) -> int:
        """Append records, one flushed line each; returns how many were written."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        count = 0
        with self.path.open("a", encoding="utf-8") as fh:
            for record in records:
                fh.write(record.model_dump_json() + "\n")
                fh.flush()
                count += 1
        return count

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """Hold the file for one writer for the whole job (from reading the done keys to the
        last append): a second ``drr traces`` / ``drr eval`` on the same file fails at once
        instead of interleaving lines and redoing the same units.

        The lock is ``flock`` on ``<file>.lock``: the kernel drops it when the holder exits,
        even by SIGKILL, so a killed job never leaves the file locked.
        """
        lock_path = self.path.with_name(self.path.name + ".lock")
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        handle = lock_path.open("a+", encoding="utf-8")
        try:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                holder = handle.read().strip() or "another process"
                raise RecordFileLockedError(
                    f"{self.path} is being written by {holder} (lock {lock_path}); wait for "
                    "that job to finish or stop it, then run again to resume"
                ) from None
            handle.seek(0)
            handle.truncate()
            handle.write(f"pid {os.getpid()}\n")
            handle.flush()
            yield
        finally:
            handle.close()  # closing releases the lock

    def keys(self, *, repair: bool = True) -> set[Hashable]:
        """Keys (``record.key``) of the records on disk, for resuming."""
        return {getattr(r, "key") for r in self.read(repair=repair)}  # noqa: B009


def write_json(path: str | os.PathLike[str], data: object) -> None:
    """Write a JSON document atomically (temp file + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
    tmp.replace(path)
