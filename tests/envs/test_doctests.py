"""The usage examples in the envs docstrings run."""

from __future__ import annotations

import doctest

import pytest

import envs.make
import envs.tmaze
import envs.tmaze_vector


@pytest.mark.parametrize("module", [envs.make, envs.tmaze, envs.tmaze_vector])
def test_docstring_examples(module):
    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0
