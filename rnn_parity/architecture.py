"""The model a check builds, described once for both sides.

:func:`layers_for` turns a :class:`~rnn_parity.spec.CheckSpec` into a list of
:class:`LayerDesc`: Keras class names and Keras ``get_config()`` keys, the
weights with their names and shapes, and the parameter count by formula. The
Keras runner builds real layers from it; the NumPy runtime executes it.
Pure Python: no NumPy, no TensorFlow.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .recurrent import BIDIRECTIONAL, CELL_KEYS, CELLS, DIRECTIONS, cell_config, cell_of, is_bidirectional, is_recurrent
from .spec import CheckSpec

__all__ = [
    "LayerDesc",
    "WeightDesc",
    "last_recurrent",
    "layers_for",
    "recurrent_weights",
    "sequence_twin",
]


@dataclass(frozen=True)
class WeightDesc:
    """One weight array: Keras's name, the notebook's symbol, its shape."""

    name: str
    symbol: str
    shape: tuple[int, ...]

    @property
    def size(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n


@dataclass(frozen=True)
class LayerDesc:
    """One layer: ``class_name`` and ``config`` use Keras's names."""

    name: str
    class_name: str
    config: dict
    weights: tuple[WeightDesc, ...] = field(default=())

    @property
    def param_count(self) -> int:
        return sum(w.size for w in self.weights)

    @property
    def is_recurrent(self) -> bool:
        return is_recurrent(self.class_name)

    @property
    def is_bidirectional(self) -> bool:
        return is_bidirectional(self.class_name)

    @property
    def cell_class(self) -> str | None:
        """SimpleRNN/LSTM/GRU for a recurrent layer, also inside Bidirectional."""
        cell = cell_of(self.class_name, self.config)
        return cell.class_name if cell else None

    @property
    def cell_config(self) -> dict:
        return cell_config(self.class_name, self.config)

    def options(self) -> dict:
        """The options worth showing: everything but the units."""
        cfg = {k: v for k, v in self.cell_config.items() if k != "units"}
        if self.is_bidirectional:
            cfg["merge_mode"] = self.config["merge_mode"]
        return cfg


def recurrent_weights(
    class_name: str, d: int, m: int, *, use_bias: bool, reset_after: bool = True, prefix: str = ""
) -> tuple[WeightDesc, ...]:
    """Weight names and shapes of one recurrent layer, in ``get_weights()`` order."""
    cell = CELLS[class_name]
    g, (kernel, recurrent_kernel, bias) = cell.n_gates, cell.symbols
    weights = [
        WeightDesc(prefix + "kernel", kernel, (d, g * m)),
        WeightDesc(prefix + "recurrent_kernel", recurrent_kernel, (m, g * m)),
    ]
    if use_bias:
        # GRU's reset_after keeps an input and a recurrent bias: two rows.
        two_rows = "reset_after" in cell.options and reset_after
        weights.append(WeightDesc(prefix + "bias", bias, (2, g * m) if two_rows else (g * m,)))
    return tuple(weights)


def layers_for(spec: CheckSpec) -> list[LayerDesc]:
    """The layers of the check model, input to output (the Input layer is implicit)."""
    layers: list[LayerDesc] = []
    if spec.mask != "none":
        layers.append(LayerDesc(name="masking", class_name="Masking", config={"mask_value": 0.0}))
    class_name = CELL_KEYS[spec.cell]
    cell_options = {
        "recurrent_activation": spec.gate_activation,
        "unit_forget_bias": spec.unit_forget_bias,
        "reset_after": spec.reset_after,
    }
    d = spec.D
    for i, m in enumerate(spec.M):
        last = i == len(spec.M) - 1
        cfg = {
            "units": m,
            "activation": spec.activation,
            "use_bias": spec.use_bias,
            "return_sequences": spec.return_sequences or not last,
            "return_state": spec.return_state and last,
            "go_backwards": spec.go_backwards,
            "stateful": spec.stateful,
            "unroll": spec.unroll,
        }
        cfg.update({key: cell_options[key] for key in CELLS[class_name].options})
        name = f"{spec.cell}_{i + 1}" if len(spec.M) > 1 else spec.cell
        weights = recurrent_weights(class_name, d, m, use_bias=spec.use_bias, reset_after=spec.reset_after)
        if spec.bidirectional:
            merge = None if spec.bidirectional == "none" else spec.bidirectional
            both = tuple(WeightDesc(f"{side}_{w.name}", w.symbol, w.shape) for side in DIRECTIONS for w in weights)
            layers.append(
                LayerDesc(
                    name=f"bidirectional_{name}",
                    class_name=BIDIRECTIONAL,
                    config={"merge_mode": merge, "layer": {"class_name": class_name, "config": cfg}},
                    weights=both,
                )
            )
            d = 2 * m if merge == "concat" else m
        else:
            layers.append(LayerDesc(name=name, class_name=class_name, config=cfg, weights=weights))
            d = m
    weights = (WeightDesc("kernel", "Wo", (d, spec.K)), WeightDesc("bias", "bo", (spec.K,)))
    dense = {"units": spec.K, "activation": "linear", "use_bias": True}
    layers.append(LayerDesc(name="dense", class_name="Dense", config=dense, weights=weights))
    return layers


def last_recurrent(layers: list[LayerDesc]) -> LayerDesc:
    """The last recurrent layer: the one whose output over time the diagnostics follow."""
    return [layer for layer in layers if layer.is_recurrent][-1]


def sequence_twin(layers: list[LayerDesc]) -> LayerDesc | None:
    """A copy of the last recurrent layer that returns every timestep, or None if it already does.

    It shares the layer's weights, so its sequence is the layer's output at
    every step: what the time diagnostics compare.
    """
    layer = last_recurrent(layers)
    if layer.cell_config.get("return_sequences"):
        return None
    cell_cfg = {**layer.cell_config, "return_sequences": True, "return_state": False}
    config = (
        {**layer.config, "layer": {**layer.config["layer"], "config": cell_cfg}} if layer.is_bidirectional else cell_cfg
    )
    return LayerDesc(name=f"{layer.name}_sequence", class_name=layer.class_name, config=config, weights=layer.weights)
