"""``rnn-parity explain``: the check, told step by step for a learner.

For every layer: the equations it computes, with its weights' names and shapes,
and its parameter count derived by formula beside Keras's ``count_params()``;
then, for the first sample, the state at every timestep from NumPy and from
Keras, side by side: what the course notebook did by hand, done right.
Pure data; :mod:`rnn_parity.render` draws it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .architecture import LayerDesc
from .check import CheckResult
from .recurrent import CELLS, DIRECTIONS

__all__ = ["Explanation", "LayerStory", "explain", "equations", "param_formula"]


@dataclass(frozen=True)
class LayerStory:
    name: str
    class_name: str
    equations: list[str]
    weights: list[str]
    formula: str
    params_formula: int
    params_keras: int


@dataclass(frozen=True)
class Explanation:
    layers: list[LayerStory]
    steps: list[dict]  # t, x_t, numpy h_t, keras h_t, max |diff|
    step_note: str
    result: CheckResult


def _cell_equations(cell: str, cfg: dict) -> list[str]:
    phi = cfg.get("activation", "tanh")
    sigma = cfg.get("recurrent_activation", "sigmoid")
    bias = cfg.get("use_bias", True)
    b = lambda name: f" + {name}" if bias else ""
    gates = CELLS[cell].gates
    count = {3: "three", 4: "four"}.get(len(gates), str(len(gates)))
    blocks = f"W, U and b hold {count} column blocks in Keras's order {', '.join(gates)}"
    if cell == "SimpleRNN":
        return [f"h_t = {phi}(x_t·Wx + h_(t-1)·Wh{b('bh')})", "output_t = h_t"]
    if cell == "LSTM":
        gate = lambda g, act: f"{g}_t = {act}(x_t·W_{g} + h_(t-1)·U_{g}{b('b_' + g)})"
        return [
            blocks,
            gate("i", sigma) + "      input gate",
            gate("f", sigma) + "      forget gate",
            f"c~_t = {phi}(x_t·W_c + h_(t-1)·U_c{b('b_c')})   candidate",
            gate("o", sigma) + "      output gate",
            "c_t = f_t ⊙ c_(t-1) + i_t ⊙ c~_t",
            f"h_t = o_t ⊙ {phi}(c_t)",
        ]
    if cfg.get("reset_after", True):
        bx, bh = (" + b_in", " + b_rec") if bias else ("", "")
        return [
            blocks + ("; bias row 0 is for the input (b_in), row 1 for the recurrent product (b_rec)" if bias else ""),
            f"z_t = {sigma}(x_t·W_z{bx}_z + h_(t-1)·U_z{bh}_z)   update gate",
            f"r_t = {sigma}(x_t·W_r{bx}_r + h_(t-1)·U_r{bh}_r)   reset gate",
            f"h~_t = {phi}(x_t·W_h{bx}_h + r_t ⊙ (h_(t-1)·U_h{bh}_h))   reset after the product",
            "h_t = z_t ⊙ h_(t-1) + (1 - z_t) ⊙ h~_t   (z weighs the old state)",
        ]
    return [
        blocks,
        f"z_t = {sigma}(x_t·W_z + h_(t-1)·U_z{b('b_z')})   update gate",
        f"r_t = {sigma}(x_t·W_r + h_(t-1)·U_r{b('b_r')})   reset gate",
        f"h~_t = {phi}(x_t·W_h + (r_t ⊙ h_(t-1))·U_h{b('b_h')})   reset before the product",
        "h_t = z_t ⊙ h_(t-1) + (1 - z_t) ⊙ h~_t   (z weighs the old state)",
    ]


def _sequence_notes(cfg: dict) -> list[str]:
    notes = []
    if cfg.get("go_backwards"):
        notes.append("go_backwards: reads t = T-1 … 0; a returned sequence stays in that processing order")
    if cfg.get("stateful"):
        notes.append("stateful: h_0 of a batch is the last state of the previous batch")
    notes.append("output: every h_t (return_sequences)" if cfg.get("return_sequences") else "output: the last h_t")
    if cfg.get("return_state"):
        notes.append("return_state: the final state(s) are returned too")
    return notes


def equations(desc: LayerDesc) -> list[str]:
    """The layer's computation, one equation per line, with Keras's names."""
    if desc.class_name == "Masking":
        return [
            f"m_t = any(x_t ≠ {desc.config['mask_value']})   True marks a real step",
            "x_t = x_t · m_t; at a masked step a recurrent layer keeps h_(t-1) and repeats its last output",
        ]
    if desc.class_name == "Dense":
        act = desc.config.get("activation") or "linear"
        wrap = (lambda e: e) if act == "linear" else (lambda e: f"{act}({e})")
        return [f"y = {wrap('h·Wo + bo')}   applied to every timestep of a 3-D input"]
    if desc.is_bidirectional:
        cell, cfg = desc.cell_class, desc.cell_config
        merge = desc.config["merge_mode"]
        merged = {
            "concat": "[h→_t, h←_t] (forward first)",
            "sum": "h→_t + h←_t",
            "mul": "h→_t ⊙ h←_t",
            "ave": "(h→_t + h←_t) / 2",
            None: "two outputs: h→_t and h←_t",
        }[merge]
        return (
            [f"forward ({cell}, weights forward_*): reads t = 0 … T-1:"]
            + [f"    {line}" for line in _cell_equations(cell, cfg)]
            + [
                f"backward ({cell}, weights backward_*): the same equations reading t = T-1 … 0, "
                "its sequence flipped back to input order",
                f"output_t = {merged}",
                *(
                    ["masked steps output zeros in both directions (return_sequences)"]
                    if cfg.get("return_sequences")
                    else []
                ),
            ]
            + _sequence_notes(cfg)[1:]
        )
    return _cell_equations(desc.class_name, desc.config) + _sequence_notes(desc.config)


def param_formula(desc: LayerDesc) -> str:
    """The parameter count as a formula and its value, e.g. ``D·M + M² + M = 3·5 + 5² + 5 = 45``."""
    if not desc.weights:
        return "no weights = 0"
    if desc.class_name == "Dense":
        m, k = desc.weights[0].shape
        return f"M·K + K = {m}·{k} + {k} = {desc.param_count}"
    d, gm = desc.weights[0].shape
    m = desc.weights[1].shape[0]
    g = gm // m
    directions = len(DIRECTIONS) if desc.is_bidirectional else 1
    bias = len(desc.weights) > 2 * directions
    gru2 = desc.cell_config.get("reset_after", False) and bias  # GRU's two bias rows
    gate = "" if g == 1 else f"{g}·"
    if gru2:
        terms, numbers = "(D·M + M² + 2M)", f"({d}·{m} + {m}² + 2·{m})"
    elif bias:
        terms, numbers = "(D·M + M² + M)", f"({d}·{m} + {m}² + {m})"
    else:
        terms, numbers = "(D·M + M²)", f"({d}·{m} + {m}²)"
    twice = f"{directions}·" if directions > 1 else ""
    if not gate and not twice:
        terms, numbers = terms[1:-1], numbers[1:-1]
    return f"{twice}{gate}{terms} = {twice}{gate}{numbers} = {desc.param_count}"


def _vector(values, limit: int = 3) -> str:
    shown = " ".join(f"{float(v):+.3f}" for v in values[:limit])
    return f"[{shown}{' …' if len(values) > limit else ''}]"


def explain(result: CheckResult, max_steps: int = 20) -> Explanation:
    """Tell ``result`` (from ``run_check(..., keep_sequences=True)``) step by step."""
    stories = [
        LayerStory(
            layer.desc.name,
            layer.desc.class_name,
            equations(layer.desc),
            [f"{w.symbol} = {w.name} {'×'.join(map(str, w.shape))}" for w in layer.desc.weights],
            param_formula(layer.desc),
            layer.desc.param_count,
            layer.keras_params,
        )
        for layer in result.layers
    ]
    seq = result.sequences
    keras_seq = (
        np.stack(seq["keras"], -1).reshape(*np.shape(seq["keras"][0])[:2], -1)
        if isinstance(seq["keras"], list)
        else np.asarray(seq["keras"])
    )
    ref_seq = (
        np.stack(seq["reference"], -1).reshape(*np.shape(seq["reference"][0])[:2], -1)
        if isinstance(seq["reference"], list)
        else np.asarray(seq["reference"])
    )
    x = np.asarray(seq["x"])
    timesteps = x.shape[1]
    backwards = result.spec.go_backwards and not result.spec.bidirectional
    order = list(range(timesteps))
    if timesteps > max_steps:
        head = max_steps - 5
        order = order[:head] + [None] + order[-5:]
    steps = []
    for k in order:
        if k is None:
            steps.append(None)
            continue
        t_in = timesteps - 1 - k if backwards else k
        h_np, h_k = ref_seq[0, k], keras_seq[0, k]
        with np.errstate(invalid="ignore"):
            diff = float(np.max(np.abs(h_np.astype(np.float64) - h_k.astype(np.float64))))
        masked = result.spec.mask != "none" and not np.any(x[0, t_in])
        steps.append(
            {
                "t": k,
                "input_step": t_in,
                "x_t": "masked" if masked else _vector(x[0, t_in]),
                "numpy": _vector(h_np),
                "keras": _vector(h_k),
                "diff": diff,
            }
        )
    note = f"sample 0, layer {result.time.layer}"
    if len(result.spec.M) > 1:
        note += " (the last of the stack; x_t is the model's input)"
    if backwards:
        note += "; go_backwards: step k reads input step T-1-k"
    return Explanation(stories, steps, note, result)
