"""The light DM's inputs: statistics of the Reasoner's own token log-probs (`reasoners.signals`).

Doubles for the logic (OpenAI-shaped replies, the scripted chat model, a head fitted on
synthetic rows); one ``embedded`` test reads the real Qwen Reasoner's log-probs through the
graph, so the statistics a light DM trains on are the ones the running graph hands it.
"""

from __future__ import annotations

import math
import shutil

import numpy as np
import pytest
from doubles import ScriptedChatModel, labelled_step
from langchain_core.messages import AIMessage
from typer.testing import CliRunner

from drr_agent import DRRConfig, FunctionScorer, build_graph
from drr_agent.cli import app
from drr_agent.errors import DMLoadError
from drr_agent.offline.records import StepExample
from drr_agent.offline.train import TrainConfig, train_dm
from drr_agent.offline.training.recipe import DM_RECIPES
from drr_agent.reasoners.signals import (
    LOGPROB_FLOOR,
    SAMPLED_FEATURES,
    SampledToken,
    reply_tokens,
    step_statistics,
    trace_step_statistics,
)
from drr_agent.scorers import load_dm
from drr_agent.scorers.base import StepContext, StepScorer
from drr_agent.scorers.card import DM_METADATA_FILE, DMCard
from drr_agent.scorers.likelihood import (
    SAMPLED_HEAD_INPUTS,
    LikelihoodHead,
    LikelihoodScorer,
    MissingSignalsError,
    head_inputs,
    sampled_rows,
)
from drr_agent.scorers.parts import dm_parts, total_parameters


def tokens(*pieces: tuple[str, float, float]) -> tuple[SampledToken, ...]:
    return tuple(SampledToken(text, lp, best) for text, lp, best in pieces)


STEP = tokens(
    ("94", -0.01, -0.01),
    (" +", -0.02, -0.02),
    (" ", -0.0, -0.0),
    ("67", -0.0, -0.0),
    (" =", -0.01, -0.01),
    (" ", -0.0, -0.0),
    ("1", -0.05, -0.05),
    ("5", -2.0, -0.3),
    ("1", -0.1, -0.1),
    (".", -0.4, -0.4),
)  # fmt: skip  "94 + 67 = 151.": the tens digit of the claim was a sampled slip


def test_statistics_single_out_the_claimed_number_and_the_slip() -> None:
    stats = step_statistics(STEP)
    assert stats is not None and list(stats) == list(SAMPLED_FEATURES)
    assert stats["sampled_claim_logprob"] == pytest.approx(-0.05 - 2.0 - 0.1)  # "151" alone
    assert stats["sampled_claim_min_gap"] == pytest.approx(-1.7)
    assert stats["sampled_min_gap"] == pytest.approx(-1.7)
    assert stats["sampled_digit_min_logprob"] == pytest.approx(-2.0)
    assert stats["sampled_mean_logprob"] == pytest.approx(sum(t.logprob for t in STEP) / 10)
    assert stats["sampled_log_tokens"] == pytest.approx(math.log(11))
    assert step_statistics(()) is None
    # no digits: the claim and digit statistics take the all-token values, never "certain"
    words = step_statistics(tokens(("Add", -1.0, -0.5), (" them", -0.2, -0.2)))
    assert words is not None
    assert words["sampled_claim_logprob"] == words["sampled_min_logprob"] == -1.0
    assert words["sampled_digit_min_gap"] == pytest.approx(-0.5)


