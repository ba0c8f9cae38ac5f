"""Append-only JSON Lines files of validated records: the resume mechanism of long jobs.

A job writes one line per finished unit (a trace, a labelled step, an eval item) straight to
the file (no buffer of ours in between), so killing the job loses at most the unit in flight.
On restart the job reads the file, skips the keys already there and appends the rest — no
loss, no duplicates. A line cut short by a kill (the last line, with no newline) is dropped
and rewritten; a complete last line that lost only its newline gets it back before the next
append (instead of the next line being glued onto it); any other bad line is an error naming
the file, the line and the field.

A kill loses nothing written, a power cut what the kernel had not yet put on disk: an append
``fsync``s the file once `SYNC_INTERVAL_S` have passed since the last ``fsync``, and a job
``fsync``s it when it lets go of it (`RecordFile.exclusive`), so a power cut costs the last
few seconds of work, not the kernel's writeback delay.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Hashable, Iterable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Generic, TypeVar

from pydantic import BaseModel, ValidationError

from drr_agent.errors import DRRError, describe_validation_error

M = TypeVar("M", bound=BaseModel)

SYNC_INTERVAL_S = 2.0
"""An append ``fsync``s the file when this long has passed since the last ``fsync``: while a
job writes steadily, a power cut loses at most these last seconds of work (a kill loses
nothing written). Syncing every line would cost a disk flush per trace; never syncing leaves
it to the kernel's writeback (~30 s of dirty pages)."""


class RecordFileError(DRRError, ValueError):
    """A JSON Lines file holds a line that is not a valid record."""


class RecordFileLockedError(DRRError):
    """Another process is writing the same record file."""


class RecordFile(Generic[M]):
    """A JSON Lines file of ``model`` records.

    Args:
        path: The file (created with its folder on first append).
        model: The pydantic model every line must validate as.
        sync_interval_s: At most this long between ``fsync``s while appending
            (`SYNC_INTERVAL_S`; 0: after every append).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        model: type[M],
        *,
        sync_interval_s: float = SYNC_INTERVAL_S,
    ) -> None:
        self.path = Path(path)
        self.model = model
        self.sync_interval_s = sync_interval_s
        self._synced_at = time.monotonic()
        self._folder_synced = True  # False once an append creates the file

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

    def ends_mid_line(self) -> bool:
        """Whether the file's last line lacks its newline: the last write was cut short (a
        kill), or the file was edited by hand. Ask before `read` with ``repair`` mends it."""
        if not self.path.exists():
            return False
        with self.path.open("rb") as fh:
            size = fh.seek(0, os.SEEK_END)
            if not size:
                return False
            fh.seek(size - 1)
            return fh.read(1) != b"\n"

    def append(self, records: Iterable[M]) -> int:
        """Append records in one write; returns how many were written.

        One write, not one per record: a group of rows that belong together (one item's
        sibling candidates) reaches the file whole, unless a kill cuts that very write —
        which leaves the file ending mid-line (`ends_mid_line`), so a resume can tell.
        """
        data = b"".join(record.model_dump_json().encode() + b"\n" for record in records)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not self.path.exists():
            self._folder_synced = False
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o666)  # even if empty
        try:
            if data:
                _end_with_newline(fd)
                _write_all(fd, data)
            if time.monotonic() - self._synced_at >= self.sync_interval_s:
                self._sync_fd(fd)
        finally:
            os.close(fd)
        return data.count(b"\n")  # a record's JSON never holds a raw newline

    def sync(self) -> None:
        """``fsync`` the file (and its folder, if this object created the file): what was
        appended survives a power cut. `exclusive` calls it when the job lets go."""
        if not self.path.exists():
            return
        fd = os.open(self.path, os.O_RDONLY)
        try:
            self._sync_fd(fd)
        finally:
            os.close(fd)

    def _sync_fd(self, fd: int) -> None:
        os.fsync(fd)
        if not self._folder_synced:  # a new file's name lives in its folder
            _fsync_folder(self.path.parent)
            self._folder_synced = True
        self._synced_at = time.monotonic()

    def rewrite(self, records: Iterable[M]) -> None:
        """Replace the file's content with ``records`` atomically (temp file, ``fsync``,
        rename): a kill or power cut leaves the old content or the new, never a mix."""
        tmp = RecordFile(self.path.with_name(self.path.name + ".tmp"), self.model)
        tmp.path.unlink(missing_ok=True)
        tmp.append(records)
        tmp.sync()
        tmp.path.replace(self.path)
        _fsync_folder(self.path.parent)

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
            try:
                yield
            except BaseException:
                with suppress(OSError):  # the job's own error is the one to report
                    self.sync()
                raise
            self.sync()  # the job's end: what it wrote survives a power cut
        finally:
            handle.close()  # closing releases the lock

    def keys(self, *, repair: bool = True) -> set[Hashable]:
        """Keys (``record.key``) of the records on disk, for resuming."""
        return {getattr(r, "key") for r in self.read(repair=repair)}  # noqa: B009


def _end_with_newline(fd: int) -> None:
    """Give a non-empty file whose last line lacks its newline that newline, so the next
    append starts a line of its own. Such a last line is complete and valid (`read` keeps
    it) — a hand edit, or a write cut exactly before its newline."""
    size = os.fstat(fd).st_size
    if size and os.pread(fd, 1, size - 1) != b"\n":
        _write_all(fd, b"\n")


def _write_all(fd: int, data: bytes) -> None:
    """``os.write`` until all of ``data`` is written (a write may take only part of it)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _fsync_folder(folder: Path) -> None:
    """``fsync`` a folder, so a file created or renamed in it survives a power cut."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_json(path: str | os.PathLike[str], data: object) -> None:
    """Write a JSON document atomically (temp file + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
    tmp.replace(path)
