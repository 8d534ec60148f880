"""Presets are data: overrides on the defaults, resolving to the configs they always had."""

from __future__ import annotations

import dataclasses
import json
import pathlib

import pytest

from agents.r2d2.config import R2D2Config
from agents.r2d2.presets import DEFAULT_PRESET, GENERIC_PRESET, PRESETS, get_preset
from agents.r2d2.train_config import TrainConfig
from r2d2_state.network_config import QNetworkConfig

# Every preset's resolved config (``get_preset(name).to_dict()``) as the preset functions
# built it before the presets became a table.
RESOLVED = json.loads((pathlib.Path(__file__).parent / "presets_resolved.json").read_text(encoding="utf-8"))


def test_every_preset_resolves_to_its_recorded_config():
    assert sorted(PRESETS) == sorted(RESOLVED)
    assert {DEFAULT_PRESET, GENERIC_PRESET} <= set(PRESETS)
    for name in PRESETS:
        config = get_preset(name)
        assert isinstance(config, TrainConfig)
        assert json.loads(config.to_json()) == RESOLVED[name], name
        assert TrainConfig.from_dict(json.loads(config.to_json())) == config


def test_presets_list_only_departures_from_the_defaults():
    checked = 0
    defaults = {"": TrainConfig().to_dict(), "r2d2.": R2D2Config().to_dict(),
                "r2d2.network.": dataclasses.asdict(QNetworkConfig())}
    for name, overrides in PRESETS.items():
        levels = [("", overrides)]
        while levels:
            prefix, values = levels.pop()
            for field, value in values.items():
                if field in ("r2d2", "network"):
                    levels.append((f"{prefix}{field}.", value))
                    continue
                if prefix + field == "env_id":  # every preset names its environment
                    continue
                default = json.loads(json.dumps(defaults[prefix][field]))
                assert json.loads(json.dumps(value)) != default, f"{name}: {prefix}{field} repeats the default"
                checked += 1
    assert checked > 50


def test_get_preset_builds_a_new_config_and_leaves_the_table_alone():
    before = json.dumps(PRESETS, sort_keys=True)
    config = get_preset("tmaze")
    config.env_kwargs["corridor_length"] = 99  # the config's own dict, not the table's
    assert get_preset("tmaze").env_kwargs["corridor_length"] == 5
    assert json.dumps(PRESETS, sort_keys=True) == before


def test_unknown_preset_names_the_value_and_the_choices():
    with pytest.raises(ValueError, match=r"unknown preset 'nope'.*'tmaze'"):
        get_preset("nope")
