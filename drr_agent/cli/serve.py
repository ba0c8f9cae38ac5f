"""``drr serve``: the DM and/or the Reasoner behind local vLLM servers, until Ctrl-C."""

from __future__ import annotations

import signal
import threading
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from drr_agent.cli._common import EMBEDDED, app, console, fail, output_folder
from drr_agent.errors import DMLoadError, DRRError

LOOPBACK = ("127.0.0.1", "localhost", "::1")
DM_NAME = "drr-dm"
REASONER_NAME = "drr-reasoner"


class Device(StrEnum):
    auto = "auto"
    cpu = "cpu"
    gpu = "gpu"


@app.command()
def serve(
    dm: Annotated[
        Path | None, typer.Option(help="Trained DM folder to serve (vLLM /score).")
    ] = None,
    reasoner: Annotated[
        str | None,
        typer.Option(
            help="Reasoner to serve (OpenAI chat API): 'embedded' (SmolLM2-135M) or "
            "'embedded-qwen2.5-0.5b' (converted "
            "from its GGUF once), a Hugging Face model folder, or a Hub id with "
            "--allow-download."
        ),
    ] = None,
    host: Annotated[str, typer.Option(help="Interface to bind; loopback by default.")] = (
        "127.0.0.1"
    ),
    dm_port: Annotated[int, typer.Option(min=1, max=65535)] = 8001,
    reasoner_port: Annotated[int, typer.Option(min=1, max=65535)] = 8000,
    device: Annotated[Device, typer.Option(help="auto: GPU if vLLM's torch sees one.")] = (
        Device.auto
    ),
    vllm_python: Annotated[
        str | None,
        typer.Option(
            help="Interpreter with vLLM (default: $DRR_VLLM_PYTHON, this one, .venv-vllm)."
        ),
    ] = None,
    cache: Annotated[
        Path,
        typer.Option(
            help="Where the DM's vLLM export and the server logs go (the embedded Reasoner's "
            "export is shared in $DRR_CACHE_DIR, default ~/.cache/drr-agent)."
        ),
    ] = Path(".drr_cache/serving"),
    allow_download: Annotated[
        bool,
        typer.Option(help="Let vLLM download a --reasoner Hub id (default: local folders only)."),
    ] = False,
    replicas: Annotated[
        int,
        typer.Option(
            min=1,
            max=16,
            help="Servers per model, on consecutive ports from --dm-port / --reasoner-port: "
            "clients given all their URLs (comma-separated) spread requests over them and "
            "route around one that fails. A quick try on one machine (each CPU replica takes "
            "~2 GB of RAM and shares the cores); production runs one per machine or GPU.",
        ),
    ] = 1,
    api_key: Annotated[
        str | None,
        typer.Option(
            envvar="DRR_SERVE_API_KEY",
            help="Key clients must send to every route but /health, the Reasoner's and the DM's "
            "(required beyond loopback); clients read it from $DRR_REASONER_API_KEY and "
            "$DRR_DM_API_KEY.",
        ),
    ] = None,
) -> None:
    """Serve the DM and/or the Reasoner with vLLM on this machine; Ctrl-C stops them."""
    from drr_agent.models import embedded_reasoner_folder, embedded_verifier_folder
    from drr_agent.scorers.card import DMCard
    from drr_agent.serving import VLLMServer, export_dm_for_vllm

    if dm is None and reasoner is None:
        raise fail("nothing to serve: pass --dm PATH and/or --reasoner embedded|MODEL", 2)
    output_folder(cache, "--cache")
    if dm is not None and not dm.is_dir():
        what = "is a file" if dm.exists() else "no such folder"
        raise fail(f"--dm {dm}: {what}; give a DM folder (e.g. written by `drr train`)", 2)
    try:
        alone = dm is not None and DMCard.load(dm).head_alone
    except DMLoadError as exc:
        raise fail(str(exc)) from exc
    if alone:
        raise fail(
            f"--dm {dm} is a likelihood head alone (no classifier): there is no model to "
            "serve. It reads the Reasoner's own log-probs, which the Reasoner's server returns "
            f"with each step: serve --reasoner and give the client --dm {dm}",
            2,
        )
    if host.strip("[]") not in LOOPBACK and not api_key:  # "[::1]" is ::1
        raise fail(
            f"--host {host} listens beyond this machine: pass --api-key (or set "
            "DRR_SERVE_API_KEY) so only clients with the key reach the servers",
            2,
        )
    if dm is not None and reasoner is not None and abs(dm_port - reasoner_port) < replicas:
        raise fail(
            f"--replicas {replicas}: the DM's ports {dm_port}.. and the Reasoner's "
            f"{reasoner_port}.. overlap; move one, e.g. --dm-port {reasoner_port + replicas}",
            2,
        )
    servers: list[VLLMServer] = []
    common = {"host": host, "python": vllm_python, "device": device.value, "api_key": api_key}

    def replicated(
        model: str | Path, name: str, runner: str, port: int, kind: str, **extra: Any
    ) -> list[VLLMServer]:
        """``--replicas`` servers of one model on consecutive ports, one log each."""
        return [
            VLLMServer(
                model,
                name,
                runner,  # type: ignore[arg-type]
                port=port + i,
                log=cache / (f"{kind}.log" if replicas == 1 else f"{kind}-{i}.log"),
                **common,
                **extra,
            )
            for i in range(replicas)
        ]

    try:
        if dm is not None:
            console.print(f"converting {dm} for vLLM (one-logit head, same probabilities)…")
            folder = export_dm_for_vllm(dm, cache / f"dm-{dm.resolve().name}")
            servers += replicated(folder, DM_NAME, "pooling", dm_port, "dm")
        if reasoner is not None:
            if reasoner in (EMBEDDED, "embedded-smollm2"):
                console.print("converting the embedded SmolLM2 GGUF to safetensors (once)…")
                model: str | Path = embedded_reasoner_folder()
            elif reasoner == "embedded-qwen2.5-0.5b":
                console.print("converting the embedded Qwen2.5 GGUF to safetensors (once)…")
                model = embedded_verifier_folder()
            else:
                model = reasoner
                if not Path(reasoner).expanduser().exists() and not allow_download:
                    raise DRRError(
                        f"--reasoner {reasoner}: no such folder. drr serve runs local folders "
                        "only (HF_HUB_OFFLINE=1): download the model first (`hf download "
                        f"{reasoner} --local-dir DIR`, then --reasoner DIR), or pass "
                        "--allow-download to let vLLM fetch it from the Hub"
                    )
            servers += replicated(
                model, REASONER_NAME, "generate", reasoner_port, "reasoner",
                offline=not allow_download,
            )  # fmt: skip
        for server in servers:
            console.print(f"starting vLLM ({server.device}) for {server.model} …")
            server.start()
            console.print(f"  [green]ready[/] {server.served_name} at {server.url}")
    except BaseException as exc:  # a failed start, Ctrl-C while starting: nothing left running
        for server in servers:
            server.stop()
        if isinstance(exc, DRRError):
            raise fail(str(exc)) from exc
        raise
    dm_url = ",".join(s.url for s in servers if s.served_name == DM_NAME)
    r_url = ",".join(f"{s.url}/v1" for s in servers if s.served_name == REASONER_NAME)
    keys = [
        f"{env}=<the key>"
        for env, url in (("DRR_REASONER_API_KEY", r_url), ("DRR_DM_API_KEY", dm_url))
        if api_key and url
    ]
    example = [*keys, "drr solve 'What is 7 + 4?'"]
    if r_url:
        example.append(f"--reasoner {r_url} --model {REASONER_NAME} --vllm --style prefill")
    if dm_url:
        example.append(f"--dm-url {dm_url} --dm {dm}")
    console.print("use them with:\n  " + " ".join(example) + "\nCtrl-C stops the servers.")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.is_set():
            for server in servers:
                if server.process is not None and server.process.poll() is not None:
                    console.print(f"[red]{server.served_name} exited[/]:\n{server.log_tail()}")
                    stop.set()
            stop.wait(1.0)
    except KeyboardInterrupt:
        pass
    finally:
        console.print("stopping…")
        for server in servers:
            server.stop()
    console.print("stopped.")
