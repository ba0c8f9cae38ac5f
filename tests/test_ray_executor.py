"""The batch jobs on Ray: same records as in process, nothing lost or doubled when a worker dies.

A local Ray cluster (``ray.init`` in this process, 2 CPUs) stands in for a real one: the
actors are separate worker processes that rebuild the Reasoner and DM from their recipes, as
on a cluster. (The 2-node cluster of `ray start` is measured by
``evals/benchmarks/ray_scaling.py``.)
"""

from __future__ import annotations

import os
import pickle
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from http_fakes import FakeChat

from drr_agent import DRRConfig
from drr_agent.errors import DRRError
from drr_agent.evaluation.methods import MethodContext, MethodSettings
from drr_agent.evaluation.records import RECORDS_FILE, EvalRecord
from drr_agent.evaluation.runner import run_eval
from drr_agent.execution import LocalExecutor, RayExecutor
from drr_agent.offline.jsonl import RecordFile
from drr_agent.offline.records import TraceRecord
from drr_agent.offline.traces import sample_traces
from drr_agent.reasoners import Reasoner, openai_compatible_reasoner
from drr_agent.tasks import load_task

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def cluster():
    tests = str(Path(__file__).parent)  # the workers import this module's jobs, as users' own
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={"env_vars": {"PYTHONPATH": tests}},
    )
    yield RayExecutor(address=None, workers=2, concurrency=2)
    ray.shutdown()


@pytest.fixture(scope="module")
def task():
    return load_task("basic_arithmetic", limit=6, seed=3)


@dataclass(frozen=True)
class KillOnce:
    """A job that SIGKILLs its own worker on the first attempt at one unit, then runs it."""

    job: Any
    unit_index: int
    marker: str

    def __getattr__(self, name: str) -> Any:  # the wrapped job's record(), ...
        if name == "job":
            raise AttributeError(name)
        return getattr(self.job, name)

    async def __call__(self, resources: Any, unit: Any) -> Any:
        item, index = unit
        if index == self.unit_index and item.id.endswith("/1"):
            try:
                fd = os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                pass  # the retry on the restarted worker
            else:
                os.close(fd)
                os.kill(os.getpid(), signal.SIGKILL)
        return await self.job(resources, unit)


def test_reasoners_and_dms_pickle_as_recipes():
    reasoner = openai_compatible_reasoner("http://127.0.0.1:9/v1", "m", seed=3).derive(seed=5)
    again = pickle.loads(pickle.dumps(reasoner))
    assert isinstance(again, Reasoner) and again.model.seed == 5 and again is not reasoner
    from langchain_core.language_models.fake_chat_models import FakeListChatModel

    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(Reasoner(FakeListChatModel(responses=["x"])))


async def test_an_unpicklable_reasoner_is_refused_with_the_way_out(cluster, task, tmp_path):
    from langchain_core.language_models.fake_chat_models import FakeListChatModel

    reasoner = Reasoner(FakeListChatModel(responses=["Answer: 1"]))
    with pytest.raises(DRRError, match="openai_compatible_reasoner"):
        await sample_traces(
            task,
            task.items,
            "train",
            reasoner,
            tmp_path / "t.jsonl",
            executor=cluster,
            samples_per_item=1,
            progress=False,
        )


async def test_traces_on_ray_have_the_keys_of_a_local_run_and_survive_a_killed_worker(
    cluster, task, tmp_path, monkeypatch
):
    chat = FakeChat("ray", delay_s=0.05)
    try:
        reasoner = openai_compatible_reasoner(chat.url, "fake", style="chat", temperature=0.7)
        common = {"samples_per_item": 3, "max_tokens": 32, "seed": 1, "progress": False}
        local = await sample_traces(
            task,
            task.items,
            "train",
            reasoner,
            tmp_path / "local.jsonl",
            executor=LocalExecutor(4),
            **common,
        )
        # a worker SIGKILLs itself mid-job: Ray restarts it and retries its unfinished units
        import drr_agent.offline.traces as traces_module

        real = traces_module._TraceJob
        marker = str(tmp_path / "killed")
        monkeypatch.setattr(
            traces_module, "_TraceJob", lambda **kw: KillOnce(real(**kw), 1, marker)
        )
        remote = await sample_traces(
            task,
            task.items,
            "train",
            reasoner,
            tmp_path / "ray.jsonl",
            executor=cluster,
            **common,
        )
        assert Path(marker).exists()  # the kill happened
        rows = {
            name: RecordFile(tmp_path / f"{name}.jsonl", TraceRecord).read()
            for name in ("local", "ray")
        }
        keys = {name: [r.key for r in rs] for name, rs in rows.items()}
        assert len(keys["ray"]) == len(set(keys["ray"])) == len(task.items) * 3  # no doubles
        assert set(keys["ray"]) == set(keys["local"])  # nothing lost
        assert all(r.status == "ok" and r.text for r in rows["ray"])
        assert remote.traces_new == local.traces_new == len(task.items) * 3
        # resume: a second Ray run over the same file has nothing left to do
        again = await sample_traces(
            task,
            task.items,
            "train",
            reasoner,
            tmp_path / "ray.jsonl",
            executor=cluster,
            **common,
        )
        assert again.traces_new == 0
    finally:
        chat.close()


