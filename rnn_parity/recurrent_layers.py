"""The recurrent entries of the layer registry: SimpleRNN, LSTM, GRU, ``RNN`` around cells, ConvLSTM1D/2D/3D,
and Bidirectional.

Each is a :class:`~rnn_parity.layer_spec.LayerSpec` whose ``sequence`` runs the
layer over a sequence with the reference (:mod:`rnn_parity.reference`,
:func:`rnn_parity.rnn_cell.stacked_rnn`, :func:`rnn_parity.conv_lstm.conv_lstm`)
and returns its outputs and final states.
The facts they read (each cell's states, gate blocks and own options; what
``RNN`` and ``StackedRNNCells`` store) are in :mod:`rnn_parity.recurrent`.

A recurrent entry that ``Bidirectional`` can wrap also gives its ``direction``:
the function that runs one direction with the calling convention of
:func:`rnn_parity.reference.lstm` (``function(x, *args, return_sequences=,
return_state=, go_backwards=, mask=, initial_state=, zero_output_for_mask=,
**kwargs)``), so a recurrent layer with states of its own shapes (the
convolutional LSTMs' grids) is one more entry here: its options, weights,
features and direction.

Keras's masks: a recurrent layer's output carries its input's mask when it
returns sequences (none otherwise); its states carry none. A ConvLSTM's mask may
also have one flag per grid position (from a ``Masking`` layer before it); it
passes on the same way. NumPy and the standard library only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from . import reference
from .conv_lstm import conv_lstm
from .errors import RnnParityError
from .layer_spec import (
    MAX_DIM,
    Axes,
    LayerSpec,
    MaskRule,
    Problems,
    activation,
    boolean,
    choice,
    common_checks,
    integer,
    wrapped,
)
from .recurrent import (
    BIDIRECTIONAL,
    CELLS,
    CONV_LSTM_STATES,
    CONV_LSTMS,
    DIRECTIONS,
    MERGE_MODES,
    RNN,
    RNN_KEYS,
    STACKED_CELLS,
    as_layer,
    cells_of,
    n_outputs,
    returns_sequences,
    returns_state,
    state_names,
    unwrap,
)
from .rnn_cell import stacked_rnn

__all__ = ["RECURRENT_FUNCTIONS", "RECURRENT_LAYERS", "cell_kwargs", "split_bias"]

#: Each cell's layer and the reference function that runs it over a sequence.
RECURRENT_FUNCTIONS = {"SimpleRNN": reference.simple_rnn, "LSTM": reference.lstm, "GRU": reference.gru}


# --------------------------------------------------------------------------
# One cell: its options, weights and the reference's keyword arguments.
# --------------------------------------------------------------------------


def cell_kwargs(class_name: str, cfg: Mapping) -> dict:
    """The reference's keyword arguments of one cell (Keras's defaults where the config has no value)."""
    kwargs = {"activation": cfg.get("activation", "tanh")}
    options = CELLS[class_name].options
    if "recurrent_activation" in options:
        kwargs["recurrent_activation"] = cfg.get("recurrent_activation", "sigmoid")
    if "reset_after" in options:
        kwargs["reset_after"] = cfg.get("reset_after", True)
    return kwargs


def split_bias(weights: Sequence[np.ndarray]) -> tuple:
    """``(kernel, recurrent_kernel, bias or None)`` of one cell's ``get_weights()``."""
    kernel, recurrent_kernel, *rest = weights
    return kernel, recurrent_kernel, (rest[0] if rest else None)


def cell_options(class_name: str, cfg: Mapping, problems: Problems) -> dict:
    """The keys one cell keeps: ``units``, ``activation``, ``use_bias`` and the cell's own options."""
    out = {
        "units": integer(cfg, "units", problems),
        "activation": activation(cfg, "activation", "tanh", problems),
        "use_bias": boolean(cfg, "use_bias", True, problems),
    }
    options = CELLS[class_name].options
    if "recurrent_activation" in options:
        out["recurrent_activation"] = activation(cfg, "recurrent_activation", "sigmoid", problems)
    if "reset_after" in options:
        out["reset_after"] = boolean(cfg, "reset_after", True, problems)
    return out


