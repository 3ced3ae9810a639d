"""Facts about Keras's recurrent layers, in one table the whole package reads.

One :class:`Cell` entry per recurrent layer class (SimpleRNN, LSTM, GRU): its
states and their names, its gate blocks in Keras's column order, the weight
symbols the course notebook uses, and the options only it takes. Around them:
``keras.layers.RNN`` around one built-in cell (which *is* that cell's layer) or
around ``StackedRNNCells`` (several cells per step, every cell's states in cell
order); the convolutional LSTMs ``ConvLSTM1D/2D/3D`` (an LSTM over grids, with
states ``h`` and ``c``; not cells of ``check``); the wrappers ``Bidirectional``,
which runs a recurrent layer both ways, and ``TimeDistributed``, which applies a
layer to every timestep. Keras drives its own state handling from a cell's
``state_size`` the same way.

Layers are named by Keras class and config (``get_config()`` keys), as
everywhere in rnn-parity::

    >>> state_names("Bidirectional", {"merge_mode": None, "layer": {"class_name": "LSTM", "config": {}}})
    ['forward_h', 'forward_c', 'backward_h', 'backward_c']

Standard library only: the NumPy runtime and the configuration code both read it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

__all__ = [
    "BIDIRECTIONAL",
    "CELLS",
    "CELL_KEYS",
    "CELL_LAYERS",
    "CONV_LSTMS",
    "CONV_LSTM_STATES",
    "DIRECTIONS",
    "RNN",
    "RNN_KEYS",
    "STACKED_CELLS",
    "TIME_DISTRIBUTED",
    "MERGE_MODES",
    "RECURRENT_LIKE",
    "WRAPPERS",
    "Cell",
    "as_layer",
    "cell_config",
    "cell_of",
    "cells_of",
    "layer_cells",
    "is_bidirectional",
    "is_recurrent",
    "is_stateful",
    "n_outputs",
    "n_states",
    "returns_sequences",
    "returns_state",
    "state_names",
    "unwrap",
]

BIDIRECTIONAL = "Bidirectional"
TIME_DISTRIBUTED = "TimeDistributed"
#: ``keras.layers.RNN``: around one built-in cell it is that cell's layer; around ``StackedRNNCells`` the
#: layer graph keeps it as ``RNN`` with its ``cell`` config.
RNN = "RNN"
STACKED_CELLS = "StackedRNNCells"
#: Layers that hold another layer under ``config["layer"]``.
WRAPPERS = frozenset({BIDIRECTIONAL, TIME_DISTRIBUTED})
#: The two halves of a Bidirectional layer, in Keras's order (weights, states, ``merge_mode=None`` outputs).
DIRECTIONS = ("forward", "backward")
#: Bidirectional's ``merge_mode`` values; None keeps the two directions as two outputs.
MERGE_MODES = ("concat", "sum", "mul", "ave", None)


@dataclass(frozen=True)
class Cell:
    """One recurrent layer class.

    Attributes:
        class_name: Keras's class, e.g. ``"LSTM"``.
        key: the ``cell`` option of ``check`` and sweep configs, e.g. ``"lstm"``.
        states: the state names in Keras's order (``h``, then ``c`` for LSTM).
        gates: the gate blocks of ``kernel (D, G·M)``, ``recurrent_kernel (M, G·M)``
            and ``bias`` in Keras's column order.
        symbols: the notebook's symbols of kernel, recurrent kernel and bias.
        options: config keys only this cell takes (beyond units, activation, use_bias).
    """

    class_name: str
    key: str
    states: tuple[str, ...]
    gates: tuple[str, ...]
    symbols: tuple[str, str, str]
    options: tuple[str, ...] = ()

    @property
    def n_gates(self) -> int:
        """G: how many column blocks of ``units`` the kernels hold."""
        return len(self.gates)


CELLS: dict[str, Cell] = {
    cell.class_name: cell
    for cell in (
        Cell("SimpleRNN", "simple_rnn", states=("h",), gates=("h",), symbols=("Wx", "Wh", "bh")),
        Cell(
            "LSTM",
            "lstm",
            states=("h", "c"),
            gates=("i", "f", "c", "o"),
            symbols=("W", "U", "b"),
            options=("recurrent_activation", "unit_forget_bias"),
        ),
        Cell(
            "GRU",
            "gru",
            states=("h",),
            gates=("z", "r", "h"),
            symbols=("W", "U", "b"),
            options=("recurrent_activation", "reset_after"),
        ),
    )
}
#: ``cell`` option → Keras class, e.g. ``"gru"`` → ``"GRU"``.
CELL_KEYS = {cell.key: cell.class_name for cell in CELLS.values()}
#: Each built-in cell class and the layer that runs it over a sequence, e.g. ``"LSTMCell"`` → ``"LSTM"``.
CELL_LAYERS = {f"{name}Cell": name for name in CELLS}
#: The convolutional LSTMs and the number of axes of their grids (a line, an image, a volume). They are
#: not in :data:`CELLS`, which holds the cells ``check`` builds (its ``--cell`` option).
CONV_LSTMS = {"ConvLSTM1D": 1, "ConvLSTM2D": 2, "ConvLSTM3D": 3}
#: A convolutional LSTM's states in Keras's order: an LSTM's ``h`` and ``c``, each a grid of ``filters`` channels.
CONV_LSTM_STATES = ("h", "c")
#: ``RNN``'s own options that change what it computes (``unroll`` only schedules the same arithmetic).
RNN_KEYS = ("return_sequences", "return_state", "go_backwards", "stateful", "zero_output_for_mask")
#: What counts as "a recurrent layer" when deciding whether rnn-parity applies to a model at all
#: (before the layers are checked: an ``RNN`` around a custom cell is recurrent, but refused).
RECURRENT_LIKE = frozenset(CELLS) | {RNN, *CONV_LSTMS}


def is_bidirectional(class_name: str) -> bool:
    return class_name == BIDIRECTIONAL


def is_recurrent(class_name: str) -> bool:
    """A layer that runs over time with states: SimpleRNN, LSTM, GRU, RNN around cells, a ConvLSTM, Bidirectional."""
    return class_name in CELLS or class_name in CONV_LSTMS or class_name in (RNN, BIDIRECTIONAL)


def cells_of(rnn_config: Mapping) -> tuple[list[tuple[str, dict]], list[str]]:
    """``([(layer class, cell config), ...], problems)`` of an ``RNN`` layer's config.

    One entry for a single cell, one per cell for ``StackedRNNCells`` (nested
    stacks are flattened, as Keras runs them the same way). A custom cell or
    anything else is a problem naming it.
    """
    cell = rnn_config.get("cell")
    if not isinstance(cell, Mapping):
        return [], ["RNN without a cell configuration"]
    cls, cfg = cell.get("class_name"), cell.get("config") or {}
    if cls == STACKED_CELLS:
        found, problems = [], []
        for inner in cfg.get("cells") or []:
            more, why = cells_of({"cell": inner})
            found.extend(more)
            problems.extend(why)
        if not found and not problems:
            problems.append("StackedRNNCells without cells")
        return found, problems
    if cls in CELL_LAYERS:
        return [(CELL_LAYERS[cls], dict(cfg))], []
    return [], [f"RNN around {cls}; only SimpleRNNCell, LSTMCell, GRUCell and StackedRNNCells are supported"]


def as_layer(rnn_config: Mapping) -> tuple[str, dict] | None:
    """The ``SimpleRNN``/``LSTM``/``GRU`` config equal to an ``RNN`` around one built-in cell, else None."""
    cells, problems = cells_of(rnn_config)
    if problems or len(cells) != 1:
        return None
    layer_class, cell_cfg = cells[0]
    merged = {key: value for key, value in cell_cfg.items() if key != "name"}
    merged.update({key: rnn_config[key] for key in RNN_KEYS if key in rnn_config})
    merged["name"] = rnn_config.get("name")
    return layer_class, merged


def unwrap(class_name: str, config: Mapping) -> tuple[str, Mapping]:
    """The wrapped layer's class and config inside a wrapper, else the layer's own."""
    if class_name in WRAPPERS:
        inner = config["layer"]
        return inner["class_name"], inner.get("config", {})
    return class_name, config


def layer_cells(class_name: str, config: Mapping) -> list[Cell]:
    """The cells a recurrent layer runs at every step, in order (also inside Bidirectional); [] for other layers."""
    if not is_recurrent(class_name):
        return []
    inner_class, inner_config = unwrap(class_name, config) if is_bidirectional(class_name) else (class_name, config)
    if inner_class == RNN:
        return [CELLS[layer] for layer, _ in cells_of(inner_config)[0]]
    return [CELLS[inner_class]] if inner_class in CELLS else []


def cell_of(class_name: str, config: Mapping) -> Cell | None:
    """The cell a recurrent layer runs (also inside Bidirectional), or None for any other layer (or several cells)."""
    cells = layer_cells(class_name, config)
    return cells[0] if len(cells) == 1 else None


def cell_config(class_name: str, config: Mapping) -> Mapping:
    """The recurrent layer's own config: the wrapped layer's inside Bidirectional."""
    return unwrap(class_name, config)[1] if is_bidirectional(class_name) else config


def returns_sequences(class_name: str, config: Mapping) -> bool:
    return bool(cell_config(class_name, config).get("return_sequences", False))


def returns_state(class_name: str, config: Mapping) -> bool:
    return bool(cell_config(class_name, config).get("return_state", False))


def is_stateful(class_name: str, config: Mapping) -> bool:
    return bool(cell_config(class_name, config).get("stateful", False))


def state_names(class_name: str, config: Mapping) -> list[str]:
    """``h`` (and ``c`` for LSTM and the ConvLSTMs), prefixed ``forward_``/``backward_`` inside Bidirectional;
    [] for other layers.

    ``RNN`` around several cells (``StackedRNNCells``) has every cell's states in
    cell order, named ``cell0_h``, ``cell0_c``, ``cell1_h``… as Keras returns them.
    """
    cells = layer_cells(class_name, config)
    own_class = unwrap(class_name, config)[0] if is_bidirectional(class_name) else class_name
    if own_class in CONV_LSTMS:
        names = list(CONV_LSTM_STATES)
    elif len(cells) == 1:
        names = list(cells[0].states)
    else:
        names = [f"cell{i}_{name}" for i, cell in enumerate(cells) for name in cell.states]
    if is_bidirectional(class_name):
        return [f"{side}_{name}" for side in DIRECTIONS for name in names]
    return names


def n_states(class_name: str, config: Mapping) -> int:
    """How many final states a recurrent layer has (both directions for Bidirectional)."""
    return len(state_names(class_name, config))


def n_outputs(class_name: str, config: Mapping) -> int:
    """Output tensors before any states: two for ``Bidirectional(merge_mode=None)``, else one."""
    if is_bidirectional(class_name) and config.get("merge_mode", "concat") is None:
        return len(DIRECTIONS)
    return 1
