"""Fault injection: long jobs killed with SIGKILL at seeded random points, then resumed.

Each job runs as the `drr` command a user types, on the real embedded models, and is killed
twice at random moments (seeded, so a failure reproduces); the resumed run must hold exactly
the records of an uninterrupted run — compared by key: nothing lost, nothing twice. Training
is not resumed from a checkpoint but restarts cleanly: the killed run's staging and Trainer
folders are removed by the next one, which writes one loadable DM.
"""

from __future__ import annotations

import random
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from drr_agent.evaluation.records import EvalRecord
from drr_agent.offline.jsonl import RecordFile
from drr_agent.offline.records import StepExample, TraceRecord
from drr_agent.scorers import load_dm

pytestmark = pytest.mark.embedded

DRR = str(Path(sys.executable).with_name("drr"))
RNG = random.Random(20261201)


def _lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


def _kill_after(args: list[str], path: Path, lines: int, timeout_s: float = 240) -> None:
    """Start ``args``; SIGKILL it once ``path`` has ``lines`` complete lines."""
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + timeout_s
    try:
        while _lines(path) < lines:
            if proc.poll() is not None:
                pytest.fail(f"{args[1]} ended (code {proc.returncode}) before {lines} lines")
            if time.monotonic() > deadline:
                pytest.fail(f"{args[1]}: {lines} lines not written within {timeout_s:.0f} s")
            time.sleep(0.02)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)


def _run(args: list[str], timeout_s: float = 600) -> None:
    done = subprocess.run(args, capture_output=True, text=True, timeout=timeout_s)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]


def _killed_twice_then_resumed(args: list[str], out: Path, total: int) -> None:
    first = RNG.randint(1, total // 3)
    second = RNG.randint(first + 1, 2 * total // 3)
    for at in (first, second):
        _kill_after(args, out, at)
    _run(args)


def _same_keys(model, reference: Path, resumed: Path) -> None:
    ref = [r.key for r in RecordFile(reference, model).read()]
    got = [r.key for r in RecordFile(resumed, model).read()]
    duplicates = [k for k, n in Counter(got).items() if n > 1]
    assert not duplicates, f"records written twice: {duplicates[:5]}"
    assert set(got) == set(ref), f"lost {set(ref) - set(got)}, extra {set(got) - set(ref)}"


@pytest.fixture(scope="module")
def traces(tmp_path_factory) -> Path:
    """An uninterrupted trace file: 8 questions (4 train, 2 dev, 2 test) x 2 samples."""
    out = tmp_path_factory.mktemp("faults") / "traces.jsonl"
    _run(_traces_args(out))
    return out


def _traces_args(out: Path) -> list[str]:
    return [
        DRR, "traces", "--task", "basic_arithmetic", "--limit", "8", "--task-seed", "3",
        "--test", "0.25", "--dev", "0.25", "--split", "all", "--samples", "2",
        "--max-tokens", "60", "--concurrency", "2", "--out", str(out),
    ]  # fmt: skip


def test_traces_killed_twice_resume_to_the_uninterrupted_keys(traces, tmp_path):
    out = tmp_path / "traces.jsonl"
    _killed_twice_then_resumed(_traces_args(out), out, total=16)
    _same_keys(TraceRecord, traces, out)


def test_labels_killed_twice_resume_to_the_uninterrupted_keys(traces, tmp_path):
    def args(out: Path) -> list[str]:
        return [
            DRR, "labels", "--traces", str(traces), "--kind", "answer", "--split", "all",
            "--concurrency", "2", "--out", str(out),
        ]  # fmt: skip

    reference = tmp_path / "reference.jsonl"
    _run(args(reference))
    total = _lines(reference)
    assert total >= 6
    out = tmp_path / "labels.jsonl"
    _killed_twice_then_resumed(args(out), out, total)
    _same_keys(StepExample, reference, out)


def test_eval_killed_twice_resumes_to_the_uninterrupted_keys(traces, tmp_path):
    def args(out: Path) -> list[str]:
        return [
            DRR, "eval", "--traces", str(traces), "--split", "all", "--methods",
            "cot,stepwise,drr", "--untrained-dm", "--max-steps", "2",
            "--max-reasoner-calls", "4", "--concurrency", "2", "--no-plots", "--out", str(out),
        ]  # fmt: skip

    reference = tmp_path / "reference"
    _run(args(reference))
    out = tmp_path / "killed"
    _killed_twice_then_resumed(args(out), out / "records.jsonl", total=8 * 3)
    _same_keys(EvalRecord, reference / "records.jsonl", out / "records.jsonl")


def _sum_steps(n: int) -> list[StepExample]:
    """Labelled steps "a + b = c" (right or off by 1-3) for train and dev questions."""
    rows = []
    for i in range(n):
        a, b = RNG.randint(1, 9), RNG.randint(1, 9)
        split = "train" if i % 3 else "dev"
        for j, off in enumerate((0, RNG.choice((-3, -2, -1, 1, 2, 3)))):
            rows.append(
                StepExample(
                    task="sums", split=split, item_id=f"q{i}", sample_index=j, step_index=0,
                    question=f"What is {a} + {b}? ({i})", previous=[],
                    step=f"{a} + {b} = {a + b + off}", label=float(off == 0),
                    label_kind="mc_answer", final=False,
                )
            )  # fmt: skip
    return rows


def test_training_killed_midway_restarts_cleanly(tmp_path):
    labels = tmp_path / "labels.jsonl"
    RecordFile(labels, StepExample).append(_sum_steps(60))
    dm = tmp_path / "dm"
    args = [
        DRR, "train", "--labels", str(labels), "--out", str(dm), "--recipe", "classifier",
        "--epochs", "3",
        "--max-length", "32", "--batch-size", "8",
    ]  # fmt: skip
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while not list(tmp_path.glob(".dm.work-*/checkpoint-*")) and not list(
        tmp_path.glob(".dm.partial-*/*")
    ):  # killed once Trainer has written a checkpoint (or, if faster, the export began)
        assert proc.poll() is None, f"drr train ended (code {proc.returncode}) before the kill"
        assert time.monotonic() < deadline, "no checkpoint within 240 s"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert not dm.exists(), "a killed training leaves no half-written DM folder"
    assert list(tmp_path.glob(".dm.*")), "the kill left the staging/work folders behind"

    _run(args)
    assert not list(tmp_path.glob(".dm.*")), "the rerun removed the killed run's folders"
    assert load_dm(dm).thresholds  # one complete, loadable DM
    shutil.rmtree(dm)
