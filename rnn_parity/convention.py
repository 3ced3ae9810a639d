"""The calling convention of a user's implementation: the weights it receives and what it returns.

``function(x, *weights)``: :func:`calling_convention` lists the weights for a
spec in ``get_weights()`` order, with parameter names, shapes and what their
axes and gate blocks hold, derived from the same
:func:`~rnn_parity.architecture.layers_for` description the Keras model is
built from; :func:`expected_shapes` gives the shapes the function must return;
:func:`convention_report` is what ``rnn-parity explain --weights`` prints.
Pure Python (no NumPy, no TensorFlow).
"""

from __future__ import annotations

from dataclasses import dataclass

from .architecture import LayerDesc, layers_for
from .recurrent import CELL_KEYS, CELLS, DIRECTIONS
from .spec import CheckSpec

__all__ = [
    "ImplShapes",
    "WeightArg",
    "calling_convention",
    "convention_report",
    "expected_shapes",
    "impl_keywords",
    "shape_text",
    "signature_text",
    "state_names_text",
]


@dataclass(frozen=True)
class WeightArg:
    """One positional argument after ``x``.

    Attributes:
        position: 1 for the first weight (``x`` is 0).
        param: a parameter name for it, unique in the call (``Wx``, ``U_2``, ``W_fwd``).
        layer: the Keras layer it belongs to; name: Keras's weight name.
        shape: its shape for the chosen options; layout: what its axes and blocks hold.
    """

    position: int
    param: str
    layer: str
    name: str
    shape: tuple[int, ...]
    layout: str

    def to_dict(self) -> dict:
        return {
            "position": self.position,
            "param": self.param,
            "layer": self.layer,
            "name": self.name,
            "shape": list(self.shape),
            "layout": self.layout,
        }


def _blocks(cell: str, m: int) -> str:
    gates = CELLS[cell].gates
    if len(gates) == 1:
        return f"{m} units"
    return " | ".join(gates) + f", {m} each"


def _layout(layer: LayerDesc, name: str, shape: tuple[int, ...], d_in: int) -> str:
    """What the axes of one weight hold."""
    base = name.removeprefix("forward_").removeprefix("backward_")
    if layer.class_name == "Dense":
        if base == "kernel":
            both = " (forward, then backward)" if d_in == 2 else ""
            return f"rows: the {shape[0]} outputs of the last recurrent layer{both}; columns: {shape[1]} outputs"
        return f"{shape[0]} outputs"
    cell = layer.cell_class
    m = layer.cell_config["units"]
    if base == "kernel":
        return f"rows: {shape[0]} inputs; columns: {_blocks(cell, m)}"
    if base == "recurrent_kernel":
        return f"rows: {m} units; columns: {_blocks(cell, m)}"
    if len(shape) == 2:  # GRU with reset_after
        return f"row 0 goes with x·W, row 1 with h·U (inside r ⊙ (…) for h); columns: {_blocks(cell, m)}"
    return _blocks(cell, m)


def calling_convention(spec: CheckSpec) -> list[WeightArg]:
    """The weights ``function(x, *weights)`` receives for ``spec``, in ``get_weights()`` order."""
    layers = layers_for(spec)
    recurrent = [layer for layer in layers if layer.is_recurrent]
    args: list[WeightArg] = []
    for layer in layers:
        if not layer.weights:
            continue
        suffix = f"_{recurrent.index(layer) + 1}" if layer.is_recurrent and len(recurrent) > 1 else ""
        for w in layer.weights:
            side = ""
            if w.name.startswith("forward_"):
                side = "_fwd"
            elif w.name.startswith("backward_"):
                side = "_bwd"
            two_sided = layer.class_name == "Dense" and spec.bidirectional == "concat"
            args.append(
                WeightArg(
                    position=len(args) + 1,
                    param=f"{w.symbol}{suffix}{side}",
                    layer=layer.name,
                    name=w.name,
                    shape=w.shape,
                    layout=_layout(layer, w.name, w.shape, 2 if two_sided else 1),
                )
            )
    return args


