"""TrainConfig / R2D2Config / QNetworkConfig: documentation, nesting, older config.json files, the CLI rules."""

from __future__ import annotations

import ast
import dataclasses
import inspect
import json
import sys
import textwrap
import typing

import pytest

from agents.r2d2 import cli
from agents.r2d2.config import START_STATES, R2D2Config
from agents.r2d2.presets import get_preset
from agents.r2d2.train_config import ConfigurationError, TrainConfig, config_differences
from r2d2_state.network_config import ENV_FIELDS, QNetworkConfig


def _documented(cls: type) -> set[str]:
    """Fields of ``cls`` followed by a string literal (the attribute docstring tyro shows as help)."""
    body = ast.parse(textwrap.dedent(inspect.getsource(cls))).body[0].body  # type: ignore[attr-defined]
    return {node.target.id for node, after in zip(body, body[1:])
            if isinstance(node, ast.AnnAssign) and isinstance(after, ast.Expr)
            and isinstance(after.value, ast.Constant) and isinstance(after.value.value, str)}


@pytest.mark.parametrize("cls", [TrainConfig, R2D2Config, QNetworkConfig])
def test_every_field_has_a_docstring(cls):
    missing = {f.name for f in dataclasses.fields(cls)} - _documented(cls)
    assert not missing, f"{cls.__name__} fields without a docstring: {sorted(missing)}"


@pytest.mark.parametrize("module", ["agents.r2d2.config", "agents.r2d2.train_config", "agents.r2d2.presets"])
def test_config_modules_say_why_without_measured_figures(module):
    """Figures live once, in docs/benchmarks.md or docs/presets.md; the help text links there."""
    import importlib
    import re

    source = inspect.getsource(importlib.import_module(module))
    dated = re.findall(r"20\d\d-\d\d-\d\d", source)
    ratios = re.findall(r"\b\d+(?:\.\d+)?(?:-\d+(?:\.\d+)?)?x\b", source)  # 1.6-1.9x, 0.82x
    timings = re.findall(r"\b\d+(?:\.\d+)? ?(?:ms|us)\b", source)
    assert not (dated or ratios or timings), f"{module} carries measured figures: {dated + ratios + timings}"
    assert "DESIGN.md" not in source


def test_start_states_match_the_burn_in_module():
    from r2d2_state.burn_in import START_STATES as burn_in_start_states

    assert START_STATES == burn_in_start_states == ("stored", "zero")


def test_network_is_nested_and_filled_from_the_env():
    config = get_preset("smoke").r2d2
    assert config.network == QNetworkConfig(mlp_units=(16,), lstm_units=(16,), head_units=16)
    filled = config.network.for_env((5,), 3, observation_dtype="float32")
    assert (filled.observation_shape, filled.num_actions, filled.lstm_units) == ((5,), 3, (16,))
    with pytest.raises(ValueError, match="observation shape and number of actions"):
        QNetworkConfig().require_env()
    # An agent's config holds the architecture only: env fields set there are refused.
    with pytest.raises(ValueError, match="R2D2Config.network must be an architecture"):
        R2D2Config(network=filled)


def test_a_network_field_outside_the_network_in_a_config_json_is_one_line_naming_its_place(tmp_path):
    """Issue 25.5: a config.json with the network fields flat under r2d2 was moved into r2d2.network silently."""
    values = json.loads(get_preset("smoke").to_json())
    values["r2d2"]["lstm_units"] = values["r2d2"]["network"].pop("lstm_units")
    path = tmp_path / "config.json"
    path.write_text(json.dumps(values))
    with pytest.raises(ConfigurationError) as error:
        TrainConfig.from_json_file(str(path))
    message = str(error.value)
    assert "\n" not in message and "r2d2.lstm_units" in message and "r2d2.network.lstm_units" in message, message


def test_config_differences_name_nested_network_fields():
    a = get_preset("smoke")
    b = a.replace(r2d2=a.r2d2.replace(network=dataclasses.replace(a.r2d2.network, lstm_units=(8, 8))), seed=3)
    assert config_differences(a.to_dict(), b.to_dict()) == ["r2d2.network.lstm_units", "seed"]


def test_unknown_network_fields_in_a_config_json_are_refused(tmp_path):
    values = json.loads(get_preset("smoke").to_json())
    values["r2d2"]["network"]["lstm_size"] = 3
    path = tmp_path / "config.json"
    path.write_text(json.dumps(values))
    with pytest.raises(ConfigurationError, match="lstm_size"):
        TrainConfig.from_json_file(str(path))


def test_cli_parses_into_the_default():
    base = get_preset("smoke")
    args = ["--seed", "4", "--r2d2.network.lstm-units", "32", "32", "--r2d2.network.head_units=8", "--eval-every", "7"]
    config = cli.parse(TrainConfig, args, default=base)
    assert config.seed == 4 and config.r2d2.network.lstm_units == (32, 32) and config.r2d2.network.head_units == 8
    assert config.eval_every == 7 and config.r2d2.batch_size == base.r2d2.batch_size
    assert config_differences(base.to_dict(), config.to_dict()) == ["eval_every", "r2d2.network.head_units",
                                                                   "r2d2.network.lstm_units", "seed"]


def test_cli_error_is_one_line():
    with pytest.raises(ConfigurationError) as info:
        cli.parse(TrainConfig, ["--r2d2.discount", "2"], default=get_preset("smoke"))
    assert str(info.value) == "--r2d2.discount must be in [0, 1], got 2.0"


def test_cli_modules_import_no_framework():
    import subprocess

    code = ("import sys, agents.r2d2.cli, agents.r2d2.presets; "
            "print(sorted(m for m in ('tensorflow', 'keras', 'gymnasium', 'numpy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_literal_fields_are_the_validated_choices():
    hints = typing.get_type_hints(TrainConfig)
    assert typing.get_args(hints["backend"]) == ("single", "ray")
    assert typing.get_args(hints["progress"]) == ("auto", "rich", "plain", "none")
    assert typing.get_args(typing.get_type_hints(R2D2Config)["start_state"]) == START_STATES
    with pytest.raises(ValueError, match="backend must be one of"):
        get_preset("smoke").replace(backend="threads")
    assert set(ENV_FIELDS) < {f.name for f in dataclasses.fields(QNetworkConfig)}


@pytest.mark.parametrize("changes,message", [
    (dict(batch_size="16"), "R2D2Config.batch_size must be an int, got '16'"),
    (dict(discount=True), "R2D2Config.discount must be a number, got True"),
    (dict(replay_capacity_steps=2.5), "R2D2Config.replay_capacity_steps must be an int or None, got 2.5"),
    (dict(replay_compression="zip"), "R2D2Config.replay_compression must be 'lz4' or None, got 'zip'"),
])
def test_replace_with_a_value_of_the_wrong_type_names_the_field(changes, message):
    config = R2D2Config()
    with pytest.raises(ValueError) as error:
        config.replace(**changes)
    assert str(error.value) == message
