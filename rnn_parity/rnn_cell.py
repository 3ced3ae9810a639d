"""``keras.layers.RNN`` around built-in cells, and ``StackedRNNCells``, on the existing reference.

How Keras 3 saves them (``keras/src/layers/rnn/rnn.py``, ``stacked_rnn_cells.py``):

* ``RNN``'s config holds the sequence options (``return_sequences``,
  ``return_state``, ``go_backwards``, ``stateful``, ``unroll``,
  ``zero_output_for_mask``) and ``cell``: ``{"class_name": "LSTMCell", "config":
  {units, activation, recurrent_activation, use_bias, ...}}``;
* its weights are the cell's, in the layer's order and layouts: ``RNN(LSTMCell(4))``
  has exactly ``LSTM(4)``'s ``[kernel, recurrent_kernel, bias]``. So an ``RNN``
  around one built-in cell *is* that layer: :func:`as_layer` merges the two
  configs into the ``SimpleRNN`` / ``LSTM`` / ``GRU`` config the reference runs;
* ``StackedRNNCells`` (``cell`` with ``{"cells": [...]}``) lists its cells; the
  weights are each cell's list in turn. At every step the cells run in order,
  each reading the previous cell's output, and the layer emits the last cell's.
  Over a whole sequence that is a stack of layers where every layer but the
  first reads the previous one's sequence in *processing* order (so with
  ``go_backwards`` only the first reads backwards, and the mask is read in
  processing order after it); :func:`stacked_rnn` computes it that way.
  ``return_state`` returns every cell's states in cell order, flattened
  (``[h₁, c₁, h₂]`` for an LSTM cell then a GRU cell).

Reading the configs (:func:`cells_of`, :func:`as_layer`) is a fact about Keras's
layers that needs no NumPy: it lives in :mod:`rnn_parity.recurrent` and is
re-exported here. The registry's ``RNN`` entry (:mod:`rnn_parity.recurrent_layers`)
runs :func:`stacked_rnn`. Only NumPy, the reference and config dicts: no Keras import.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from . import reference
from .recurrent import CELL_LAYERS, CELLS, RNN_KEYS, as_layer, cells_of

__all__ = ["CELL_LAYERS", "RNN_KEYS", "as_layer", "cells_of", "stacked_rnn"]

_FUNCTIONS = {"SimpleRNN": reference.simple_rnn, "LSTM": reference.lstm, "GRU": reference.gru}


def stacked_rnn(
    x,
    cells: Sequence[tuple[str, Sequence[np.ndarray], Mapping]],
    *,
    return_sequences=False,
    return_state=False,
    go_backwards=False,
    mask=None,
    initial_state=None,
    zero_output_for_mask=False,
):
    """``RNN(StackedRNNCells(cells))``.

    Args:
        x: ``(batch, timesteps, features)``.
        cells: per cell, ``(layer class, [kernel, recurrent_kernel(, bias)], options)``
            where options are the reference's keyword arguments (``activation``,
            ``recurrent_activation``, ``reset_after``).
        initial_state: all cells' states flattened in cell order, or None (zeros).
        return_sequences, return_state, go_backwards, mask, zero_output_for_mask: as in Keras.
    Returns:
        the last cell's output (``(batch, timesteps, units)`` or ``(batch, units)``),
        then with ``return_state`` every cell's final states, flattened in cell order.
    """
    starts: list = []
    remaining = list(initial_state) if initial_state is not None else None
    for layer_class, _, _ in cells:
        n = len(CELLS[layer_class].states)
        starts.append(None if remaining is None else remaining[:n])
        remaining = None if remaining is None else remaining[n:]
    sequence, step_mask, states = x, mask, []
    for i, ((layer_class, weights, options), start) in enumerate(zip(cells, starts, strict=True)):
        first, last = i == 0, i == len(cells) - 1
        kernel, recurrent_kernel, *bias = weights
        out, *cell_states = _FUNCTIONS[layer_class](
            sequence,
            kernel,
            recurrent_kernel,
            bias[0] if bias else None,
            return_sequences=return_sequences if last else True,
            return_state=True,
            go_backwards=go_backwards and first,
            mask=step_mask,
            initial_state=start,
            zero_output_for_mask=zero_output_for_mask and last,
            **options,
        )
        if first and go_backwards and step_mask is not None:
            step_mask = step_mask[:, ::-1]  # later cells read the sequence in processing order
        sequence = out
        states.extend(cell_states)
    return [sequence, *states] if return_state else sequence
