"""Reinforce: fine-tune a sequence-classification DM on labelled steps and export it.

`train_dm` takes `StepExample` rows (from ``drr traces`` + labelling) of the split's *train*
questions and, for early stopping and the thresholds, rows of its *dev* questions (without
them it holds out a share of the training *questions* — never single steps or items, so no
question is seen on both sides), fine-tunes a
2-label ``AutoModelForSequenceClassification`` (``bad`` / ``good``) with Hugging Face
`~transformers.Trainer`, and writes a standard Hugging Face sequence-classification folder
that `HFScorer` loads as is: safetensors weights, config with label names, tokenizer,
``drr_dm.json`` (thresholds, positive label, data summary, metrics) and a ``README.md``
model card.

The model sees exactly what it will see when serving: `dm_text_pair` of the step in its
context, cut to the token window by `fit_to_window` (question and candidate always kept,
then the latest previous steps that fit) — the rule `HFScorer` applies. The thresholds the
graph routes on are chosen on the dev split by `drr_agent.offline.dm_eval`, after the
exported folder has been reloaded through `HFScorer`, so the reported numbers are those of
the served model.

Everything that can be checked before training is (too few examples, a missing class, an
unusable split, an occupied output folder, an unloadable base model), so a bad run fails in
seconds with a message saying what was found. The DM card (``drr_dm.json``) records a hash of
every training question, so ``drr eval`` can refuse to report a DM on questions it trained on.

The recipe is here; its parts — settings, data checks, backbone, encoding, loss, the Trainer
run, the card, the folder on disk — are the modules of `drr_agent.offline.training`.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

from drr_agent.offline.distributed import Processes
from drr_agent.offline.dm_eval import DMReport, evaluate_dm
from drr_agent.offline.records import StepExample
from drr_agent.offline.training.backbone import (
    EMBEDDED_DM_BASE_ID,
    EMBEDDED_REASONER_BASE,
    EMBEDDED_REASONER_BASE_ID,
    load_base,
    resolve_base,
)
from drr_agent.offline.training.card import build_card, save_card
from drr_agent.offline.training.config import LABELS, TrainConfig
from drr_agent.offline.training.data import (
    TrainingDataError,
    check_training_data,
    class_counts,
    count_items,
    describe,
    split_by_question,
)
from drr_agent.offline.training.export import (
    check_output_dir,
    save_model,
    staged,
    verify_export,
    work_folder,
)
from drr_agent.offline.training.fit import check_batch_split, fit
from drr_agent.offline.training.objective import class_weights
from drr_agent.offline.training.quiet import quiet_transformers
from drr_agent.offline.training.recipe import DEFAULT_RECIPE, DM_RECIPES, DMRecipe
from drr_agent.offline.training.result import TrainResult
from drr_agent.scorers.base import StepScorer
from drr_agent.scorers.hf import HFScorer
from drr_agent.scorers.likelihood import (
    CLASSIFIER_FEATURE,
    LikelihoodContext,
    LikelihoodHead,
    LikelihoodScorer,
    ReasonerLikelihood,
    free_rows,
    head_inputs,
    lookahead_features,
    reads_claims,
    reads_lookahead,
    reads_verifier,
    worked_examples,
)
from drr_agent.scorers.lookahead import AnswerLookahead

__all__ = [
    "DEFAULT_RECIPE",
    "DM_RECIPES",
    "EMBEDDED_DM_BASE_ID",
    "EMBEDDED_REASONER_BASE",
    "EMBEDDED_REASONER_BASE_ID",
    "LABELS",
    "DMRecipe",
    "TrainConfig",
    "TrainResult",
    "TrainingDataError",
    "preamble_of",
    "split_by_question",
    "train_dm",
]


def train_dm(
    train: Sequence[StepExample],
    config: TrainConfig,
    held_out: Sequence[StepExample] | None = None,
    progress: bool = True,
    *,
    dev: Sequence[StepExample] | None = None,
    lookahead: AnswerLookahead | None = None,
) -> TrainResult:
    """Fine-tune a DM on ``train`` and export it to ``config.output_dir``.

    Args:
        train: Labelled training steps (the split's train questions).
        config: Training settings (`TrainConfig`).
        held_out: Optional test steps (questions not in ``train``): reported only — never
            used to choose thresholds or the stopping point.
        dev: Labelled steps of the dev questions: early stopping and the thresholds are
            chosen on them. Without them ``config.eval_fraction`` of the training questions
            is held out for that.
        progress: Show Trainer's progress bar and per-epoch logs; `False` keeps it silent.
        lookahead: The forced answers a head that reads the lookahead asks for beyond those
            the labels recorded; default: the Reasoner ``config.likelihood_lookahead`` names
            (pass the labelling Reasoner when it is not the embedded one).

    Under a launcher (``torchrun --nproc-per-node N -m drr_agent train ...``) every process
    calls this: they train as one DDP job, rank 0 alone exports, and all return its result.

    Returns:
        A `TrainResult` with reports computed by reloading the exported folder through
        `HFScorer`.

    Raises:
        TrainingDataError: Too few examples, one class only, questions shared with
            ``held_out`` or ``dev``, no usable question split, or too few right steps for
            ``likelihood_examples`` — all before training starts.
        FileExistsError: ``output_dir`` is not empty and ``overwrite_output_dir`` is off.
        ValueError: ``batch_size`` does not divide over a launcher's processes.
        DMLoadError: The base model cannot be loaded, or the exported DM does not reload.
    """
    from transformers import set_seed

    started = time.perf_counter()
    held = list(held_out or [])
    dev_rows = list(dev or [])
    check_training_data(train, held, config, dev_rows)
    if config.likelihood:  # labels that cannot give the preamble fail now
        preamble_of(train, config.likelihood_examples, config.likelihood_context, config.seed)
    out = check_output_dir(config)
    if dev_rows:
        train_part, eval_part = list(train), dev_rows
    else:
        train_part, eval_part = split_by_question(train, config.eval_fraction, config.seed)
    source, base_name = resolve_base(config)
    procs = Processes.from_env()
    check_batch_split(config.batch_size, procs.world_size)

    set_seed(config.seed)
    weights = class_weights(train_part) if config.class_weighting else None
    say = _printer(progress and procs.is_main)
    procs.start()  # under a launcher, rank 0 exports and shares its result either way
    fitted = None
    if config.trains_classifier:
        tokenizer, model = load_base(source, config)
        say(
            f"training DM {config.dm_name!r} from {base_name}: {describe(train_part)} for "
            f"training, {describe(eval_part) if eval_part else 'no eval split'}"
        )
        with work_folder(out, procs) as work_dir:
            fitted = fit(
                model,
                tokenizer,
                train_part,
                eval_part,
                config,
                weights,
                work_dir,
                world_size=procs.world_size,
                progress=progress,
                say=say,
            )
            procs.wait_all()  # every process has reloaded the best checkpoint from work_dir
    else:  # a head that does not read the classifier is the whole DM: no base model runs
        base_name = None
        say(f"fitting DM {config.dm_name!r} (a head alone) on {describe(train_part)}")

    def export() -> TrainResult:  # rank 0 only under a launcher; the rest get its result
        with staged(out) as staging:
            if fitted is not None:
                save_model(fitted.model, tokenizer, staging, config.max_length, quiet=not progress)
            reports, classifier_reports, head = _served_reports(
                staging, train_part, eval_part, held, config, progress, say, lookahead
            )
            thresholds, threshold_source, notes = _chosen_thresholds(reports, bool(dev_rows))
            card = build_card(
                config,
                base_name,
                train=train_part,
                eval_part=eval_part,
                held_out=held,
                thresholds=thresholds,
                threshold_source=threshold_source,
                reports=reports,
                classifier_reports=classifier_reports,
                class_weights=weights,
                head=head,
                run=fitted.run if fitted is not None else {},
            )
            save_card(card, reports, staging)

        notes.extend(verify_export(out, thresholds, config.max_length, quiet=not progress))
        result = TrainResult(
            output_dir=out,
            name=config.dm_name,
            base_model=base_name,
            n_train=len(train_part),
            n_eval=len(eval_part),
            n_held_out=len(held),
            n_train_items=count_items(train_part),
            n_eval_items=count_items(eval_part),
            class_counts=class_counts(train_part),
            class_weights=weights,
            thresholds=thresholds,
            threshold_source=threshold_source,
            eval_report=reports.get("eval"),
            held_out_report=reports.get("held_out"),
            epochs_run=fitted.epochs_run if fitted is not None else 0.0,
            best_metric=fitted.best_metric if fitted is not None else None,
            stopped_early=fitted is not None
            and bool(eval_part)
            and fitted.epochs_run + 1e-6 < config.epochs,
            wall_time_s=time.perf_counter() - started,
            notes=notes,
        )
        say(result.to_markdown())
        return result

    return procs.run_on_main(export)


def _chosen_thresholds(
    reports: dict[str, DMReport], from_dev: bool
) -> tuple[dict[str, float], Literal["dev", "eval_split"] | None, list[str]]:
    """(thresholds, where they were chosen, notes): those of the ``eval`` report — dev rows,
    else held-out training questions — and never of the held-out test steps."""
    notes: list[str] = []
    thresholds: dict[str, float] = {}
    source: Literal["dev", "eval_split"] | None = None
    if "eval" in reports:
        thresholds, source = reports["eval"].thresholds, "dev" if from_dev else "eval_split"
    else:
        notes.append(
            "no dev or eval data: no thresholds written (never chosen on held-out test "
            "steps); the graph's defaults apply"
        )
    for key, report in reports.items():
        notes.extend([f"{key}: {n}" for n in report.threshold_notes])
    return thresholds, source, notes


def _served_reports(
    staging: Path,
    train: Sequence[StepExample],
    eval_part: Sequence[StepExample],
    held: Sequence[StepExample],
    config: TrainConfig,
    progress: bool,
    say: Callable[[str], None],
    lookahead: AnswerLookahead | None,
) -> tuple[dict[str, DMReport], dict[str, DMReport], LikelihoodHead | None]:
    """(the DM's reports, the classifier's, the likelihood head or `None`), scored through
    `HFScorer` from the staged folder, so they are the numbers of the DM as served. With
    ``config.likelihood`` the DM is the head over the classifier, fitted on ``train`` here
    (a head alone when it does not read the classifier: no classifier reports)."""
    classifier: StepScorer | None = None
    classifier_reports: dict[str, DMReport] = {}
    if config.trains_classifier:
        with quiet_transformers(not progress):
            classifier = HFScorer(staging, max_length=config.max_length, classifier_only=True)
        classifier_reports = _reports(classifier, eval_part, held, config, progress)
    if not config.likelihood:
        return classifier_reports, classifier_reports, None
    reads = (
        config.likelihood_model
        if reads_verifier(config.likelihood_features)
        else "the Reasoner's own log-probs"
    )
    say(f"fitting the likelihood head ({reads}) on the training rows")
    scorer, head = _fit_likelihood(
        classifier, train, [*eval_part, *held], config, progress, lookahead
    )
    return _reports(scorer, eval_part, held, config, progress), classifier_reports, head


def _reports(
    scorer: StepScorer,
    eval_part: Sequence[StepExample],
    held: Sequence[StepExample],
    config: TrainConfig,
    progress: bool,
) -> dict[str, DMReport]:
    """``eval`` (dev) and ``held_out`` (test) reports of ``scorer``, for the parts given."""
    reports: dict[str, DMReport] = {}
    for key, part in (("eval", eval_part), ("held_out", held)):
        if part:
            reports[key] = evaluate_dm(
                scorer, part, progress=progress, minimal_pair_limit=config.minimal_pairs
            )
    return reports


def _fit_likelihood(
    classifier: StepScorer | None,
    train: Sequence[StepExample],
    reported: Sequence[StepExample],
    config: TrainConfig,
    progress: bool,
    lookahead: AnswerLookahead | None = None,
) -> tuple[LikelihoodScorer, LikelihoodHead]:
    """Fit a `LikelihoodHead` on the training rows (thresholds are set later, on dev); on a
    seeded sample of ``config.likelihood_rows`` of them when that is set. A head that reads
    the lookahead takes the forced answers the labels recorded, for the training rows and
    the ``reported`` (dev, test) rows alike, and asks ``lookahead`` (default: the one
    ``config`` names) for the rest."""
    preamble, shown = preamble_of(
        train, config.likelihood_examples, config.likelihood_context, config.seed
    )
    train = [e for e in train if e.question not in shown]
    if config.likelihood_rows is not None and len(train) > config.likelihood_rows:
        train = random.Random(config.seed).sample(list(train), config.likelihood_rows)
    contexts = [e.context for e in train]
    names = config.likelihood_features
    likelihood = x = look = spec = None
    if reads_verifier(names):
        with quiet_transformers(not progress):
            likelihood = ReasonerLikelihood(
                config.likelihood_model, context=config.likelihood_context, preamble=preamble
            )
        x = likelihood.features(contexts, claims=reads_claims(names))
        if reads_lookahead(names):
            spec = config.likelihood_lookahead
            lookahead = lookahead or spec.build()
            lookahead.remember_recorded([*train, *reported])
            look = lookahead_features(likelihood, contexts, lookahead.answers(contexts))
    base = classifier.score(contexts) if classifier and CLASSIFIER_FEATURE in names else None
    inputs = head_inputs(x, base, look, *free_rows(contexts, names), rows=len(contexts))
    head = LikelihoodHead.fit(
        inputs,
        [e.label for e in train],
        features=config.likelihood_features,
        l2=config.likelihood_l2,
        model=config.likelihood_model,
        context=config.likelihood_context,
        preamble=preamble,
        hidden=config.likelihood_hidden,
        seed=config.seed,
        lookahead=spec,
    )
    return LikelihoodScorer(classifier, head, likelihood, lookahead), head


def preamble_of(
    train: Sequence[StepExample], count: int, context: LikelihoodContext, seed: int
) -> tuple[str, frozenset[str]]:
    """A likelihood preamble of ``count`` worked examples — a right step (label 1) of each of
    ``count`` distinct training questions, drawn with ``seed`` — and the questions it shows
    (`TrainConfig.likelihood_examples`; ``("", {})`` for 0)."""
    if not count:
        return "", frozenset()
    right: dict[str, list[StepExample]] = {}
    for example in train:
        if example.label >= 1.0:
            right.setdefault(example.question, []).append(example)
    if len(right) < count:
        raise TrainingDataError(
            f"likelihood_examples={count} needs as many training questions with a right "
            f"step (label 1); these labels have {len(right)}"
        )
    rng = random.Random(seed)
    chosen = rng.sample(sorted(right), count)
    shown = [rng.choice(right[q]) for q in chosen]
    contexts = [e.context for e in shown]
    return worked_examples(contexts, context), frozenset(chosen)


def _printer(progress: bool) -> Callable[[str], None]:
    """The recipe's ``say``: a line on stderr (no rich markup: messages quote user text), or
    nothing without ``progress`` and on every rank but 0."""
    if not progress:
        return lambda _message: None
    from rich.console import Console

    console = Console(stderr=True)
    return lambda message: console.print(message, markup=False, highlight=False, soft_wrap=True)
