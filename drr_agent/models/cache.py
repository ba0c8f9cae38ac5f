"""drr-agent's model cache: where converted model folders live, and how one is built safely.

**Builders that meet.** DDP ranks, Ray actors on a fresh node, or ``drr serve`` beside
``drr train`` may build the same folder at once. Each build holds an ``flock`` on
``<out>.lock`` (`build_lock`): the second builder waits, then finds the first one's folder
up to date and reuses it. A build is staged in a folder of its own beside ``out``
(`staging_folder`; killed builds leave theirs, which the next builder removes) and moved into
place only when complete (`finish_build`), with a mark (``drr_export.json``) listing every file
and its size: a folder is up to date (`up_to_date`) only when the mark's source matches and
every file it lists is there at its size.

`build_once` puts those together: a builder (`drr_agent.models.gguf.export_gguf`,
`drr_agent.serving.export_dm_for_vllm`) only writes the folder's files into the staging
folder it is given.
"""

from __future__ import annotations

import fcntl
import glob
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = [
    "CACHE_ENV",
    "EXPORT_MARK",
    "build_lock",
    "build_once",
    "cache_dir",
    "finish_build",
    "in_cache",
    "staging_folder",
    "up_to_date",
]

CACHE_ENV = "DRR_CACHE_DIR"
"""Environment variable naming drr-agent's cache folder (default ``~/.cache/drr-agent``)."""

EXPORT_MARK = "drr_export.json"
"""The mark `finish_build` writes into a finished folder: its source and every file's size."""

_STAGING_INFIX = ".partial-"


def cache_dir() -> Path:
    """drr-agent's cache: ``$DRR_CACHE_DIR``, else ``~/.cache/drr-agent``."""
    configured = os.environ.get(CACHE_ENV)
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "drr-agent"


def in_cache(name: str) -> Path:
    """Folder ``name`` inside `cache_dir` (the cache itself is created)."""
    folder = cache_dir() / name
    folder.parent.mkdir(parents=True, exist_ok=True)
    return folder


def up_to_date(out: Path, source: Path) -> bool:
    """Whether ``out`` is a finished export of ``source`` as it is now: the mark names the
    source's modification time and every file the build wrote is there at its size."""
    try:
        recorded = json.loads((out / EXPORT_MARK).read_text())
    except (OSError, ValueError):
        return False
    files = recorded.get("files") if isinstance(recorded, dict) else None
    if not isinstance(files, dict) or not files:  # a mark of an older drr-agent: rebuild
        return False
    if recorded.get("source_mtime_ns") != _mtime(source):
        return False
    for name, size in files.items():
        path = out / name
        if not path.is_file() or path.stat().st_size != size:
            return False
    return True


@contextmanager
def build_lock(out: Path) -> Iterator[None]:
    """Hold ``<out>.lock`` (``flock``, waiting for another builder) for the block: one build
    of ``out`` at a time across processes. The kernel drops the lock when its holder exits,
    even by SIGKILL, so a killed build never blocks the next one."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.with_name(out.name + ".lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield  # closing the file releases the lock


@contextmanager
def staging_folder(out: Path) -> Iterator[Path]:
    """A new, empty folder beside ``out`` to build in (removed if the build fails). Call it
    under `build_lock`: staging folders of killed builds are removed first."""
    for stale in out.parent.glob(glob.escape(out.name) + ".partial*"):  # (and the old name)
        shutil.rmtree(stale, ignore_errors=True)
    staging = Path(tempfile.mkdtemp(prefix=out.name + _STAGING_INFIX, dir=out.parent))
    # mkdtemp makes it private (0700); the cache's folders get the cache's own permissions
    staging.chmod(out.parent.stat().st_mode & 0o777)
    try:
        yield staging
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # moved into place by then if it succeeded


def _mtime(source: Path) -> int:
    files = [source] if source.is_file() else [p for p in source.iterdir() if p.is_file()]
    return max(p.stat().st_mtime_ns for p in files)


def finish_build(staging: Path, out: Path, source: Path) -> Path:
    """Mark ``staging`` complete (its files and their sizes) and move it into place as
    ``out``; an older ``out`` is moved aside first and removed after, so ``out`` is never a
    half-removed folder."""
    files = {
        str(p.relative_to(staging)): p.stat().st_size for p in staging.rglob("*") if p.is_file()
    }
    mark = {"source": str(source), "source_mtime_ns": _mtime(source), "files": files}
    (staging / EXPORT_MARK).write_text(json.dumps(mark, indent=1, sort_keys=True) + "\n")
    old = None
    if out.exists():
        old = Path(tempfile.mkdtemp(prefix=out.name + _STAGING_INFIX, dir=out.parent))
        out.rename(old / "old")
    staging.rename(out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return out


def build_once(out: Path, source: Path, write: Callable[[Path], object]) -> Path:
    """``out``, built from ``source`` unless it is up to date: under `build_lock`, ``write``
    fills a fresh `staging_folder`, which `finish_build` marks and moves into place. A second
    process asking at once waits, then reuses the first one's folder."""
    with build_lock(out):
        if up_to_date(out, source):
            return out
        with staging_folder(out) as staging:
            write(staging)
            return finish_build(staging, out, source)
