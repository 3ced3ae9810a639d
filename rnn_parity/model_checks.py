"""Checks of a layer graph and its weights, so a bad model is refused at load, not at predict time.

:func:`validate_model` checks an exported model as :func:`rnn_parity.runtime.load`
reads it: the description's structure, then each layer through its entry in
:data:`LAYER_CHECKS` (one function per Keras class: its config keys' types and
ranges, its activations, the shape of each weight against the config, and the
size of the last axis it receives against its kernel). Every weight must be a
real floating array holding finite values (:func:`require_finite_weights`, which
``verify``, ``export`` and ``check`` also apply to the weights Keras holds).

Everything refused is :class:`~rnn_parity.errors.InvalidInput` (or
:class:`~rnn_parity.errors.Unsupported` for a Keras layer the runtime does not
implement), one line naming the layer. NumPy and the standard library only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from .errors import InvalidInput, NonFiniteWeights, Unsupported
from .layers import LAYERS
from .recurrent import BIDIRECTIONAL, CELLS, DIRECTIONS, MERGE_MODES, TIME_DISTRIBUTED
from .reference import ACTIVATIONS, KERAS2_ACTIVATIONS

__all__ = ["LAYER_CHECKS", "MAX_DIM", "require_finite_weights", "validate_model"]

#: The largest size (units, vocabulary, repeats) a config may give: Keras's shapes are int32.
MAX_DIM = 2**31 - 1
_IDENTITY = (
    "Dropout",
    "SpatialDropout1D",
    "GaussianNoise",
    "GaussianDropout",
    "AlphaDropout",
    "ActivityRegularization",
    "Identity",
)
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
        "RNN",
        "ConvLSTM1D",
        "ConvLSTM2D",
        "ConvLSTM3D",
        "Lambda",
        "Conv2D",
        "MultiHeadAttention",
        "Dot",
        "StringLookup",
        "IntegerLookup",
        "TextVectorization",
    }
)


class _Layer:
    """One layer as its check sees it: name, config, weights and the last-axis size of each input (None: unknown)."""

    def __init__(self, name: str, class_name: str, cfg: Mapping, weights: Sequence[np.ndarray], features: list):
        self.name, self.class_name, self.cfg, self.weights, self.features = name, class_name, cfg, weights, features

    def fail(self, message: str) -> InvalidInput:
        return InvalidInput(f"layer {self.name!r} ({self.class_name}): {message}")

    def int(self, key: str, *, minimum: int = 1, required: bool = True) -> int | None:
        value = self.cfg.get(key)
        if value is None and not required:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= MAX_DIM:
            raise self.fail(f"{key} must be an integer from {minimum} to {MAX_DIM}, got {value!r}")
        return value

    def bool(self, key: str) -> bool:
        value = self.cfg.get(key, False)
        if not isinstance(value, bool):
            raise self.fail(f"{key} must be true or false, got {value!r}")
        return value

    def activation(self, key: str) -> None:
        value = self.cfg.get(key)
        # keras2:hard_sigmoid: what hard_sigmoid meant in a file Keras 2 wrote
        known = isinstance(value, str) and (value in ACTIVATIONS or value in KERAS2_ACTIVATIONS)
        if value is not None and not known:
            raise self.fail(f"{key}={value!r} is not an activation the runtime implements")

    def shape(self, index: int, label: str, want: tuple) -> None:
        """Weight ``index`` must have shape ``want`` (None: any size on that axis)."""
        got = tuple(self.weights[index].shape)
        if len(got) != len(want) or any(w is not None and w != g for w, g in zip(want, got, strict=False)):
            shown = "(" + ", ".join("?" if w is None else str(w) for w in want) + ("," if len(want) == 1 else "") + ")"
            raise self.fail(f"weight {index} ({label}) has shape {got}, the config needs {shown}")

    def reads(self, size: int, what: str) -> None:
        """The input's last axis must have ``size`` elements when it is known."""
        if self.features and self.features[0] is not None and self.features[0] != size:
            raise self.fail(f"its {what} takes {size} features, its input has {self.features[0]}")

    def inner(self) -> _Layer:
        entry = self.cfg.get("layer")
        if not isinstance(entry, Mapping) or not isinstance(entry.get("config"), Mapping):
            raise self.fail("the wrapped layer is not a layer description")
        return _Layer(self.name, str(entry.get("class_name")), entry["config"], self.weights, self.features)


