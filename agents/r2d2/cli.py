"""The scripts' command line: tyro's, built from the frozen config dataclasses.

Every field of :class:`~agents.r2d2.train_config.TrainConfig` is a flag with its docstring
as help, parsed as tyro parses it (docs/training.md, "Config"). What the project's rules
need on top, and only that: :data:`REGISTRY` (dicts as JSON; the network's observation and
action fields are not flags, the environment sets them) and :func:`parse` (a bad flag, value
or config is one line, raised as :class:`~agents.r2d2.train_config.ConfigurationError`, with
tyro's closest real flag for an unknown one). This module imports no framework.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import re
import sys
import typing
from typing import Any, Sequence, TypeVar

import tyro
from tyro.constructors import ConstructorRegistry, PrimitiveConstructorSpec, PrimitiveTypeInfo, StructTypeInfo

from agents.r2d2.train_config import ConfigurationError
from r2d2_state.network_config import ENV_FIELDS, QNetworkConfig

__all__ = ["REGISTRY", "parse", "error_exit"]

T = TypeVar("T")

REGISTRY = ConstructorRegistry()


@REGISTRY.primitive_rule
def _json_dict_rule(info: PrimitiveTypeInfo) -> PrimitiveConstructorSpec | None:
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


_ARCHITECTURE_ONLY = object()
"""Marks the type info this rule hands back to tyro's own dataclass rule (no recursion)."""


@REGISTRY.struct_rule
def _network_rule(info: StructTypeInfo) -> Any:
    """QNetworkConfig as tyro builds it, without its env fields."""
    if info.type is not QNetworkConfig or _ARCHITECTURE_ONLY in info.markers:
        return None
    spec = ConstructorRegistry.get_struct_spec(dataclasses.replace(info, markers=(*info.markers, _ARCHITECTURE_ONLY)))
    if not isinstance(spec, tyro.constructors.StructConstructorSpec):
        return spec
    return dataclasses.replace(spec, fields=tuple(
        dataclasses.replace(f, type=typing.Annotated[f.type, tyro.conf.Suppress]) if f.name in ENV_FIELDS else f
        for f in spec.fields))


def parse(cls: type[T], args: Sequence[str], *, default: T | None = None, prog: str | None = None,
          description: str | None = None, **tyro_kwargs: Any) -> T:
    """``tyro.cli(cls, args=args, default=default)`` with this project's rules and one-line errors.

    ``--help`` prints the help and raises ``SystemExit(0)`` as usual.

    Raises:
      ConfigurationError: a flag that does not exist, a value that does not parse or a
        config that does not validate; one line naming the flag and the value.
    """
    captured = io.StringIO()
    kwargs: dict[str, Any] = {} if default is None else {"default": default}
    try:
        with contextlib.redirect_stderr(captured):  # tyro draws errors in a box; the scripts' rule is one line
            return tyro.cli(cls, args=list(args), prog=prog, description=description, use_underscores=True,
                            registry=REGISTRY, **kwargs, **tyro_kwargs)
    except SystemExit as exit_:
        if exit_.code in (0, None):
            raise
        raise ConfigurationError(_one_line(captured.getvalue())) from None


def _one_line(box: str) -> str:
    """The message of a tyro error box on one line, with the flag tyro suggests for an unknown one."""
    lines = [line.strip("│┃ ") for line in box.splitlines()[1:]]  # under the title
    lines = ["" if set(line) <= set("─━-╰╯┗┛") else line for line in lines]  # rules, UTF-8 or ASCII drawn
    text = " ".join("\n".join(lines).strip().split("\n\n")[0].split())  # the first section
    suggestion = re.search(r"Perhaps you meant:\n(-\S+)", "\n".join(lines))
    if suggestion:
        text += f"; did you mean {suggestion.group(1)}?"
    text = re.sub(r"^Error parsing (?:(--\S+)|\S+): ", lambda m: f"{m[1]}: " if m[1] else "", text)  # flag, not field
    for config, prefix in (("TrainConfig.", "--"), ("R2D2Config.", "--r2d2."), ("QNetworkConfig.", "--r2d2.network.")):
        text = text.replace(config, prefix)  # field names as flags
    return text.replace("Unrecognized options:", "unrecognized flags:")


def error_exit(message: object) -> int:
    """The scripts' bad input: one ``error:`` line on stderr, exit status 2 (no usage text,
    no traceback)."""
    print(f"error: {message}", file=sys.stderr)
    return 2
