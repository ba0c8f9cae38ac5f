"""Shared fixtures: the real embedded models are loaded once per test session."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing may come from a hub here


@pytest.fixture(scope="session")
def untrained_dm():
    """The embedded MiniLM base with a random 2-label head: real model, meaningless scores."""
    from drr_agent.scorers import HFScorer, embedded_dm_base_path

    # one torch thread: the embedded llama.cpp Reasoner shares the process (HFScorer docs)
    return HFScorer(embedded_dm_base_path(), allow_untrained_head=True, num_threads=1)


@pytest.fixture(scope="session")
def embedded():
    """The embedded SmolLM2 Reasoner (llama.cpp server started once, seeded sampling)."""
    from drr_agent.reasoners import embedded_reasoner

    return embedded_reasoner(seed=7, max_tokens=48)
