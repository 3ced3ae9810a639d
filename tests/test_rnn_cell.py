"""keras.layers.RNN around built-in cells and StackedRNNCells (rnn_parity.rnn_cell) against Keras."""

from __future__ import annotations

import numpy as np
import pytest

from rnn_parity import reference
from rnn_parity.rnn_cell import as_layer, cells_of, stacked_rnn

ATOL, RTOL = 1e-5, 1.3e-6
MASK = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [0, 1, 1, 1, 0]], dtype=bool)


def _seeded_weights(layer, seed=0):
    rng = np.random.default_rng(seed)
    weights = [rng.uniform(-0.7, 0.7, w.shape).astype(np.float32) for w in layer.get_weights()]
    layer.set_weights(weights)
    return weights


def _x(seed=1):
    return np.random.default_rng(seed).standard_normal((3, 5, 4)).astype(np.float32)


def test_cells_of_reads_stacks_and_names_custom_cells():
    stacked = {
        "cell": {
            "class_name": "StackedRNNCells",
            "config": {"cells": [{"class_name": "GRUCell", "config": {"units": 2}}, {"class_name": "MyCell"}]},
        }
    }
    cells, problems = cells_of(stacked)
    assert cells == [("GRU", {"units": 2})]
    assert problems == ["RNN around MyCell; only SimpleRNNCell, LSTMCell, GRUCell and StackedRNNCells are supported"]
    assert as_layer(stacked) is None


@pytest.mark.keras
@pytest.mark.parametrize("cell", ["SimpleRNNCell", "LSTMCell", "GRUCell"])
def test_rnn_around_one_cell_is_that_layer(keras, cell):
    """The saved config maps onto the layer's, and the weights are the layer's: the reference runs it unchanged."""
    kwargs = {"reset_after": False} if cell == "GRUCell" else {}
    rnn = keras.layers.RNN(
        getattr(keras.layers, cell)(3, **kwargs), return_sequences=True, go_backwards=True, name="wrapped"
    )
    x = _x()
    rnn.build(x.shape)
    weights = _seeded_weights(rnn)
    layer_class, cfg = as_layer(rnn.get_config())
    assert layer_class == cell.removesuffix("Cell") and cfg["go_backwards"] is True and cfg["name"] == "wrapped"
    twin = getattr(keras.layers, layer_class).from_config(cfg)
    twin.build(x.shape)
    twin.set_weights(weights)  # the same arrays fit the layer: same names, shapes and order
    options = {k: cfg[k] for k in ("activation", "recurrent_activation", "reset_after") if k in cfg}
    expected = getattr(reference, {"SimpleRNN": "simple_rnn", "LSTM": "lstm", "GRU": "gru"}[layer_class])(
        x.astype(np.float64), *weights, return_sequences=True, go_backwards=True, mask=MASK, **options
    )
    got = keras.ops.convert_to_numpy(rnn(x, mask=MASK))
    np.testing.assert_allclose(got, expected, atol=ATOL, rtol=RTOL)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(twin(x, mask=MASK)), got, atol=ATOL, rtol=RTOL)


@pytest.mark.keras
@pytest.mark.parametrize(
    "return_sequences, go_backwards, masked, with_initial_state, zero_output",
    [
        (False, False, False, False, False),
        (True, True, True, False, False),
        (True, False, True, True, True),
        (False, True, True, True, False),
    ],
)
def test_stacked_cells_match_keras(keras, return_sequences, go_backwards, masked, with_initial_state, zero_output):
    cells = [keras.layers.LSTMCell(3), keras.layers.GRUCell(2, reset_after=False), keras.layers.SimpleRNNCell(2)]
    rnn = keras.layers.RNN(
        keras.layers.StackedRNNCells(cells),
        return_sequences=return_sequences,
        return_state=True,
        go_backwards=go_backwards,
        zero_output_for_mask=zero_output,
    )
    x = _x()
    rnn.build(x.shape)
    weights = _seeded_weights(rnn, 3)
    parsed, problems = cells_of(rnn.get_config())
    assert problems == [] and [c for c, _ in parsed] == ["LSTM", "GRU", "SimpleRNN"]
    rng = np.random.default_rng(5)
    start = [rng.standard_normal((3, n)).astype(np.float32) for n in (3, 3, 2, 2)] if with_initial_state else None
    mask = MASK if masked else None
    keras_out = rnn(x, mask=mask, initial_state=None if start is None else [start[:2], start[2], start[3]])
    flat = keras.tree.flatten(keras_out)  # (output, [h1, c1], [h2], [h3]): Keras nests each cell's states
    spec, at = [], 0
    for layer_class, cfg in parsed:
        n = 3 if cfg.get("use_bias", True) else 2
        options = {k: cfg[k] for k in ("activation", "recurrent_activation", "reset_after") if k in cfg}
        spec.append((layer_class, [w.astype(np.float64) for w in weights[at : at + n]], options))
        at += n
    expected = stacked_rnn(
        x.astype(np.float64),
        spec,
        return_sequences=return_sequences,
        return_state=True,
        go_backwards=go_backwards,
        mask=mask,
        initial_state=start,
        zero_output_for_mask=zero_output,
    )
    assert len(expected) == len(flat) == 5
    for got, want in zip(flat, expected, strict=True):
        np.testing.assert_allclose(keras.ops.convert_to_numpy(got), want, atol=ATOL, rtol=RTOL)
