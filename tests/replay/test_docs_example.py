"""The README's replay example runs as written (the block is read from README.md)."""

from __future__ import annotations

import pathlib
import re

README = pathlib.Path(__file__).parents[2] / "README.md"


def _python_block(containing: str) -> str:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    matches = [b for b in blocks if containing in b]
    assert len(matches) == 1, f"expected one README python block containing {containing!r}"
    return matches[0]


def test_readme_replay_example_runs():
    code = _python_block("from r2d2_state.replay import SequenceAdder")
    namespace = {"__name__": "__readme__"}
    exec(compile(code, "README.md (replay example)", "exec"), namespace)
    assert len(namespace["replay"]) > 0
    assert namespace["batch"].data["observation"].shape == (32, 27, 4)
