"""Model folders in the form vLLM serves them.

**The DM.** vLLM scores text pairs (``/score``, the cross-encoder API) only for heads with one
output; ``drr train`` writes a two-label classifier (`HFScorer` reads ``softmax(logits)[good]``).
For two logits, ``softmax(l)[good] = sigmoid(l_good - l_bad)``, so a head whose single row is
``W[good] - W[bad]`` (bias likewise) gives vLLM's sigmoid score the same probability, exactly up
to float rounding. Which row is "good" comes from the DM's config and ``drr_dm.json`` (the same
rule as `HFScorer`), never from position.

**The embedded Reasoner** (and the embedded verifier LM). vLLM does not run the Q4 GGUF that
llama.cpp runs; the conversion de-quantises it once with transformers (``gguf_file=``, ~15 s for
SmolLM2, ~100 s for the verifier) into float safetensors (`export_gguf`).

**Builders that meet.** DDP ranks, Ray actors on a fresh node, or ``drr serve`` beside
``drr train`` may build the same folder at once. Each build holds an ``flock`` on
``<out>.lock`` (`_build_lock`): the second builder waits, then finds the first one's folder
up to date and reuses it. A build is staged in a folder of its own beside ``out`` (killed
builds leave theirs, which the next builder removes) and moved into place only when complete,
with a mark (``drr_export.json``) listing every file and its size: a folder is up to date only
when the mark's source matches and every file it lists is there at its size.
"""

from __future__ import annotations

import fcntl
import glob
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from drr_agent.errors import DMLoadError

EXPORT_MARK = "drr_export.json"
_STAGING_INFIX = ".partial-"


def _up_to_date(out: Path, source: Path) -> bool:
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
def _build_lock(out: Path) -> Iterator[None]:
    """Hold ``<out>.lock`` (``flock``, waiting for another builder) for the block: one build
    of ``out`` at a time across processes. The kernel drops the lock when its holder exits,
    even by SIGKILL, so a killed build never blocks the next one."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.with_name(out.name + ".lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield  # closing the file releases the lock


@contextmanager
def _staging(out: Path) -> Iterator[Path]:
    """A new, empty folder beside ``out`` to build in (removed if the build fails). Call it
    under `_build_lock`: staging folders of killed builds are removed first."""
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


def _finish(staging: Path, out: Path, source: Path) -> Path:
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


def export_dm_for_vllm(dm_path: str | Path, out: str | Path) -> Path:
    """Write ``dm_path`` as a one-logit cross-encoder into ``out`` (reused while up to date).

    The DM card (`DMCard`: thresholds, window, a likelihood head) is copied along. Safe to
    call from several processes at once (see the module).
    """
    source, out = Path(dm_path).expanduser(), Path(out)
    with _build_lock(out):
        if _up_to_date(out, source):
            return out
        with _staging(out) as staging:
            return _export_dm(source, out, staging)


def _export_dm(source: Path, out: Path, staging: Path) -> Path:
    """`export_dm_for_vllm`'s build, in ``staging``, moved into place as ``out``."""
    import torch

    from drr_agent.scorers.card import DM_METADATA_FILE
    from drr_agent.scorers.hf import HFScorer

    # every check a user gets in-process, and the label rule; a likelihood head, if the card
    # has one, runs in the client over the served classifier (`load_dm(path, url=...)`)
    scorer = HFScorer(source, classifier_only=True)
    model, good = scorer.model, scorer.positive_index
    labels = int(model.config.num_labels)
    if labels == 1:
        raise DMLoadError(f"{source} already has a one-logit head: serve it as it is")
    if labels != 2:
        raise DMLoadError(f"{source} has {labels} labels; the DRR DM has two (good / bad)")
    head = model.classifier if hasattr(model, "classifier") else None
    if not isinstance(head, torch.nn.Linear):
        raise DMLoadError(
            f"{source}: {type(model).__name__}'s head is not a single linear layer; only such "
            "heads (BERT-like encoders, as drr train makes) can be converted for vLLM"
        )
    bad = 1 - good
    single = torch.nn.Linear(head.in_features, 1)
    with torch.no_grad():
        single.weight.copy_(head.weight[good : good + 1] - head.weight[bad : bad + 1])
        single.bias.copy_(head.bias[good : good + 1] - head.bias[bad : bad + 1])
    good_name = str(model.config.id2label[good])
    model.classifier = single
    model.config.num_labels = 1  # (resets the label names)
    model.config.id2label = {0: good_name}
    model.config.label2id = {good_name: 0}
    model.save_pretrained(staging, safe_serialization=True)
    scorer.tokenizer.save_pretrained(staging)
    if (source / DM_METADATA_FILE).is_file():
        scorer.card.save(staging)  # validated on load: a broken card never reaches a server
    return _finish(staging, out, source)