def _check_recurrent(layer: _Layer, weights: Sequence[np.ndarray] | None = None) -> list:
    cell = CELLS[layer.class_name]
    units = layer.int("units")
    layer.activation("activation")
    layer.activation("recurrent_activation")
    for key in ("use_bias", "return_sequences", "return_state", "go_backwards", "stateful", "zero_output_for_mask"):
        layer.bool(key)
    layer.bool("time_major")  # Keras 2's (timesteps, batch, features)
    reset_after = layer.cfg.get("reset_after", True)
    two_biases = "reset_after" in cell.options  # GRU: reset_after keeps an input and a recurrent bias row
    if two_biases and not isinstance(reset_after, bool):
        raise layer.fail(f"reset_after must be true or false, got {reset_after!r}")
    width = cell.n_gates * units
    layer.shape(0, "kernel", (None, width))
    layer.shape(1, "recurrent_kernel", (units, width))
    if len(layer.weights) > 2:
        layer.shape(2, "bias", (2, width) if two_biases and reset_after else (width,))
    layer.reads(int(layer.weights[0].shape[0]), "kernel")
    states = [units] * len(cell.states) if layer.cfg.get("return_state", False) else []
    return [units, *states]


def _recurrent(layer: _Layer) -> list:
    return _check_recurrent(layer)


def _bidirectional(layer: _Layer) -> list:
    merge_mode = layer.cfg.get("merge_mode", "concat")
    if merge_mode not in MERGE_MODES:
        raise layer.fail(f"merge_mode={merge_mode!r} is not one of concat, sum, mul, ave, null")
    inner = layer.inner()
    if inner.class_name not in CELLS:
        raise layer.fail(f"wraps {inner.class_name}; only SimpleRNN, LSTM and GRU are supported")
    half = len(layer.weights) // 2
    forward = _Layer(layer.name, inner.class_name, inner.cfg, layer.weights[:half], layer.features)
    backward = _Layer(layer.name, inner.class_name, inner.cfg, layer.weights[half:], layer.features)
    units, *states = _check_recurrent(forward)
    _check_recurrent(backward)
    outputs = [2 * units] if merge_mode == "concat" else ([units, units] if merge_mode is None else [units])
    return outputs + states * 2


def _dense(layer: _Layer) -> list:
    units = layer.int("units")
    layer.activation("activation")
    layer.bool("use_bias")
    layer.shape(0, "kernel", (None, units))
    if len(layer.weights) > 1:
        layer.shape(1, "bias", (units,))
    layer.reads(int(layer.weights[0].shape[0]), "kernel")
    return [units]


def _activation_layer(layer: _Layer) -> list:
    layer.activation("activation")
    return layer.features[:1]


def _same(layer: _Layer) -> list:
    return layer.features[:1]


def _time_distributed(layer: _Layer) -> list:
    inner = layer.inner()
    check = {"Dense": _dense, "Activation": _activation_layer, **{c: _same for c in _IDENTITY}}.get(inner.class_name)
    if check is None:
        raise layer.fail(f"wraps {inner.class_name}; only Dense, Activation and identity layers are supported")
    return check(inner)


def _embedding(layer: _Layer) -> list:
    input_dim, output_dim = layer.int("input_dim"), layer.int("output_dim")
    layer.bool("mask_zero")
    layer.shape(0, "embeddings", (input_dim, output_dim))
    return [output_dim]


def _masking(layer: _Layer) -> list:
    value = layer.cfg.get("mask_value", 0.0)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
        raise layer.fail(f"mask_value must be a finite number, got {value!r}")
    return layer.features[:1]


def _merge(layer: _Layer) -> list:
    known = {f for f in layer.features if f is not None}
    if len(known) > 1:
        raise layer.fail(f"merges inputs of different sizes {sorted(known)}")
    return [known.pop() if known else None]