def _sequence_options(cfg: Mapping, problems: Problems) -> dict:
    out = {key: boolean(cfg, key, False, problems) for key in RNN_KEYS}
    if "time_major" in cfg and boolean(cfg, "time_major", False, problems):  # Keras 2 only; kept when true
        out["time_major"] = True
    return out


def _recurrent_axes(cfg: Mapping, item: Axes = ("unit",)) -> tuple[Axes, Axes]:
    """``(output axes, state axes)`` of a recurrent layer whose output for one sample at one step has axes ``item``."""
    state = ("sample", *item)
    if not cfg.get("return_sequences"):
        return state, state
    return ("timestep", "sample", *item) if cfg.get("time_major") else ("sample", "timestep", *item), state


def _batch_major(x, mask, cfg: Mapping):
    """Keras 2's ``time_major=True``: the input ``(timesteps, batch, …)`` and its mask ``(timesteps, batch)``
    as the reference reads them (batch first); the states are batch-major either way."""
    if not cfg.get("time_major", False):
        return x, mask
    return np.swapaxes(x, 0, 1), (None if mask is None else np.swapaxes(mask, 0, 1))


def _time_major(outputs: list, cfg: Mapping) -> list:
    """A returned sequence back in Keras 2's ``(timesteps, batch, …)`` with ``time_major=True``."""
    if cfg.get("time_major", False) and cfg.get("return_sequences", False):
        return [np.swapaxes(output, 0, 1) for output in outputs]
    return outputs


def cell_weights(class_name: str, cfg: Mapping, features: int | None, prefix: str = "") -> list:
    """``[(name, shape)]`` of one cell: ``kernel (D, G·M)``, ``recurrent_kernel (M, G·M)``, ``bias``."""
    units = cfg.get("units")
    width = CELLS[class_name].n_gates * units
    two_rows = "reset_after" in CELLS[class_name].options and cfg.get("reset_after", True)
    weights = [(prefix + "kernel", (features, width)), (prefix + "recurrent_kernel", (units, width))]
    if cfg.get("use_bias", True):
        weights.append((prefix + "bias", (2, width) if two_rows else (width,)))
    return weights


def _returns(class_name: str):
    """The rule of a recurrent layer's outputs: its input's mask with return_sequences, else none."""
    return MaskRule(
        "sequences",
        "passed on with return_sequences",
        lambda cfg, xs, masks: masks[0] if returns_sequences(class_name, cfg) else None,
    )


def _tensors(class_name: str):
    return lambda cfg: (
        n_outputs(class_name, cfg) + (len(state_names(class_name, cfg)) if returns_state(class_name, cfg) else 0)
    )


def _one_way(direction):
    """A layer's ``sequence`` from its ``direction``: the sequence options read from its config."""

    def sequence(cfg, weights, x, mask, initial_state):
        function, args, kwargs = direction(cfg, weights)
        x, mask = _batch_major(x, mask, cfg)
        output, *states = function(
            x,
            *args,
            return_sequences=cfg.get("return_sequences", False),
            return_state=True,
            go_backwards=cfg.get("go_backwards", False),
            mask=mask,
            initial_state=initial_state,
            zero_output_for_mask=cfg.get("zero_output_for_mask", False),
            **kwargs,
        )
        return _time_major([output], cfg), states

    return sequence


def _inside_time_distributed(cfg: Mapping) -> str | None:
    if cfg.get("return_state"):
        return "return_state=True (Keras cannot stack the states of every timestep)"
    if cfg.get("stateful"):
        return "stateful=True (its states would be carried from one timestep to the next)"
    return None


# --------------------------------------------------------------------------
# SimpleRNN, LSTM, GRU.
# --------------------------------------------------------------------------


def _cell_layer(class_name: str, summary: str) -> LayerSpec:
    def options(cfg, problems):
        if "cell" in cfg:
            problems.append("a layer built around a cell object is not supported")
        return {**cell_options(class_name, cfg, problems), **_sequence_options(cfg, problems)}

    def direction(cfg, weights):
        return RECURRENT_FUNCTIONS[class_name], split_bias(weights), cell_kwargs(class_name, cfg)

    def features(cfg, sizes):
        units = cfg.get("units")
        return [units] + ([units] * len(CELLS[class_name].states) if cfg.get("return_state") else [])

    return LayerSpec(
        class_name,
        summary,
        options,
        sequence=_one_way(direction),
        direction=direction,
        weights=lambda cfg, sizes: cell_weights(class_name, cfg, sizes[0]),
        features=features,
        tensors=_tensors(class_name),
        mask=_returns(class_name),
        call_mask=True,
        in_time_distributed=_inside_time_distributed,
        axes=_recurrent_axes,
    )


