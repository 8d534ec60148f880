"""The replay example of docs/replay.md runs as written and gives the shapes it promises."""

from __future__ import annotations

import pathlib
import re

DOC = pathlib.Path(__file__).parents[2] / "docs" / "replay.md"


def _python_block(containing: str) -> str:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    matches = [b for b in blocks if containing in b]
    assert len(matches) == 1, f"expected one {DOC.name} python block containing {containing!r}"
    return matches[0]


def test_replay_example_runs():
    code = _python_block("from r2d2_state.replay import SequenceAdder")
    namespace = {"__name__": "__docs__"}
    exec(compile(code, "docs/replay.md (replay example)", "exec"), namespace)
    assert len(namespace["replay"]) > 0
    assert namespace["batch"].data["observation"].shape == (32, 27, 4)
