"""The DRR graph a deployment runs, chosen by environment variables.

LangGraph's tooling (``langgraph dev``, ``langgraph build``, LangGraph Studio) calls the graph
factories in ``graphs/`` (named in ``langgraph.json``); they take their graph from
`graph_from_env`. What a run does is configured through the graph's **context**
(`drr_agent.DRRConfig`: thresholds, budgets, ... per assistant or per run); what cannot be a
context field — which models to load — comes from the environment (``langgraph.json``'s
``env`` or the deployment's settings):

=============================  ==============================================================
``DRR_DM``                     Folder of a trained DM (Hugging Face sequence classifier,
                               e.g. written by ``drr train``).
``DRR_DM_URL``                 A DM served by ``drr serve --dm`` (vLLM ``/score``), e.g.
                               ``http://127.0.0.1:8001``; with ``DRR_DM`` set too, that
                               folder supplies the tokenizer window and the thresholds.
                               Several replicas: their URLs comma-separated.
``DRR_ALLOW_UNTRAINED_DM=1``   Without ``DRR_DM``: use the embedded MiniLM base with a
                               *randomly initialised* head — the plumbing is real, the scores
                               are noise. For smoke tests only; without it and without
                               ``DRR_DM`` the factory stops with `GraphSetupError`.
``DRR_REASONER_URL``           An OpenAI-compatible API root (e.g. ``http://127.0.0.1:8000/v1``
                               for vLLM), or several replicas' comma-separated. Unset: the
                               embedded SmolLM2-135M Reasoner on CPU.
``DRR_REASONER_MODEL``         The model served at ``DRR_REASONER_URL`` (required with it);
                               without a URL, an embedded Reasoner's name
                               (``embedded-smollm2``, the default, or
                               ``embedded-qwen2.5-0.5b``).
``DRR_REASONER_STYLE``         ``prefill`` or ``chat`` prompting (default: ``prefill`` for the
                               embedded Reasoner, ``chat`` for a URL).
``DRR_REASONER_VLLM=1``        The URL is a vLLM server (enables prefill continuation).
``DRR_REASONER_API_KEY``       The key sent to ``DRR_REASONER_URL`` (e.g. the one given to
                               ``drr serve --api-key``). ``OPENAI_API_KEY`` is sent to
                               api.openai.com only, never to another host: one rule
                               (`reasoner_api_key`) for the CLI's ``--reasoner``, this
                               variable and the agent app's ``DRR_AGENT_MODEL_URL`` (its
                               key: ``DRR_AGENT_MODEL_API_KEY``).
``DRR_<FIELD>_CAP``            Server-side caps on what a run's context may ask for
                               (`drr_agent.config.ContextCaps`; a context beyond one fails
                               the run with a `ContextCapError` naming it):
                               ``DRR_MAX_STEPS_CAP`` (default 64),
                               ``DRR_MAX_RETRIES_PER_POINT_CAP`` (16),
                               ``DRR_MAX_BACKTRACKS_CAP`` (64),
                               ``DRR_MAX_REASONER_CALLS_CAP`` (256),
                               ``DRR_CANDIDATES_PER_STEP_CAP`` (16),
                               ``DRR_REASONER_TIMEOUT_S_CAP`` (600),
                               ``DRR_REASONER_RETRIES_CAP`` (5),
                               ``DRR_SCORER_TIMEOUT_S_CAP`` (300),
                               ``DRR_SCORER_RETRIES_CAP`` (5); a context's own answer
                               patterns: ``DRR_ANSWER_PATTERNS_CAP`` (16 patterns),
                               ``DRR_PATTERN_CHARS_CAP`` (500 characters each), each search
                               limited to ``DRR_PATTERN_TIMEOUT_S_CAP`` (0.05 s).
=============================  ==============================================================

A LangGraph server's clients choose each run's context, so the caps bound what one run may
cost; the graph's own configuration is the deployer's and is not capped. Importing this module
loads no model; `graph_from_env` loads them on its first call for an environment and returns
the same compiled graph afterwards (so the DRR graph and the agent app share one).
"""

import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from langgraph.graph.state import CompiledStateGraph

from drr_agent.config import ContextCaps, DRRConfig
from drr_agent.graph import build_graph

__all__ = ["GraphSettings", "GraphSetupError", "build_reasoner", "build_scorer", "graph_from_env"]

_TRUE = ("1", "true", "yes", "on")


class GraphSetupError(RuntimeError):
    """The environment does not describe a usable DRR graph (the message says what to set)."""