CACHE_ENV = "DRR_CACHE_DIR"
"""Environment variable naming drr-agent's cache folder (default ``~/.cache/drr-agent``)."""

EMBEDDED_REASONER_FOLDER = "smollm2-135m-instruct"
"""Name of the de-quantised embedded Reasoner inside the cache."""


def cache_dir() -> Path:
    """drr-agent's cache: ``$DRR_CACHE_DIR``, else ``~/.cache/drr-agent``."""
    configured = os.environ.get(CACHE_ENV)
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "drr-agent"


def embedded_reasoner_folder() -> Path:
    """The embedded SmolLM2 as a float32 Hugging Face folder in `cache_dir`, exported once and
    reused while the GGUF is unchanged. One copy serves every use: vLLM (`drr serve`), a DM on
    the Reasoner's backbone (`drr train --base embedded-smollm2`), and the Reasoner-likelihood
    features of a DM (`drr_agent.scorers.likelihood`)."""
    return export_embedded_reasoner(_in_cache(EMBEDDED_REASONER_FOLDER))


def _in_cache(name: str) -> Path:
    """Folder ``name`` inside `cache_dir` (the cache itself is created)."""
    folder = cache_dir() / name
    folder.parent.mkdir(parents=True, exist_ok=True)
    return folder


EMBEDDED_VERIFIER_FOLDER = "qwen2.5-coder-0.5b-instruct"
"""Name of the de-quantised embedded verifier LM inside the cache."""


def embedded_verifier_folder() -> Path:
    """The embedded verifier LM (Qwen2.5-Coder-0.5B-Instruct, `drr_agent.scorers.verifier_model`)
    as a float32 Hugging Face folder in `cache_dir`, exported once and reused while its GGUF is
    unchanged: the likelihood model of ``drr train --likelihood-model embedded-qwen2.5-0.5b``."""
    from drr_agent.scorers.verifier_model import embedded_verifier_gguf

    return export_gguf(embedded_verifier_gguf(), _in_cache(EMBEDDED_VERIFIER_FOLDER))


def export_embedded_reasoner(out: str | Path) -> Path:
    """The embedded SmolLM2-135M-Instruct as a float32 Hugging Face folder for vLLM."""
    from drr_agent.reasoners.embedded import embedded_gguf_path

    return export_gguf(embedded_gguf_path(), out)


def export_gguf(gguf: str | Path, out: str | Path) -> Path:
    """De-quantise a causal LM's GGUF into a float32 Hugging Face folder ``out`` (safetensors,
    tokenizer), reused while the GGUF is unchanged; safe to call from several processes at
    once (see the module)."""
    gguf, out = Path(gguf), Path(out)
    with _build_lock(out):
        if _up_to_date(out, gguf):
            return out
        with _staging(out) as staging:
            return _export_gguf(gguf, out, staging)


def _export_gguf(gguf: Path, out: Path, staging: Path) -> Path:
    """`export_gguf`'s build, in ``staging``, moved into place as ``out``."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kwargs = {"gguf_file": gguf.name}
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, **kwargs)
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, dtype=torch.float32, **kwargs)
    # transformers marks a GGUF-loaded model as quantized and will not save it; the weights are
    # plain float32 by now, so they move into an unquantized model of the same config
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict())
    model.save_pretrained(staging, safe_serialization=True)
    tokenizer.save_pretrained(staging)
    return _finish(staging, out, gguf)
