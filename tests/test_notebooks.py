"""The notebooks run top to bottom on the embedded default (executed with nbclient, on CPU)."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

pytestmark = pytest.mark.embedded

NOTEBOOKS = sorted((Path(__file__).parents[1] / "notebooks").glob("*.ipynb"))


def test_notebooks_are_found_and_committed_without_outputs():
    assert [p.name for p in NOTEBOOKS] == ["01_trace_decisions.ipynb", "02_drr_vs_cot.ipynb"]
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert not cell.outputs and cell.execution_count is None, f"{path.name}: outputs"


def _execute(path: Path, monkeypatch) -> nbformat.NotebookNode:
    monkeypatch.delenv("DRR_DM", raising=False)  # the rule critic: no trained DM needed
    monkeypatch.setenv("DRR_NB_ITEMS", "2")
    nb = nbformat.read(path, as_version=4)
    # a cell that raises makes execute() raise CellExecutionError with the traceback
    NotebookClient(
        nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    ).execute(env=dict(os.environ))
    return nb


def _outputs(nb: nbformat.NotebookNode) -> str:
    texts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            texts.append(out.get("text", ""))
            texts.extend(str(v) for k, v in out.get("data", {}).items() if k.startswith("text/"))
    return "\n".join(texts)


def test_trace_notebook(monkeypatch):
    nb = _execute(NOTEBOOKS[0], monkeypatch)
    text = _outputs(nb)
    assert "critic: arithmetic-checker" in text
    assert "answer:" in text and "nodes," in text
    outputs = [o for c in nb.cells for o in c.get("outputs", [])]
    figures = [o for o in outputs if "image/png" in o.get("data", {})]
    assert figures, "the thought tree is drawn"


def test_drr_vs_cot_notebook(monkeypatch):
    nb = _execute(NOTEBOOKS[1], monkeypatch)
    text = _outputs(nb)
    assert "| cot |" in text and "| drr |" in text  # the summary table
    assert any("image/png" in o.get("data", {}) for c in nb.cells for o in c.get("outputs", []))
