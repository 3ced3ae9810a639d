"""Gradients of a check model's loss from the Keras backend's own autodiff.

The Keras side of ``check --gradients``: the check model is built as a real
``keras.Model`` (:func:`rnn_parity.keras_runner.build_model`), the weights are
set, and ``L = Σ G·y`` (``G`` from :func:`rnn_parity.gradients.loss_weights`)
is differentiated with respect to the input, every weight and every initial
state by whichever backend Keras runs on:

* tensorflow: ``tf.GradientTape``;
* jax: ``jax.grad`` of ``model.stateless_call``;
* torch: ``loss.backward()`` (autograd).

The framework is imported lazily, inside the function that needs it. Gradients
are named as :mod:`rnn_parity.gradients` names them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from .errors import InvalidInput
from .keras_runner import _make_layer, build_model, import_keras
from .recurrent import is_bidirectional, n_states, state_names
from .runtime import _layer_parts

__all__ = ["keras_gradients", "keras_step_gradients"]


def keras_gradients(
    layers,
    weights: Mapping[str, Sequence[np.ndarray]],
    x: np.ndarray,
    upstream: Sequence[np.ndarray],
    *,
    initial_states: Mapping[str, Sequence[np.ndarray]] | None = None,
    dtype: str = "float64",
) -> dict[str, np.ndarray]:
    """``dL/d…`` by the backend's autodiff, named ``input``, ``<layer>/<weight>``, ``<layer>/initial_state/<state>``.

    Args:
        layers: the check model's :class:`~rnn_parity.architecture.LayerDesc` list.
        weights: layer name → ``get_weights()`` list, set on the built model.
        x: the input ``(batch, timesteps, features)``.
        upstream: ``G``, one array per output of the last layer.
        initial_states: recurrent layer name → its start states.
        dtype: the layers' dtype policy (``"float64"`` for a float64 model).
    """
    keras = import_keras()
    initial_states = initial_states or {}
    model, keys = build_model(
        layers,
        batch=None,
        timesteps=None,
        features=x.shape[-1],
        stateful=False,
        initial_state=bool(initial_states),
        dtype=dtype,
    )
    last = _layer_parts(layers[-1])[0]
    picks = [i for i, (kind, name, _) in enumerate(keys) if kind == "output" and name == last]
    if len(picks) != len(upstream):
        raise InvalidInput(f"the model has {len(picks)} output(s), got {len(upstream)} loss weight array(s)")
    named_variables = []  # (gradient name, variable)
    for desc in layers:
        name = _layer_parts(desc)[0]
        layer = model.get_layer(name)
        if name in weights:
            layer.set_weights(list(weights[name]))
        labels = [w.name for w in getattr(desc, "weights", ())]
        variables = list(layer.weights)
        if len(labels) != len(variables):
            labels = [f"weight{i}" for i in range(len(variables))]
        named_variables += [(f"{name}/{label}", v) for label, v in zip(labels, variables)]
    in_dtype = "float64" if dtype == "float64" else "float32"
    inputs = [np.asarray(x, dtype=in_dtype)]
    input_names = ["input"]
    for desc in layers:
        name, class_name, cfg = _layer_parts(desc)
        for label, state in zip(state_names(class_name, cfg), initial_states.get(name, [])):
            inputs.append(np.asarray(state, dtype=in_dtype))
            input_names.append(f"{name}/initial_state/{label}")
    backend = keras.backend.backend()
    compute = {"tensorflow": _tensorflow, "jax": _jax, "torch": _torch}.get(backend)
    if compute is None:
        raise InvalidInput(f"KERAS_BACKEND={backend}: gradients need tensorflow, jax or torch (no autodiff)")
    g = [np.asarray(u, dtype=in_dtype) for u in upstream]
    d_inputs, d_variables = compute(model, inputs, [v for _, v in named_variables], picks, g)
    by_name = dict(zip(input_names, d_inputs))
    by_name.update({name: d for (name, _), d in zip(named_variables, d_variables)})
    # The order of rnn_parity.gradients: the input, then layer by layer its weights and its initial states.
    order = ["input"] + [n for n, _ in named_variables] + input_names[1:]
    order.sort(key=lambda n: -1 if n == "input" else _layer_index(layers, n))
    return {name: np.asarray(by_name[name]) for name in order}


def _layer_index(layers, gradient_name: str) -> int:
    layer = gradient_name.split("/", 1)[0]
    return next(i for i, desc in enumerate(layers) if _layer_parts(desc)[0] == layer)


def keras_step_gradients(
    layers,
    weights: Mapping[str, Sequence[np.ndarray]],
    x: np.ndarray,
    upstream: Sequence[np.ndarray],
    target: str,
    *,
    initial_states: Mapping[str, Sequence[np.ndarray]] | None = None,
    dtype: str = "float64",
) -> np.ndarray:
    """``dL/dh_t`` of recurrent layer ``target`` at every step, by the backend's autodiff.

    The layer is rebuilt as ``keras.layers.RNN`` around its own Keras cell, wrapped so
    that a zero *probe* input is added to the hidden state the cell computes at each
    step; the gradient of ``L`` with respect to the probe is ``dL/dh_t``. Returns
    ``(batch, timesteps, units)`` in processing order, as
    :func:`rnn_parity.gradients.model_gradients` gives it. Bidirectional layers are
    not probed.
    """
    keras = import_keras()
    initial_states = initial_states or {}
    desc = next(d for d in layers if _layer_parts(d)[0] == target)
    name, class_name, cfg = _layer_parts(desc)
    if is_bidirectional(class_name):
        raise InvalidInput(f"layer {name}: dL/dh_t is probed in single-direction layers only")
    units = cfg["units"]
    model = _probe_model(keras, layers, target, units, x.shape[-1], bool(initial_states), dtype)
    for d in layers:
        layer_name = _layer_parts(d)[0]
        if layer_name in weights:
            model.get_layer(layer_name).set_weights(list(weights[layer_name]))
    in_dtype = "float64" if dtype == "float64" else "float32"
    inputs = [np.asarray(x, dtype=in_dtype)]
    for d in layers:
        inputs += [np.asarray(s, dtype=in_dtype) for s in initial_states.get(_layer_parts(d)[0], [])]
    inputs.append(np.zeros(x.shape[:2] + (units,), dtype=in_dtype))
    n_out = len(model.outputs)
    compute = {"tensorflow": _tensorflow, "jax": _jax, "torch": _torch}[keras.backend.backend()]
    g = [np.asarray(u, dtype=in_dtype) for u in upstream]
    d_inputs, _ = compute(model, inputs, [], list(range(n_out)), g)
    d_probe = d_inputs[-1]  # input order: reversed with go_backwards, as the layer reads its input
    return np.ascontiguousarray(d_probe[:, ::-1] if cfg.get("go_backwards") else d_probe)


_PROBE_CELL = None


def _probe_cell_class(keras):
    """A Keras cell running another cell and adding the last ``units`` input features to its new state."""
    global _PROBE_CELL
    if _PROBE_CELL is not None:
        return _PROBE_CELL

    class ProbeCell(keras.layers.Layer):
        def __init__(self, cell, units, **kwargs):
            super().__init__(**kwargs)
            self.cell, self.units = cell, units
            self.state_size, self.output_size = cell.state_size, cell.output_size

        def build(self, input_shape):
            self.cell.build((input_shape[0], input_shape[-1] - self.units))

        def call(self, inputs, states, training=False):
            x, probe = inputs[:, : -self.units], inputs[:, -self.units :]
            output, new_states = self.cell(x, states, training=training)
            output = output + probe  # every cell's output is its new hidden state
            if isinstance(new_states, (list, tuple)):
                return output, [output, *new_states[1:]]
            return output, output

    _PROBE_CELL = ProbeCell
    return ProbeCell


def _probe_model(keras, layers, target, units, features, with_states, dtype):
    """The check model with ``target`` as ``RNN(ProbeCell(cell))``; inputs ``[x, *states, probe]``."""
    in_dtype = "float64" if dtype == "float64" else "float32"
    x_in = keras.Input(shape=(None, features), name="x", dtype=in_dtype)
    probe_in = keras.Input(shape=(None, units), name="probe", dtype=in_dtype)
    inputs, h, mask = [x_in], x_in, None
    for desc in layers:
        name, class_name, cfg = _layer_parts(desc)
        layer = _make_layer(keras, desc, dtype)
        if class_name == "Masking":
            mask = layer.compute_mask(x_in)
            h = layer(h)
            continue
        if not desc.is_recurrent:
            h = [layer(part) for part in h] if isinstance(h, list) else layer(h)
            continue
        kwargs = {} if mask is None else {"mask": mask}
        if with_states:
            m = desc.cell_config["units"]
            states = [
                keras.Input(shape=(m,), name=f"{name}_state{i}", dtype=in_dtype)
                for i in range(n_states(class_name, cfg))
            ]
            inputs += states
            kwargs["initial_state"] = states
        if name == target:
            layer = keras.layers.RNN(
                _probe_cell_class(keras)(layer.cell, units, dtype=dtype),
                return_sequences=cfg.get("return_sequences", False),
                return_state=cfg.get("return_state", False),
                go_backwards=cfg.get("go_backwards", False),
                unroll=cfg.get("unroll", False),
                name=name,
                dtype=dtype,
            )
            h = keras.layers.Concatenate(dtype=dtype)([h, probe_in])
        result = layer(h, **kwargs)
        parts = list(result) if isinstance(result, (list, tuple)) else [result]
        two = is_bidirectional(class_name) and cfg.get("merge_mode") is None
        h = parts[:2] if two else parts[0]
    outputs = h if isinstance(h, list) else [h]
    return keras.Model([*inputs, probe_in], outputs)


def _tensorflow(model, inputs, variables, picks, upstream):
    import tensorflow as tf

    tensors = [tf.constant(a) for a in inputs]
    with tf.GradientTape() as tape:
        tape.watch(tensors)
        outputs = model(tensors, training=False)
        outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
        # The loss in G's dtype: a mixed_float16 model's float16 output is cast up first.
        loss = tf.add_n([tf.reduce_sum(tf.constant(g) * tf.cast(outputs[i], g.dtype)) for i, g in zip(picks, upstream)])
    grads = tape.gradient(loss, tensors + variables)
    grads = [_zeros_if_none(g, ref) for g, ref in zip(grads, [*inputs, *variables])]
    return [g.numpy() for g in grads[: len(inputs)]], [g.numpy() for g in grads[len(inputs) :]]


def _jax(model, inputs, variables, picks, upstream):
    import jax
    import jax.numpy as jnp

    trainable = list(model.trainable_variables)
    non_trainable = [v.value for v in model.non_trainable_variables]
    position = {id(v): i for i, v in enumerate(trainable)}

    def loss_fn(values, xs):
        outputs, _ = model.stateless_call(values, non_trainable, xs, training=False)
        outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
        return sum(jnp.sum(jnp.asarray(g) * outputs[i].astype(g.dtype)) for i, g in zip(picks, upstream))

    d_values, d_inputs = jax.grad(loss_fn, argnums=(0, 1))(
        [v.value for v in trainable], [jnp.asarray(a) for a in inputs]
    )
    return [np.asarray(d) for d in d_inputs], [np.asarray(d_values[position[id(v)]]) for v in variables]


def _torch(model, inputs, variables, picks, upstream):
    import torch

    tensors = [torch.tensor(a, requires_grad=True) for a in inputs]
    for v in variables:
        v.value.grad = None
    outputs = model(tensors, training=False)
    outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
    loss = sum(
        torch.sum(torch.as_tensor(g, device=outputs[i].device) * outputs[i].to(torch.as_tensor(g).dtype))
        for i, g in zip(picks, upstream)
    )
    loss.backward()

    def numpy(t, like):
        return np.zeros(tuple(like.shape)) if t is None else t.detach().cpu().numpy()

    return [numpy(t.grad, t) for t in tensors], [numpy(v.value.grad, v) for v in variables]


def _zeros_if_none(gradient, like):
    """TensorFlow gives None for a source the loss does not depend on; that gradient is zero."""
    if gradient is not None:
        return gradient
    import tensorflow as tf

    return tf.zeros(tuple(like.shape), dtype=like.dtype)
