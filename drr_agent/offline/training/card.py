"""What a DM folder says about itself: ``drr_dm.json`` (`DMCard`) and the ``README.md`` model card.

The card is what the graph, ``drr eval`` and the vLLM export read back: the thresholds (of
the likelihood head when there is one, else of the classifier), the token window, the
training settings and data summary, the dev / test reports, and a hash of every training
question, so an evaluation can refuse to report a DM on questions it trained on. The model
card says the same for people, in the Hugging Face Hub's format.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from drr_agent.offline.dm_eval import DMReport
from drr_agent.offline.records import StepExample
from drr_agent.offline.training.config import LABELS, TrainConfig
from drr_agent.offline.training.data import class_counts, count_items, question_group
from drr_agent.offline.training.result import REPORT_TITLES
from drr_agent.scorers.card import DM_METADATA_FILE, DMCard
from drr_agent.scorers.likelihood import LikelihoodHead
from drr_agent.scorers.parts import DMPart, dm_parts, dm_parts_markdown
from drr_agent.tasks.questions import question_fingerprint, question_hash
from drr_agent.tasks.sources._common import package_version

__all__ = ["build_card", "data_summary", "model_card", "save_card"]


def data_summary(examples: Sequence[StepExample]) -> dict[str, Any]:
    """The card's record of one part (train / eval / held_out): sizes, classes, tasks, label
    kinds and rollouts per step (0: a final step's own result, 1: one answer, 4: the fraction
    of four), and a fingerprint of its questions to tell two runs' data apart."""
    return {
        "examples": len(examples),
        "items": count_items(examples),
        "questions": len({question_group(e) for e in examples}),
        "question_fingerprint": question_fingerprint(e.question for e in examples),
        "final_steps": sum(e.final for e in examples),
        "classes": class_counts(examples),
        "tasks": dict(sorted(Counter(e.task for e in examples).items())),
        "label_kinds": dict(sorted(Counter(e.label_kind for e in examples).items())),
        "rollouts": {str(k): v for k, v in sorted(Counter(e.rollouts for e in examples).items())},
    }


def _rollouts(part: dict[str, Any]) -> str:
    """The card's rollouts clause (", rollouts per step: 0 (294), 4 (725)"); empty for cards
    written before they were counted."""
    counts = part.get("rollouts") or {}
    if not counts:
        return ""
    return ", rollouts per step: " + ", ".join(f"{k} ({v})" for k, v in counts.items())


def build_card(
    config: TrainConfig,
    base_name: str | None,
    *,
    train: Sequence[StepExample],
    eval_part: Sequence[StepExample],
    held_out: Sequence[StepExample],
    thresholds: dict[str, float],
    threshold_source: str | None,
    reports: dict[str, DMReport],
    classifier_reports: dict[str, DMReport],
    class_weights: dict[str, float] | None,
    head: LikelihoodHead | None,
    run: dict[str, Any],
) -> DMCard:
    """The DM card. ``thresholds`` and ``reports`` are the DM's: with a likelihood ``head``
    they are the head's (stored on it), and the card's own thresholds and
    ``classifier_metrics`` are the classifier's alone (``classifier_reports``; without a head
    the same reports). ``run`` (how many processes trained it, how many optimiser steps)
    joins the training settings."""
    own = classifier_reports["eval"].thresholds if "eval" in classifier_reports else {}
    return DMCard(
        name=config.dm_name,
        positive_label=LABELS[1],
        **own,
        threshold_source=threshold_source,
        max_length=config.max_length,
        input_format=(
            "drr_agent.scorers.dm_text_pair: (question, previous steps + 'Next step: ' + "
            "candidate), oldest previous steps dropped first to fit max_length"
        ),
        base_model=base_name,
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        drr_agent_version=package_version("drr-agent"),
        training=config.model_dump(mode="json") | run,
        class_weights=class_weights,
        data={
            "train": data_summary(train),
            "eval": data_summary(eval_part) if eval_part else None,
            "held_out": data_summary(held_out) if held_out else None,
        },
        metrics={k: r.model_dump(mode="json") for k, r in reports.items()},
        classifier_metrics=(
            {k: r.model_dump(mode="json") for k, r in classifier_reports.items()} if head else None
        ),
        training_questions=sorted({question_hash(e.question) for e in train}),
        likelihood_head=head.model_copy(update=thresholds) if head else None,
    )


def save_card(card: DMCard, reports: dict[str, DMReport], folder: Path) -> None:
    """Write ``drr_dm.json`` and the ``README.md`` model card into ``folder`` (which holds
    the weights already: the card counts their parameters)."""
    card.save(folder)
    (folder / "README.md").write_text(model_card(card, reports, dm_parts(folder)))


