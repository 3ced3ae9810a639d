"""The NumPy backward pass against TensorFlow's GradientTape on real Keras layers, in float64."""

from __future__ import annotations

import numpy as np
import pytest

from rnn_parity import reference as ref

pytestmark = pytest.mark.keras

RTOL, ATOL = 1e-9, 1e-11
N, T, D, M = 3, 6, 4, 3
KERAS_CLASS = {"simple_rnn": "SimpleRNN", "lstm": "LSTM", "gru": "GRU"}
FORWARD = {"simple_rnn": ref.simple_rnn, "lstm": ref.lstm, "gru": ref.gru}
N_STATES = {"simple_rnn": 1, "lstm": 2, "gru": 1}


@pytest.fixture(scope="module")
def tf(keras):
    if keras.backend.backend() != "tensorflow":
        pytest.skip("GradientTape needs the TensorFlow backend")
    import tensorflow

    return tensorflow


def random_weights(layer, rng):
    return [rng.standard_normal(w.shape) * 0.6 for w in layer.get_weights()]


def random_mask(rng):
    mask = rng.random((N, T)) > 0.35
    mask[0, 0] = mask[-1, -1] = False
    return mask


def tape_gradients(tf, layer, x, weights, *, initial_state=None, mask=None, upstream, call_kwargs=None):
    """``tape.gradient`` of ``Σ upstream · outputs`` w.r.t. the input, every weight and the initial states."""
    layer.set_weights(weights)
    x = tf.constant(x)
    states = [tf.constant(s) for s in initial_state] if initial_state is not None else []
    kwargs = dict(call_kwargs or {})
    if states:
        kwargs["initial_state"] = states
    if mask is not None:
        kwargs["mask"] = tf.constant(mask)
    with tf.GradientTape() as tape:
        tape.watch(x)
        for s in states:
            tape.watch(s)
        outputs = layer(x, **kwargs)
        outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
        loss = tf.add_n([tf.reduce_sum(g * o) for g, o in zip(upstream, outputs)])
    grads = tape.gradient(loss, [x, *layer.trainable_weights, *states])
    return [np.asarray(g) for g in grads]


def assert_close(name, ours, theirs, rtol=RTOL):
    np.testing.assert_allclose(ours, theirs, rtol=rtol, atol=ATOL, err_msg=name)


CASES = {
    "last output": {},
    "return_sequences": {"return_sequences": True},
    "go_backwards": {"go_backwards": True},
    "go_backwards sequences": {"go_backwards": True, "return_sequences": True},
    "initial_state": {"initial_state": True, "return_state": True},
    "initial_state sequences go_backwards": {"initial_state": True, "return_sequences": True, "go_backwards": True},
    "mask sequences": {"mask": True, "return_sequences": True},
    "mask last output state": {"mask": True, "return_state": True},
    "mask go_backwards": {"mask": True, "go_backwards": True, "return_sequences": True},
    "no bias": {"use_bias": False, "return_sequences": True},
}


def run_case(keras, tf, cell, case, *, layer_kwargs=None, seed=0, rtol=RTOL):
    rng = np.random.default_rng(seed)
    case = dict(case)
    use_initial, use_mask = case.pop("initial_state", False), case.pop("mask", False)
    use_bias = case.pop("use_bias", True)
    layer_kwargs = dict(layer_kwargs or {})
    layer = getattr(keras.layers, KERAS_CLASS[cell])(M, use_bias=use_bias, dtype="float64", **case, **layer_kwargs)
    layer.build((N, T, D))
    weights = random_weights(layer, rng)
    x = rng.standard_normal((N, T, D))
    states = [rng.standard_normal((N, M)) for _ in range(N_STATES[cell])] if use_initial else None
    mask = random_mask(rng) if use_mask else None
    out_shape = (N, T, M) if case.get("return_sequences") else (N, M)
    upstream = [rng.standard_normal(out_shape)]
    if case.get("return_state"):
        upstream += [rng.standard_normal((N, M)) for _ in range(N_STATES[cell])]
    theirs = tape_gradients(tf, layer, x, weights, initial_state=states, mask=mask, upstream=upstream)

    bias = weights[2] if use_bias else None
    ours = ref.BACKWARD[FORWARD[cell]](
        x,
        weights[0],
        weights[1],
        bias,
        upstream[0],
        initial_state=states,
        mask=mask,
        d_states=upstream[1:] or None,
        **case,
        **layer_kwargs,
    )
    names = ["x", "kernel", "recurrent_kernel"] + (["bias"] if use_bias else [])
    for name, grad in zip(names, theirs):
        assert_close(f"{cell} {name}", ours[name], grad, rtol)
    if states:
        for i, grad in enumerate(theirs[len(names) :]):
            assert_close(f"{cell} initial_state[{i}]", ours["initial_state"][i], grad, rtol)


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("cell", ["simple_rnn", "lstm", "gru"])
def test_cell_gradients_match_gradient_tape(keras, tf, cell, case):
    run_case(keras, tf, cell, CASES[case])


