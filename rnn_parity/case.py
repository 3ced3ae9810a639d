"""Seeded weights and inputs for a check, generated with NumPy alone.

The same seed gives the same arrays on every machine and every Keras version
(NumPy's ``default_rng`` streams are stable), so a CI gate compares the same
case before and after an upgrade. Arrays are rounded to the dtypes Keras uses
(the weights in Keras's variable dtype, the inputs in its compute dtype:
float16 under ``mixed_float16``); the reference promotes these exact values
to its own dtype.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .architecture import LayerDesc
from .recurrent import CELLS, n_states
from .spec import CheckSpec

__all__ = ["CaseData", "make_case"]

# Independent streams, so that changing one size does not reshuffle the rest.
_WEIGHTS, _INPUTS, _MASK, _STATES = range(4)


@dataclass(frozen=True)
class CaseData:
    """Everything both sides are given.

    Attributes:
        weights: layer name → arrays in ``get_weights()`` order (float32).
        batches: one input ``(N, T, D)`` per call (two for a stateful check).
        initial_states: recurrent layer name → its start states, or empty.
        lengths: per batch, each sample's number of real steps (None without a mask).
    """

    weights: dict[str, list[np.ndarray]]
    batches: tuple[np.ndarray, ...]
    initial_states: dict[str, list[np.ndarray]]
    lengths: tuple[np.ndarray, ...] | None


def _glorot(rng, shape):
    limit = np.sqrt(6.0 / (shape[0] + shape[-1]))
    return rng.uniform(-limit, limit, size=shape)


def _orthogonal(rng, shape):
    """Keras's Orthogonal: Q of a QR of a normal matrix, with the signs fixed by R's diagonal."""
    rows, cols = shape
    a = rng.standard_normal((max(rows, cols), min(rows, cols)))
    q, r = np.linalg.qr(a)
    q *= np.sign(np.diag(r))
    return q.T if rows < cols else q


def _weights_for(rng, layer: LayerDesc, dtype: str) -> list[np.ndarray]:
    m = layer.cell_config.get("units") if layer.is_recurrent else None
    arrays = []
    for w in layer.weights:
        if w.name.endswith("recurrent_kernel"):
            value = _orthogonal(rng, w.shape)
        elif w.name.endswith("kernel"):
            value = _glorot(rng, w.shape)
        else:  # a bias
            value = rng.uniform(-0.5, 0.5, size=w.shape)
            if layer.cell_config.get("unit_forget_bias", False):  # LSTM: the forget gate's block starts at 1
                f = CELLS[layer.cell_class].gates.index("f")
                value[f * m : (f + 1) * m] = 1.0  # as Keras's unit_forget_bias initialiser does
        arrays.append(value.astype(dtype))
    return arrays


def _lengths_and_pad(rng, x, where: str):
    n, t, _ = x.shape
    lengths = rng.integers(1, t + 1, size=n)
    steps = np.arange(t)
    real = steps[None, :] < lengths[:, None] if where == "post" else steps[None, :] >= (t - lengths)[:, None]
    return lengths, x * real[..., None]


def _as_input(values: np.ndarray, spec: CheckSpec) -> np.ndarray:
    """Round to float32 first: ``model.predict`` converts every input array to float32
    (Keras's floatx) before the model casts it to its own dtype, so a float64 model
    only ever sees float32 values. Then to Keras's compute dtype (float16 rounds further)."""
    return values.astype(np.float32).astype(spec.compute_dtype)


def make_case(spec: CheckSpec, layers: list[LayerDesc]) -> CaseData:
    """Draw the weights, input batches, padding and initial states of ``spec``."""
    seed = spec.seed
    rng_w = np.random.default_rng([seed, _WEIGHTS])
    weights = {layer.name: _weights_for(rng_w, layer, spec.variable_dtype) for layer in layers if layer.weights}

    rng_x = np.random.default_rng([seed, _INPUTS])
    rng_m = np.random.default_rng([seed, _MASK])
    batches, lengths = [], []
    for _ in range(2 if spec.stateful else 1):
        x = _as_input(rng_x.standard_normal((spec.N, spec.T, spec.D)), spec)
        if spec.mask != "none":
            n_real, x = _lengths_and_pad(rng_m, x, spec.mask)
            lengths.append(n_real)
        batches.append(x)

    initial_states: dict[str, list[np.ndarray]] = {}
    if spec.initial_state:
        rng_s = np.random.default_rng([seed, _STATES])
        for layer in layers:
            if layer.is_recurrent:
                m = layer.cell_config["units"]
                initial_states[layer.name] = [
                    _as_input(rng_s.uniform(-1, 1, size=(spec.N, m)), spec)
                    for _ in range(n_states(layer.class_name, layer.config))
                ]
    return CaseData(
        weights=weights,
        batches=tuple(batches),
        initial_states=initial_states,
        lengths=tuple(lengths) if lengths else None,
    )