@pytest.mark.embedded
async def test_eval_on_ray_with_the_embedded_models_matches_the_local_keys(cluster, task, tmp_path):
    """The real thing: each worker starts its own SmolLM2 server and loads its own MiniLM DM
    from the recipes; the records' keys match an in-process run of the same methods."""
    from drr_agent.reasoners import embedded_reasoner
    from drr_agent.scorers import load_dm

    reasoner = embedded_reasoner(temperature=0.7, max_tokens=24, seed=3)
    scorer = load_dm(allow_untrained=True, num_threads=1)
    config = DRRConfig(max_steps=2, max_reasoner_calls=4, accept_threshold=0.0)
    ctx = MethodContext(task, reasoner, scorer, config, MethodSettings(max_tokens=48))
    methods = ["cot", "drr"]
    items = task.items[:4]
    out = {}
    for name, executor in (("local", LocalExecutor(4)), ("ray", cluster)):
        summary = await run_eval(
            task,
            items,
            methods,
            ctx,
            tmp_path / name,
            executor=executor,
            progress=False,
            plots=False,
            allow_trained_questions=True,
        )
        assert summary.items == len(items)
        out[name] = RecordFile(tmp_path / name / RECORDS_FILE, EvalRecord).read()
    assert sorted(r.key for r in out["ray"]) == sorted(r.key for r in out["local"])
    assert all(r.error is None for r in out["ray"]), [r.error for r in out["ray"]]
    assert all(r.dm_calls > 0 for r in out["ray"] if r.method == "drr")


def test_drr_traces_cli_runs_on_ray(cluster, tmp_path):
    from typer.testing import CliRunner

    from drr_agent.cli import app

    chat = FakeChat("cli", delay_s=0.01)
    try:
        out = tmp_path / "traces.jsonl"
        args = ["traces", "--task", "basic_arithmetic", "--limit", "4", "--out", str(out)]
        args += ["--samples", "2", "--reasoner", chat.url, "--model", "fake"]
        args += ["--executor", "ray", "--ray-address", "local", "--workers", "2"]
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output
        rows = RecordFile(out, TraceRecord).read()
        assert len(rows) == len({r.key for r in rows}) == 3 * 2  # 4 items: 3 train, 1 test
        assert chat.calls == 6
    finally:
        chat.close()


async def test_labels_on_ray_match_local_labels(cluster, task, tmp_path):
    """Answer-rollout labels: deterministic for the fake server, so equal value by value."""
    from drr_agent.offline.labels import mc_examples
    from drr_agent.offline.records import StepExample

    chat = FakeChat("labels", delay_s=0.01)
    try:
        reasoner = openai_compatible_reasoner(chat.url, "fake", style="prefill")
        traces = await sample_traces(
            task,
            task.items,
            "train",
            reasoner,
            tmp_path / "t.jsonl",
            samples_per_item=2,
            executor=LocalExecutor(4),
            progress=False,
        )
        rows = RecordFile(traces.path, TraceRecord).read()
        labels = {}
        for name, executor in (("local", LocalExecutor(4)), ("ray", cluster)):
            await mc_examples(
                rows,
                task,
                reasoner,
                tmp_path / f"{name}.jsonl",
                rollouts=2,
                continuation="answer",
                executor=executor,
                progress=False,
            )
            read = RecordFile(tmp_path / f"{name}.jsonl", StepExample).read()
            labels[name] = {e.key: e.label for e in read}
            assert len(read) == len(labels[name])  # no doubles
        assert labels["ray"] == labels["local"] and labels["local"]
    finally:
        chat.close()


async def test_more_workers_than_the_cluster_has_cpus_is_refused(task, cluster, tmp_path):
    chat = FakeChat("too-many")
    try:
        reasoner = openai_compatible_reasoner(chat.url, "fake", style="chat")
        with pytest.raises(DRRError, match="8 Ray workers of 1 CPU need 8 CPUs; the cluster has 2"):
            await sample_traces(
                task,
                task.items,
                "train",
                reasoner,
                tmp_path / "t.jsonl",
                executor=RayExecutor(address=None, workers=8),
                samples_per_item=1,
                progress=False,
            )
    finally:
        chat.close()
