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
from .gradients import state_labels
from .keras_runner import build_model, import_keras
from .runtime import _layer_parts

__all__ = ["keras_gradients"]


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
        for label, state in zip(state_labels(class_name, cfg), initial_states.get(name, [])):
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


def _tensorflow(model, inputs, variables, picks, upstream):
    import tensorflow as tf

    tensors = [tf.constant(a) for a in inputs]
    with tf.GradientTape() as tape:
        tape.watch(tensors)
        outputs = model(tensors, training=False)
        outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
        loss = tf.add_n([tf.reduce_sum(tf.constant(g) * outputs[i]) for i, g in zip(picks, upstream)])
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
        return sum(jnp.sum(jnp.asarray(g) * outputs[i]) for i, g in zip(picks, upstream))

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
    loss = sum(torch.sum(torch.as_tensor(g, device=outputs[i].device) * outputs[i]) for i, g in zip(picks, upstream))
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
