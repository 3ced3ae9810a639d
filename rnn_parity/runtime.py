"""Run a described Keras model with the NumPy reference alone.

A model is a list of layers, each ``{"name", "class_name", "config"}`` with
Keras's class names and ``get_config()`` keys, plus each layer's weights in
``get_weights()`` order. This module imports only NumPy and the reference, so
it runs where TensorFlow and Keras are not installed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from . import reference

__all__ = ["RECURRENT_FUNCTIONS", "SequentialRuntime", "Trace"]

RECURRENT_FUNCTIONS = {"SimpleRNN": reference.simple_rnn, "LSTM": reference.lstm, "GRU": reference.gru}


@dataclass
class Trace:
    """What one forward pass produced.

    Attributes:
        outputs: every layer's output by layer name, in model order (a list of
            two arrays for ``Bidirectional(merge_mode=None)``).
        states: each recurrent layer's final states by layer name.
        output: the model's output (the last layer's).
    """

    outputs: dict[str, object] = field(default_factory=dict)
    states: dict[str, list[np.ndarray]] = field(default_factory=dict)

    @property
    def output(self):
        return next(reversed(self.outputs.values()))


def _layer_parts(layer) -> tuple[str, str, dict]:
    if isinstance(layer, Mapping):
        return layer["name"], layer["class_name"], layer["config"]
    return layer.name, layer.class_name, layer.config


def _cell_kwargs(class_name: str, cfg: Mapping) -> dict:
    kwargs = {"activation": cfg.get("activation", "tanh")}
    if class_name in ("LSTM", "GRU"):
        kwargs["recurrent_activation"] = cfg.get("recurrent_activation", "sigmoid")
    if class_name == "GRU":
        kwargs["reset_after"] = cfg.get("reset_after", True)
    return kwargs


def _split_bias(weights: Sequence[np.ndarray]) -> tuple:
    kernel, recurrent_kernel, *rest = weights
    return kernel, recurrent_kernel, (rest[0] if rest else None)


class SequentialRuntime:
    """A chain of layers executed with :mod:`rnn_parity.reference`.

    Args:
        layers: the layers input to output, as dicts or :class:`~rnn_parity.architecture.LayerDesc`.
        weights: layer name → list of arrays in ``get_weights()`` order.
        dtype: the dtype to compute in (``"float64"`` or ``"float32"``).

    Layers with ``stateful`` in their config keep their final states between
    :meth:`run` calls, as Keras does; :meth:`reset_states` clears them.
    """

    def __init__(self, layers, weights: Mapping[str, Sequence[np.ndarray]], dtype="float64"):
        self.layers = [_layer_parts(layer) for layer in layers]
        self.dtype = np.dtype(dtype)
        self.weights = {name: [np.asarray(w, dtype=self.dtype) for w in ws] for name, ws in weights.items()}
        self._carried: dict[str, list[np.ndarray]] = {}

    def reset_states(self) -> None:
        self._carried.clear()

    def predict(self, x):
        return self.run(x).output

    def run(self, x, *, initial_states: Mapping[str, Sequence[np.ndarray]] | None = None) -> Trace:
        """Forward pass; ``initial_states`` maps a recurrent layer's name to its start states."""
        h = np.asarray(x, dtype=self.dtype)
        mask = None
        trace = Trace()
        for name, class_name, cfg in self.layers:
            weights = self.weights.get(name, [])
            if class_name == "Masking":
                mask = np.any(h != cfg.get("mask_value", 0.0), axis=-1)
                h = h * mask[..., None]
            elif class_name in RECURRENT_FUNCTIONS or class_name == "Bidirectional":
                start = (initial_states or {}).get(name)
                if start is None and cfg_stateful(class_name, cfg):
                    start = self._carried.get(name)
                h, states = self._recurrent(class_name, cfg, weights, h, mask, start)
                trace.states[name] = states
                if cfg_stateful(class_name, cfg):
                    self._carried[name] = states
                if not _returns_sequences(class_name, cfg):
                    mask = None
            elif class_name == "Dense":
                kernel, bias = weights[0], (weights[1] if len(weights) > 1 else None)
                act = cfg.get("activation")
                h = [reference.dense(part, kernel, bias, activation=act) for part in h] if isinstance(h, list) \
                    else reference.dense(h, kernel, bias, activation=act)
            else:
                raise ValueError(f"layer {name!r}: {class_name} is not supported by the NumPy runtime")
            trace.outputs[name] = h
        return trace

    @staticmethod
    def _recurrent(class_name, cfg, weights, x, mask, initial_state):
        if class_name == "Bidirectional":
            inner = cfg["layer"]
            inner_class, inner_cfg = inner["class_name"], inner["config"]
            half = len(weights) // 2
            out = reference.bidirectional(
                RECURRENT_FUNCTIONS[inner_class], x, _split_bias(weights[:half]), _split_bias(weights[half:]),
                merge_mode=cfg.get("merge_mode", "concat"),
                return_sequences=inner_cfg.get("return_sequences", False), return_state=True,
                mask=mask, initial_state=initial_state,
                **_cell_kwargs(inner_class, inner_cfg),
            )
        else:
            out = RECURRENT_FUNCTIONS[class_name](
                x, *_split_bias(weights), return_sequences=cfg.get("return_sequences", False),
                return_state=True, go_backwards=cfg.get("go_backwards", False), mask=mask,
                initial_state=initial_state, **_cell_kwargs(class_name, cfg),
            )
        output, *states = out
        return output, states


def cfg_stateful(class_name: str, cfg: Mapping) -> bool:
    return bool((cfg["layer"]["config"] if class_name == "Bidirectional" else cfg).get("stateful", False))


def _returns_sequences(class_name: str, cfg: Mapping) -> bool:
    return bool((cfg["layer"]["config"] if class_name == "Bidirectional" else cfg).get("return_sequences", False))
