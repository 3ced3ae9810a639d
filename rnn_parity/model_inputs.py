"""Inputs for a saved model: the user's arrays (``--input``) or seeded ones shaped from its input spec.

Seeded inputs come from NumPy's ``default_rng`` (never Keras's), so the same
seed gives the same arrays everywhere. Per input, in the model's input order:

* the batch dimension, when the model leaves it open, is ``N`` (default 4);
  the time dimension, when open, is ``T`` (default 10). The batch is axis 0
  and time axis 1, except for a time-major input (Keras 2's ``time_major=True``
  on the recurrent layer reading it): ``(timesteps, batch, …)``, time axis 0;
* an input read by an ``Embedding`` gets integer ids uniform in
  ``[0, input_dim)`` (the smallest vocabulary when several read it);
* any other input gets standard normal values;
* when the model masks the input (``Embedding(mask_zero=True)`` or a
  ``Masking`` layer reading it), every sample gets a random length ``1…T`` and
  the steps after it (along the time axis) are padding: id 0, or ``mask_value``;
  real ids are then drawn from ``[1, input_dim)``, so only padding is masked.

Streams: ``default_rng([seed, 0, i])`` draws input ``i``'s values and
``default_rng([seed, 1, i])`` its lengths.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import InvalidInput
from .layer_spec import DROP
from .layers import LAYERS
from .recurrent import cell_config, is_recurrent

__all__ = ["DEFAULT_N", "DEFAULT_T", "Feeds", "is_time_major", "match_arrays", "read_arrays", "seeded"]

DEFAULT_N = 4
DEFAULT_T = 10


@dataclass(frozen=True)
class Feeds:
    """The arrays given to both sides.

    Attributes:
        arrays: input name → array, in the model's input order.
        source: ``"seeded"`` or the ``--input`` file.
        lengths: input name → each sample's number of real steps, for masked seeded inputs.
        time_major: the names of the inputs laid out ``(timesteps, batch, …)`` (see :func:`is_time_major`).
    """

    arrays: dict[str, np.ndarray]
    source: str
    lengths: dict[str, list[int]]
    time_major: frozenset[str] = frozenset()

    @property
    def N(self) -> int:
        """The batch size: the first input's batch axis."""
        name, array = next(iter(self.arrays.items()))
        return int(array.shape[_axes(name in self.time_major)[0]])

    @property
    def T(self) -> int | None:
        """The timesteps of the first input that has a time axis (None: no input has one)."""
        for name, array in self.arrays.items():
            if array.ndim > 1:
                return int(array.shape[_axes(name in self.time_major)[1]])
        return None

    def shapes(self) -> dict[str, list[int]]:
        return {name: list(a.shape) for name, a in self.arrays.items()}


def _readers(graph: dict, input_name: str) -> list[dict]:
    return [layer for layer in graph["layers"] if any(ref[0] == input_name for ref in layer["inputs"])]


def is_time_major(graph: dict, input_name: str) -> bool:
    """Whether the input is laid out ``(timesteps, batch, …)``: a recurrent layer with Keras 2's
    ``time_major=True`` (also inside Bidirectional) reads it, directly or through layers that pass the
    mask on. A layer that passes a ``(batch, steps)`` mask on keeps the first two axes where they are
    (Masking, Embedding, Dense, Dropout, TimeDistributed…); one that drops it (Flatten, pooling,
    Conv1D…) may move them, so the search stops there.
    """
    seen, pending = set(), [input_name]
    while pending:
        for layer in _readers(graph, pending.pop()):
            class_name, name = layer["class_name"], layer["name"]
            if is_recurrent(class_name):
                if cell_config(class_name, layer["config"]).get("time_major"):
                    return True
            elif name not in seen and class_name in LAYERS and LAYERS[class_name].mask is not DROP:
                seen.add(name)
                pending.append(name)
    return False


def _axes(major: bool) -> tuple[int, int]:
    """``(batch axis, time axis)`` of an input laid out this way."""
    return (1, 0) if major else (0, 1)


def _is_int(dtype: str) -> bool:
    return dtype.startswith(("int", "uint"))


