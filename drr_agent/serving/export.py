"""The DM as vLLM serves it: a two-label classifier rewritten as a one-logit cross-encoder.

vLLM scores text pairs (``/score``, the cross-encoder API) only for heads with one
output; ``drr train`` writes a two-label classifier (`HFScorer` reads ``softmax(logits)[good]``).
For two logits, ``softmax(l)[good] = sigmoid(l_good - l_bad)``, so a head whose single row is
``W[good] - W[bad]`` (bias likewise) gives vLLM's sigmoid score the same probability, exactly up
to float rounding. Which row is "good" comes from the DM's config and ``drr_dm.json`` (the same
rule as `HFScorer`), never from position.

The embedded Reasoner (and the embedded verifier LM) are served from their de-quantised
copies in the model cache (`drr_agent.models`: `embedded_reasoner_folder`, `export_gguf`).
Like those, the export is built once across processes — ``drr serve`` beside ``drr train``,
Ray actors on a fresh node — under the cache's lock, in a staging folder, with a mark of what
was written (`drr_agent.models.cache`).
"""

from __future__ import annotations

from pathlib import Path

from drr_agent.errors import DMLoadError
from drr_agent.models.cache import build_once
from drr_agent.scorers.card import DM_METADATA_FILE
from drr_agent.scorers.hf import HFScorer

__all__ = ["export_dm_for_vllm"]


def export_dm_for_vllm(dm_path: str | Path, out: str | Path) -> Path:
    """Write ``dm_path`` as a one-logit cross-encoder into ``out`` (reused while up to date).

    The DM card (`DMCard`: thresholds, window, a likelihood head) is copied along. Safe to
    call from several processes at once (`drr_agent.models.cache`).
    """
    source = Path(dm_path).expanduser()
    return build_once(Path(out), source, lambda staging: _write_one_logit_dm(source, staging))


def _write_one_logit_dm(source: Path, staging: Path) -> None:
    """`export_dm_for_vllm`'s files, written into ``staging``."""
    import torch

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
