"""The embedded models: which files exist, where they are, and the cache of converted copies.

The bottom floor that `drr_agent.reasoners`, `drr_agent.scorers`, `drr_agent.offline` and
`drr_agent.serving` read model files from; it imports nothing of theirs.

- `registry`: the embedded models by name (`EMBEDDED_MODELS`: SmolLM2-135M-Instruct, the
  Qwen2.5-Coder-0.5B verifier LM) and the embedded DM base (all-MiniLM-L6-v2); where each
  one's files are (`embedded_gguf_path`, `embedded_verifier_gguf`, `embedded_dm_base_path`)
  and where its float copy is cached (`embedded_reasoner_folder`, `embedded_verifier_folder`).
- `gguf`: GGUF parts joined and checked (`join_parts`), a GGUF de-quantised into a float32
  Hugging Face folder (`export_gguf`).
- `cache`: drr-agent's cache folder (`cache_dir`, ``$DRR_CACHE_DIR``) and how a folder in it
  is built once across processes (a lock, a staging folder, a mark of what was written).
"""

from drr_agent.models.cache import CACHE_ENV, cache_dir
from drr_agent.models.gguf import export_gguf
from drr_agent.models.registry import (
    DEFAULT_EMBEDDED,
    EMBEDDED_MODELS,
    EmbeddedModel,
    embedded_dm_base_path,
    embedded_gguf_path,
    embedded_model,
    embedded_reasoner_folder,
    embedded_verifier_folder,
    embedded_verifier_gguf,
    export_embedded_reasoner,
)

__all__ = [
    "CACHE_ENV",
    "DEFAULT_EMBEDDED",
    "EMBEDDED_MODELS",
    "EmbeddedModel",
    "cache_dir",
    "embedded_dm_base_path",
    "embedded_gguf_path",
    "embedded_model",
    "embedded_reasoner_folder",
    "embedded_verifier_folder",
    "embedded_verifier_gguf",
    "export_embedded_reasoner",
    "export_gguf",
]