def test_reply_tokens_read_the_openai_shape_and_refuse_malformed_ones() -> None:
    content = [
        {"token": "7", "logprob": -1.5, "top_logprobs": [{"token": "8", "logprob": -0.3}]},
        {"token": ".", "logprob": -0.1, "top_logprobs": []},
    ]
    message = AIMessage("7.", response_metadata={"logprobs": {"content": content}})
    assert reply_tokens(message) == tokens(("7", -1.5, -0.3), (".", -0.1, -0.1))
    assert reply_tokens(AIMessage("7.")) is None
    broken = [{"token": "7", "logprob": float("nan")}]
    assert reply_tokens(AIMessage("7", response_metadata={"logprobs": {"content": broken}})) is None
    # a continuation that wrote nothing (llama.cpp echoes the prefill) has no tokens, not
    # unknown ones, so the step it continues keeps its statistics
    empty = AIMessage("4 + 3 =", response_metadata={"logprobs": {"content": []}})
    assert reply_tokens(empty) == ()
    # llama.cpp sends some one-token continuations after a length cut ("." or "]") with no
    # log-prob object: the step keeps the tokens it had (a light DM's steps lost all their
    # statistics to it on chain_sum dev: MissingSignalsError)
    from drr_agent.reasoners.base import _Reply

    cut = _Reply("To solve 89 - 52", 3, 64, tokens(("To", -0.1, -0.1)), 1, cut=True)
    bare = _Reply(".", 70, 1, None, 1, cut=False)
    assert cut.then(bare, "").tokens == cut.tokens and cut.then(bare, "").text.endswith("52.")
    unknown = _Reply("To solve", 3, 64, None, 1, cut=True)  # never asked: stays unknown
    assert unknown.then(cut, "").tokens is None
    floored = [{"token": "7", "logprob": float("-inf"), "top_logprobs": []}]
    got = reply_tokens(AIMessage("7", response_metadata={"logprobs": {"content": floored}}))
    assert got == tokens(("7", LOGPROB_FLOOR, LOGPROB_FLOOR))


def test_trace_steps_get_the_statistics_of_their_own_tokens() -> None:
    first = tokens(("4", -0.1, -0.1), (" +", -0.1, -0.1), (" 3", -0.1, -0.1), (" =", -0.1, -0.1))
    claim = tokens((" 7", -0.9, -0.2))
    rest = tokens(("\n", -0.1, -0.1), ("Answer", -0.1, -0.1), (":", -0.1, -0.1), (" 7", -0.3, -0.3))
    text = "".join(t.text for t in (*first, *claim, *rest))
    found = trace_step_statistics(text, ["4 + 3 = 7", "Answer: 7"], (*first, *claim, *rest))
    assert found is not None and found[0] is not None and found[1] is not None
    assert found[0]["sampled_claim_logprob"] == pytest.approx(-0.9)
    assert found[1]["sampled_claim_logprob"] == pytest.approx(-0.3)
    # a server whose tokens do not spell the text gives none rather than misplaced ones
    assert trace_step_statistics("something else", ["x"], first) is None
    assert trace_step_statistics(text, ["not in it"], first + claim + rest) == [None]


def _signals(claim: float) -> dict[str, float]:
    stats = step_statistics(tokens(("1", -0.1, -0.1), ("2", claim, min(claim, -0.05))))
    assert stats is not None
    return stats


def _fitted_head(*extra: str) -> LikelihoodHead:
    rng = np.random.default_rng(0)
    claims = rng.uniform(-4, 0, 200)
    labels = (claims > -1).astype(float)  # sure of its claim: right
    rows = np.vstack([list(_signals(c).values()) for c in claims])
    return LikelihoodHead.fit(
        head_inputs(None, rng.uniform(0.1, 0.9, len(rows)), None, rows),
        labels,
        features=["sampled_claim_logprob", "sampled_claim_min_gap", *extra],
    )


class _NeverRun(StepScorer):
    name = "classifier"

    async def ascore(self, items):  # pragma: no cover - a head without the classifier
        raise AssertionError("the classifier must not run")