def _shape(spec: dict, N: int | None, T: int | None, major: bool) -> tuple[int, ...]:
    shape = spec.get("shape")
    if shape is None:
        raise InvalidInput(f"input {spec['name']!r} has no recorded shape; give the inputs with --input")
    batch_axis, time_axis = _axes(major)
    open_sizes = {batch_axis: N or DEFAULT_N, time_axis: T or DEFAULT_T}
    out = []
    for axis, dim in enumerate(shape):
        if dim is not None:
            out.append(int(dim))
        elif axis in open_sizes:
            out.append(open_sizes[axis])
        else:
            raise InvalidInput(
                f"input {spec['name']!r} leaves dimension {axis} open "
                f"(shape {tuple(shape)}); give the inputs with --input"
            )
    return tuple(out)


def _check_sizes(graph: dict, N: int | None, T: int | None, majors: dict[str, bool]) -> None:
    """Refuse a ``--N``/``--T`` that no input leaves open, on each input's own batch and time axes."""
    batch, time = [], []  # (declared size, where it is declared) of each input that has the axis
    for spec in graph["inputs"]:
        shape, name = spec.get("shape") or [], spec["name"]
        for found, axis in zip((batch, time), _axes(majors[name]), strict=True):
            if axis < len(shape):
                where = f" (axis {axis} of the time-major input {name!r})" if majors[name] else ""
                found.append((shape[axis], where))
    if N is not None and all(size is not None for size, _ in batch):
        fixed, where = batch[0] if batch else (None, "")
        if fixed != N:
            raise InvalidInput(f"--N {N}: the model fixes the batch size to {fixed}{where}")
    if T is not None and all(size is not None for size, _ in time):
        if not time:
            raise InvalidInput(f"--T {T}: the model's inputs have no time dimension")
        fixed, where = time[0]
        raise InvalidInput(f"--T {T}: the model fixes the number of timesteps to {fixed}{where}")


def seeded(graph: dict, *, N: int | None = None, T: int | None = None, seed: int = 0) -> Feeds:
    """Seeded inputs for every model input (see the module docstring)."""
    majors = {spec["name"]: is_time_major(graph, spec["name"]) for spec in graph["inputs"]}
    _check_sizes(graph, N, T, majors)
    arrays, lengths = {}, {}
    for i, spec in enumerate(graph["inputs"]):
        name = spec["name"]
        shape = _shape(spec, N, T, majors[name])
        dtype = str(spec.get("dtype") or "float32")
        rng_values = np.random.default_rng([seed, 0, i])
        rng_lengths = np.random.default_rng([seed, 1, i])
        readers = _readers(graph, name)
        embeddings = [layer["config"] for layer in readers if layer["class_name"] == "Embedding"]
        maskings = [layer["config"] for layer in readers if layer["class_name"] == "Masking"]
        masked = any(e.get("mask_zero") for e in embeddings) or bool(maskings)
        if embeddings:
            vocab = min(int(e["input_dim"]) for e in embeddings)
            low = 1 if masked and vocab > 1 else 0
            x = rng_values.integers(low, vocab, size=shape)
            pad = 0
        elif _is_int(dtype):
            x = rng_values.integers(0, 10, size=shape)
            pad = 0
        else:
            x = rng_values.standard_normal(shape)
            pad = maskings[0].get("mask_value", 0.0) if maskings else 0.0
        batch_axis, time_axis = _axes(majors[name])
        if masked and len(shape) >= 2 and shape[time_axis] > 0:
            n_real = rng_lengths.integers(1, shape[time_axis] + 1, size=shape[batch_axis])
            padding = np.arange(shape[time_axis])[None, :] >= n_real[:, None]  # (sample, step)
            if majors[name]:
                padding = padding.T  # (step, sample)
            x = np.where(padding.reshape(padding.shape + (1,) * (len(shape) - 2)), pad, x)
            lengths[name] = [int(n) for n in n_real]
        arrays[name] = x.astype(dtype if dtype != "bool" else "float32")
    return Feeds(arrays, "seeded", lengths, frozenset(name for name, major in majors.items() if major))


