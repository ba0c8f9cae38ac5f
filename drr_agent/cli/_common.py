"""What every ``drr`` subcommand shares: the Typer app, consoles, Reasoner options."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer
from rich.console import Console

from drr_agent.reasoners.base import Reasoner

app = typer.Typer(
    name="drr",
    help="DRR: a trained Discriminative Model steers a Reasoner LLM step by step.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console()
err_console = Console(stderr=True, soft_wrap=True)  # errors stay greppable, unwrapped

EMBEDDED = "embedded"


class Style(StrEnum):
    prefill = "prefill"
    chat = "chat"


ReasonerOpt = Annotated[
    str, typer.Option(help="'embedded' (SmolLM2-135M on CPU) or an OpenAI-compatible API URL.")
]
ModelOpt = Annotated[str | None, typer.Option(help="Model name served at --reasoner URL.")]
StyleOpt = Annotated[
    Style | None, typer.Option(help="Prompt style; default prefill (embedded) / chat (URL).")
]
VllmOpt = Annotated[
    bool, typer.Option(help="The URL is a vLLM server (enables prefill continuation).")
]


def make_reasoner(
    reasoner: str,
    model: str | None,
    style: Style | None,
    vllm: bool,
    *,
    temperature: float = 0.7,
    seed: int | None = None,
    max_tokens: int = 64,
) -> Reasoner:
    """The Reasoner the options name (embedded by default)."""
    from drr_agent.prompts import StepPrompt
    from drr_agent.reasoners import embedded_reasoner, openai_compatible_reasoner

    sampling = {"temperature": temperature, "seed": seed, "max_tokens": max_tokens}
    if reasoner == EMBEDDED:
        prompt = StepPrompt(style=(style or Style.prefill).value)
        return embedded_reasoner(prompt=prompt, **sampling)
    if not reasoner.startswith(("http://", "https://")):
        raise typer.BadParameter(
            f"expected 'embedded' or an http(s) URL of an OpenAI-compatible API, got {reasoner!r}",
            param_hint="--reasoner",
        )
    if not model:
        raise typer.BadParameter(
            "an OpenAI-compatible --reasoner needs --model", param_hint="--model"
        )
    style_name = (style or Style.chat).value
    return openai_compatible_reasoner(reasoner, model, style=style_name, vllm=vllm, **sampling)


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print an error and return the exit to raise."""
    err_console.print(f"[red]error:[/red] {message}")
    return typer.Exit(code)
