"""What the component benchmarks share: a git revision's module, a part in a fresh process,
paired-round ratios and the closing JSON line."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import types
from typing import Any

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def revision_module(revision: str, path: str, directory: str, name: str,
                    substitutes: dict[str, Any] | None = None) -> types.ModuleType:
    """The file ``path`` of git ``revision``, run as module ``name`` (registered in
    ``sys.modules``: dataclasses look their module up there); ``substitutes`` stand in for
    the named modules while it runs, so its imports get them."""
    source = subprocess.run(["git", "-C", ROOT, "show", f"{revision}:{path}"], check=True,
                            capture_output=True, text=True).stdout
    file = os.path.join(directory, f"{name}.py")
    with open(file, "w") as handle:
        handle.write(source)
    spec = importlib.util.spec_from_file_location(name, file)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    saved = {key: sys.modules.get(key) for key in substitutes or {}}
    sys.modules.update(substitutes or {})
    try:
        spec.loader.exec_module(module)
    finally:
        for key, value in saved.items():
            if value is None:
                sys.modules.pop(key, None)
            else:
                sys.modules[key] = value
    return module


def run_part(script: str, *args: str) -> dict[str, Any]:
    """The JSON object that ``script`` run with ``args`` in a fresh Python process prints
    last: TensorFlow fixes its thread pools at its first op, so each setting gets its own."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")]))
    out = subprocess.run([sys.executable, os.path.abspath(script), *args], capture_output=True, text=True, env=env)
    if out.returncode != 0:
        raise RuntimeError(f"{os.path.basename(script)} {' '.join(args)} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def paired_ratio(values: list[float], base: list[float]) -> float:
    """Median over rounds of ``values[i] / base[i]``: pairs measured back to back survive a
    loaded machine better than absolute times."""
    return float(np.median(np.asarray(values) / np.asarray(base)))


def print_result(result: dict[str, Any], sort_keys: bool = True) -> None:
    """The benchmark's last line: ``result`` and the machine's load, as one JSON object."""
    result["load_average_1min"] = round(os.getloadavg()[0], 2)
    print(json.dumps(result, sort_keys=sort_keys))

