"""The stored spec of an item: its nested structure and each leaf's shape and dtype.

Items are any dm-tree structure (dicts with str keys, lists, tuples) of numpy arrays. The
spec is fixed by the first insert; every later item must match it exactly, and errors name
the leaf path (``observation/pixels``) so a mismatch is found without a debugger.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import numpy as np
import tree


def path_name(path: tuple) -> str:
    """``('observation', 'pixels')`` -> ``'observation/pixels'``; ``()`` -> ``'<root>'``."""
    return "/".join(str(p) for p in path) if path else "<root>"


@dataclasses.dataclass(frozen=True)
class LeafSpec:
    """One leaf: where it is, and its shape (without leading axes) and dtype."""

    path: tuple
    shape: tuple[int, ...]
    dtype: np.dtype

    @property
    def name(self) -> str:
        return path_name(self.path)


@dataclasses.dataclass(frozen=True)
class ItemSpec:
    """The structure of an item (leaves replaced by ``None``) and its flat leaf specs."""

    skeleton: Any
    leaves: tuple[LeafSpec, ...]

    @classmethod
    def from_item(cls, item: Any, leading_axes: int = 0) -> ItemSpec:
        """Builds the spec of ``item``, dropping ``leading_axes`` axes from every leaf."""
        _check_structure_types(item)
        skeleton = tree.map_structure(lambda _: None, item)
        leaves = []
        for path, leaf in tree.flatten_with_path(item):
            array = np.asarray(leaf)
            if array.dtype.hasobject:
                raise TypeError(
                    f"leaf {path_name(path)!r} must be a numeric numpy array, "
                    f"got dtype {array.dtype} (holds Python objects) from {type(leaf).__name__}"
                )
            if array.ndim < leading_axes:
                raise ValueError(
                    f"leaf {path_name(path)!r} needs at least {leading_axes} leading "
                    f"axes, got shape {array.shape!r}"
                )
            leaves.append(LeafSpec(tuple(path), array.shape[leading_axes:], array.dtype))
        return cls(skeleton, tuple(leaves))

    def flatten(self, item: Any, leading_shape: tuple[int, ...] = ()) -> list[np.ndarray]:
        """Flat leaves of ``item`` after checking structure, shape and dtype.

        ``leading_shape`` is the shape expected before each leaf's own shape: ``()`` for
        one item, ``(K,)`` for a stacked batch (``None`` in it accepts any size, with all
        leaves agreeing). Raises TypeError/ValueError naming the first bad leaf path.
        """
        try:
            # The skeleton's leaves are None, which dm-tree treats as leaves too.
            tree.assert_same_structure(self.skeleton, item)
        except (ValueError, TypeError):
            expected, got = self.describe(), describe_structure(item)
            if expected == got:  # same leaves, other containers (a list for a tuple, ...)
                expected, got = _containers(self.skeleton), _containers(item)
            raise ValueError(
                f"item structure does not match the stored spec: expected {expected}, got {got}"
            ) from None
        flat = tree.flatten(item)
        if not leading_shape:  # one item: the common, per-insert path, kept lean
            arrays = [np.asarray(leaf) for leaf in flat]
            for spec, array in zip(self.leaves, arrays):
                if array.dtype != spec.dtype or array.shape != spec.shape:
                    self._raise_mismatch(spec, array, spec.shape)
            return arrays
        arrays = []
        resolved = list(leading_shape)
        for spec, leaf in zip(self.leaves, flat):
            array = np.asarray(leaf)
            lead = array.shape[: len(resolved)]
            for axis, size in enumerate(resolved):
                if size is None and len(lead) > axis:
                    resolved[axis] = lead[axis]
            expected = tuple(resolved) + spec.shape
            if array.dtype != spec.dtype or array.shape != expected:
                self._raise_mismatch(spec, array, expected)
            arrays.append(array)
        return arrays

    @staticmethod
    def _raise_mismatch(spec: LeafSpec, array: np.ndarray, expected: tuple) -> None:
        if array.dtype != spec.dtype:
            raise TypeError(f"leaf {spec.name!r}: expected dtype {spec.dtype}, got {array.dtype}")
        raise ValueError(f"leaf {spec.name!r}: expected shape {expected!r}, got {array.shape!r}")

    def unflatten(self, leaves: list[np.ndarray]) -> Any:
        """The item with the skeleton's structure and these leaves (dm-tree order)."""
        # A plain recursive rebuild: several times faster than tree.unflatten_as, and on
        # the sampling path. dm-tree orders dict leaves by sorted key; so does this.
        if self.skeleton is None:  # a single array
            return leaves[0]
        return _rebuild(self.skeleton, iter(leaves))

    def describe(self) -> str:
        return ", ".join(f"{s.name}: {s.dtype}{list(s.shape)}" for s in self.leaves)

    def nbytes(self) -> int:
        """Bytes of one item."""
        return int(sum(int(np.prod(s.shape, dtype=np.int64)) * s.dtype.itemsize for s in self.leaves))

    # --- serialisation (for persistence: JSON only, no pickle) ---

    def to_json(self) -> str:
        return json.dumps(
            {
                "structure": _encode_structure(self.skeleton),
                "leaves": [
                    {"path": _encode_path(s.path), "shape": list(s.shape), "dtype": _encode_dtype(s.dtype)}
                    for s in self.leaves
                ],
            }
        )

    @classmethod
    def from_json(cls, text: str) -> ItemSpec:
        data = json.loads(text)
        skeleton = _decode_structure(data["structure"])
        leaves = tuple(
            LeafSpec(_decode_path(leaf["path"]), tuple(int(d) for d in leaf["shape"]), _decode_dtype(leaf["dtype"]))
            for leaf in data["leaves"]
        )
        return cls(skeleton, leaves)

    def same_as(self, other: ItemSpec) -> bool:
        return self.to_json() == other.to_json()