def model_card(card: DMCard, reports: dict[str, DMReport], parts: Sequence[DMPart]) -> str:
    """The folder's ``README.md``, for people and the Hub: front matter, what the DM is and
    every model it runs per step (``parts``), intended use, input, data and thresholds (from
    ``card``, so it cannot disagree with it) and the ``reports``."""
    meta = card.model_dump(mode="json")
    head = card.likelihood_head
    dm_thresholds = head.thresholds if head else card.thresholds
    alone = card.head_alone  # no classifier in the folder
    base = meta["base_model"]
    front = ["---"]
    if not alone:
        front += ["library_name: transformers", "pipeline_tag: text-classification"]
    if base and not Path(base).is_absolute():
        front.append(f"base_model: {base}")
    front += ["tags:", "- drr-agent", "- step-verifier", "- process-reward-model", "---", ""]
    data = meta["data"]
    train = data["train"]
    threshold_text = (
        f"`accept_threshold` = {dm_thresholds['accept_threshold']:.3f} (non-final steps), "
        f"`answer_threshold` = {dm_thresholds['answer_threshold']:.3f} (answer-carrying steps), "
        f"chosen by Youden's J on the {meta['threshold_source'].replace('_', ' ')} steps"
        + (" (of the likelihood head's probability)." if card.likelihood_head else ".")
        if len(dm_thresholds) == 2
        else "none chosen (no eval data); the graph's defaults apply."
    )
    sizes = ", ".join(
        f"{part}: {info['examples']} steps from {info['items']} items "
        f"({info['classes']['bad']} bad, {info['classes']['good']} good)"
        for part, info in data.items()
        if info
    )
    body = [
        f"# {meta['name']}",
        "",
        "A Discriminative Model (DM) for [drr-agent](https://arxiv.org/abs/2501.01457): it "
        "judges one reasoning step of a Reasoner LLM in its context and returns P(`good`) — "
        "the probability that the step lies on a path to the right answer. "
        + (
            f"It is a likelihood head alone (in `{DM_METADATA_FILE}`) over what the models "
            "below read; this folder holds no weights. Load it with "
            "`drr_agent.load_dm(path)`."
            if alone
            else "It is more than the 2-label sequence classifier (`bad` / `good`) in this "
            "folder: a likelihood head (in `drr_dm.json`) combines the classifier with the "
            "models below, so load it whole with `drr_agent.load_dm(path)` — the classifier "
            "alone is a different, weaker critic (`HFScorer` refuses it)."
            if head
            else "It is a 2-label sequence classifier (`bad` / `good`)."
        ),
        "",
        "## What scoring a step runs",
        "",
        dm_parts_markdown(list(parts)),
        "",
        "## Intended use",
        "",
        "Judging the steps of the Reasoner whose traces it was trained on, on tasks like "
        "those below, inside the drr-agent graph (`load_dm(path)` in process; a remote "
        "server must be sent the same `(text, text_pair)` input). It has seen only these "
        "tasks and this Reasoner's mistakes; "
        "check its AUROC on held-out traces before trusting it elsewhere.",
        "",
        "## Input",
        "",
        "The step in its context, as the models above read it."
        if alone
        else f"`(text, text_pair)` = `dm_text_pair(...)`: {meta['input_format']}; "
        f"max {meta['max_length']} tokens.",
        "",
        "## Training data",
        "",
        f"Tasks: {', '.join(train['tasks']) or 'n/a'}; labels: "
        f"{', '.join(f'{k} ({v})' for k, v in train['label_kinds'].items())}"
        + _rollouts(train)
        + f". {sizes}."
        + (" The eval part shares no question with training." if data.get("eval") else "")
        + f" `{DM_METADATA_FILE}` lists a hash of each training question "
        "(`training_questions`), so evaluations can refuse to report on them.",
        "",
        f"The head fitted on the training steps' labels (L2 {head.l2:g}); nothing fine-tuned."
        if alone and head is not None
        else f"Base model: `{base}`. Settings: epochs {meta['training']['epochs']:g}, "
        f"lr {meta['training']['learning_rate']:g}, batch {meta['training']['batch_size']}, "
        f"class weighting {'on' if meta['class_weights'] else 'off'}.",
        "",
        "## Thresholds",
        "",
        threshold_text,
        "",
        "## Metrics",
        "",
        *(r.to_markdown(REPORT_TITLES[k]) for k, r in reports.items()),
        *([] if reports else ["none (no eval split and no held-out data)."]),
        "",
        f"Written by drr-agent {meta['drr_agent_version']} on {meta['created']}; "
        f"machine-readable details in `{DM_METADATA_FILE}`.",
        "",
    ]
    return "\n".join(front + body)