def _concatenate(layer: _Layer) -> list:
    axis = layer.cfg.get("axis", -1)
    if isinstance(axis, bool) or not isinstance(axis, int):
        raise layer.fail(f"axis must be an integer, got {axis!r}")
    if axis != -1:
        return [None]  # the last axis keeps its size, but which axis is last is not known here
    return [None if any(f is None for f in layer.features) else sum(layer.features)]


def _repeat_vector(layer: _Layer) -> list:
    layer.int("n")
    return layer.features[:1]


def _global_pool(layer: _Layer) -> list:
    data_format = layer.cfg.get("data_format", "channels_last")
    if data_format not in ("channels_last", "channels_first"):
        raise layer.fail(f"data_format must be channels_last or channels_first, got {data_format!r}")
    layer.bool("keepdims")
    return layer.features[:1] if data_format == "channels_last" else [None]


def _registered(layer: _Layer) -> list:
    """A layer of :data:`rnn_parity.layers.LAYERS`: its config, input count and weight shapes from its entry."""
    spec, problems = LAYERS[layer.class_name], []
    kept = spec.options(layer.cfg, problems)
    if problems:
        raise layer.fail(problems[0])
    least, most = spec.inputs
    if not least <= len(layer.features) <= most:
        raise layer.fail(
            f"reads {len(layer.features)} inputs, it takes {least}" + (f" to {most}" if most > least else "")
        )
    features = layer.features[0] if layer.features else None
    wanted = spec.weights(kept, features)
    if len(layer.weights) != len(wanted):
        raise layer.fail(f"has {len(layer.weights)} weight arrays, its config needs {len(wanted)}")
    for i, (label, shape) in enumerate(wanted):
        if shape is not None:
            layer.shape(i, label, shape)
    return [spec.features(kept, features)]


#: Per Keras class: checks the layer's config and weights and returns the last-axis size of each tensor it gives.
LAYER_CHECKS: dict[str, Callable[[_Layer], list]] = {
    **{c: _recurrent for c in CELLS},
    BIDIRECTIONAL: _bidirectional,
    "Dense": _dense,
    TIME_DISTRIBUTED: _time_distributed,
    "Activation": _activation_layer,
    "Embedding": _embedding,
    "Masking": _masking,
    "Concatenate": _concatenate,
    **{c: _merge for c in ("Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum")},
    "RepeatVector": _repeat_vector,
    "GlobalAveragePooling1D": _global_pool,
    "GlobalMaxPooling1D": _global_pool,
    **{c: _same for c in _IDENTITY},
    **{c: _registered for c in LAYERS},
}


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
        check = LAYER_CHECKS.get(class_name)
        if check is None:
            error = Unsupported if class_name in KNOWN_UNSUPPORTED else InvalidInput
            raise error(f"{where}: layer {name!r}: {class_name} is not supported by the NumPy runtime")
        arrays = list(weights.get(name, []))
        layer = _Layer(name, class_name, cfg, arrays, _input_features(entry, features))
        try:
            require_finite_weights(name, [str(n) for n in entry.get("weights", [])], arrays, exc=InvalidInput)
            if len(arrays) < _least_weights(class_name, cfg):
                raise layer.fail(f"has {len(arrays)} weight arrays, its config needs more")
            features[name] = check(layer)
        except InvalidInput as exc:
            raise InvalidInput(f"{where}: {exc}") from None


def _least_weights(class_name: str, cfg: Mapping) -> int:
    """Enough arrays for the shape checks to index (the runtime checks the exact count)."""
    if class_name in CELLS:
        return 2
    if class_name == BIDIRECTIONAL:
        return 2 * len(DIRECTIONS)
    if class_name in ("Dense", "Embedding"):
        return 1
    if class_name == TIME_DISTRIBUTED:
        inner = cfg.get("layer")
        return 1 if isinstance(inner, Mapping) and inner.get("class_name") == "Dense" else 0
    return 0


def _input_features(entry: Mapping, features: Mapping[str, list]) -> list:
    out = []
    for ref in entry.get("inputs", []):
        if isinstance(ref, (list, tuple)) and len(ref) == 2 and ref[0] in features:
            sizes = features[ref[0]]
            out.append(sizes[ref[1]] if isinstance(ref[1], int) and 0 <= ref[1] < len(sizes) else None)
        else:
            out.append(None)  # the runtime names a bad reference
    return out