# --------------------------------------------------------------------------
# keras.layers.RNN around one cell (written as that cell's layer) or StackedRNNCells.
# --------------------------------------------------------------------------


def _as_cell_layer(cfg: Mapping) -> tuple[str, Mapping]:
    translated = as_layer(cfg)
    return translated if translated is not None else (RNN, cfg)


def _rnn_options(cfg: Mapping, problems: Problems) -> dict:
    cells, why = cells_of(cfg)
    problems.extend(why)
    kept = []
    for layer_class, cell_cfg in cells:
        common_checks(cell_cfg, problems)
        kept.append({"class_name": f"{layer_class}Cell", "config": cell_options(layer_class, cell_cfg, problems)})
    return {
        **_sequence_options(cfg, problems),
        "cell": {"class_name": STACKED_CELLS, "config": {"cells": kept}},
    }


def _stacked_cells(cfg: Mapping, weights: Sequence[np.ndarray]) -> list:
    """``[(layer class, its weights, its reference keyword arguments)]`` per cell, for :func:`stacked_rnn`."""
    cells, at = [], 0
    for layer_class, cell_cfg in cells_of(cfg)[0]:
        n = 3 if cell_cfg.get("use_bias", True) else 2
        cells.append((layer_class, list(weights[at : at + n]), cell_kwargs(layer_class, cell_cfg)))
        at += n
    return cells


def _rnn_direction(cfg, weights):
    return stacked_rnn, (_stacked_cells(cfg, weights),), {}


def _rnn_weights(cfg, sizes):
    weights, features = [], sizes[0]
    for i, (layer_class, cell_cfg) in enumerate(cells_of(cfg)[0]):
        weights += cell_weights(layer_class, cell_cfg, features, prefix=f"cell{i}/")
        features = cell_cfg.get("units")  # every cell but the first reads the previous cell's output
    return weights


def _rnn_features(cfg, sizes):
    cells = cells_of(cfg)[0]
    units = [cell_cfg.get("units") for _, cell_cfg in cells]
    states = [u for (layer_class, _), u in zip(cells, units) for _ in CELLS[layer_class].states]
    return units[-1:] + (states if cfg.get("return_state") else [])


# --------------------------------------------------------------------------
# ConvLSTM1D, ConvLSTM2D, ConvLSTM3D: an LSTM over grids (rnn_parity.conv_lstm).
# --------------------------------------------------------------------------

#: The names of a ConvLSTM's grid axes, by its number of spatial axes.
GRID_AXES = {1: ("position",), 2: ("row", "column"), 3: ("depth", "row", "column")}

#: The kept keys of a ConvLSTM that conv_lstm takes as keyword arguments besides the sequence options.
_CONV_KEYS = (
    "filters",
    "kernel_size",
    "strides",
    "padding",
    "data_format",
    "dilation_rate",
    "activation",
    "recurrent_activation",
    "use_bias",
)


def _grid_ints(cfg: Mapping, key: str, rank: int, problems: Problems, default=None) -> list[int]:
    """An integer, or ``rank`` integers, from 1 to MAX_DIM (Keras's ``standardize_tuple``), as ``rank`` integers."""
    value = cfg.get(key, default)
    values = [value] * rank if isinstance(value, int) and not isinstance(value, bool) else value
    if (
        not isinstance(values, (list, tuple))
        or len(values) != rank
        or not all(isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= MAX_DIM for v in values)
    ):
        problems.append(f"{key} must be an integer or {rank} integers from 1 to {MAX_DIM}, got {value!r}")
        return [1] * rank
    return list(values)