def _rebuild(skeleton: Any, leaves: Any) -> Any:
    if skeleton is None:
        return next(leaves)
    if isinstance(skeleton, dict):
        built = {key: _rebuild(skeleton[key], leaves) for key in sorted(skeleton)}
        return {key: built[key] for key in skeleton}  # keep the original key order
    values = [_rebuild(value, leaves) for value in skeleton]
    return values if isinstance(skeleton, list) else tuple(values)


def describe_structure(item: Any) -> str:
    """Short human description of an item's leaves (path: dtype[shape])."""
    try:
        parts = []
        for path, leaf in tree.flatten_with_path(item):
            array = np.asarray(leaf)
            parts.append(f"{path_name(path)}: {array.dtype}{list(array.shape)}")
        return ", ".join(parts)
    except Exception:  # describing must never mask the original error
        return repr(type(item))


def _containers(item: Any) -> str:
    """The nesting of an item's containers, leaves as ``*``: ``{'state': [(*, *)]}``."""
    if isinstance(item, dict):
        return "{" + ", ".join(f"{key!r}: {_containers(value)}" for key, value in item.items()) + "}"
    if isinstance(item, list):
        return "[" + ", ".join(_containers(value) for value in item) + "]"
    if isinstance(item, tuple):
        return "(" + ", ".join(_containers(value) for value in item) + (",)" if len(item) == 1 else ")")
    return "*"


def _check_structure_types(item: Any) -> None:
    if isinstance(item, dict):
        for key, value in item.items():
            if not isinstance(key, str):
                raise TypeError(f"dict keys in an item must be str, got {key!r}")
            _check_structure_types(value)
    elif isinstance(item, (list, tuple)):
        if hasattr(item, "_fields"):
            raise TypeError(
                f"namedtuples are not supported in items (use a dict), got {type(item).__name__}"
            )
        for value in item:
            _check_structure_types(value)


def _encode_structure(skeleton: Any) -> Any:
    if isinstance(skeleton, dict):
        return {"dict": {k: _encode_structure(v) for k, v in skeleton.items()}}
    if isinstance(skeleton, list):
        return {"list": [_encode_structure(v) for v in skeleton]}
    if isinstance(skeleton, tuple):
        return {"tuple": [_encode_structure(v) for v in skeleton]}
    return None


def _decode_structure(data: Any) -> Any:
    if data is None:
        return None
    if "dict" in data:
        return {k: _decode_structure(v) for k, v in data["dict"].items()}
    if "list" in data:
        return [_decode_structure(v) for v in data["list"]]
    return tuple(_decode_structure(v) for v in data["tuple"])


def _encode_dtype(dtype: np.dtype) -> Any:
    """``dtype.str`` (``'<f4'``), or for a structured dtype its full description (field
    names, formats, offsets), which ``dtype.str`` (``'|V8'``) would lose."""
    if dtype.fields is None:
        return dtype.str
    return {"descr": np.lib.format.dtype_to_descr(dtype)}


def _decode_dtype(data: Any) -> np.dtype:
    if isinstance(data, str):
        return np.dtype(data)
    if not isinstance(data, dict) or "descr" not in data:
        raise ValueError(f"expected a dtype string or {{'descr': ...}}, got {data!r}")
    return np.lib.format.descr_to_dtype(_descr_tuples(data["descr"]))


def _descr_tuples(descr: Any) -> Any:
    # JSON turned the descr's tuples into lists: (name, format[, shape]) per field.
    if isinstance(descr, str):
        return descr
    if isinstance(descr, dict):  # offsets form: {"names": ..., "formats": ..., ...}
        return {k: ([_descr_tuples(f) for f in v] if k == "formats" else v) for k, v in descr.items()}
    return [tuple([field[0], _descr_tuples(field[1]), *([tuple(field[2])] if len(field) > 2 else [])])
            for field in descr]


def _encode_path(path: tuple) -> list:
    return [[type(p).__name__, p] for p in path]


def _decode_path(data: list) -> tuple:
    return tuple(int(v) if kind == "int" else str(v) for kind, v in data)
