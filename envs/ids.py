"""Environment ids: any registered id, ``module:EnvId`` (Gymnasium's syntax: ``module`` is
imported first, e.g. ``minigrid:MiniGrid-MemoryS7-v0``), or ids registered by the
``env_packages`` imported first (``--env-package NAME``). Unknown ids and missing packages
raise :class:`EnvIdError`, a ``ValueError`` with a one-line message and Gymnasium's
close-match suggestion."""

from __future__ import annotations

import difflib
import importlib
from typing import Sequence

import gymnasium as gym

from envs.atari import is_atari


class EnvIdError(ValueError):
    """An id that cannot be made: unknown id, or its environment package is not installed."""


def import_env_packages(packages: Sequence[str]) -> None:
    """Import each package (it registers its ids on import), e.g. ``("minigrid",)``.

    Raises:
      EnvIdError: a package that is not installed.
    """
    for package in packages:
        _import_package(package, context=f"--env-package {package}")


def _import_package(package: str, context: str) -> None:
    try:
        importlib.import_module(package)
    except ModuleNotFoundError as error:
        if error.name is not None and (package == error.name or package.startswith(error.name + ".")):
            extra = " (pip install -e .[minigrid])" if package.split(".")[0] == "minigrid" else ""
            raise EnvIdError(
                f"{context}: environment package {package!r} is not installed{extra}"
            ) from None
        raise


def resolve_env_id(env_id: str, env_packages: Sequence[str] = ()) -> str:
    """Import ``env_packages`` and the ``module`` of ``module:EnvId``; return the registered id.

    Raises:
      EnvIdError: a missing package, or an id that is not registered (one line, with
        Gymnasium's close-match suggestion and a hint at ``--env-package``).
    """
    if not isinstance(env_id, str) or not env_id:
        raise EnvIdError(f"environment id must be a non-empty string, got {env_id!r}")
    import_env_packages(env_packages)
    module, _, name = env_id.rpartition(":")
    if module:
        _import_package(module, context=f"environment {env_id!r}")
    if is_atari(name):
        return name  # make_atari imports ale_py (with its own install hint)
    try:
        gym.spec(name)
    except gym.error.Error as error:
        parts = [" ".join(str(error).split()).rstrip(".")]
        close = difflib.get_close_matches(name, list(gym.registry), n=3, cutoff=0.75)
        if close and "Did you mean" not in parts[0]:
            parts.append(f"close registered ids: {', '.join(close)}")
        missing_name = isinstance(error, (gym.error.NameNotFound, gym.error.NamespaceNotFound))
        if missing_name and not module and not env_packages:
            parts.append("an id from a third-party package needs the package imported: --env-package "
                         "PACKAGE or PACKAGE:ID (e.g. minigrid:MiniGrid-MemoryS7-v0)")
        raise EnvIdError(f"unknown environment id {env_id!r}: {'; '.join(parts)}") from None
    return name

