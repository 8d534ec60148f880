"""The scripts' command line, built by tyro from the frozen config dataclasses.

Every field of :class:`~agents.r2d2.train_config.TrainConfig` is a flag, nested ones
dotted (``--r2d2.batch_size``, ``--r2d2.network.lstm_units``; dashes work as well:
``--r2d2.batch-size``), with the field's docstring as its help. What tyro does not do
the way this project's command lines always have, :data:`REGISTRY` adds:

- booleans take a value: ``--stop_at_threshold false`` (true/false, 1/0, yes/no, on/off), or
  none: ``--track`` alone is ``--track true``;
- tuples take a comma list or several words: ``--r2d2.network.lstm_units 64,64``;
- dicts are JSON: ``--env_kwargs '{"corridor_length": 3}'``;
- optional numbers accept ``none``: ``--solve_threshold none``; optional switches ``auto``:
  ``--r2d2.jit_compile auto``;
- the network's observation and action fields are not flags (the environment sets
  them).

:func:`parse` turns tyro's boxed error messages into one line (raised as
:class:`~agents.r2d2.train_config.ConfigurationError`), so every script reports a bad
flag as one ``error:`` line and exits with status 2. This module imports no framework:
``--help`` stays fast.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import re
import sys
import types
import typing
from typing import Any, Sequence, TypeVar

import tyro
from tyro.constructors import ConstructorRegistry, PrimitiveConstructorSpec, PrimitiveTypeInfo, StructTypeInfo

from agents.r2d2.train_config import ConfigurationError
from r2d2_state.network_config import ENV_FIELDS, QNetworkConfig

__all__ = ["REGISTRY", "parse", "given_fields", "parse_bool", "error_exit"]

T = TypeVar("T")

REGISTRY = ConstructorRegistry()

_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")
_NONE = ("none", "null", "")


def parse_bool(text: str) -> bool:
    """``true``/``1``/``yes``/``on`` or ``false``/``0``/``no``/``off`` (any case)."""
    lowered = text.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError(f"expected true or false, got {text!r}")


@REGISTRY.primitive_rule
def _bool_rule(info: PrimitiveTypeInfo) -> PrimitiveConstructorSpec | None:
    # Only where flag conversion is off (the config fields); script switches stay flags.
    if info.type is not bool or tyro.conf.FlagConversionOff not in info.markers:
        return None
    # A bare flag is true (``--track``, as CleanRL's command lines have it).
    return PrimitiveConstructorSpec(nargs=(0, 1), metavar="{true,false}",
                                    instance_from_str=lambda words: parse_bool(words[0]) if words else True,
                                    is_instance=lambda x: isinstance(x, bool),
                                    str_from_instance=lambda x: [str(x).lower()])


@REGISTRY.primitive_rule
def _tuple_rule(info: PrimitiveTypeInfo) -> PrimitiveConstructorSpec | None:
    args = typing.get_args(info.type)
    if (info.type_origin is not tuple or len(args) != 2 or args[1] is not Ellipsis or args[0] not in (int, str)
            or tyro.conf.UseAppendAction in info.markers):  # an append flag: one value per use
        return None
    item = args[0]

    def parse_items(words: list[str]) -> tuple:
        parts = [p.strip() for w in words for p in w.replace("(", "").replace(")", "").split(",") if p.strip()]
        try:
            return tuple(int(p.replace("_", "")) if item is int else p for p in parts)
        except ValueError:
            raise ValueError(f"expected comma-separated {item.__name__}s, got {' '.join(words)!r}") from None

    return PrimitiveConstructorSpec(nargs="*", metavar=f"{item.__name__.upper()},...", instance_from_str=parse_items,
                                    is_instance=lambda x: isinstance(x, tuple),
                                    str_from_instance=lambda x: [",".join(str(v) for v in x)])


@REGISTRY.primitive_rule
def _dict_rule(info: PrimitiveTypeInfo) -> PrimitiveConstructorSpec | None:
    if info.type is not dict and info.type_origin is not dict:
        return None

    def parse_json(words: list[str]) -> dict:
        try:
            value = json.loads(words[0])
        except json.JSONDecodeError as error:
            raise ValueError(f"expected a JSON object, got {words[0]!r} ({error})") from None
        if not isinstance(value, dict):
            raise ValueError(f"expected a JSON object, got {words[0]!r}")
        return value

    return PrimitiveConstructorSpec(nargs=1, metavar="JSON", instance_from_str=parse_json,
                                    is_instance=lambda x: isinstance(x, dict),
                                    str_from_instance=lambda x: [json.dumps(x)])


@REGISTRY.primitive_rule
def _optional_number_rule(info: PrimitiveTypeInfo) -> PrimitiveConstructorSpec | None:
    if typing.get_origin(info.type) not in (typing.Union, types.UnionType):
        return None
    args = set(typing.get_args(info.type))
    if type(None) not in args or len(args) != 2 or not args & {int, float}:
        return None
    (number,) = args - {type(None)}

    def parse_number(words: list[str]) -> Any:
        if words[0].strip().lower() in _NONE:
            return None
        try:
            return number(words[0].replace("_", "")) if number is int else number(words[0])
        except ValueError:
            raise ValueError(f"expected a {number.__name__} or none, got {words[0]!r}") from None

    return PrimitiveConstructorSpec(nargs=1, metavar=f"{number.__name__.upper()}|none", instance_from_str=parse_number,
                                    is_instance=lambda x: x is None or isinstance(x, number),
                                    str_from_instance=lambda x: ["none" if x is None else str(x)])


@REGISTRY.primitive_rule
def _optional_bool_rule(info: PrimitiveTypeInfo) -> PrimitiveConstructorSpec | None:
    if typing.get_origin(info.type) not in (typing.Union, types.UnionType):
        return None
    if set(typing.get_args(info.type)) != {bool, type(None)}:
        return None

    def parse(words: list[str]) -> bool | None:
        if words[0].strip().lower() in _NONE + ("auto",):
            return None
        try:
            return parse_bool(words[0])
        except ValueError:
            raise ValueError(f"expected true, false or auto, got {words[0]!r}") from None

    return PrimitiveConstructorSpec(nargs=1, metavar="{true,false,auto}", instance_from_str=parse,
                                    is_instance=lambda x: x is None or isinstance(x, bool),
                                    str_from_instance=lambda x: ["auto" if x is None else str(x).lower()])


_building_network: list[bool] = []


@REGISTRY.struct_rule
def _network_rule(info: StructTypeInfo):
    """QNetworkConfig without its env fields."""
    if info.type is not QNetworkConfig or _building_network:
        return None
    _building_network.append(True)
    try:  # tyro's own dataclass rule, then hide the env fields
        spec = ConstructorRegistry.get_struct_spec(info)
    finally:
        _building_network.pop()
    if not isinstance(spec, tyro.constructors.StructConstructorSpec):
        return spec
    fields = []
    for field in spec.fields:
        if field.name in ENV_FIELDS:
            field = dataclasses.replace(field, type=typing.Annotated[field.type, tyro.conf.Suppress])
        fields.append(field)
    return dataclasses.replace(spec, fields=tuple(fields))



# ---------------------------------------------------------------------- parsing


def parse(cls: type[T], args: Sequence[str], *, default: T | None = None, prog: str | None = None,
          description: str | None = None) -> T:
    """``tyro.cli(cls, args=args, default=default)`` with this project's rules and one-line errors.

    ``--help`` prints the help and raises ``SystemExit(0)`` as usual.

    Raises:
      ConfigurationError: a flag that does not exist, a value that does not parse or a
        config that does not validate; one line naming the flag and the value.
    """
    # One spelling per flag (tyro takes both, but a repeated append flag keeps only one spelling's values).
    args = [_underscored(word) for word in args]
    captured = io.StringIO()
    kwargs: dict[str, Any] = {} if default is None else {"default": default}
    try:
        with contextlib.redirect_stderr(captured):
            return tyro.cli(cls, args=list(args), prog=prog, description=description, use_underscores=True,
                            registry=REGISTRY, **kwargs)
    except SystemExit as exit_:
        if exit_.code in (0, None):
            raise
        raise ConfigurationError(one_line(captured.getvalue())) from None


def _underscored(word: str) -> str:
    if not word.startswith("--"):
        return word
    name, eq, value = word.partition("=")
    return "--" + name[2:].replace("-", "_") + eq + value


_BOX_EDGES = "╭╮╰╯│─┃━┏┓┗┛"


def one_line(message: str) -> str:
    """The first message of a tyro error box, on one line (the help hints after it dropped)."""
    body = []
    for line in message.splitlines():
        text = line.strip()
        if text.startswith(("╭", "┏")):
            continue
        inner = text.strip(_BOX_EDGES + " ")
        if not inner:
            if body:
                break  # a separator: what follows is help text
            continue
        if text.startswith(("╰", "┗")):
            break
        body.append(inner)
    text = " ".join(" ".join(body).split()) or " ".join(message.split())
    text = re.sub(r"^Error parsing (--\S+): ", r"\1: ", text)
    text = re.sub(r"^Error parsing [\w.]+: ", "", text)  # a config that does not validate: its own message
    for config, prefix in (("TrainConfig.", "--"), ("R2D2Config.", "--r2d2.")):  # field names as flags
        text = re.sub(rf"\b{re.escape(config)}(\w+)", rf"{prefix}\1", text)
    return text.replace("Unrecognized options:", "unrecognized flags:")


def given_fields(args: Sequence[str], cls: type) -> set[str]:
    """Dotted names of ``cls``'s fields (nested ones ``r2d2.x``) that ``args`` sets explicitly."""
    names = _dotted_fields(cls)
    given = set()
    for word in args:
        if not word.startswith("--"):
            continue
        name = word[2:].split("=", 1)[0].replace("-", "_")
        if name in names:
            given.add(name)
    return given


def _dotted_fields(cls: type, prefix: str = "") -> set[str]:
    out = set()
    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        kind = hints[field.name]
        if dataclasses.is_dataclass(kind):
            out |= _dotted_fields(kind, f"{prefix}{field.name}.")
        else:
            out.add(f"{prefix}{field.name}")
    return out


def error_exit(message: object) -> int:
    """The scripts' bad input: one ``error:`` line on stderr, exit status 2 (no usage text,
    no traceback)."""
    print(f"error: {message}", file=sys.stderr)
    return 2