@pytest.mark.parametrize("case", ["last output", "mask sequences", "initial_state sequences go_backwards"])
def test_gru_reset_before_matches_gradient_tape(keras, tf, case):
    run_case(keras, tf, "gru", CASES[case], layer_kwargs={"reset_after": False})


@pytest.mark.parametrize(
    "activation", ["relu", "hard_sigmoid", "elu", "selu", "softplus", "mish", "hard_silu", "softsign", "softmax"]
)
def test_activations_match_gradient_tape(keras, tf, activation):
    run_case(keras, tf, "simple_rnn", CASES["return_sequences"], layer_kwargs={"activation": activation})
    run_case(
        keras,
        tf,
        "lstm",
        CASES["mask sequences"],
        layer_kwargs={"activation": activation, "recurrent_activation": "hard_sigmoid"},
    )


@pytest.mark.parametrize("reset_after", [True, False])
def test_gru_softmax_gates_match_gradient_tape(keras, tf, reset_after):
    """Keras applies the recurrent activation to each gate: for softmax, z and r are normalised apart."""
    layer_kwargs = {"recurrent_activation": "softmax", "reset_after": reset_after}
    run_case(keras, tf, "gru", CASES["initial_state sequences go_backwards"], layer_kwargs=layer_kwargs)


@pytest.mark.parametrize("merge_mode", ["concat", "sum", "mul", "ave", None])
def test_bidirectional_matches_gradient_tape(keras, tf, merge_mode):
    rng = np.random.default_rng(4)
    inner = keras.layers.GRU(M, return_sequences=True, return_state=True, dtype="float64")
    layer = keras.layers.Bidirectional(inner, merge_mode=merge_mode, dtype="float64")
    layer.build((N, T, D))
    weights = random_weights(layer, rng)
    x = rng.standard_normal((N, T, D))
    states = [rng.standard_normal((N, M)) for _ in range(2)]
    mask = random_mask(rng)
    n_outputs = 2 if merge_mode is None else 1
    width = 2 * M if merge_mode == "concat" else M
    upstream = [rng.standard_normal((N, T, width)) for _ in range(n_outputs)]
    upstream += [rng.standard_normal((N, M)) for _ in range(2)]
    theirs = tape_gradients(tf, layer, x, weights, initial_state=states, mask=mask, upstream=upstream)

    d_output = upstream[:2] if merge_mode is None else upstream[0]
    ours = ref.bidirectional_backward(
        ref.gru,
        x,
        weights[:3],
        weights[3:],
        d_output,
        merge_mode=merge_mode,
        return_sequences=True,
        return_state=True,
        mask=mask,
        initial_state=states,
        d_states=upstream[n_outputs:],
    )
    expected = [ours["x"]]
    expected += [ours[d][name] for d in ("forward", "backward") for name in ("kernel", "recurrent_kernel", "bias")]
    expected += ours["initial_state"]
    assert len(theirs) == len(expected)
    for i, (a, b) in enumerate(zip(expected, theirs)):
        assert_close(f"gradient {i}", a, b)


