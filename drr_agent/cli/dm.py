"""The DM's commands: ``drr train`` makes one from labelled steps (a named recipe,
`DM_RECIPES`), ``drr dm-eval`` measures one on labelled steps, ``drr dm-info`` says what a DM
folder is and what scoring one step with it runs."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from drr_agent.cli._common import app, console, fail, input_file, invalid_option, output_folder
from drr_agent.cli.offline import SplitChoice
from drr_agent.errors import DMLoadError, DRRError
from drr_agent.offline.training.recipe import DEFAULT_RECIPE, DM_RECIPES
from drr_agent.prompts import DEFAULT_INSTRUCTION
from drr_agent.scorers.card import DMCard
from drr_agent.scorers.likelihood import HEAD_INPUTS
from drr_agent.scorers.parts import dm_parts, format_parameters, total_parameters


def _read_examples(path: Path):
    from drr_agent.offline.jsonl import RecordFile
    from drr_agent.offline.records import StepExample

    examples = RecordFile(path, StepExample).read()
    if not examples:
        raise DRRError(f"{path}: no labelled steps")
    return examples


class ContextChoice(StrEnum):
    reasoner = "reasoner"
    plain = "plain"
    question = "question"


class TuneChoice(StrEnum):
    """Which weights ``drr train`` changes (`TrainConfig.tune`)."""

    full = "full"
    lora = "lora"
    head = "head"


class RecipeChoice(StrEnum):
    """The named DM recipes ``drr train --recipe`` takes (`DM_RECIPES`, the same names)."""

    verifier = "verifier"
    light = "light"
    light_equations = "light-equations"
    classifier = "classifier"


_DEFAULT_RECIPE = RecipeChoice(DEFAULT_RECIPE)
_RECIPE_HELP = " (default: the recipe's)"


@app.command()
def train(
    labels_files: Annotated[
        list[Path],
        typer.Option(
            "--labels", help="Labelled steps (drr labels, drr siblings); repeat to combine files."
        ),
    ],
    out: Annotated[Path, typer.Option(help="Output folder for the DM (Hugging Face format).")],
    recipe: Annotated[
        RecipeChoice,
        typer.Option(
            help="The DM to make: 'verifier' (the quickstart's: MiniLM under a head over the "
            "verifier LM's reading and the Reasoner's forced answer), 'light' (a logistic head "
            "over the Reasoner's own sampled log-probs, no model), 'light-equations' (the same "
            "head also reading the step's equations, recomputed), 'classifier' (MiniLM "
            "alone). The options below override single fields of it.",
        ),
    ] = _DEFAULT_RECIPE,
    base: Annotated[
        str | None,
        typer.Option(
            help="Base model folder or Hub id (default: embedded MiniLM); 'embedded-smollm2': "
            "the embedded Reasoner's own SmolLM2-135M backbone."
        ),
    ] = None,
    tune: Annotated[
        TuneChoice | None,
        typer.Option(
            help="Train all weights, LoRA adapters (merged on export) or only the "
            "classification head on a frozen backbone; lora/head want a larger learning rate"
            + _RECIPE_HELP
            + "."
        ),
    ] = None,
    epochs: Annotated[float | None, typer.Option(min=0.01, help=_RECIPE_HELP)] = None,
    learning_rate: Annotated[float | None, typer.Option(min=0.0, help=_RECIPE_HELP)] = None,
    batch_size: Annotated[int | None, typer.Option(min=1, help=_RECIPE_HELP)] = None,
    max_length: Annotated[
        int | None, typer.Option(min=16, help="DM token window" + _RECIPE_HELP + ".")
    ] = None,
    eval_fraction: Annotated[float, typer.Option(min=0.0, max=0.99)] = 0.2,
    class_weighting: Annotated[bool, typer.Option(help="Weight classes by balance.")] = True,
    patience: Annotated[int | None, typer.Option(help="Early-stopping patience (epochs).")] = 2,
    seed: Annotated[int, typer.Option()] = 42,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output folder.")] = False,
    trust_remote_code: Annotated[bool, typer.Option()] = False,
    pair_weight: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            help="Weight of the pairwise loss on sibling pairs (0: pointwise only)"
            + _RECIPE_HELP
            + ".",
        ),
    ] = None,
    likelihood: Annotated[
        bool | None,
        typer.Option(
            help="Also fit a head over the classifier and the Reasoner's token log-probs of "
            "each step (the DM then knows what its Reasoner's LM knows)" + _RECIPE_HELP + ".",
        ),
    ] = None,
    likelihood_model: Annotated[
        str | None,
        typer.Option(
            help="Causal LM of those log-probs: 'embedded-smollm2' (the Reasoner's backbone), "
            "'embedded-qwen2.5-0.5b' (a larger verifier LM) or a local HF folder"
            + _RECIPE_HELP
            + "."
        ),
    ] = None,
    likelihood_context: Annotated[
        ContextChoice | None,
        typer.Option(
            help="What each step is read after: the Reasoner's prompt, the plain question "
            "and steps (shorter: for a verifier LM), or the question alone (the verifier "
            "judges each step against the problem)" + _RECIPE_HELP + ".",
        ),
    ] = None,
    likelihood_rows: Annotated[
        int | None,
        typer.Option(
            min=20,
            help="Fit the head on a seeded sample of this many training rows (default: all); "
            "a verifier LM's features cost ~0.5-0.6 s a row on 2 cores.",
        ),
    ] = None,
    likelihood_features: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated inputs the head reads"
            + _RECIPE_HELP
            + "; any of "
            + ",".join(HEAD_INPUTS)
            + ".",
        ),
    ] = None,
    likelihood_examples: Annotated[
        int | None,
        typer.Option(
            min=0,
            help="Worked examples (right steps of distinct training questions) the "
            "likelihood LM reads before every row, in the plain or question context"
            + _RECIPE_HELP
            + ".",
        ),
    ] = None,
    likelihood_hidden: Annotated[
        int | None,
        typer.Option(
            min=0,
            help="Tanh units of a hidden layer in the head (0: logistic regression)"
            + _RECIPE_HELP
            + ".",
        ),
    ] = None,
    lookahead_instruction: Annotated[
        str,
        typer.Option(
            help="The task instruction under which a head that reads lookahead_* features "
            "asks the embedded Reasoner for its forced answer (the labels' task's).",
        ),
    ] = DEFAULT_INSTRUCTION,
    minimal_pairs: Annotated[
        int | None,
        typer.Option(
            min=0,
            help="At most this many minimal pairs in the dev and test reports (0: none); "
            "each is two more scored rows" + _RECIPE_HELP + ".",
        ),
    ] = None,
) -> None:
    """Fine-tune the DM on train-split steps; stop early and pick thresholds on dev-split steps
    (else on held-out training questions); report test-split steps, if any; save it. The DM
    is a named recipe (--recipe, the quickstart's by default); each option given overrides
    one field of it."""
    from rich.markdown import Markdown

    from drr_agent.offline.distributed import Processes
    from drr_agent.offline.train import TrainConfig, train_dm
    from drr_agent.scorers.lookahead import LookaheadSpec

    for path in labels_files:
        input_file(path, "--labels")
    output_folder(out)
    given = {
        "base_model": base,
        "tune": tune.value if tune is not None else None,
        "epochs": epochs,
        "learning_rate": learning_rate,
        "batch_size": batch_size,
        "max_length": max_length,
        "pair_weight": pair_weight,
        "likelihood": likelihood,
        "likelihood_model": likelihood_model,
        "likelihood_context": likelihood_context.value if likelihood_context else None,
        "likelihood_rows": likelihood_rows,
        "likelihood_features": (
            tuple(likelihood_features.replace(" ", "").split(","))
            if likelihood_features is not None
            else None
        ),
        "likelihood_examples": likelihood_examples,
        "likelihood_hidden": likelihood_hidden,
        "minimal_pairs": minimal_pairs,
    }
    try:
        examples = [e for path in labels_files for e in _read_examples(path)]
        config = TrainConfig.from_recipe(
            DM_RECIPES[recipe.value],
            **{name: value for name, value in given.items() if value is not None},
            output_dir=out,
            overwrite_output_dir=overwrite,
            eval_fraction=eval_fraction,
            class_weighting=class_weighting,
            early_stopping_patience=patience if eval_fraction > 0 else None,
            seed=seed,
            trust_remote_code=trust_remote_code,
            likelihood_lookahead=LookaheadSpec(instruction=lookahead_instruction),
        )
        result = train_dm(
            [e for e in examples if e.split == "train"],
            config,
            held_out=[e for e in examples if SplitChoice.test.holds(e.split)] or None,
            dev=[e for e in examples if e.split == "dev"] or None,
        )
    except DRRError as exc:
        raise fail(str(exc)) from exc
    except FileExistsError as exc:  # a DM already in --out (check_output_dir, before training)
        raise fail(f"--out: {exc}", 2) from exc
    except ValueError as exc:
        raise fail(invalid_option(exc), 2) from exc
    if Processes.from_env().is_main:  # under torchrun, one report, not one per process
        console.print(Markdown(result.to_markdown()))


@app.command("dm-eval")
def dm_eval(
    dm: Annotated[Path, typer.Option(help="DM folder.")],
    labels_file: Annotated[Path, typer.Option("--labels", help="Labelled steps (drr labels).")],
    split: Annotated[SplitChoice, typer.Option(help="Which labelled steps to score.")] = (
        SplitChoice.test
    ),
) -> None:
    """Step-level AUROC, pair accuracies, accuracy, calibration and thresholds of a DM on
    labelled steps (pair accuracies compare steps at the same question and prefix; 0.5 is
    chance)."""
    from rich.markdown import Markdown

    from drr_agent.offline.dm_eval import evaluate_dm
    from drr_agent.scorers import load_dm

    input_file(labels_file, "--labels")
    try:
        examples = _read_examples(labels_file)
        examples = [e for e in examples if split.holds(e.split)]
        if not examples:
            raise DRRError(f"{labels_file}: no labelled steps in split {split.value!r}")
        report = evaluate_dm(load_dm(dm), examples, progress=True)
    except DRRError as exc:
        raise fail(str(exc)) from exc
    console.print(Markdown(report.to_markdown(title=f"DM {dm} on {split.value} steps")))


@app.command("dm-info")
def dm_info(
    dm: Annotated[Path, typer.Argument(help="A DM folder (e.g. written by `drr train`).")],
) -> None:
    """Print a DM's parts (every model it runs per scored step, with its size and source),
    thresholds and training data. Nothing is loaded: the card and the weights' headers."""
    try:
        card = DMCard.load(dm)
        parts = dm_parts(dm)
    except DMLoadError as exc:
        raise fail(str(exc), code=2) from exc
    head = card.likelihood_head
    thresholds = head.thresholds if head is not None else card.thresholds
    console.print(f"[bold]{card.name or dm.name}[/bold]  ({dm})")
    table = Table("role", "model", "parameters", "per scored step", "from")
    for part in parts:
        size = format_parameters(part.parameters)
        table.add_row(part.role, part.model, size, part.per_step, part.source)
    console.print(table)
    total = format_parameters(total_parameters(parts))
    console.print(f"every model together: {total} parameters")
    shown = ", ".join(f"{k} {v:.3f}" for k, v in thresholds.items()) or "none (graph defaults)"
    console.print(f"thresholds ({'head' if head else 'classifier'}): {shown}")
    train = (card.data or {}).get("train") or {}
    if train:
        console.print(
            f"trained on {train.get('examples')} steps of {train.get('questions')} questions "
            f"({', '.join(train.get('tasks', {})) or 'unknown tasks'})"
        )
    console.print(f"load it whole with: drr_agent.load_dm({str(dm)!r})")
