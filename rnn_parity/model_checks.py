"""Checks of a layer graph and its weights, so a bad model is refused at load, not at predict time.

:func:`validate_model` checks an exported model as :func:`rnn_parity.runtime.load`
reads it: the description's structure, then each layer through its entry in the
layer registry (:data:`rnn_parity.layers.LAYERS`, :func:`check_layer`): its config
keys' types and ranges and its activations (the entry's options, the same checks
the graph builder applies to what Keras stored), its number of inputs, the number
and shape of its weights against the config, and the size of the last axis it
receives against the weights that read it. Every weight must be a real floating
array holding finite values (:func:`require_finite_weights`, which ``verify``,
``export`` and ``check`` also apply to the weights Keras holds).

Everything refused is :class:`~rnn_parity.errors.InvalidInput` (or
:class:`~rnn_parity.errors.Unsupported` for a Keras layer the runtime does not
implement), one line naming the layer. NumPy and the standard library only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from .errors import InvalidInput, NonFiniteWeights, Unsupported
from .layer_spec import MAX_DIM
from .layers import LAYERS

__all__ = ["KNOWN_UNSUPPORTED", "MAX_DIM", "check_layer", "require_finite_weights", "validate_model"]

_INPUT_DTYPES = frozenset(
    {
        "float16",
        "float32",
        "float64",
        "bfloat16",
        "int8",
        "int16",
        "int32",
        "int64",
        "uint8",
        "uint16",
        "uint32",
        "bool",
    }
)
#: Keras layers that exist but that the NumPy runtime does not implement (Unsupported, exit 4).
KNOWN_UNSUPPORTED = frozenset(
    {
        "Lambda",
        "Conv2D",
        "GroupQueryAttention",
        "StringLookup",
        "IntegerLookup",
        "TextVectorization",
    }
)


def _shown(shape: tuple) -> str:
    return "(" + ", ".join("?" if w is None else str(w) for w in shape) + ("," if len(shape) == 1 else "") + ")"


def _fits(got: tuple, want: tuple | None) -> bool:
    return want is None or (len(got) == len(want) and all(w is None or w == g for w, g in zip(want, got, strict=True)))


def check_layer(class_name: str, cfg: Mapping, weights: Sequence[np.ndarray], features: list) -> list:
    """Check one layer against its registry entry; returns the last-axis size of each tensor it gives.

    Its config goes through the entry's options (the same checks the graph builder
    applies to a stored Keras config), then its input count, its number of weight
    arrays and each weight's shape against the config, and finally each weight's
    axis that reads an input's last axis against that input's size (``features``,
    None where not known). Raises ValueError with the first problem.
    """
    spec, problems = LAYERS[class_name], []
    kept = spec.keep(cfg, problems)
    if problems:
        raise ValueError(problems[0])
    least, most = spec.inputs
    if not least <= len(features) <= most:
        raise ValueError(f"reads {len(features)} inputs, it takes {least}" + (f" to {most}" if most > least else ""))
    loose = spec.weights(kept, [None] * len(features))
    if len(weights) != len(loose):
        raise ValueError(f"needs {len(loose)} weight arrays, got {len(weights)}")
    for i, ((label, want), array) in enumerate(zip(loose, weights, strict=True)):
        got = tuple(np.shape(array))
        if not _fits(got, want):
            raise ValueError(f"weight {i} ({label}) has shape {got}, the config needs {_shown(want)}")
    if any(f is not None for f in features):
        for i, ((label, want), array) in enumerate(zip(spec.weights(kept, list(features)), weights, strict=True)):
            got = tuple(np.shape(array))
            if not _fits(got, want):
                axis = next(a for a, (w, g) in enumerate(zip(want, got, strict=True)) if w is not None and w != g)
                if want[axis] == features[0]:
                    raise ValueError(f"its {label} takes {got[axis]} features, its input has {features[0]}")
                raise ValueError(f"weight {i} ({label}) has shape {got}, its inputs need {_shown(want)}")
    return spec.features(kept, list(features))


def require_finite_weights(
    layer: str, names: Sequence[str], arrays: Sequence[np.ndarray], exc: type[Exception] = NonFiniteWeights
) -> None:
    """Every array real floating and finite, else ``exc`` naming the layer, the weight and the first bad element."""
    for i, array in enumerate(arrays):
        label = names[i] if i < len(names) else f"weight {i}"
        array = np.asarray(array)
        if array.dtype.kind != "f":
            raise InvalidInput(f"layer {layer!r}: weight {label} holds {array.dtype}, not real floating-point numbers")
        bad = ~np.isfinite(array)
        if bad.any():
            where = tuple(int(k) for k in np.argwhere(bad)[0])
            raise exc(
                f"layer {layer!r}: weight {label} holds {int(bad.sum())} non-finite value(s) "
                f"(first {array[where]} at {list(where)}); NaN and Inf weights are refused"
            )


def _structure(graph: Mapping, where: str) -> None:
    if not isinstance(graph, Mapping):
        raise InvalidInput(f"{where}: the model description is not an object")
    for key in ("inputs", "outputs", "layers"):
        if not isinstance(graph.get(key), list):
            raise InvalidInput(f"{where}: the model description's {key!r} must be a list")
    for spec in graph["inputs"]:
        if not isinstance(spec, Mapping) or not isinstance(spec.get("name"), str) or not spec["name"]:
            raise InvalidInput(f"{where}: every input needs a name, got {spec!r}")
        shape, dtype = spec.get("shape"), spec.get("dtype", "float32")
        if shape is not None and (
            not isinstance(shape, list)
            or not all(
                d is None or (isinstance(d, int) and not isinstance(d, bool) and 1 <= d <= MAX_DIM) for d in shape
            )
        ):
            raise InvalidInput(f"{where}: input {spec['name']!r} has shape {shape!r}; sizes must be positive integers")
        if dtype not in _INPUT_DTYPES:
            raise InvalidInput(f"{where}: input {spec['name']!r} has dtype {dtype!r}, not a real number type")
    for layer in graph["layers"]:
        if not isinstance(layer, Mapping) or not isinstance(layer.get("name"), str):
            raise InvalidInput(f"{where}: every layer needs a name")
        for key, kind in (("class_name", str), ("config", Mapping), ("inputs", list), ("weights", list)):
            if not isinstance(layer.get(key, {} if key == "config" else [] if key == "weights" else None), kind):
                raise InvalidInput(f"{where}: layer {layer['name']!r} has a malformed {key!r}")


def validate_model(graph: Mapping, weights: Mapping[str, Sequence[np.ndarray]], where: str) -> None:
    """Check the whole description and every weight (see the module docstring); raise one line on the first problem."""
    _structure(graph, where)
    features: dict[str, list] = {
        spec["name"]: [spec["shape"][-1] if spec.get("shape") else None] for spec in graph["inputs"]
    }
    for entry in graph["layers"]:
        name, class_name, cfg = entry["name"], entry["class_name"], entry.get("config", {})
        if class_name not in LAYERS:
            error = Unsupported if class_name in KNOWN_UNSUPPORTED else InvalidInput
            raise error(f"{where}: layer {name!r}: {class_name} is not supported by the NumPy runtime")
        arrays = list(weights.get(name, []))
        try:
            require_finite_weights(name, [str(n) for n in entry.get("weights", [])], arrays, exc=InvalidInput)
        except InvalidInput as exc:
            raise InvalidInput(f"{where}: {exc}") from None
        try:
            features[name] = check_layer(class_name, cfg, arrays, _input_features(entry, features))
        except ValueError as exc:
            raise InvalidInput(f"{where}: layer {name!r} ({class_name}): {exc}") from None


def _input_features(entry: Mapping, features: Mapping[str, list]) -> list:
    out = []
    for ref in entry.get("inputs", []):
        if isinstance(ref, (list, tuple)) and len(ref) == 2 and ref[0] in features:
            sizes = features[ref[0]]
            out.append(sizes[ref[1]] if isinstance(ref[1], int) and 0 <= ref[1] < len(sizes) else None)
        else:
            out.append(None)  # the runtime names a bad reference
    return out
