"""Known mistakes in hand-written recurrent networks, to name the one a failing implementation made.

Each :class:`Mistake` is a small function that takes the check's :class:`Setup`
(layers, weights, inputs, start states) and computes, with the NumPy reference,
the output a loop making that mistake produces: by changing the weights (a
transposed kernel, gate blocks in another order, a missing bias), the layer
options (Keras 2's ``hard_sigmoid``, the GRU's reset placement), the steps read
(one short, one long) or how the output is read off the sequence. None of them
is a special case inside the reference's loop.

:func:`suspects` runs every mistake that applies to the setup and keeps those
whose output matches the user's within the check's own tolerance, closest first.
When none does, the list is empty: the tool never guesses.

NumPy only (the reference and the NumPy runtime).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from . import reference
from .architecture import LayerDesc, last_recurrent
from .compare import compare
from .recurrent import CELLS
from .runtime import SequentialRuntime
from .spec import CheckSpec

__all__ = ["MISTAKES", "Mistake", "Setup", "Suspect", "forward", "match_mistakes", "suspects"]

#: What a learner calls each gate block (the blocks and their order are :data:`~rnn_parity.recurrent.CELLS`').
GATE_WORDS = {
    "LSTM": {"i": "input", "f": "forget", "c": "cell", "o": "output"},
    "GRU": {"z": "update", "r": "reset", "h": "candidate"},
}


@dataclass(frozen=True)
class Setup:
    """One check's model and data, as the reference runs them.

    Attributes:
        spec: the options.
        layers: the model, input to output (:func:`~rnn_parity.architecture.layers_for`).
        weights: layer name → arrays in ``get_weights()`` order.
        batches: one ``(N, T, D)`` input per call; the last one's output is compared.
        initial_states: recurrent layer name → start states.
    """

    spec: CheckSpec
    layers: tuple[LayerDesc, ...]
    weights: Mapping[str, Sequence[np.ndarray]]
    batches: tuple[np.ndarray, ...]
    initial_states: Mapping[str, Sequence[np.ndarray]]


def forward(setup: Setup, dtype: str = "float64"):
    """The model's output on the last batch, computed by the reference (a list with ``merge_mode=None``)."""
    runtime = SequentialRuntime(setup.layers, setup.weights, dtype=dtype, explicit_masks=True)
    with np.errstate(all="ignore"):
        for x in setup.batches:
            trace = runtime.run(x, initial_states=setup.initial_states)
    return trace.output


@dataclass(frozen=True)
class Mistake:
    """``apply(setup)`` is the output of a loop with this mistake, or None where it cannot occur.

    ``text`` completes "your output matches the reference with …".
    """

    id: str
    text: str
    apply: Callable[[Setup], object]


@dataclass(frozen=True)
class Suspect:
    """A mistake whose output matches the user's; ``equivalent``: others giving the same numbers on this case."""

    id: str
    mistake: str
    max_abs_diff: float
    equivalent: tuple[Mistake, ...] = ()

    @property
    def text(self) -> str:
        """The mistake, and the ones this case cannot tell from it."""
        if not self.equivalent:
            return self.mistake
        return f"{self.mistake} (or, the same numbers here: {'; '.join(m.text for m in self.equivalent)})"

    def to_dict(self) -> dict:
        return {
            "mistake": self.text,
            "id": self.id,
            "max_abs_diff": self.max_abs_diff,
            "equivalent": [m.id for m in self.equivalent],
        }


# --------------------------------------------------------------------------
# Small tools the mistakes are written with.
# --------------------------------------------------------------------------


def _recurrent(setup: Setup) -> list[LayerDesc]:
    return [layer for layer in setup.layers if layer.is_recurrent]


