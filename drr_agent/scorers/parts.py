"""What a DM runs when it scores one step: every model, its size, where it comes from.

Why this exists: a DM folder looks like one Hugging Face classifier, but a DM trained with a
likelihood head (`drr train --likelihood`, the quickstart's) also reads each step with a
verifier language model and may ask the Reasoner for a forced answer after it (the lookahead).
A user who loads only the classifier gets a different critic, and a user who counts only the
classifier's parameters misjudges the DM's cost. `dm_parts` reads the card and the weights'
headers (nothing is loaded) and lists all of it; ``drr dm-info`` prints it and the folder's
model card (``README.md``) states it.
"""

from __future__ import annotations

import math
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from drr_agent.errors import DMLoadError
from drr_agent.models import DEFAULT_EMBEDDED, embedded_model
from drr_agent.scorers.card import DM_METADATA_FILE, DMCard
from drr_agent.scorers.likelihood import (
    LIKELIHOOD_FEATURES,
    LikelihoodHead,
    reads_lookahead,
)

__all__ = [
    "DMPart",
    "count_parameters",
    "dm_parts",
    "dm_parts_markdown",
    "format_parameters",
    "total_parameters",
]

_CLAIM_FEATURES = frozenset(f for f in LIKELIHOOD_FEATURES if "claim" in f or f == "is_answer")


class DMPart(BaseModel):
    """One model a DM runs per scored step.

    Attributes:
        role: ``classifier`` (the fine-tuned sequence classifier), ``verifier`` (the causal LM
            whose token statistics the likelihood head reads), ``lookahead`` (the Reasoner's
            forced answer after the step, generated for the head), ``reasoner log-probs``
            (the Reasoner's own token log-probs, returned with the step it wrote: no model
            run, no parameters counted), ``equation check`` (the step's equations
            recomputed in code: no model), ``head`` (the small network over all of these).
        model: The model's name or folder.
        parameters: Its parameter count (``None``: unknown, e.g. a folder not on this machine).
        source: Where its weights come from.
        per_step: What scoring one step asks of it.
    """

    model_config = ConfigDict(frozen=True)

    role: str
    model: str
    parameters: int | None
    source: str
    per_step: str


def count_parameters(folder: str | Path) -> int | None:
    """Parameters in a model folder's safetensors files, read from their headers only
    (``None`` when the folder holds none)."""
    from safetensors import safe_open

    files = sorted(Path(folder).expanduser().glob("*.safetensors"))
    if not files:
        return None
    total = 0
    for file in files:
        try:
            with safe_open(str(file), framework="pt") as weights:
                total += sum(math.prod(weights.get_slice(k).get_shape()) for k in weights.keys())  # noqa: SIM118
        except Exception as exc:  # safetensors raises its own error types
            raise DMLoadError(f"{file}: cannot read the weights' header ({exc})") from exc
    return total


def _language_model(name: str) -> tuple[str, int | None, str]:
    """(name, parameters, source) of a likelihood / lookahead model named as a card names it;
    an embedded model under its canonical name (``"embedded"`` is ``"embedded-smollm2"``)."""
    model = embedded_model(name)
    if model is not None:
        key = DEFAULT_EMBEDDED if name == "embedded" else name
        return key, model.parameters, model.source
    return name, count_parameters(name), f"local folder {name}"


def _head_parameters(head: LikelihoodHead) -> int:
    hidden = sum(len(row) for row in head.hidden_weights) + len(head.hidden_bias)
    return hidden + len(head.weights) + 1


def _verifier_passes(head: LikelihoodHead) -> str:
    names = set(head.features)
    passes = []
    if names & (set(LIKELIHOOD_FEATURES) - _CLAIM_FEATURES):
        passes.append(f"the step in its {head.context!r} context")
    if names & _CLAIM_FEATURES:
        passes.append("the step's claimed result after the question")
    if reads_lookahead(head.features):
        passes.append("the lookahead's answer")
    return "one forward pass each over " + ", ".join(passes) if passes else "none"


def dm_parts(folder: str | Path) -> list[DMPart]:
    """Every model the DM in ``folder`` runs per scored step, the classifier first (when its
    head reads it: a head that does not never runs it, though the folder holds it).

    Raises:
        DMLoadError: The folder or its card cannot be read.
    """
    path = Path(folder).expanduser()
    if not path.is_dir():
        raise DMLoadError(f"DM folder {path} does not exist")
    card = DMCard.load(path)
    head = card.likelihood_head
    parts = []
    if head is None or head.reads_classifier:
        window = f" (up to {card.max_length} tokens)" if card.max_length else ""
        parts.append(
            DMPart(
                role="classifier",
                model=card.base_model or path.name,
                parameters=count_parameters(path),
                source="this folder (fine-tuned by drr train)",
                per_step=f"one forward pass over the question, earlier steps and the step{window}",
            )
        )
    if head is None:
        return parts
    if head.reads_verifier:
        model, parameters, source = _language_model(head.model)
        parts.append(
            DMPart(
                role="verifier",
                model=model,
                parameters=parameters,
                source=source,
                per_step=_verifier_passes(head),
            )
        )
    if head.reads_sampled:
        parts.append(
            DMPart(
                role="reasoner log-probs",
                model="the Reasoner that wrote the step",
                parameters=0,
                source="its server's reply (OpenAI logprobs, top 1)",
                per_step="none: read from the log-probs returned with the step",
            )
        )
    if head.reads_equations:
        parts.append(
            DMPart(
                role="equation check",
                model="drr_agent.scorers.rules.check_equations",
                parameters=0,
                source="code",
                per_step="none: recomputes the equations the step writes",
            )
        )
    if reads_lookahead(head.features):
        spec = head.lookahead
        if spec is not None:
            model, parameters, source = _language_model(spec.reasoner)
        else:
            model, parameters, source = "the Reasoner passed to load_dm", None, "the caller"
        limit = spec.max_tokens if spec is not None else "?"
        parts.append(
            DMPart(
                role="lookahead",
                model=model,
                parameters=parameters,
                source=source,
                per_step=f"one greedy forced answer, up to {limit} tokens",
            )
        )
    parts.append(
        DMPart(
            role="head",
            model=f"{len(head.hidden_weights) or 'no'} hidden units, {len(head.features)} inputs",
            parameters=_head_parameters(head),
            source=f"the DM card ({DM_METADATA_FILE})",
            per_step="arithmetic on the inputs above",
        )
    )
    return parts


def total_parameters(parts: list[DMPart]) -> int | None:
    """Parameters of every distinct model the DM runs (``None`` if one is unknown)."""
    seen: dict[str, int | None] = {}
    for part in parts:
        seen.setdefault(part.model if part.role != "head" else "head", part.parameters)
    if any(v is None for v in seen.values()):
        return None
    return sum(v for v in seen.values() if v is not None)


def dm_parts_markdown(parts: list[DMPart]) -> str:
    """A Markdown table of ``parts`` and their total (for the model card and the docs)."""
    rows = [
        "| role | model | parameters | from | per scored step |",
        "|---|---|---:|---|---|",
        *(
            f"| {p.role} | {p.model} | {format_parameters(p.parameters)} | {p.source} "
            f"| {p.per_step} |"
            for p in parts
        ),
    ]
    total = total_parameters(parts)
    rows.append(f"\nEvery model together: {format_parameters(total)} parameters.")
    return "\n".join(rows)


def format_parameters(n: int | None) -> str:
    """``"22.7 M"``, or the plain count under 100 000 (a head), or ``"unknown"``."""
    if n is None:
        return "unknown"
    return f"{n / 1e6:.1f} M" if n >= 100_000 else f"{n:,}"
