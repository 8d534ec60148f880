"""Every ```python block of README.md and docs/*.md runs as written (each in a fresh namespace,
in a temporary directory: what a block writes, e.g. a run directory, stays there)."""

from __future__ import annotations

import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).parents[1]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def python_blocks() -> list:
    out = []
    for path in DOCUMENTS:
        text = path.read_text(encoding="utf-8")
        for match in re.finditer(r"^```python\n(.*?)^```", text, flags=re.S | re.M):
            line = text[:match.start()].count("\n") + 2
            name = f"{path.relative_to(ROOT)}:{line}"
            out.append(pytest.param(name, match.group(1), id=name))
    return out


def test_the_documents_have_python_examples():
    names = [p.values[0] for p in python_blocks()]
    assert len(names) >= 7, names  # README 1; docs: state API, network, burn-in, actor, replay, environments
    assert any(n.startswith("README.md") for n in names) and any(n.startswith("docs/replay.md") for n in names)


@pytest.mark.slow
@pytest.mark.parametrize("name,code", python_blocks())
def test_python_block_runs(name, code, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "__docs__"}
    exec(compile(code, name, "exec"), namespace)