def impl_keywords(spec: CheckSpec) -> list[str]:
    """The keyword arguments a function must accept for ``spec`` (``initial_state`` serves both options)."""
    return ["initial_state"] if spec.initial_state or spec.stateful else []


def signature_text(spec: CheckSpec, name: str = "my_rnn") -> str:
    """``def my_rnn(x, Wx, Wh, bh, Wo, bo):`` for ``spec``."""
    params = ["x", *(w.param for w in calling_convention(spec))]
    keywords = impl_keywords(spec)
    if keywords:
        params += ["*", *(f"{k}=None" for k in keywords)]
    return f"def {name}({', '.join(params)}):"


def convention_report(spec: CheckSpec, name: str = "my_rnn") -> dict:
    """The calling convention for ``spec`` as plain data: what ``explain --weights`` prints."""
    shapes = expected_shapes(spec)
    out = shapes.output[0] if isinstance(shapes.output, list) else shapes.output
    hidden = shapes.hidden[0] if isinstance(shapes.hidden, list) else shapes.hidden
    two = " (a list of two: forward, backward)" if isinstance(shapes.output, list) else ""
    returns = [
        f"output {shapes.output_axes} = {shape_text(out)}{two}",
        f"optional, in a dict {{'output': …, 'hidden': …}}: hidden (N, T, M) = {shape_text(hidden)}{two}, "
        "the last recurrent layer at every step" + (" (processing order)" if spec.go_backwards else ""),
    ]
    if spec.return_state or spec.stateful:
        returns.append(
            f"required: 'states' = [{state_names_text(spec)}]" + (", one list per layer" if len(spec.M) > 1 else "")
        )
    keywords = []
    if spec.initial_state:
        keywords.append(
            f"initial_state=[{state_names_text(spec)}]"
            + (" per layer, a list of lists" if len(spec.M) > 1 else "")
            + ": the start states, each (N, M)"
        )
    if spec.stateful:
        keywords.append("initial_state: the 'states' returned for the previous batch (None for the first)")
    return {
        "signature": signature_text(spec, name),
        "x": f"x (N, T, D) = {shape_text((spec.N, spec.T, spec.D))}, float32 (float64 with --impl-dtype float64)",
        "weights": [w.to_dict() for w in calling_convention(spec)],
        "keywords": keywords,
        "returns": returns,
    }


@dataclass(frozen=True)
class ImplShapes:
    """What the function must return for a spec: ``output`` (a list of two shapes with
    ``bidirectional="none"``), the optional ``hidden``, and ``states`` per recurrent layer."""

    output: tuple | list[tuple]
    hidden: tuple | list[tuple]
    states: list[list[tuple]]
    output_axes: str


def expected_shapes(spec: CheckSpec) -> ImplShapes:
    n, t, k = spec.N, spec.T, spec.K
    out = (n, t, k) if spec.return_sequences else (n, k)
    axes = "(N, T, K)" if spec.return_sequences else "(N, K)"
    m = spec.M[-1]
    width = 2 * m if spec.bidirectional == "concat" else m
    two = spec.bidirectional == "none"
    per_direction = len(CELLS[CELL_KEYS[spec.cell]].states)
    directions = len(DIRECTIONS) if spec.bidirectional else 1
    states = [[(n, units)] * (per_direction * directions) for units in spec.M]
    return ImplShapes(
        output=[out, out] if two else out,
        hidden=[(n, t, m), (n, t, m)] if two else (n, t, width),
        states=states,
        output_axes=axes,
    )


def shape_text(shape) -> str:
    return "(" + ", ".join(map(str, shape)) + (",)" if len(shape) == 1 else ")")


def state_names_text(spec: CheckSpec) -> str:
    names = list(CELLS[CELL_KEYS[spec.cell]].states)
    if spec.bidirectional:
        names = [f"{side} {n}" for side in DIRECTIONS for n in names]
    return ", ".join(names)