def _with_weights(setup: Setup, change: Callable[[LayerDesc, str, np.ndarray], np.ndarray | None], *, dense=False):
    """The setup with each recurrent weight (or the Dense's) replaced by ``change(layer, name, w)``
    (``name`` without the ``forward_``/``backward_`` prefix); None keeps it. None if nothing changed."""
    weights, changed = dict(setup.weights), False
    for layer in setup.layers:
        if not (layer.class_name == "Dense" if dense else layer.is_recurrent):
            continue
        arrays = []
        for desc, w in zip(layer.weights, setup.weights[layer.name]):
            name = desc.name.removeprefix("forward_").removeprefix("backward_")
            new = change(layer, name, np.asarray(w))
            changed |= new is not None
            arrays.append(w if new is None else new)
        weights[layer.name] = arrays
    return replace(setup, weights=weights) if changed else None


def _cell_config(layer: LayerDesc, **changes) -> LayerDesc:
    if layer.class_name == "Bidirectional":
        inner = {**layer.config["layer"], "config": {**layer.config["layer"]["config"], **changes}}
        return replace(layer, config={**layer.config, "layer": inner})
    return replace(layer, config={**layer.config, **changes})


def _with_cells(setup: Setup, change: Callable[[LayerDesc], dict | None]) -> Setup | None:
    """The setup with each recurrent layer's config updated by ``change(layer)``; None if none changed."""
    layers, changed = [], False
    for layer in setup.layers:
        updates = change(layer) if layer.is_recurrent else None
        changed |= bool(updates)
        layers.append(_cell_config(layer, **updates) if updates else layer)
    return replace(setup, layers=tuple(layers)) if changed else None


def _run(setup: Setup | None):
    return None if setup is None else forward(setup)


def _gates(layer: LayerDesc) -> int:
    return CELLS[layer.cell_class].n_gates


def _blocks(w: np.ndarray, g: int) -> list[np.ndarray]:
    return np.split(w, g, axis=-1)


def _one_direction(setup: Setup) -> bool:
    return not setup.spec.bidirectional


def _pad_steps(y, steps: int, at_end: bool):
    """A returned sequence with ``steps`` zero rows where an unfilled output array keeps zeros."""
    if isinstance(y, list):
        return [_pad_steps(part, steps, at_end) for part in y]
    zeros = np.zeros((y.shape[0], steps, y.shape[2]), dtype=y.dtype)
    return np.concatenate([y, zeros] if at_end else [zeros, y], axis=1)


# --------------------------------------------------------------------------
# Weights.
# --------------------------------------------------------------------------


def _transposed_recurrent_kernel(setup):
    def change(layer, name, w):
        if name == "recurrent_kernel":
            return np.concatenate([b.T for b in _blocks(w, _gates(layer))], axis=-1)
        return None

    return _run(_with_weights(setup, change))


def _transposed_kernel(setup):
    def change(layer, name, w):
        blocks = _blocks(w, _gates(layer))
        if name == "kernel" and blocks[0].shape[0] == blocks[0].shape[1]:
            return np.concatenate([b.T for b in blocks], axis=-1)
        return None

    return _run(_with_weights(setup, change))


def _kernels_exchanged(setup):
    weights = dict(setup.weights)
    changed = False
    for layer in _recurrent(setup):
        arrays = list(setup.weights[layer.name])
        names = [w.name for w in layer.weights]
        for prefix in ("forward_", "backward_") if layer.class_name == "Bidirectional" else ("",):
            k, u = names.index(prefix + "kernel"), names.index(prefix + "recurrent_kernel")
            if arrays[k].shape == arrays[u].shape:
                arrays[k], arrays[u] = arrays[u], arrays[k]
                changed = True
        weights[layer.name] = arrays
    return forward(replace(setup, weights=weights)) if changed else None


def _bias(scale: float, row: int | None = None):
    """The recurrent bias times ``scale`` (only ``row`` of a GRU's two-row bias, when given)."""

    def apply(setup):
        def change(layer, name, w):
            if name != "bias":
                return None
            if row is None:
                return w * scale
            if w.ndim != 2:
                return None
            out = w.copy()
            out[row] *= scale
            return out

        return _run(_with_weights(setup, change))

    return apply


def _dense_no_bias(setup):
    return _run(_with_weights(setup, lambda layer, name, w: np.zeros_like(w) if name == "bias" else None, dense=True))