def test_stack_with_dense_matches_gradient_tape(keras, tf):
    """LSTM (sequences, masked) -> SimpleRNN -> Dense(softmax) as one keras.Model."""
    rng = np.random.default_rng(8)
    inputs = keras.Input((T, D), dtype="float64")
    masked = keras.layers.Masking(0.0, dtype="float64")(inputs)
    h1 = keras.layers.LSTM(M, return_sequences=True, dtype="float64")(masked)
    h2 = keras.layers.SimpleRNN(M, dtype="float64")(h1)
    y = keras.layers.Dense(2, activation="softmax", dtype="float64")(h2)
    model = keras.Model(inputs, y)
    weights = [rng.standard_normal(w.shape) * 0.6 for w in model.get_weights()]
    x = rng.standard_normal((N, T, D))
    x[1, -2:] = 0.0  # masked by the Masking layer
    x[2, :2] = 0.0
    upstream = rng.standard_normal((N, 2))
    theirs = tape_gradients(tf, model, x, weights, upstream=[upstream])

    mask = np.any(x != 0.0, axis=-1)
    a1 = ref.lstm(x, *weights[0:3], return_sequences=True, mask=mask)
    a2 = ref.simple_rnn(a1, *weights[3:6], mask=mask)
    d_dense = ref.dense_backward(a2, *weights[6:8], upstream, activation="softmax")
    d_rnn = ref.simple_rnn_backward(a1, *weights[3:6], d_dense["x"], mask=mask)
    d_lstm = ref.lstm_backward(x, *weights[0:3], d_rnn["x"], return_sequences=True, mask=mask)
    # Masking zeroes the masked steps' input, so their input gradient does not reach x.
    expected = [d_lstm["x"] * mask[..., None]]
    expected += [d_lstm[k] for k in ("kernel", "recurrent_kernel", "bias")]
    expected += [d_rnn[k] for k in ("kernel", "recurrent_kernel", "bias")]
    expected += [d_dense[k] for k in ("kernel", "bias")]
    for i, (a, b) in enumerate(zip(expected, theirs)):
        assert_close(f"gradient {i}", a, b)


def test_gelu_agrees_to_tensorflows_erfc(keras, tf):
    """TensorFlow's float64 ``erfc`` is off by about 4e-9 (gelu(1) included), forward and backward
    alike, while the reference uses the exact ``math.erf``: gelu agrees to 1e-6, not 1e-9."""
    z = tf.constant([1.0, -1.0, 2.0], dtype="float64")
    with tf.GradientTape() as tape:
        tape.watch(z)
        y = keras.activations.gelu(z)
    exact = ref.get_activation_gradient("gelu")(z.numpy(), None, np.ones(3))
    assert 1e-10 < np.max(np.abs(tape.gradient(y, z).numpy() - exact)) < 1e-8
    run_case(keras, tf, "simple_rnn", CASES["return_sequences"], layer_kwargs={"activation": "gelu"}, rtol=1e-6)


# ---------------------------------------------------------------- whole check models


MODELS = {
    "SimpleRNN": {"cell": "simple_rnn"},
    "masked LSTM returning sequences": {"cell": "lstm", "mask": "post", "return_sequences": True},
    "GRU go_backwards + initial state": {"cell": "gru", "go_backwards": True, "initial_state": True},
    "Bidirectional LSTM stack": {"cell": "lstm", "bidirectional": "concat", "M": (4, 3)},
    "masked GRU reset_after=False": {"cell": "gru", "reset_after": False, "mask": "pre"},
    "Bidirectional GRU merge None + states": {
        "cell": "gru",
        "bidirectional": "none",
        "return_state": True,
        "initial_state": True,
    },
}


def check_model(options: dict):
    from rnn_parity.architecture import layers_for
    from rnn_parity.case import make_case
    from rnn_parity.spec import build_spec

    options = dict(options)
    spec = build_spec(N=3, T=6, D=2, M=options.pop("M", (3,)), K=2, **options)
    layers = layers_for(spec)
    return layers, make_case(spec, layers)


@pytest.mark.parametrize("model", MODELS)
def test_model_gradients_match_the_backend(keras, model):
    from rnn_parity.gradients import loss_weights, model_gradients
    from rnn_parity.keras_gradients import keras_gradients, keras_step_gradients
    from rnn_parity.runtime import SequentialRuntime

    layers, case = check_model(MODELS[model])
    x, starts = case.batches[-1], case.initial_states
    out = SequentialRuntime(layers, case.weights, explicit_masks=True).run(x, initial_states=starts).output
    upstream = loss_weights([o.shape for o in out] if isinstance(out, list) else [out.shape], seed=0)
    ours = model_gradients(layers, case.weights, x, upstream, initial_states=starts)
    theirs = keras_gradients(layers, case.weights, x, upstream, initial_states=starts)
    assert list(ours.arrays) == list(theirs)
    assert "input" in theirs and any(name.endswith("recurrent_kernel") for name in theirs)
    assert any("/initial_state/" in name for name in theirs) == bool(starts)
    for name, grad in theirs.items():
        assert_close(name, ours.arrays[name], grad)
    for name, dh in ours.dh.items():
        if "/" not in name:  # single-direction layers are probed
            assert_close(
                f"{name} dh", dh, keras_step_gradients(layers, case.weights, x, upstream, name, initial_states=starts)
            )
