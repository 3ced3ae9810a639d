"""What one entry of the layer registry holds, and the checks its config keys go through.

A :class:`LayerSpec` describes one Keras layer class as the NumPy runtime
implements it: the config keys it keeps (checked), its weights and their shapes,
its forward computation, what it does with masks, how many tensors it returns.
The entries themselves are in :mod:`rnn_parity.layers` (the one lookup) and
:mod:`rnn_parity.recurrent_layers`.

The same ``options`` function serves twice: :mod:`rnn_parity.graph` runs it on
the configuration Keras stored (a problem means the layer is refused, exit 4),
and :mod:`rnn_parity.model_checks` runs it again on the config an exported file
holds (a problem means the file is refused, exit 2). So it is strict about types
(``units`` an integer, ``use_bias`` a boolean) and gives back exactly the keys it
reads, with Keras's defaults filled in; run on its own output it returns it
unchanged.

NumPy and the standard library only.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from .reference import ACTIVATIONS, KERAS2_ACTIVATIONS

__all__ = [
    "DROP",
    "KEEP",
    "MAX_DIM",
    "QUERY",
    "LayerSpec",
    "MaskRule",
    "Problems",
    "activation",
    "boolean",
    "channels_last",
    "choice",
    "common_checks",
    "integer",
    "number",
    "wrapped",
]

#: The largest size (units, vocabulary, repeats) a config may give: Keras's shapes are int32.
MAX_DIM = 2**31 - 1

Problems = list[str]
#: A weight's shape; None on an axis whose size is not known (the input's features when they are not).
Shape = tuple
Mask = np.ndarray | None
#: The names of an array's axes, e.g. ``("sample", "timestep", "unit")``.
Axes = tuple[str, ...]


@dataclass(frozen=True)
class MaskRule:
    """What a layer does with the masks of its inputs, as Keras 3's ``compute_mask`` decides it.

    Attributes:
        name: ``"keep"`` (the first input's mask passes on unchanged), ``"drop"``
            (the layer does not support masking: the mask stops here), ``"query"``
            (the first input's mask: an attention layer's query), or a name of
            the layer's own rule.
        wording: what the docs' table says.
        compute: ``(kept config, inputs, their masks) → the output's mask``.
    """

    name: str
    wording: str
    compute: Callable[[Mapping, Sequence[np.ndarray], Sequence[Mask]], Mask]


KEEP = MaskRule("keep", "passed on", lambda cfg, xs, masks: masks[0])
DROP = MaskRule("drop", "stops here", lambda cfg, xs, masks: None)
QUERY = MaskRule("query", "the query's", lambda cfg, xs, masks: masks[0])


def _no_weights(cfg: Mapping, features: list) -> list:
    return []


def _first_features(cfg: Mapping, features: list) -> list:
    return features[:1]


def _one_tensor(cfg: Mapping) -> int:
    return 1


@dataclass(frozen=True)
class LayerSpec:
    """One Keras layer class as the runtime implements it.

    Attributes:
        class_name: Keras's class.
        summary: what the runtime computes, one line (the docs' table).
        options: ``(stored config, problems) → kept config``; appends a line to
            ``problems`` for every value the runtime cannot reproduce.
        forward: ``(kept config, weights, inputs, masks) → output`` (every layer but
            the recurrent ones); ``masks`` is the list of the inputs' masks when
            Keras hands them to the computation (see ``call_mask`` and
            ``attached_masks``), else None.
        sequence: recurrent layers only: ``(kept config, weights, x, mask,
            initial_state) → (outputs, final states)``; the states are returned
            whether the layer returns them or not (stateful layers carry them).
        direction: recurrent layers that ``Bidirectional`` can wrap: ``(kept config,
            weights) → (function, args, kwargs)``, one direction of the layer as
            ``function(x, *args, return_sequences=, return_state=, go_backwards=,
            mask=, initial_state=, zero_output_for_mask=, **kwargs)`` (the calling
            convention of :func:`rnn_parity.reference.lstm`).
        weights: ``(kept config, last-axis size of each input) → [(name, shape)]``
            in ``get_weights()`` order; a size not known is None, and so is an axis
            that depends on it.
        features: ``(kept config, last-axis size of each input) → last-axis size of
            each tensor it returns`` (None: not known); raises ValueError naming
            inputs that do not fit together.
        tensors: ``kept config → how many tensors it returns`` (outputs, then states).
        mask: its :class:`MaskRule` (recurrent layers: the rule of each output).
        inputs: how many input tensors it reads: ``(least, most)``.
        call_options: keyword arguments of its call that the graph keeps in its config.
        call_inputs: the names of its call's data arguments when they are separate
            arguments (``MultiHeadAttention(query, value, key)``); empty when the data
            is the first argument (one tensor, or one list of them).
        call_mask: its ``call`` takes ``mask``: Keras hands it the masks of its inputs
            when it is called with one tensor argument (or one list of them).
        attached_masks: its computation reads the masks attached to its input tensors
            (the merging layers; ``MultiHeadAttention``'s query, value and key masks).
        clears_masks: it removes the masks attached to its input tensors, so layers that
            run after it and read those masks find none (``MultiHeadAttention``).
        same_rank: its inputs must have one rank (the merging layers).
        input_rank: the rank every input must have, when it is one (None: any).
        input_check: ``(kept config, inputs) → a problem or None``, at run time
            (Embedding's ids in range).
        written_as: ``stored config → the class the graph writes`` (an ``RNN`` around one
            built-in cell is that cell's layer); None: its own class.
        in_time_distributed: ``(kept config) → a problem or None`` for the layer
            wrapped in ``TimeDistributed`` (a layer that takes one input can be; None:
            nothing more to check).
        axes: ``kept config → (output axes, state axes)``: the names of the axes of one
            output tensor and of each state, e.g. ``("sample", "timestep", "row",
            "column", "filter")``, where the rank alone does not tell them (a
            report names the worst element's axes and finds the time axis by them);
            None, here or in either place: :func:`rnn_parity.compare.default_axes`.
    """

    class_name: str
    summary: str
    options: Callable[[Mapping, Problems], dict]
    forward: Callable[[Mapping, Sequence[np.ndarray], list, list | None], np.ndarray] | None = None
    sequence: Callable | None = None
    direction: Callable | None = None
    weights: Callable[[Mapping, list], list[tuple[str, Shape | None]]] = _no_weights
    features: Callable[[Mapping, list], list] = _first_features
    tensors: Callable[[Mapping], int] = _one_tensor
    mask: MaskRule = KEEP
    inputs: tuple[int, int] = (1, 1)
    call_options: tuple[str, ...] = ()
    call_inputs: tuple[str, ...] = ()
    call_mask: bool = False
    attached_masks: bool = False
    clears_masks: bool = False
    same_rank: bool = False
    input_rank: int | None = None
    input_check: Callable[[Mapping, Sequence[np.ndarray]], str | None] | None = None
    written_as: Callable[[Mapping], str] | None = None
    in_time_distributed: Callable[[Mapping], str | None] | None = None
    axes: Callable[[Mapping], tuple[Axes | None, Axes | None]] | None = None

    @property
    def recurrent(self) -> bool:
        """It runs over a sequence, takes ``initial_state`` and has states."""
        return self.sequence is not None

    def keep(self, cfg: Mapping, problems: Problems) -> dict:
        """The kept config of a stored one: what every layer is checked for, then the entry's own options."""
        common_checks(cfg, problems)
        return self.options(cfg, problems)

    def axis_names(self, cfg: Mapping) -> tuple[Axes | None, Axes | None]:
        """``(output axes, state axes)`` for this config; None where the rank names them (see ``axes``)."""
        return self.axes(cfg) if self.axes is not None else (None, None)

    def weight_count(self, cfg: Mapping) -> int:
        """How many arrays ``get_weights()`` gives for this config."""
        return len(self.weights(cfg, [None] * self.inputs[0]))

    def run(self, cfg: Mapping, weights: Sequence[np.ndarray], xs: Sequence[np.ndarray], masks, initial_state=None):
        """``(outputs, states)``: the layer's output tensors, and a recurrent layer's final states."""
        if self.sequence is not None:
            return self.sequence(cfg, weights, xs[0], None if masks is None else masks[0], initial_state)
        return [self.forward(cfg, weights, list(xs), masks)], []


# --------------------------------------------------------------------------
# Checking config values: each helper returns the value to keep and appends a
# problem (naming the key and the value) when the value cannot be used.
# --------------------------------------------------------------------------

_REQUIRED = object()


def integer(cfg: Mapping, key: str, problems: Problems, default=_REQUIRED, *, minimum: int = 1) -> int:
    """An integer from ``minimum`` to :data:`MAX_DIM` (Keras stores some 1-D sizes as 1-tuples)."""
    value = cfg.get(key) if default is _REQUIRED else cfg.get(key, default)
    if isinstance(value, (list, tuple)) and len(value) == 1:
        value = value[0]
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= MAX_DIM:
        problems.append(f"{key} must be an integer from {minimum} to {MAX_DIM}, got {value!r}")
        return minimum
    return value


def boolean(cfg: Mapping, key: str, default: bool, problems: Problems) -> bool:
    value = cfg.get(key, default)
    if not isinstance(value, bool):
        problems.append(f"{key} must be true or false, got {value!r}")
        return default
    return value


def number(cfg: Mapping, key: str, default: float | None, problems: Problems) -> float:
    value = cfg.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        problems.append(f"{key}={value!r} is not a finite number")
        return float(default if default is not None else 0.0)
    return float(value)


def choice(cfg: Mapping, key: str, default, allowed: Sequence, problems: Problems):
    value = cfg.get(key, default)
    if value not in allowed:
        shown = ", ".join("null" if a is None else str(a) for a in allowed)
        problems.append(f"{key}={value!r} is not supported (one of {shown})")
        return default
    return value


def channels_last(cfg: Mapping, problems: Problems) -> None:
    if cfg.get("data_format", "channels_last") not in (None, "channels_last"):
        problems.append(f"data_format={cfg.get('data_format')!r} is not supported (channels_last only)")


def activation(cfg: Mapping, key: str, default: str | None, problems: Problems) -> str:
    """A built-in activation the reference implements, by name (None: ``"linear"``); custom functions refused."""
    value = cfg.get(key, default)
    if value is None:
        return "linear"
    if isinstance(value, Mapping):  # a serialized function: a built-in by name, or custom code
        inner = value.get("config")
        if str(value.get("module", "")).startswith("keras") and isinstance(inner, str) and inner in ACTIVATIONS:
            return inner
        named = inner if isinstance(inner, str) else value.get("registered_name") or value.get("class_name")
        problems.append(f"{key} is a custom function ({named!r}); custom objects are refused")
        return "linear"
    if isinstance(value, str) and (value in ACTIVATIONS or value in KERAS2_ACTIVATIONS):  # keras2:…: Keras 2's
        return value
    problems.append(f"{key}={value!r} is not an activation the reference implements")
    return "linear"


def wrapped(entry, what: str, problems: Problems) -> tuple[str, Mapping]:
    """The class and config of a layer a wrapper holds (``{"class_name", "config"}``)."""
    if not isinstance(entry, Mapping) or not isinstance(entry.get("config", {}), Mapping):
        problems.append(f"{what} is not a layer configuration")
        return "?", {}
    return str(entry.get("class_name")), entry.get("config") or {}


_FLOAT_POLICIES = ("float32", "float64")


def common_checks(cfg: Mapping, problems: Problems) -> None:
    """What every stored layer (or cell) config is checked for: a float32/float64 dtype policy, no adapters."""
    _dtype(cfg, problems)
    _no_adapters(cfg, problems)


def _dtype(cfg: Mapping, problems: Problems) -> None:
    value = cfg.get("dtype")
    if value is None:
        return
    name = value
    if isinstance(value, Mapping):
        kind = value.get("class_name")
        if kind not in ("DTypePolicy", "FloatDTypePolicy", "Policy"):
            problems.append(f"dtype policy {kind} (quantized or per-variable) is not supported")
            return
        name = (value.get("config") or {}).get("name")
    if name not in _FLOAT_POLICIES:
        problems.append(f"computes in {name} (dtype policy); the reference supports float32 and float64 models")


def _no_adapters(cfg: Mapping, problems: Problems) -> None:
    if cfg.get("lora_rank"):
        problems.append(f"LoRA adapters (lora_rank={cfg['lora_rank']}) are not supported")
    if cfg.get("quantization_config") is not None:
        problems.append("a quantized layer is not supported")