def _gate_order(cell: str, perm: tuple[int, ...]):
    """The gate blocks read in order ``perm``: the block a loop uses as gate k is Keras's block perm[k]."""

    def apply(setup):
        if _recurrent(setup)[0].cell_class != cell:
            return None

        def change(layer, name, w):
            blocks = _blocks(w, _gates(layer))
            return np.concatenate([blocks[p] for p in perm], axis=-1)

        return _run(_with_weights(setup, change))

    return apply


def _written(perm: tuple[int, ...]) -> tuple[int, ...]:
    """The order a loop names the blocks in (``f, i, c, o = split(z, 4)``): the inverse of ``perm``."""
    written = [0] * len(perm)
    for gate, block in enumerate(perm):
        written[block] = gate
    return tuple(written)


def _gate_letters(cell: str, perm: tuple[int, ...]) -> str:
    return "".join(CELLS[cell].gates[g] for g in _written(perm))


def _gate_text(cell: str, perm: tuple[int, ...]) -> str:
    gates = CELLS[cell].gates
    moved = [k for k, p in enumerate(perm) if p != k]
    if len(moved) == 2:
        a, b = (GATE_WORDS[cell][gates[k]] for k in moved)
        return f"the {a} and {b} gates swapped"
    order = ", ".join(_gate_letters(cell, perm))
    return f"the gate blocks read in the order {order} (Keras's is {', '.join(gates)})"


# --------------------------------------------------------------------------
# Cell formulas.
# --------------------------------------------------------------------------


#: The gate block each cell passes through ``activation`` (the rest go through ``recurrent_activation``).
_CANDIDATE_BLOCK = {"SimpleRNN": 0, "LSTM": 2, "GRU": 2}


def _keras2_hard_sigmoid(setup):
    """Keras 2's ``hard_sigmoid(z) = clip(0.2z + 0.5, 0, 1)`` is Keras 3's ``relu6(1.2z + 3) / 6``: the
    reference with the weights of every block that goes through it scaled by 1.2."""
    factors = {}
    for layer in _recurrent(setup):
        cfg, cell = layer.cell_config, layer.cell_class
        act, gate = cfg.get("activation") == "hard_sigmoid", cfg.get("recurrent_activation") == "hard_sigmoid"
        if cell == "LSTM" and act:
            return None  # the LSTM also squashes its cell state with it, which no weight scales
        candidate = _CANDIDATE_BLOCK[cell]
        factors[layer.name] = [1.2 if (act if k == candidate else gate) else 1.0 for k in range(CELLS[cell].n_gates)]
    if all(f == 1.0 for fs in factors.values() for f in fs):
        return None

    def change(layer, name, w):
        return np.concatenate([b * f for b, f in zip(_blocks(w, _gates(layer)), factors[layer.name])], axis=-1)

    return _run(_with_weights(setup, change))


def _sigmoid_tanh_exchanged(setup):
    def change(layer):
        cfg = layer.cell_config
        if layer.cell_class == "SimpleRNN":
            return {"activation": "sigmoid"} if cfg.get("activation") == "tanh" else None
        pair = (cfg.get("activation"), cfg.get("recurrent_activation"))
        if set(pair) == {"tanh", "sigmoid"}:
            return {"activation": pair[1], "recurrent_activation": pair[0]}
        return None

    return _run(_with_cells(setup, change))


def _gru_reset_placement(setup):
    """The reset gate applied on the other side of the recurrent product than the layer's ``reset_after``."""
    if _recurrent(setup)[0].cell_class != "GRU":
        return None
    flipped = _with_cells(setup, lambda layer: {"reset_after": not layer.cell_config.get("reset_after", True)})

    def change(layer, name, w):
        if name != "bias":
            return None
        # reset after → before: both bias rows are added outside the reset; before → after: no recurrent bias.
        return w[0] + w[1] if w.ndim == 2 else np.stack([w, np.zeros_like(w)])

    return _run(_with_weights(flipped, change) or flipped)


