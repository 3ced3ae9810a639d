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
from .checker import CheckResult
from .recurrent import CELLS, DIRECTIONS

__all__ = ["Explanation", "GradientStory", "LayerStory", "explain", "explain_gradients", "equations", "param_formula"]


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


# --------------------------------------------------------------------------
# explain --gradients: backpropagation through time, told the same way.
# --------------------------------------------------------------------------


def _bptt_equations(cell: str, cfg: dict) -> list[str]:
    """One step of BPTT for ``cell``, newest step first; δ_t is the gradient of the pre-activations."""
    phi = cfg.get("activation", "tanh")
    sigma = cfg.get("recurrent_activation", "sigmoid")
    reach = "dL/dh_t = ∂L/∂output_t + δ_(t+1)·{U}ᵀ{extra}   what reaches h_t: its output and the next step"
    if cell == "SimpleRNN":
        return [
            reach.format(U="Wh", extra=""),
            f"δ_t = dL/dh_t ⊙ {phi}'(a_t),   a_t = x_t·Wx + h_(t-1)·Wh + bh",
            "dWx = Σ_t x_tᵀ·δ_t;   dWh = Σ_t h_(t-1)ᵀ·δ_t;   dbh = Σ_t Σ_batch δ_t",
            "dL/dx_t = δ_t·Wxᵀ;   dL/dh_0 = δ_0·Whᵀ (first processed step)",
            f"each step multiplies by Whᵀ and {phi}': repeated, that shrinks (vanishing) or grows (exploding)",
        ]
    if cell == "LSTM":
        return [
            reach.format(U="U", extra=""),
            f"do_t = dL/dh_t ⊙ {phi}(c_t)",
            f"dc_t = dL/dc_t + dL/dh_t ⊙ o_t ⊙ {phi}'(c_t)   dL/dc_t comes from step t+1",
            "di_t = dc_t ⊙ c~_t;   df_t = dc_t ⊙ c_(t-1);   dc~_t = dc_t ⊙ i_t",
            "dL/dc_(t-1) = dc_t ⊙ f_t   the carried cell state: a path without a weight matrix",
            f"δ_t = [di_t ⊙ {sigma}', df_t ⊙ {sigma}', dc~_t ⊙ {phi}', do_t ⊙ {sigma}']   blocks i, f, c, o",
            "dW = Σ_t x_tᵀ·δ_t;   dU = Σ_t h_(t-1)ᵀ·δ_t;   db = Σ_t Σ_batch δ_t;   dL/dx_t = δ_t·Wᵀ",
        ]
    common = [
        reach.format(U="U", extra=" + dL/dh_(t+1) ⊙ z_(t+1)"),
        "dz_t = dL/dh_t ⊙ (h_(t-1) - h~_t);   dh~_t = dL/dh_t ⊙ (1 - z_t);   dL/dh_(t-1) gets dL/dh_t ⊙ z_t",
        f"δh_t = dh~_t ⊙ {phi}'(·)   (h~'s pre-activation)",
    ]
    if cfg.get("reset_after", True):
        return common + [
            "dr_t = δh_t ⊙ (h_(t-1)·U_h + b_rec_h)   reset after the product",
            f"δz_t, δr_t = dz_t ⊙ {sigma}'(·), dr_t ⊙ {sigma}'(·)",
            "dU = Σ_t h_(t-1)ᵀ·[δz_t, δr_t, δh_t ⊙ r_t];   db[1] = Σ [δz_t, δr_t, δh_t ⊙ r_t]",
            "dW = Σ_t x_tᵀ·[δz_t, δr_t, δh_t];   db[0] = Σ [δz_t, δr_t, δh_t];   dL/dx_t = [δz_t, δr_t, δh_t]·Wᵀ",
        ]
    return common + [
        "dU_h = Σ_t (r_t ⊙ h_(t-1))ᵀ·δh_t;   dr_t = (δh_t·U_hᵀ) ⊙ h_(t-1)   reset before the product",
        f"δz_t, δr_t = dz_t ⊙ {sigma}'(·), dr_t ⊙ {sigma}'(·);   dU_zr = Σ_t h_(t-1)ᵀ·[δz_t, δr_t]",
        "dW = Σ_t x_tᵀ·[δz_t, δr_t, δh_t];   db = Σ [δz_t, δr_t, δh_t];   dL/dx_t = [δz_t, δr_t, δh_t]·Wᵀ",
    ]


@dataclass(frozen=True)
class GradientStory:
    """``explain --gradients``: the BPTT equations, every gradient's shape, dL/dh_t step by step."""

    loss: str
    equations: list[tuple[str, list[str]]]  # (layer, lines)
    gradients: list[dict]  # name, shape, max |diff|, passed
    steps: list[dict | None]  # t, numpy, keras ‖dL/dh_t‖, ratio to the step after; None marks a gap
    step_note: str


def explain_gradients(result: CheckResult, max_steps: int = 20) -> GradientStory:
    """Tell the gradients of ``result`` (from a check with ``gradients``) step by step."""
    g = result.gradients
    equations_by_layer = []
    for layer in result.layers:
        desc = layer.desc
        if not desc.is_recurrent:
            continue
        lines = _bptt_equations(desc.cell_class, desc.cell_config)
        if result.spec.mask != "none":
            lines.append("masked step: dL/dh passes to h_(t-1) unchanged; the cell's step receives none")
        if desc.is_bidirectional:
            lines.insert(0, "each direction on its own, the merged output's gradient split by merge_mode:")
        equations_by_layer.append((desc.name, lines))
    gradients = [
        {
            "name": name,
            "shape": list(entry.comparison.shape),
            "max_abs_diff": entry.comparison.max_abs_diff,
            "passed": entry.passed,
        }
        for name, entry in g.parity.arrays.items()
    ]
    steps: list[dict | None] = []
    norms = g.steps
    if norms is not None:
        count = len(norms.reference)
        order: list[int | None] = list(range(count))
        if count > max_steps:
            order = order[: max_steps - 5] + [None] + order[-5:]
        for k in order:
            if k is None:
                steps.append(None)
                continue
            later = norms.reference[k + 1] if k + 1 < count else None
            steps.append(
                {
                    "t": k,
                    "numpy": norms.reference[k],
                    "keras": None if norms.keras is None else norms.keras[k],
                    "ratio": (norms.reference[k] / later) if later else None,
                }
            )
    note = "" if norms is None else f"‖dL/dh_t‖ over batch and units, layer {norms.layer}, processing order"
    if norms is not None and norms.keras is None:
        note += "; Keras's side is not probed in a Bidirectional layer"
    return GradientStory(
        loss=f"L = Σ G·y, G ~ N(0, 1) drawn from seed {result.spec.seed}, one weight per output element",
        equations=equations_by_layer,
        gradients=gradients,
        steps=steps,
        step_note=note,
    )