def read_arrays(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The arrays of an ``--input`` file: ``.npy`` (one array) or ``.npz`` (named arrays); no pickles."""
    path = Path(path)
    if not path.exists():
        raise InvalidInput(f"--input {path}: no such file")
    if path.is_dir():
        raise InvalidInput(f"--input {path}: is a folder, not a file")
    suffix = path.suffix.lower()
    if suffix not in (".npy", ".npz"):
        raise InvalidInput(f"--input {path}: must be a .npy or .npz file")
    try:
        loaded = np.load(path, allow_pickle=False)
        if isinstance(loaded, np.ndarray):
            if suffix != ".npy":
                raise InvalidInput(f"--input {path}: holds a single .npy array but is named .npz")
            return {"": loaded}
        with loaded:
            return {key: loaded[key] for key in loaded.files}
    except InvalidInput:
        raise
    except (OSError, ValueError, EOFError) as exc:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InvalidInput(f"--input {path}: cannot read it as {suffix} ({text})") from None
    except Exception as exc:  # noqa: BLE001 - zipfile and numpy raise assorted errors on damaged files
        raise InvalidInput(f"--input {path}: cannot read it as {suffix} ({type(exc).__name__})") from None


def match_arrays(graph: dict, arrays: dict[str, np.ndarray], source: str) -> Feeds:
    """Assign the ``--input`` arrays to the model's inputs and check their shapes and values.

    A ``.npy`` array feeds a single-input model. An ``.npz`` names its arrays
    after the inputs, or holds ``arr_0``, ``arr_1``… in input order (what
    ``np.savez`` writes for positional arrays), or one array for a single input;
    an array the model does not take, or an empty axis (``T = 0``), is refused.
    """
    specs = graph["inputs"]
    names = [spec["name"] for spec in specs]
    keys = list(arrays)
    if set(names) <= set(keys):
        extra = [k for k in keys if k not in names]
        if extra:
            raise InvalidInput(
                f"--input {source}: holds array(s) {extra} the model does not take (its inputs are {names})"
            )
        chosen = [arrays[n] for n in names]
    elif keys == [f"arr_{i}" for i in range(len(names))] or (len(names) == 1 and len(keys) == 1):
        chosen = [arrays[k] for k in keys]
    else:
        raise InvalidInput(
            f"--input {source}: the model takes input(s) {names}; the file holds {keys or 'nothing'}"
            + (" (a .npy holds one array; use an .npz named after the inputs)" if keys == [""] else "")
        )
    majors = {name: is_time_major(graph, name) for name in names}
    feeds, batch = {}, None
    for spec, value in zip(specs, chosen, strict=True):
        name, shape, dtype = spec["name"], spec.get("shape"), str(spec.get("dtype") or "float32")
        batch_axis, time_axis = _axes(majors[name])
        value = np.asarray(value)
        if value.dtype.kind not in "biuf":
            raise InvalidInput(f"--input {source}: array for {name!r} holds {value.dtype}, not numbers")
        if shape is not None and (
            value.ndim != len(shape) or any(d is not None and d != v for d, v in zip(shape, value.shape, strict=True))
        ):
            want = ", ".join(
                "N" if (i == batch_axis and d is None) else ("T" if (i == time_axis and d is None) else str(d))
                for i, d in enumerate(shape)
            )
            raise InvalidInput(
                f"--input {source}: array for {name!r} has shape {value.shape}, the model expects ({want})"
            )
        if value.ndim <= batch_axis or value.shape[batch_axis] == 0:
            raise InvalidInput(f"--input {source}: array for {name!r} has no samples")
        if 0 in value.shape:
            axis = value.shape.index(0)
            what = "timesteps" if axis == time_axis else f"elements on axis {axis}"
            raise InvalidInput(f"--input {source}: array for {name!r} has shape {value.shape}: no {what}")
        if batch is not None and value.shape[batch_axis] != batch:
            raise InvalidInput(
                f"--input {source}: arrays have different batch sizes ({batch} and {value.shape[batch_axis]})"
            )
        batch = value.shape[batch_axis]
        if _is_int(dtype):
            if value.dtype.kind == "f" and not (np.all(np.isfinite(value)) and np.all(value == np.trunc(value))):
                raise InvalidInput(f"--input {source}: input {name!r} takes integer ids, got non-integer values")
        for layer in _readers(graph, name):
            if layer["class_name"] == "Embedding":
                vocab = int(layer["config"]["input_dim"])
                ids = value.astype(np.int64)
                if ids.min() < 0 or ids.max() >= vocab:
                    raise InvalidInput(
                        f"--input {source}: ids for {name!r} must lie in [0, {vocab}) "
                        f"(layer {layer['name']!r}), got {ids.min()} to {ids.max()}"
                    )
        feeds[name] = value.astype(dtype if dtype != "bool" else value.dtype)
    return Feeds(feeds, source, {}, frozenset(name for name, major in majors.items() if major))
