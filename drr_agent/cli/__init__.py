"""The ``drr`` command line: one module per group of subcommands, sharing `_common`."""

from __future__ import annotations

import os

from drr_agent.cli import dm, evaluate, offline, quickstart, serve, solve  # noqa: F401 (registers)
from drr_agent.cli._common import app

__all__ = ["app", "main"]


def main() -> None:  # pragma: no cover - console entry point
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    app()