# --------------------------------------------------------------------------
# Steps, states and the read-out.
# --------------------------------------------------------------------------


def _steps(setup: Setup, order: Callable[[list[int]], list[int]]) -> Setup:
    """The setup reading the input steps ``order(processing order)`` in processing order."""
    t = setup.spec.T
    processing = list(range(t - 1, -1, -1)) if setup.spec.go_backwards else list(range(t))
    chosen = order(processing)
    index = chosen[::-1] if setup.spec.go_backwards else chosen  # the reference reads x from the end then
    return replace(setup, batches=tuple(x[:, index] for x in setup.batches))


def _step_mistake(order: Callable[[list[int]], list[int]], pad: str | None):
    """A loop over the wrong steps; ``pad`` ("end"/"start"): a returned sequence's unwritten steps stay 0,
    None: the mistake cannot give a sequence of the right length."""

    def apply(setup):
        if not _one_direction(setup) or setup.spec.T < 2:
            return None
        if setup.spec.return_sequences and pad is None:
            return None
        y = forward(_steps(setup, order))
        if setup.spec.return_sequences:
            y = _pad_steps(y, 1, at_end=pad == "end")
        return y

    return apply


def _state_not_reset(setup):
    """A per-sample loop that starts sample n from sample n-1's last state."""
    spec = setup.spec
    if spec.N < 2:
        return None
    layers = [_cell_config(layer, stateful=True) if layer.is_recurrent else layer for layer in setup.layers]
    runtime = SequentialRuntime(layers, setup.weights, dtype="float64", explicit_masks=True)
    with np.errstate(all="ignore"):
        for b, x in enumerate(setup.batches):
            outs = []
            for n in range(spec.N):
                starts = {}
                if b == 0 and n == 0:
                    starts = {name: [s[:1] for s in states] for name, states in setup.initial_states.items()}
                outs.append(runtime.run(x[n : n + 1], initial_states=starts).output)
    if isinstance(outs[0], list):
        return [np.concatenate([o[i] for o in outs]) for i in range(len(outs[0]))]
    return np.concatenate(outs)


def _sequence_and_start(setup: Setup):
    """The last recurrent layer's output at every step (processing order) and its start ``h``."""
    last = last_recurrent(list(setup.layers))
    index = setup.layers.index(last)
    layers = (*setup.layers[:index], _cell_config(last, return_sequences=True, return_state=False))
    seq = forward(replace(setup, layers=layers))
    start = setup.initial_states.get(last.name)
    h0 = np.asarray(start[0], dtype=np.float64) if start else np.zeros((seq.shape[0], seq.shape[2]))
    return seq, h0


def _dense(setup: Setup, h):
    dense = setup.layers[-1]
    return reference.dense(h, *setup.weights[dense.name], activation=dense.config.get("activation"))


def _output_before_update(setup):
    """The output written before the step's update: y_t from h_(t-1)."""
    if not _one_direction(setup) or setup.spec.stateful:
        return None
    seq, h0 = _sequence_and_start(setup)
    shifted = np.concatenate([h0[:, None], seq[:, :-1]], axis=1)
    return _dense(setup, shifted if setup.spec.return_sequences else shifted[:, -1])


def _dense_on_first_step(setup):
    if not _one_direction(setup) or setup.spec.return_sequences or setup.spec.T < 2:
        return None
    seq, _ = _sequence_and_start(setup)
    return _dense(setup, seq[:, 0])


def _go_backwards_ignored(setup):
    if not setup.spec.go_backwards:
        return None
    return _run(_with_cells(setup, lambda layer: {"go_backwards": False}))


def _go_backwards_flipped(setup):
    if not (setup.spec.go_backwards and setup.spec.return_sequences):
        return None
    return forward(setup)[:, ::-1]