async def test_a_head_over_the_reasoners_signals_runs_no_model() -> None:
    head = _fitted_head()
    assert head.reads_sampled and not head.reads_verifier and not head.reads_classifier
    scorer = LikelihoodScorer(_NeverRun(), head)
    assert scorer.likelihood is None and scorer.reads_reasoner_logprobs
    sure, unsure = (StepContext("q", (), "12", _signals(v)) for v in (-0.1, -3.0))
    high, low = await scorer.ascore([sure, unsure])
    assert high > 0.5 > low
    assert scorer.score([sure, unsure]) == pytest.approx([high, low])
    with pytest.raises(MissingSignalsError, match=r"step 0 \('12'\).*logprobs"):
        await scorer.ascore([StepContext("q", (), "12")])
    assert sampled_rows([sure]).shape == (1, len(SAMPLED_FEATURES))


def test_dm_parts_count_no_model_for_the_reasoners_own_log_probs(classifier_dir, tmp_path) -> None:
    folder = tmp_path / "dm"
    shutil.copytree(classifier_dir, folder)
    head = _fitted_head()
    assert set(head.features) <= set(SAMPLED_HEAD_INPUTS)
    card = DMCard.load(folder).model_copy(update={"likelihood_head": head})
    (folder / "drr_dm.json").write_text(card.model_dump_json())
    parts = dm_parts(folder)
    # the head reads no classifier logit: the folder's classifier never runs, so it is no part
    assert [p.role for p in parts] == ["reasoner log-probs", "head"]
    assert parts[0].parameters == 0
    assert total_parameters(parts) == parts[1].parameters == 3  # two weights and a bias
    card = card.model_copy(update={"likelihood_head": _fitted_head("classifier_logit")})
    (folder / "drr_dm.json").write_text(card.model_dump_json())
    assert [p.role for p in dm_parts(folder)] == ["classifier", "reasoner log-probs", "head"]


def test_a_light_dm_is_its_card_alone(classifier_dir, tmp_path) -> None:
    """A head over the Reasoner's own log-probs needs no classifier: `load_dm` loads a folder
    that holds only its card (no weights), and scores as the head says."""
    folder = tmp_path / "light"
    folder.mkdir()
    head = _fitted_head()
    card = DMCard.load(classifier_dir).model_copy(update={"likelihood_head": head})
    (folder / "drr_dm.json").write_text(card.model_dump_json())
    dm = load_dm(folder)
    assert isinstance(dm, LikelihoodScorer) and dm.classifier is None and dm.likelihood is None
    assert dm.thresholds == head.thresholds and dm.fingerprint
    sure, unsure = (StepContext("q", (), "12", _signals(v)) for v in (-0.1, -3.0))
    rows = sampled_rows([sure, unsure])
    assert dm.score([sure, unsure]) == pytest.approx(
        head.probabilities(head_inputs(None, None, None, rows, rows=2)).tolist()
    )
    reads = card.model_copy(update={"likelihood_head": _fitted_head("classifier_logit")})
    (folder / "drr_dm.json").write_text(reads.model_dump_json())
    with pytest.raises(DMLoadError, match=r"no config\.json"):  # that head needs the classifier
        load_dm(folder)
    with pytest.raises(DMLoadError, match="reads the classifier"):
        LikelihoodScorer(None, reads.likelihood_head)


def _signalled(question: str, claim: float, split: str) -> StepExample:
    """A step whose Reasoner was sure (``claim`` near 0) or not of its claim; sure is right."""
    return labelled_step(
        question,
        "12 + 30 = 42",
        float(claim > -1),
        split=split,
        final=True,
        signals=_signals(claim),
    )