@dataclass(frozen=True)
class GraphSettings:
    """Which models the deployed graph loads, read from the environment (see module docs)."""

    dm: str | None = None
    dm_url: str | None = None
    allow_untrained_dm: bool = False
    reasoner_url: str | None = None
    reasoner_model: str | None = None
    reasoner_style: str | None = None
    vllm: bool = False
    caps: ContextCaps = field(default_factory=ContextCaps)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "GraphSettings":
        env = os.environ if environ is None else environ

        def text(name: str) -> str | None:
            value = env.get(name, "").strip()
            return value or None

        try:
            caps = ContextCaps.from_env(env)
        except ValueError as exc:
            raise GraphSetupError(str(exc)) from exc
        settings = cls(
            dm=text("DRR_DM"),
            dm_url=text("DRR_DM_URL"),
            allow_untrained_dm=(text("DRR_ALLOW_UNTRAINED_DM") or "").lower() in _TRUE,
            reasoner_url=text("DRR_REASONER_URL"),
            reasoner_model=text("DRR_REASONER_MODEL"),
            reasoner_style=text("DRR_REASONER_STYLE"),
            vllm=(text("DRR_REASONER_VLLM") or "").lower() in _TRUE,
            caps=caps,
        )
        settings.check()
        return settings

    def check(self) -> None:
        """Raise `GraphSetupError` naming the variable to set when the settings are unusable."""
        from drr_agent.replicas import split_urls

        for name, value in (("DRR_DM_URL", self.dm_url), ("DRR_REASONER_URL", self.reasoner_url)):
            if value is not None:
                try:
                    split_urls(value)
                except ValueError as exc:
                    raise GraphSetupError(
                        f"{name} must be one or more http(s) URLs (comma-separated): {exc}"
                    ) from exc
        if self.dm is None and self.dm_url is None and not self.allow_untrained_dm:
            raise GraphSetupError(
                "No DM configured for the DRR graph. Set DRR_DM to a trained DM folder (a "
                "Hugging Face sequence classifier, e.g. written by `drr train`), or set "
                "DRR_ALLOW_UNTRAINED_DM=1 to smoke-test with the embedded MiniLM and a random "
                "head (its scores are meaningless, so is the routing)."
            )
        if self.reasoner_url is not None and self.reasoner_model is None:
            raise GraphSetupError(
                f"DRR_REASONER_URL is set ({self.reasoner_url}) but DRR_REASONER_MODEL is not: "
                "name the model served there."
            )
        if self.reasoner_url is None and self.reasoner_model is not None:
            from drr_agent.reasoners.embedded import embedded_spec

            try:
                embedded_spec(self.reasoner_model)
            except ValueError as exc:
                raise GraphSetupError(
                    f"DRR_REASONER_MODEL without DRR_REASONER_URL names an embedded Reasoner: {exc}"
                ) from exc
        if self.reasoner_style not in (None, "prefill", "chat"):
            raise GraphSetupError(
                f"DRR_REASONER_STYLE must be 'prefill' or 'chat', got {self.reasoner_style!r}"
            )

    @property
    def embedded_reasoner(self) -> bool:
        return self.reasoner_url is None


def build_reasoner(settings: GraphSettings) -> Any:
    """The Reasoner the settings name: an OpenAI-compatible server, else an embedded one."""
    from drr_agent.reasoners import choose_reasoner

    return choose_reasoner(
        settings.reasoner_url,
        settings.reasoner_model,
        style=settings.reasoner_style,  # type: ignore[arg-type]
        vllm=settings.vllm,
    )


def build_scorer(settings: GraphSettings) -> Any:
    """The DM the settings name: ``DRR_DM_URL`` (served), ``DRR_DM`` (in process), else (if
    allowed) the untrained embedded MiniLM."""
    from drr_agent.scorers import load_dm

    return load_dm(
        settings.dm,
        url=settings.dm_url,
        allow_untrained=settings.allow_untrained_dm,
        # one torch thread beside the in-process llama.cpp Reasoner (see HFScorer.num_threads)
        num_threads=1 if settings.embedded_reasoner else None,
    )


_graphs: dict[GraphSettings, CompiledStateGraph] = {}
_lock = threading.Lock()


def graph_from_env() -> CompiledStateGraph:
    """The compiled DRR graph (named ``drr``) for the current environment.

    The first call for an environment loads the models; later calls with the same settings
    return the same graph. A run's context is bounded by the environment's caps
    (``DRR_<FIELD>_CAP``, `drr_agent.config.ContextCaps`). No checkpointer is attached:
    LangGraph's server brings its own persistence (a graph used as a subgraph or inside a
    tool takes its caller's).

    Raises:
        GraphSetupError: The environment names no usable DM or Reasoner.
    """
    settings = GraphSettings.from_env()
    with _lock:
        graph = _graphs.get(settings)
        if graph is None:
            graph = build_graph(
                build_reasoner(settings),
                build_scorer(settings),
                DRRConfig(),
                name="drr",
                caps=settings.caps,
            )
            _graphs[settings] = graph
    return graph