def _backward_not_flipped(setup):
    """Bidirectional: the backward sequence merged in processing order (not flipped back)."""
    spec = setup.spec
    if not (spec.bidirectional and spec.return_sequences and len(spec.M) == 1):
        return None
    bi = _recurrent(setup)[0]
    index = setup.layers.index(bi)
    half = len(bi.weights) // 2
    cell = LayerDesc(bi.name, bi.cell_class, {**bi.cell_config, "zero_output_for_mask": True})
    starts = setup.initial_states.get(bi.name)
    k = len(starts) // 2 if starts else 0
    parts = []
    for side, (lo, hi) in enumerate(((0, half), (half, 2 * half))):
        layer = _cell_config(cell, go_backwards=side == 1)
        one = replace(
            setup,
            layers=(*setup.layers[:index], layer),
            weights={**setup.weights, bi.name: list(setup.weights[bi.name][lo:hi])},
            initial_states={bi.name: list(starts[side * k : (side + 1) * k])} if starts else {},
        )
        parts.append(forward(one))
    y, y_back = parts
    merged = {
        "concat": lambda: np.concatenate([y, y_back], axis=-1),
        "sum": lambda: y + y_back,
        "ave": lambda: (y + y_back) / 2,
        "mul": lambda: y * y_back,
        "none": lambda: [y, y_back],
    }[spec.bidirectional]()
    if isinstance(merged, list):
        return [_dense(setup, part) for part in merged]
    return _dense(setup, merged)


def _mask_ignored(setup):
    if setup.spec.mask == "none":
        return None
    return forward(replace(setup, layers=tuple(layer for layer in setup.layers if layer.class_name != "Masking")))


def _initial_state_ignored(setup):
    return forward(replace(setup, initial_states={})) if setup.initial_states else None


def _state_not_carried(setup):
    if not setup.spec.stateful:
        return None
    return forward(replace(setup, batches=setup.batches[-1:]))


# --------------------------------------------------------------------------
# The library, most common first (ties keep this order).
# --------------------------------------------------------------------------


def _permutations(cell: str) -> list[Mistake]:
    g = CELLS[cell].n_gates
    identity = tuple(range(g))
    perms = sorted(itertools.permutations(range(g)), key=lambda p: (sum(a != b for a, b in zip(p, identity)), p))
    return [
        Mistake(f"{cell.lower()}_gates_{_gate_letters(cell, perm)}", _gate_text(cell, perm), _gate_order(cell, perm))
        for perm in perms
        if perm != identity
    ]


MISTAKES: tuple[Mistake, ...] = (
    Mistake(
        "transposed_recurrent_kernel", "the recurrent kernel transposed (each gate block)", _transposed_recurrent_kernel
    ),
    Mistake("transposed_kernel", "the input kernel transposed (each gate block)", _transposed_kernel),
    Mistake("kernels_exchanged", "W and U exchanged (x·U + h·W)", _kernels_exchanged),
    Mistake("no_bias", "the recurrent layer's bias left out", _bias(0.0)),
    Mistake("gru_no_recurrent_bias", "the GRU's recurrent bias (bias[1]) left out", _bias(0.0, row=1)),
    Mistake("gru_no_input_bias", "the GRU's input bias (bias[0]) left out", _bias(0.0, row=0)),
    Mistake("bias_twice", "the recurrent layer's bias added twice", _bias(2.0)),
    Mistake("dense_no_bias", "the Dense layer's bias left out", _dense_no_bias),
    *_permutations("LSTM"),
    *_permutations("GRU"),
    Mistake(
        "gru_reset_placement",
        "the GRU's reset gate on the wrong side of the recurrent product (reset_after)",
        _gru_reset_placement,
    ),
    Mistake(
        "keras2_hard_sigmoid",
        "Keras 2's hard_sigmoid, clip(0.2x + 0.5, 0, 1), for Keras 3's relu6(x + 3) / 6",
        _keras2_hard_sigmoid,
    ),
    Mistake("sigmoid_tanh_exchanged", "sigmoid and tanh exchanged", _sigmoid_tanh_exchanged),
    Mistake(
        "one_step_short",
        "the loop one step short: the last step never processed",
        _step_mistake(lambda p: p[:-1], pad="end"),
    ),
    Mistake(
        "first_step_skipped",
        "the loop one step short: the first step never processed",
        _step_mistake(lambda p: p[1:], pad="start"),
    ),
    Mistake(
        "one_step_long",
        "the loop one step long: the last step processed twice",
        _step_mistake(lambda p: [*p, p[-1]], pad=None),
    ),
    Mistake(
        "first_step_twice",
        "the loop one step long: the first step processed twice",
        _step_mistake(lambda p: [p[0], *p], pad=None),
    ),
    Mistake(
        "state_not_reset",
        "the state not reset between samples (sample n starts from sample n-1's last state)",
        _state_not_reset,
    ),
    Mistake(
        "output_before_update",
        "the output taken before the step's update (from the previous state)",
        _output_before_update,
    ),
    Mistake(
        "dense_on_first_step", "the Dense applied to the first step's output instead of the last", _dense_on_first_step
    ),
    Mistake("go_backwards_ignored", "go_backwards ignored: the sequence read from the start", _go_backwards_ignored),
    Mistake(
        "go_backwards_flipped",
        "go_backwards with the returned sequence flipped back to input order (Keras keeps processing order)",
        _go_backwards_flipped,
    ),
    Mistake(
        "backward_not_flipped",
        "Bidirectional's backward sequence merged without flipping it back to input order",
        _backward_not_flipped,
    ),
    Mistake("mask_ignored", "the mask ignored: padded steps processed like real ones", _mask_ignored),
    Mistake("initial_state_ignored", "the initial state ignored: the loop starts from zeros", _initial_state_ignored),
    Mistake("state_not_carried", "the state not carried from the previous batch (stateful)", _state_not_carried),
)


