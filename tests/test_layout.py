"""The layout stays readable: one concept a module, none over 600 lines (issue 31's rule;
the layer contracts themselves are `lint-imports`' job, run by ``.ci/run``)."""

from __future__ import annotations

from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "drr_agent"
MOST_LINES = 600


def test_no_module_is_over_600_lines():
    long = {
        str(path.relative_to(PACKAGE)): n
        for path in PACKAGE.rglob("*.py")
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > MOST_LINES
    }
    assert not long, f"split these by concept: {long}"