def test_the_light_recipe_trains_a_head_alone(tmp_path) -> None:
    """``drr train --recipe light``: no classifier is loaded, trained or written; the folder
    is the card (and its model card), and `load_dm` scores with the head."""
    rng = np.random.default_rng(1)
    train = [_signalled(f"q{i}", c, "train") for i, c in enumerate(rng.uniform(-4, 0, 60))]
    dev = [_signalled(f"d{i}", c, "dev") for i, c in enumerate(rng.uniform(-4, 0, 30))]
    config = TrainConfig.from_recipe(DM_RECIPES["light"], output_dir=tmp_path / "dm")
    assert not config.trains_classifier and DM_RECIPES["verifier"].trains_classifier
    result = train_dm(train, config, dev=dev, progress=False)
    files = sorted(p.name for p in (tmp_path / "dm").iterdir())
    assert files == ["README.md", DM_METADATA_FILE]  # no weights, no tokenizer
    assert result.base_model is None and result.epochs_run == 0
    assert result.eval_report is not None and result.eval_report.auroc > 0.9
    card = DMCard.load(tmp_path / "dm")
    assert card.base_model is None and card.likelihood_head is not None
    assert card.likelihood_head.thresholds == result.thresholds
    readme = (tmp_path / "dm" / "README.md").read_text()
    assert "a likelihood head alone" in readme and "library_name" not in readme
    dm = load_dm(tmp_path / "dm")
    sure, unsure = (StepContext("q", (), "12", _signals(v)) for v in (-0.1, -3.0))
    high, low = dm.score([sure, unsure])
    assert high > 0.5 > low
    # nothing of it to serve: `drr serve` says where its inputs come from instead
    served = CliRunner().invoke(
        app, ["serve", "--dm", str(tmp_path / "dm"), "--cache", str(tmp_path / "cache")]
    )
    assert served.exit_code == 2 and "head alone" in " ".join(served.output.split())


class _Reading(FunctionScorer):
    """A DM that reads the Reasoner's log-probs: records what it is shown, scores 0.9."""

    def __init__(self, seen: list[StepContext]) -> None:
        def judge(item: StepContext) -> float:
            seen.append(item)
            return 0.9

        super().__init__(judge, name="reading")

    @property
    def reads_reasoner_logprobs(self) -> bool:
        return True


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_the_graph_asks_for_log_probs_only_for_a_dm_that_reads_them(mode: str) -> None:
    seen: list[StepContext] = []

    async def run(scorer: StepScorer, model: ScriptedChatModel) -> dict:
        graph = build_graph(model, scorer, DRRConfig(accept_threshold=0.5, answer_threshold=0.5))
        inputs = {"question": "What is 5 + 6?"}
        return graph.invoke(inputs) if mode == "sync" else await graph.ainvoke(inputs)

    model = ScriptedChatModel(respond=lambda call: "Answer: 11", logprobs={"Answer: 11": -0.2})
    state = await run(_Reading(seen), model)
    assert state["answer"] == "11"
    assert all(c.kwargs.get("logprobs") is True for c in model.calls)
    assert seen and all(item.signals is not None for item in seen)
    assert state["thoughts"][0]["signals"] == seen[0].signals

    plain = ScriptedChatModel(respond=lambda call: "Answer: 11", logprobs={"Answer: 11": -0.2})
    state = await run(FunctionScorer(lambda item: 0.9), plain)
    assert not any("logprobs" in c.kwargs for c in plain.calls)
    assert state["thoughts"][0].get("signals") is None


@pytest.mark.embedded
def test_the_real_qwen_reasoner_hands_its_step_statistics_to_the_dm() -> None:
    from drr_agent.reasoners import embedded_reasoner

    qwen = embedded_reasoner(model="embedded-qwen2.5-0.5b", seed=3, max_tokens=96)
    seen: list[StepContext] = []

    graph = build_graph(qwen, _Reading(seen), DRRConfig(max_steps=3))
    state = graph.invoke({"question": "Calculate 23 + 45 - 12."})
    assert seen
    for item in seen:
        assert item.signals is not None
        assert set(item.signals) == set(SAMPLED_FEATURES)
        assert all(math.isfinite(v) and v <= math.log1p(1000) for v in item.signals.values())
        assert item.signals["sampled_min_logprob"] <= item.signals["sampled_mean_logprob"] <= 0
    assert len(state["thoughts"]) == len(seen)