def _conv_lstm_layer(class_name: str, rank: int) -> LayerSpec:
    def options(cfg, problems):
        out = {
            "filters": integer(cfg, "filters", problems),
            "kernel_size": _grid_ints(cfg, "kernel_size", rank, problems),
            "strides": _grid_ints(cfg, "strides", rank, problems, 1),
            "padding": choice(cfg, "padding", "valid", ("valid", "same"), problems),
            "data_format": choice(cfg, "data_format", "channels_last", ("channels_last", "channels_first"), problems),
            "dilation_rate": _grid_ints(cfg, "dilation_rate", rank, problems, 1),
            "activation": activation(cfg, "activation", "tanh", problems),
            "recurrent_activation": activation(cfg, "recurrent_activation", "sigmoid", problems),
            "use_bias": boolean(cfg, "use_bias", True, problems),
        }
        if max(out["strides"]) > 1 and max(out["dilation_rate"]) > 1:
            problems.append("strides > 1 together with dilation_rate > 1 (Keras refuses it)")
        if "time_major" in cfg:  # Keras 2 stores it, but its ConvLSTM never reads it: always batch-major
            boolean(cfg, "time_major", False, problems)
        return {**out, **{key: boolean(cfg, key, False, problems) for key in RNN_KEYS}}

    def run(x, *args, **kwargs):  # conv_lstm, its refusals (a mask it cannot line up with the grid) naming the class
        try:
            return conv_lstm(x, *args, **kwargs)
        except RnnParityError as exc:
            raise type(exc)(f"{class_name}: {exc}") from None

    def direction(cfg, weights):
        return run, split_bias(weights), {"rank": rank, **{key: cfg[key] for key in _CONV_KEYS}}

    def weights(cfg, sizes):
        channels = sizes[0] if cfg["data_format"] == "channels_last" else None
        filters, grid = cfg["filters"], tuple(cfg["kernel_size"])
        arrays = [("kernel", (*grid, channels, 4 * filters)), ("recurrent_kernel", (*grid, filters, 4 * filters))]
        return arrays + ([("bias", (4 * filters,))] if cfg["use_bias"] else [])

    def features(cfg, sizes):  # the output, h and c: (batch, …, filters) with channels_last
        size = cfg["filters"] if cfg["data_format"] == "channels_last" else None
        return [size] * (1 + (len(CONV_LSTM_STATES) if cfg.get("return_state") else 0))

    def axes(cfg):  # a grid of filters per sample and step
        grid = GRID_AXES[rank]
        return _recurrent_axes(cfg, (*grid, "filter") if cfg["data_format"] == "channels_last" else ("filter", *grid))

    return LayerSpec(
        class_name,
        f"conv_lstm.conv_lstm over {rank}-D grids: valid and same padding, strides, dilation, channels_last "
        "and channels_first, every sequence option; states h, c",
        options,
        sequence=_one_way(direction),
        direction=direction,
        weights=weights,
        features=features,
        tensors=_tensors(class_name),
        mask=_returns(class_name),
        call_mask=True,
        in_time_distributed=_inside_time_distributed,
        axes=axes,
    )


# --------------------------------------------------------------------------
# Bidirectional around any entry that gives its direction.
# --------------------------------------------------------------------------


def _bidirectional_options(cfg: Mapping, problems: Problems) -> dict:
    merge_mode = cfg.get("merge_mode", "concat")
    if merge_mode not in MERGE_MODES:
        problems.append(f"merge_mode={merge_mode!r} is not one of concat, sum, mul, ave, null")
    inner_class, inner_cfg = wrapped(cfg.get("layer"), "the wrapped layer", problems)
    if inner_class == RNN:
        inner_class, inner_cfg = _as_cell_layer(inner_cfg)
    spec = RECURRENT_LAYERS.get(inner_class)
    if spec is None or spec.direction is None:
        problems.append(
            f"wraps {inner_class}; only SimpleRNN, LSTM, GRU, RNN around cells and the ConvLSTMs are supported"
        )
        return {"merge_mode": merge_mode, "layer": {"class_name": inner_class, "config": {}}}
    forward = spec.keep(inner_cfg, problems)
    if forward.get("go_backwards"):
        problems.append("the forward layer has go_backwards=True")
    backward_entry = cfg.get("backward_layer")
    if backward_entry is not None:
        back_class, back_cfg = wrapped(backward_entry, "backward_layer", [])
        if back_class == RNN:
            back_class, back_cfg = _as_cell_layer(back_cfg)
        backward = spec.keep(back_cfg, []) if back_class == inner_class else {}
        loose = ("go_backwards", "zero_output_for_mask")
        same = {k: v for k, v in backward.items() if k not in loose}
        want = {k: v for k, v in forward.items() if k not in loose}
        if same != want or not backward.get("go_backwards"):
            problems.append(
                "backward_layer is not the mirror image of the forward layer (same class and options, "
                "go_backwards=True)"
            )
    # Keras sets zero_output_for_mask = return_sequences on both directions.
    forward["zero_output_for_mask"] = forward.get("return_sequences", False)
    return {"merge_mode": merge_mode, "layer": {"class_name": inner_class, "config": forward}}


