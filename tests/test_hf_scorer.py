"""The in-process DM on the real MiniLM: loading rules, truncation, batching, async safety."""

from __future__ import annotations

import asyncio
import json
import shutil
import time

import pytest

from drr_agent import DMLoadError, HFScorer, StepContext
from drr_agent.scorers import DM_METADATA_FILE, RemoteScorer, embedded_dm_base_path, load_dm

pytestmark = pytest.mark.embedded


def test_missing_folder(tmp_path):
    with pytest.raises(DMLoadError, match=r"does not exist.*drr train"):
        HFScorer(tmp_path / "nope")


def test_folder_without_config(tmp_path):
    with pytest.raises(DMLoadError, match=r"no config\.json"):
        HFScorer(tmp_path)


def test_base_encoder_is_not_a_classifier():
    with pytest.raises(DMLoadError, match="not a sequence classifier"):
        HFScorer(embedded_dm_base_path())


def test_classifier_folder_loads_with_labels_and_thresholds(classifier_dir, tmp_path):
    scorer = HFScorer(classifier_dir)
    assert scorer.positive_index == 1
    assert scorer.thresholds == {}
    copy = tmp_path / "with-meta"
    shutil.copytree(classifier_dir, copy)
    (copy / DM_METADATA_FILE).write_text(
        json.dumps({"accept_threshold": 0.4, "answer_threshold": 0.7, "positive_label": "bad"})
    )
    tuned = HFScorer(copy)
    assert tuned.thresholds == {"accept_threshold": 0.4, "answer_threshold": 0.7}
    assert tuned.positive_index == 0
    with pytest.raises(DMLoadError, match="'nope' is not among"):
        HFScorer(copy, positive_label="nope")
    (copy / DM_METADATA_FILE).write_text(json.dumps({"accept_threshold": "high"}))
    with pytest.raises(DMLoadError, match=rf"{DM_METADATA_FILE}: field 'accept_threshold'"):
        HFScorer(copy)
    (copy / DM_METADATA_FILE).write_text("{broken")
    with pytest.raises(DMLoadError, match=f"{DM_METADATA_FILE}: not valid JSON"):
        HFScorer(copy)


def test_truncated_weights_name_the_folder_and_file(classifier_dir, tmp_path):
    broken = tmp_path / "truncated"
    shutil.copytree(classifier_dir, broken)
    weights = broken / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(DMLoadError, match=r"truncated.*model\.safetensors.*damaged") as info:
        HFScorer(broken)
    assert str(broken) in str(info.value)


def test_config_that_does_not_match_the_weights_is_a_dm_load_error(classifier_dir, tmp_path):
    edited = tmp_path / "edited"
    shutil.copytree(classifier_dir, edited)
    config = json.loads((edited / "config.json").read_text())
    config["id2label"] = {str(i): f"l{i}" for i in range(5)}  # a 5-way head over 2-way weights
    config["label2id"] = {f"l{i}": i for i in range(5)}
    (edited / "config.json").write_text(json.dumps(config))
    with pytest.raises(DMLoadError, match=r"edited: config\.json does not match the weights"):
        HFScorer(edited)


def test_load_dm_picks_served_then_in_process_then_untrained_on_request(classifier_dir):
    served = load_dm(classifier_dir, url="http://127.0.0.1:9/")
    assert isinstance(served, RemoteScorer) and served.url == "http://127.0.0.1:9"
    local = load_dm(classifier_dir, num_threads=1)
    assert isinstance(local, HFScorer) and local.positive_index == 1
    with pytest.raises(DMLoadError, match="no DM given"):
        load_dm()
    untrained = load_dm(allow_untrained=True)
    assert isinstance(untrained, HFScorer) and untrained.path == embedded_dm_base_path()


def test_scores_are_probabilities_in_order(untrained_dm):
    items = [
        StepContext("What is 7 + 4?", (), "7 + 4 = 11"),
        StepContext("What is 7 + 4?", ("7 + 4 = 11",), "Answer: 11"),
        StepContext("What is 2 + 2?", (), "2 + 2 = 5"),
    ]
    scores = untrained_dm.score(items)
    assert len(scores) == 3 and all(0.0 <= s <= 1.0 for s in scores)
    # batching does not change results: each item alone gives the same score
    alone = [untrained_dm.score([item])[0] for item in items]
    assert scores == pytest.approx(alone, abs=1e-5)
    assert untrained_dm.score([]) == []


def test_truncation_keeps_question_candidate_and_latest_steps(untrained_dm):
    steps = tuple(f"step number {i} adds {i} apples to the basket" for i in range(200))
    item = StepContext("How many apples are in the basket?", steps, "CANDIDATE 199 apples")
    question, pair = untrained_dm._fit(item)
    assert question == item.question
    assert "step number 199 " in pair and "step number 0 " not in pair
    assert pair.endswith("CANDIDATE 199 apples")
    tokens = untrained_dm.tokenizer(question, pair)["input_ids"]
    assert len(tokens) <= untrained_dm.max_length
    kept = [s for s in steps if s in pair]
    assert kept == list(steps[-len(kept) :]), "kept steps are the latest, contiguous, in order"


async def test_ascore_does_not_block_the_event_loop(untrained_dm):
    items = [StepContext("q" * 50, ("s" * 200,) * 5, "c" * 100)] * 64
    ticks = 0

    async def ticker():
        nonlocal ticks
        while True:
            await asyncio.sleep(0.005)
            ticks += 1

    task = asyncio.create_task(ticker())
    start = time.perf_counter()
    await untrained_dm.ascore(items)
    elapsed = time.perf_counter() - start
    task.cancel()
    assert elapsed > 0.05, "the workload must be long enough to show blocking"
    assert ticks >= 3, f"event loop starved: {ticks} ticks in {elapsed:.2f}s"
