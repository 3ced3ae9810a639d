"""Gradients of a check model's loss by backpropagation through time in NumPy.

The loss is a seeded random linear functional of the model's output,
``L = Σ G·y`` with ``G`` drawn from a standard normal (:func:`loss_weights`),
so that every output element matters. :func:`model_gradients` runs the chain of
layers forward once with :func:`rnn_parity.reference.vjp` (and its
Bidirectional and Dense counterparts), then backward, and returns ``dL/d…``
for the input, every weight and every initial state, by name:

* ``input``: ``(batch, timesteps, features)``;
* ``<layer>/<weight>``: e.g. ``lstm/kernel``, ``bidirectional_gru/backward_bias``,
  ``dense/kernel`` (the weight names of :class:`~rnn_parity.architecture.LayerDesc`);
* ``<layer>/initial_state/<state>``: e.g. ``lstm/initial_state/h``,
  ``lstm/initial_state/c`` (only for layers started from given states).

It also keeps ``dL/dh_t`` of every recurrent layer (see the ``"dh"`` entry of
:func:`rnn_parity.reference.simple_rnn_backward`): the picture of vanishing and
exploding gradients. Like the runtime, this module imports only NumPy, the
reference and the package's pure-Python descriptions.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from . import reference
from .errors import InvalidInput
from .recurrent import is_bidirectional, is_recurrent, is_stateful, state_names, unwrap
from .runtime import RECURRENT_FUNCTIONS, SequentialRuntime, _cell_kwargs, _layer_parts, _split_bias

__all__ = [
    "FD_STEP",
    "FD_TOLERANCE",
    "FiniteDifferences",
    "ModelGradients",
    "finite_differences",
    "loss_weights",
    "model_gradients",
    "step_norms",
]

#: The central-difference step (float64) and the relative agreement ``--fd-check`` asks for.
FD_STEP, FD_TOLERANCE = 1e-6, 1e-6

#: Layers the backward pass goes through.
SUPPORTED = frozenset({*RECURRENT_FUNCTIONS, "Bidirectional", "Masking", "Dense"})


@dataclass(frozen=True)
class ModelGradients:
    """``dL/d…`` of one model.

    Attributes:
        arrays: gradient name → array, in the order input, then layer by layer.
        dh: recurrent layer name → ``dL/dh_t`` ``(batch, timesteps, units)`` in
            processing order; a Bidirectional layer gives ``<layer>/forward`` and
            ``<layer>/backward``.
        loss: the loss value ``Σ G·y``.
        upstream: ``G``, one array per model output.
    """

    arrays: dict[str, np.ndarray]
    dh: dict[str, np.ndarray]
    loss: float
    upstream: list[np.ndarray]


def loss_weights(shapes: Sequence[tuple[int, ...]], seed: int) -> list[np.ndarray]:
    """``G``: one standard-normal float64 array per model output, drawn from ``seed``."""
    rng = np.random.default_rng([seed, 13])
    return [rng.standard_normal(shape) for shape in shapes]


def step_norms(dh: np.ndarray) -> list[float]:
    """``‖dL/dh_t‖`` at every step: the Euclidean norm over batch and units of ``(batch, timesteps, units)``."""
    d = np.asarray(dh, dtype=np.float64)
    return [float(v) for v in np.sqrt(np.sum(d * d, axis=(0, 2)))]


def _weight_names(layer, n: int) -> list[str]:
    names = [w.name for w in getattr(layer, "weights", ())]
    return names if len(names) == n else [f"weight{i}" for i in range(n)]


def model_gradients(
    layers,
    weights: Mapping[str, Sequence[np.ndarray]],
    x,
    upstream: Sequence[np.ndarray] | Callable[[list[tuple[int, ...]]], Sequence[np.ndarray]],
    *,
    initial_states: Mapping[str, Sequence[np.ndarray]] | None = None,
    dtype="float64",
) -> ModelGradients:
    """``dL/d…`` for ``L = Σ upstream·outputs`` of the chain ``layers`` (a check model).

    Args:
        layers: :class:`~rnn_parity.architecture.LayerDesc` (or dicts), input to output:
            Masking, SimpleRNN/LSTM/GRU, Bidirectional, Dense.
        weights: layer name → ``get_weights()`` list.
        x: the input ``(batch, timesteps, features)``.
        upstream: ``G``, one array per model output (two after ``Bidirectional(merge_mode=None)``),
            or a function of the outputs' shapes returning them (e.g. ``lambda s: loss_weights(s, seed)``).
        initial_states: recurrent layer name → its start states.
        dtype: the computation dtype (float64 by default).

    Every recurrent layer receives the mask of a Masking layer before it, as the check model passes it.

    Raises:
        InvalidInput: a layer the backward pass does not cover, or a stateful layer.
    """
    initial_states = initial_states or {}
    h = np.asarray(x, dtype=dtype)
    mask = None
    tape = []  # (name, class_name, cfg, backward per branch) in execution order
    for desc in layers:
        name, class_name, cfg = _layer_parts(desc)
        if class_name not in SUPPORTED:
            raise InvalidInput(f"layer {name} ({class_name}): gradients cover {', '.join(sorted(SUPPORTED))}")
        if is_recurrent(class_name) and is_stateful(class_name, cfg):
            raise InvalidInput(f"layer {name}: gradients of a stateful layer are not computed (they span calls)")
        ws = [np.asarray(w, dtype=dtype) for w in weights.get(name, [])]
        parts = h if isinstance(h, list) else [h]
        outs, backs = [], []
        for part in parts:
            out, back = _layer_vjp(class_name, cfg, ws, part, mask, initial_states.get(name), dtype)
            outs.append(out)
            backs.append(back)
        if class_name == "Masking":
            mask = outs[0][1]
            outs = [outs[0][0]]
        tape.append((desc, name, class_name, cfg, backs))
        if isinstance(h, list):
            h = outs
        else:
            h = outs[0]

    finals = h if isinstance(h, list) else [h]
    if callable(upstream):
        upstream = upstream([tuple(y.shape) for y in finals])
    if len(finals) != len(upstream):
        raise InvalidInput(f"the model has {len(finals)} output(s), got {len(upstream)} loss weight array(s)")
    loss = float(sum(np.sum(np.asarray(g, np.float64) * np.asarray(y, np.float64)) for g, y in zip(upstream, finals)))
    d_h = [np.asarray(g, dtype=dtype) for g in upstream]
    if not isinstance(h, list):
        d_h = d_h[0]

    arrays: dict[str, np.ndarray] = {}
    dh_by_layer: dict[str, dict[str, np.ndarray]] = {}
    for desc, name, class_name, cfg, backs in reversed(tape):
        branches = d_h if isinstance(d_h, list) and len(backs) == 2 else [d_h]
        results = [back(d) for back, d in zip(backs, branches)]
        layer_grads = _merge_branches(results)
        d_in = layer_grads.pop("x")
        states = layer_grads.pop("initial_state", None)
        dh_by_layer[name] = {
            (name if key is None else f"{name}/{key}"): value for key, value in layer_grads.pop("dh", {}).items()
        }
        names = _weight_names(desc, len(layer_grads["weights"]))
        entries = {f"{name}/{w}": g for w, g in zip(names, layer_grads["weights"])}
        if states is not None and name in initial_states:
            entries.update(
                {f"{name}/initial_state/{label}": s for label, s in zip(state_names(class_name, cfg), states)}
            )
        arrays = {**entries, **arrays}
        d_h = d_in
    dh = {key: value for entry in tape for key, value in dh_by_layer[entry[1]].items()}
    return ModelGradients({"input": d_h, **arrays}, dh, loss, [np.asarray(g) for g in upstream])


def _merge_branches(results: list[dict]) -> dict:
    """One layer applied to each of two branches: its weight gradients add up, its input gradients stay apart."""
    if len(results) == 1:
        return results[0]
    merged = dict(results[0])
    merged["x"] = [r["x"] for r in results]
    merged["weights"] = [sum(ws) for ws in zip(*(r["weights"] for r in results))]
    return merged


def _layer_vjp(class_name, cfg, weights, x, mask, initial_state, dtype):
    """``(output, backward)`` of one layer; ``backward(d_output)`` gives ``{"x", "weights", ...}``."""
    if class_name == "Masking":
        keep = np.any(x != np.asarray(cfg.get("mask_value", 0.0), dtype=x.dtype), axis=-1)
        out = np.where(keep[..., None], x, np.zeros((), dtype=x.dtype))
        return (out, keep), lambda d: {"x": d * keep[..., None], "weights": []}
    if class_name == "Dense":
        kernel, bias = weights[0], (weights[1] if len(weights) > 1 else None)
        activation = cfg.get("activation", "linear")
        out = reference.dense(x, kernel, bias, activation=activation)

        def dense_back(d):
            g = reference.dense_backward(x, kernel, bias, d, activation=activation, dtype=dtype)
            return {"x": g["x"], "weights": [g["kernel"]] + ([g["bias"]] if bias is not None else [])}

        return out, dense_back
    inner_class, inner_cfg = unwrap(class_name, cfg)
    function = RECURRENT_FUNCTIONS[inner_class]
    return_sequences = inner_cfg.get("return_sequences", False)
    return_state = inner_cfg.get("return_state", False)
    if is_bidirectional(class_name):
        half = len(weights) // 2
        result, back = reference.bidirectional_vjp(
            function,
            x,
            _split_bias(weights[:half]),
            _split_bias(weights[half:]),
            merge_mode=cfg.get("merge_mode", "concat"),
            return_sequences=return_sequences,
            return_state=return_state,
            mask=mask,
            initial_state=initial_state,
            dtype=dtype,
            **_cell_kwargs(inner_class, inner_cfg),
        )

        def bidirectional_back(d):
            g = back(d)
            direction_weights = [
                g[side][key]
                for side in ("forward", "backward")
                for key in ("kernel", "recurrent_kernel", "bias")
                if g[side][key] is not None
            ]
            return {
                "x": g["x"],
                "weights": direction_weights,
                "initial_state": g["initial_state"],
                "dh": {"forward": g["forward"]["dh"], "backward": g["backward"]["dh"]},
            }

        output = result[0] if return_state else result
        return output, bidirectional_back
    result, back = reference.vjp(
        function,
        x,
        *_split_bias(weights),
        return_sequences=return_sequences,
        return_state=return_state,
        go_backwards=inner_cfg.get("go_backwards", False),
        mask=mask,
        initial_state=initial_state,
        zero_output_for_mask=inner_cfg.get("zero_output_for_mask", False),
        dtype=dtype,
        **_cell_kwargs(inner_class, inner_cfg),
    )

    def recurrent_back(d):
        g = back(d)
        ws = [g["kernel"], g["recurrent_kernel"]] + ([g["bias"]] if g["bias"] is not None else [])
        return {"x": g["x"], "weights": ws, "initial_state": g["initial_state"], "dh": {None: g["dh"]}}

    output = result[0] if return_state else result
    return output, recurrent_back


@dataclass(frozen=True)
class FiniteDifferences:
    """The BPTT gradients against central differences of the NumPy forward pass, in float64.

    Attributes:
        errors: gradient name → ``max |bptt - numeric| / max |numeric|`` over the checked elements.
        checked: gradient name → how many elements were perturbed.
        tolerance: the largest relative error that passes.
    """

    errors: dict[str, float]
    checked: dict[str, int]
    tolerance: float = FD_TOLERANCE

    @property
    def passed(self) -> bool:
        return all(np.isfinite(e) and e <= self.tolerance for e in self.errors.values())

    @property
    def max_error(self) -> float:
        return max(self.errors.values(), default=0.0)


def finite_differences(
    layers,
    weights: Mapping[str, Sequence[np.ndarray]],
    x,
    upstream: Sequence[np.ndarray],
    gradients: ModelGradients,
    *,
    initial_states: Mapping[str, Sequence[np.ndarray]] | None = None,
    max_elements: int = 24,
    seed: int = 0,
) -> FiniteDifferences:
    """Check ``gradients`` by central differences ``(L(p + ε) - L(p - ε)) / 2ε`` of the forward pass.

    An independent check of the backward pass: it uses only the forward reference
    (:class:`~rnn_parity.runtime.SequentialRuntime`), so a misreading shared by the
    two Keras-facing sides cannot pass it. Up to ``max_elements`` elements of each
    gradient (all of them when the array is that small; else a seeded sample) are
    perturbed by :data:`FD_STEP`, two forward passes each.
    """
    # C-ordered float64 copies, so that a flat view of each perturbs the array itself.
    weights = {name: [np.array(w, dtype=np.float64, order="C") for w in ws] for name, ws in weights.items()}
    starts = {
        name: [np.array(s, dtype=np.float64, order="C") for s in ss] for name, ss in (initial_states or {}).items()
    }
    x = np.array(x, dtype=np.float64, order="C")
    g = [np.asarray(u, dtype=np.float64) for u in upstream]
    runtime = SequentialRuntime(layers, weights, dtype="float64", explicit_masks=True)
    runtime.weights = weights  # the same arrays, perturbed in place below

    def loss() -> float:
        out = runtime.run(x, initial_states=starts).output
        outs = out if isinstance(out, list) else [out]
        return float(sum(np.sum(a * b) for a, b in zip(g, outs)))

    targets = {"input": x}
    for desc in layers:
        name, class_name, cfg = _layer_parts(desc)
        names = _weight_names(desc, len(weights.get(name, [])))
        targets.update({f"{name}/{w}": array for w, array in zip(names, weights.get(name, []))})
        targets.update(
            {f"{name}/initial_state/{label}": s for label, s in zip(state_names(class_name, cfg), starts.get(name, []))}
        )
    # A Masking layer's mask is a step function of the input: a padded step (all features equal to
    # mask_value) would stop being padded when perturbed. Only the input's real steps are checked.
    candidates = {name: np.arange(array.size) for name, array in targets.items()}
    masking = next((_layer_parts(d)[2] for d in layers if _layer_parts(d)[1] == "Masking"), None)
    if masking is not None:
        real = np.any(x != masking.get("mask_value", 0.0), axis=-1)
        candidates["input"] = np.flatnonzero(np.broadcast_to(real[..., None], x.shape))
    rng = np.random.default_rng([seed, 17])
    errors, checked = {}, {}
    for name, array in targets.items():
        analytic = np.asarray(gradients.arrays[name], dtype=np.float64)
        flat = array.reshape(-1)  # a view (C order): perturbing it perturbs the runtime's array
        pool = candidates[name]
        picks = pool if pool.size <= max_elements else rng.choice(pool, max_elements, replace=False)
        numeric = np.empty(len(picks))
        for j, index in enumerate(picks):
            saved = flat[index]
            flat[index] = saved + FD_STEP
            up = loss()
            flat[index] = saved - FD_STEP
            down = loss()
            flat[index] = saved
            numeric[j] = (up - down) / (2 * FD_STEP)
        expected = analytic.reshape(-1)[picks]
        scale = max(float(np.max(np.abs(numeric), initial=0.0)), float(np.max(np.abs(expected), initial=0.0)), 1e-12)
        errors[name] = float(np.max(np.abs(expected - numeric), initial=0.0)) / scale
        checked[name] = len(picks)
    return FiniteDifferences(errors, checked)
