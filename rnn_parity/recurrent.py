"""Facts about Keras's recurrent layers, in one table the whole package reads.

One :class:`Cell` entry per recurrent layer class (SimpleRNN, LSTM, GRU): its
states and their names, its gate blocks in Keras's column order, the weight
symbols the course notebook uses, and the options only it takes. Around them,
the wrappers: ``Bidirectional`` runs a cell both ways; ``TimeDistributed``
applies a per-step layer to every timestep. Keras drives its own state
handling from a cell's ``state_size`` the same way.

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
    "DIRECTIONS",
    "TIME_DISTRIBUTED",
    "MERGE_MODES",
    "RECURRENT_LIKE",
    "WRAPPERS",
    "Cell",
    "cell_config",
    "cell_of",
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
#: What counts as "a recurrent layer" when deciding whether rnn-parity applies to a model at all
#: (``RNN`` around a cell and the convolutional LSTMs are recurrent, but not supported).
RECURRENT_LIKE = frozenset(CELLS) | {"RNN", "ConvLSTM1D", "ConvLSTM2D", "ConvLSTM3D"}


def is_bidirectional(class_name: str) -> bool:
    return class_name == BIDIRECTIONAL


def is_recurrent(class_name: str) -> bool:
    """A layer that runs a cell over time: SimpleRNN, LSTM, GRU, or Bidirectional around one."""
    return class_name in CELLS or class_name == BIDIRECTIONAL


def unwrap(class_name: str, config: Mapping) -> tuple[str, Mapping]:
    """The wrapped layer's class and config inside a wrapper, else the layer's own."""
    if class_name in WRAPPERS:
        inner = config["layer"]
        return inner["class_name"], inner.get("config", {})
    return class_name, config


def cell_of(class_name: str, config: Mapping) -> Cell | None:
    """The cell a recurrent layer runs (also inside Bidirectional), or None for any other layer."""
    if not is_recurrent(class_name):
        return None
    return CELLS.get(unwrap(class_name, config)[0])


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
    """``h`` (and ``c`` for LSTM), prefixed ``forward_``/``backward_`` inside Bidirectional; [] for other layers."""
    cell = cell_of(class_name, config)
    if cell is None:
        return []
    if is_bidirectional(class_name):
        return [f"{side}_{name}" for side in DIRECTIONS for name in cell.states]
    return list(cell.states)


def n_states(class_name: str, config: Mapping) -> int:
    """How many final states a recurrent layer has (both directions for Bidirectional)."""
    return len(state_names(class_name, config))


def n_outputs(class_name: str, config: Mapping) -> int:
    """Output tensors before any states: two for ``Bidirectional(merge_mode=None)``, else one."""
    if is_bidirectional(class_name) and config.get("merge_mode", "concat") is None:
        return len(DIRECTIONS)
    return 1