def _rank(diff: float) -> float:
    """Two significant digits: outputs equal up to rounding tie, and then the library's order decides."""
    return float(f"{diff:.2g}")


def _same(a, b) -> bool:
    """Two mistaken outputs equal up to float64 rounding: the case cannot tell the mistakes apart."""
    try:
        result = compare(a, b, atol=0.0, rtol=1e-12)
    except ValueError:
        return False
    return result.passed


def match_mistakes(
    setup: Setup, actual, *, atol: float, rtol: float, max_mismatch_frac: float = 0.0
) -> tuple[list[Suspect], int]:
    """The mistakes whose output matches ``actual`` (the user's) within the tolerance, closest first,
    and how many of the library's mistakes applied to this setup.

    Comparisons use the check's rule, ``|actual - mistaken| <= atol + rtol·|mistaken|``. Mistakes
    that give the same numbers on this case (one step short and the output read before the last
    update, without ``return_sequences``) are one suspect.
    """
    found: list[list] = []  # [rank, index, mistake, max_abs_diff, output, equivalent]
    tried = 0
    for index, mistake in enumerate(MISTAKES):
        try:
            with np.errstate(all="ignore"):
                mistaken = mistake.apply(setup)
        except (ValueError, IndexError, FloatingPointError):  # shapes the mistake cannot take: not this one
            continue
        if mistaken is None:
            continue
        tried += 1
        try:
            result = compare(actual, mistaken, atol=atol, rtol=rtol, max_mismatch_frac=max_mismatch_frac)
        except ValueError:  # another shape than the user's: not this one
            continue
        if not result.passed:
            continue
        twin = next((entry for entry in found if _same(entry[4], mistaken)), None)
        if twin is not None:
            twin[5].append(mistake)
            continue
        found.append([_rank(result.max_abs_diff), index, mistake, result.max_abs_diff, mistaken, []])
    found.sort(key=lambda entry: entry[:2])
    return [Suspect(m.id, m.text, diff, tuple(same)) for _, _, m, diff, _, same in found], tried


def suspects(setup: Setup, actual, *, atol: float, rtol: float, max_mismatch_frac: float = 0.0) -> list[Suspect]:
    """:func:`match_mistakes` without the count."""
    return match_mistakes(setup, actual, atol=atol, rtol=rtol, max_mismatch_frac=max_mismatch_frac)[0]