def _bidirectional_sequence(cfg, weights, x, mask, initial_state):
    inner_class, inner_cfg = unwrap(BIDIRECTIONAL, cfg)
    spec, half = RECURRENT_LAYERS[inner_class], len(weights) // 2
    function, forward_args, kwargs = spec.direction(inner_cfg, weights[:half])
    _, backward_args, _ = spec.direction(inner_cfg, weights[half:])
    x, mask = _batch_major(x, mask, inner_cfg)
    # reference.bidirectional forces zero_output_for_mask = return_sequences on both directions, as Keras does.
    output, *states = reference.bidirectional(
        function,
        x,
        forward_args,
        backward_args,
        merge_mode=cfg.get("merge_mode", "concat"),
        return_sequences=inner_cfg.get("return_sequences", False),
        return_state=True,
        mask=mask,
        initial_state=initial_state,
        **kwargs,
    )
    return _time_major(list(output) if isinstance(output, list) else [output], inner_cfg), states


def _bidirectional_weights(cfg, sizes):
    inner_class, inner_cfg = unwrap(BIDIRECTIONAL, cfg)
    one = RECURRENT_LAYERS[inner_class].weights(inner_cfg, sizes)
    return [(f"{side}_{name}", shape) for side in DIRECTIONS for name, shape in one]


def _bidirectional_features(cfg, sizes):
    inner_class, inner_cfg = unwrap(BIDIRECTIONAL, cfg)
    out, *states = RECURRENT_LAYERS[inner_class].features(inner_cfg, sizes)
    merge_mode = cfg.get("merge_mode", "concat")
    if merge_mode is None:
        outputs = [out, out]
    elif merge_mode == "concat":
        outputs = [None if out is None else 2 * out]
    else:
        outputs = [out]
    return outputs + states * len(DIRECTIONS)


def _bidirectional_axes(cfg: Mapping):  # each direction's output and states are the wrapped layer's
    inner_class, inner_cfg = unwrap(BIDIRECTIONAL, cfg)
    return RECURRENT_LAYERS[inner_class].axis_names(inner_cfg)


def _bidirectional_in_time_distributed(cfg: Mapping) -> str | None:
    return _inside_time_distributed(unwrap(BIDIRECTIONAL, cfg)[1])


RECURRENT_LAYERS: dict[str, LayerSpec] = {
    spec.class_name: spec
    for spec in (
        _cell_layer("SimpleRNN", "reference.simple_rnn; every option; states h"),
        _cell_layer("LSTM", "reference.lstm; every option; states h, c"),
        _cell_layer("GRU", "reference.gru, reset_after on or off; every option; states h"),
        LayerSpec(
            RNN,
            "around one SimpleRNNCell, LSTMCell or GRUCell: runs as that layer; around StackedRNNCells: "
            "rnn_cell.stacked_rnn, every option, every cell's states in cell order",
            _rnn_options,
            sequence=_one_way(_rnn_direction),
            direction=_rnn_direction,
            weights=_rnn_weights,
            features=_rnn_features,
            tensors=_tensors(RNN),
            mask=_returns(RNN),
            call_mask=True,
            written_as=_as_cell_layer,
            in_time_distributed=_inside_time_distributed,
            axes=_recurrent_axes,
        ),
        *(_conv_lstm_layer(name, rank) for name, rank in CONV_LSTMS.items()),
        LayerSpec(
            BIDIRECTIONAL,
            "reference.bidirectional around any layer above, every merge_mode; forward states, then backward",
            _bidirectional_options,
            sequence=_bidirectional_sequence,
            weights=_bidirectional_weights,
            features=_bidirectional_features,
            tensors=_tensors(BIDIRECTIONAL),
            mask=_returns(BIDIRECTIONAL),
            call_mask=True,
            in_time_distributed=_bidirectional_in_time_distributed,
            axes=_bidirectional_axes,
        ),
    )
}
