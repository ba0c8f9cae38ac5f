"""`DMTrainer`: the pairwise term is exactly pair_weight · BT loss, in training only."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from drr_agent.offline.training.trainer import DMTrainer
from drr_agent.scorers import embedded_dm_base_path


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(str(embedded_dm_base_path()))
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        num_labels=2,
    )
    return BertForSequenceClassification(config), tokenizer


def _rows(tokenizer, texts):
    enc = tokenizer(texts)
    return [{k: enc[k][i] for k in enc} for i in range(len(texts))]


def test_pairwise_term_is_added_in_training_only(tiny, tmp_path):
    from transformers import TrainingArguments

    model, tokenizer = tiny
    better = _rows(tokenizer, ["7 + 4 = 11", "2 + 2 = 4"])
    worse = _rows(tokenizer, ["7 + 4 = 12", "2 + 2 = 5"])
    args = TrainingArguments(output_dir=str(tmp_path), report_to="none", use_cpu=True)
    trainer = DMTrainer(
        model=model,
        args=args,
        processing_class=tokenizer,
        pairs=list(zip(better, worse, strict=True)),
        pair_weight=0.5,
        pair_batch_size=2,
    )
    batch = tokenizer.pad(_rows(tokenizer, ["1 + 1 = 2", "3 + 3 = 7"]), return_tensors="pt")
    batch["labels"] = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    model.eval()  # no dropout, and evaluation: no pairwise term
    plain = trainer.compute_loss(model, dict(batch))
    model.train()
    for module in model.modules():  # deterministic forward, but model.training stays True
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
    with_pairs = trainer.compute_loss(model, dict(batch))

    def margin(rows):
        logits = model(**tokenizer.pad(rows, return_tensors="pt")).logits
        return logits[:, 1] - logits[:, 0]

    bt = -F.logsigmoid(margin(better) - margin(worse)).mean()
    assert with_pairs.item() == pytest.approx(plain.item() + 0.5 * bt.item(), rel=1e-5)
    # no pairs or no weight: the plain Trainer loss
    trainer.pair_weight = 0.0
    assert trainer.compute_loss(model, dict(batch)).item() == pytest.approx(plain.item(), 1e-6)
