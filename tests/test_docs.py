"""Every Python block of the README and the docs runs, on the real embedded models.

Why: the README's embed example once loaded a DM folder with `HFScorer`, which silently scored
with the classifier alone — a critic that could not tell "8 - 1 = 7" from "8 - 1 = 9". An
example that is executed cannot drift from the library like that.

Conventions (the docs follow them): a block is run as it is, in a fresh namespace; one whose
first line is ``# doctest: needs-dm`` reads the quickstart's DM folder ``runs/quickstart/dm``,
which the test replaces with the DM the scripted quickstart trains (``tiny_quickstart``); one
marked ``# doctest: needs-quickstart-dm`` states what the real quickstart's DM does (it tells a
right step from a wrong one, which the scripted DM never learnt) and runs when
``runs/quickstart/dm`` exists in the checkout (after the README's first command), else is
skipped; one whose first line is ``# doctest: skip — <reason>`` needs what CI lacks (a running
server) and is collected, then skipped with that reason.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

pytestmark = pytest.mark.embedded

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
QUICKSTART_DM = "runs/quickstart/dm"
_BLOCK = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)


def python_blocks() -> list[pytest.param]:
    """One param per ```python block: (file, line, code), named file:line."""
    params = []
    for path in DOCS:
        text = path.read_text(encoding="utf-8")
        for match in _BLOCK.finditer(text):
            line = text.count("\n", 0, match.start()) + 2  # the block's first code line
            where = f"{path.relative_to(ROOT)}:{line}"
            params.append(pytest.param(path, line, match.group(1), id=where))
    return params


def test_the_docs_have_python_blocks_and_the_readme_embeds_with_load_dm():
    blocks = python_blocks()
    readme = [p.values[2] for p in blocks if p.values[0].name == "README.md"]
    assert readme and any("load_dm(" in code for code in readme)
    assert not any("HFScorer(" in code for p in blocks for code in [p.values[2]])


@pytest.mark.parametrize(("path", "line", "code"), python_blocks())
def test_python_block_runs(path, line, code, request, monkeypatch, tmp_path):
    first = code.splitlines()[0].strip() if code.strip() else ""
    if first.startswith("# doctest: skip"):
        pytest.skip(first.removeprefix("# doctest: skip").strip(" —-:") or "marked skip")
    if first == "# doctest: needs-dm":
        folder, _, _ = request.getfixturevalue("tiny_quickstart")  # only when needed
        code = code.replace(QUICKSTART_DM, str(folder / "dm"))
    if first == "# doctest: needs-quickstart-dm":
        real = ROOT / QUICKSTART_DM
        if not (real / "drr_dm.json").is_file():
            pytest.skip(f"needs the DM `drr quickstart` trains ({QUICKSTART_DM})")
        code = code.replace(QUICKSTART_DM, str(real))
    read = [text.split("#", 1)[0] for text in code.splitlines()]  # comments may mention it
    assert not any(QUICKSTART_DM in text for text in read), f"{path.name}:{line}: mark needs-dm"
    monkeypatch.chdir(tmp_path)  # a block that writes files writes them here
    exec(compile(code, f"{path}:{line}", "exec"), {"__name__": "__docs__"})


_SHELL = re.compile(r"^```bash\n(.*?)^```", re.MULTILINE | re.DOTALL)
_ASSIGNMENTS = re.compile(r"(?:^|;)\s*([A-Z_]+)=(\"[^\"]*\"|\S+)")
_VARIABLE = re.compile(r"\$\{?([A-Za-z_]+)\}?")


def drr_commands() -> list[pytest.param]:
    """One param per ``drr`` command line of a ```bash block (continuations joined, comments
    dropped, the block's own ``NAME=value`` variables expanded), named file:line."""
    params = []
    for path in DOCS:
        text = path.read_text(encoding="utf-8")
        for match in _SHELL.finditer(text):
            line_no = text.count("\n", 0, match.start()) + 2
            variables: dict[str, str] = {}
            joined, start = "", line_no
            for n, raw in enumerate(match.group(1).splitlines(), start=line_no):
                if not joined:
                    start = n
                if raw.endswith("\\"):  # as bash reads it: backslash-newline joins, no space
                    joined += raw.removesuffix("\\")
                    continue
                joined += raw
                line, joined = joined.split(" #")[0].strip(), ""
                for assignment in _ASSIGNMENTS.findall(line):
                    variables[assignment[0]] = shlex.split(assignment[1])[0]
                line = _VARIABLE.sub(lambda m, v=variables: v.get(m.group(1), "x"), line)
                if line.startswith("drr "):
                    where = f"{path.relative_to(ROOT)}:{start}"
                    params.append(pytest.param(line, id=where))
    return params


def test_the_docs_name_drr_commands():
    assert len(drr_commands()) >= 20


@pytest.mark.parametrize("command", drr_commands())
def test_a_drr_command_in_the_docs_parses(command):
    """The CLI accepts every option a documented command gives (a renamed or dropped option
    fails here, not on a reader's machine). Parsing only: nothing runs."""
    import typer.main

    from drr_agent.cli import app

    args = shlex.split(command)[1:]
    group = typer.main.get_command(app)
    name, sub, rest = group.resolve_command(group.make_context("drr", list(args)), list(args))
    assert sub is not None, f"unknown command {name!r}"
    sub.make_context(name, rest, resilient_parsing=False)
