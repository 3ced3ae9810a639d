"""The NumPy backward pass against central finite differences of the NumPy forward pass.

No TensorFlow here: float64, small sizes, every cell × option, every activation. A
misreading of Keras shared by the forward and the backward cannot pass these tests
unnoticed only if the forward is right; the forward is pinned against Keras elsewhere.
"""

from __future__ import annotations

import numpy as np
import pytest

from rnn_parity import reference as ref

EPS = 1e-6
RTOL, ATOL = 1e-6, 1e-9

N, T, D, M = 3, 5, 3, 2
GATES = {"simple_rnn": 1, "lstm": 4, "gru": 3}
N_STATES = {"simple_rnn": 1, "lstm": 2, "gru": 1}
FORWARD = {"simple_rnn": ref.simple_rnn, "lstm": ref.lstm, "gru": ref.gru}


def numeric_gradient(loss, array: np.ndarray) -> np.ndarray:
    """Central differences of the scalar ``loss()`` with respect to every element of ``array`` (in place)."""
    grad = np.zeros_like(array)
    for index in np.ndindex(array.shape):
        saved = array[index]
        array[index] = saved + EPS
        up = loss()
        array[index] = saved - EPS
        down = loss()
        array[index] = saved
        grad[index] = (up - down) / (2 * EPS)
    return grad


def assert_gradient(name, analytic, numeric):
    assert analytic.shape == numeric.shape, name
    np.testing.assert_allclose(analytic, numeric, rtol=RTOL, atol=ATOL, err_msg=name)


def random_mask(rng, n, t):
    mask = rng.random((n, t)) > 0.35
    mask[0, 0] = False  # a masked first step: the emitted output is zeros there
    mask[-1, -1] = False  # a masked last step: the last output repeats an earlier one
    return mask


def cell_case(cell, rng, *, use_bias=True, reset_after=True, initial_state=False, mask=False, scale=0.8):
    g = GATES[cell]
    params = {
        "x": rng.standard_normal((N, T, D)),
        "kernel": rng.standard_normal((D, g * M)) * scale,
        "recurrent_kernel": rng.standard_normal((M, g * M)) * scale,
    }
    if use_bias:
        shape = (2, g * M) if (cell == "gru" and reset_after) else (g * M,)
        params["bias"] = rng.standard_normal(shape) * 0.5
    if initial_state:
        for i in range(N_STATES[cell]):
            params[f"state{i}"] = rng.standard_normal((N, M))
    return params, (random_mask(rng, N, T) if mask else None)


def check_cell(cell, options: dict, *, seed=0, scale=0.8, use_bias=True, initial_state=False, mask=False):
    """FD-check every gradient of one layer call, with a random linear loss on the output and states."""
    rng = np.random.default_rng(seed)
    reset_after = options.get("reset_after", True)
    params, mask_array = cell_case(
        cell, rng, use_bias=use_bias, reset_after=reset_after, initial_state=initial_state, mask=mask, scale=scale
    )
    options = dict(options, mask=mask_array)
    return_sequences = options.get("return_sequences", False)
    return_state = options.get("return_state", False)
    n_states = N_STATES[cell]
    out_shape = (N, T, M) if return_sequences else (N, M)
    g_out = rng.standard_normal(out_shape)
    g_states = [rng.standard_normal((N, M)) for _ in range(n_states)] if return_state else None
    states = [params[f"state{i}"] for i in range(n_states)] if initial_state else None

    def forward():
        result = FORWARD[cell](
            params["x"],
            params["kernel"],
            params["recurrent_kernel"],
            params.get("bias"),
            initial_state=states,
            **options,
        )
        if return_state:
            out, *final = result
            return np.sum(g_out * out) + sum(np.sum(g * s) for g, s in zip(g_states, final))
        return np.sum(g_out * result)

    grads = ref.BACKWARD[FORWARD[cell]](
        params["x"],
        params["kernel"],
        params["recurrent_kernel"],
        params.get("bias"),
        g_out,
        initial_state=states,
        d_states=g_states,
        **options,
    )
    if not use_bias:
        assert grads["bias"] is None
    assert len(grads["initial_state"]) == n_states
    for name, array in params.items():
        if name.startswith("state"):
            analytic = grads["initial_state"][int(name[-1])]
        else:
            analytic = grads[name]
        assert_gradient(f"{cell} {name}", analytic, numeric_gradient(forward, array))
    return grads


OPTIONS = {
    "last output": ({}, {}),
    "return_sequences": ({"return_sequences": True}, {}),
    "return_state": ({"return_state": True}, {}),
    "go_backwards": ({"go_backwards": True}, {}),
    "go_backwards sequences": ({"go_backwards": True, "return_sequences": True}, {}),
    "initial_state": ({"return_state": True}, {"initial_state": True}),
    "no bias": ({"return_sequences": True}, {"use_bias": False}),
    "mask, last output": ({"return_state": True}, {"mask": True}),
    "mask sequences": ({"return_sequences": True}, {"mask": True, "initial_state": True}),
    "mask zero_output": ({"return_sequences": True, "zero_output_for_mask": True}, {"mask": True}),
    "mask go_backwards": ({"return_sequences": True, "go_backwards": True}, {"mask": True}),
}


@pytest.mark.parametrize("option", OPTIONS)
@pytest.mark.parametrize("cell", ["simple_rnn", "lstm", "gru"])
def test_cell_gradients_match_finite_differences(cell, option):
    layer_options, case = OPTIONS[option]
    check_cell(cell, layer_options, **case)


@pytest.mark.parametrize("option", ["last output", "mask sequences", "go_backwards sequences", "no bias"])
def test_gru_reset_before_gradients_match_finite_differences(option):
    layer_options, case = OPTIONS[option]
    check_cell("gru", dict(layer_options, reset_after=False), **case)


@pytest.mark.parametrize("activation", sorted(ref.ACTIVATIONS))
def test_every_activation_gradient_matches_finite_differences(activation):
    # Small weights keep unbounded activations (exponential) from overflowing over the steps.
    check_cell("simple_rnn", {"activation": activation, "return_sequences": True}, seed=3, scale=0.3)


@pytest.mark.parametrize("activation", ["hard_sigmoid", "softmax", "relu", "linear"])
@pytest.mark.parametrize("cell", ["lstm", "gru", "gru reset_before"])
def test_gated_cells_with_other_activations(cell, activation):
    options = {"recurrent_activation": activation, "return_sequences": True}
    if cell == "gru reset_before":
        cell, options = "gru", dict(options, reset_after=False)
    check_cell(cell, dict(options, activation="softsign"))
    check_cell(cell, dict(options, activation=activation, recurrent_activation="sigmoid"), seed=2)


def test_activation_gradients_at_the_kinks_follow_tensorflow():
    z = np.array([-6.0, -3.0, -1.0, -0.5, 0.0, 0.5, 1.0, 3.0, 6.0])
    one = np.ones_like(z)

    def derivative(name):
        return ref.get_activation_gradient(name)(z, ref.get_activation(name)(z), one)

    np.testing.assert_array_equal(derivative("relu"), [0, 0, 0, 0, 0, 1, 1, 1, 1])
    np.testing.assert_array_equal(derivative("relu6"), [0, 0, 0, 0, 0, 1, 1, 1, 0])
    np.testing.assert_array_equal(derivative("leaky_relu"), [0.2, 0.2, 0.2, 0.2, 0.2, 1, 1, 1, 1])
    np.testing.assert_allclose(derivative("hard_sigmoid"), np.array([0, 0, 1, 1, 1, 1, 1, 0, 0]) / 6)
    np.testing.assert_array_equal(derivative("hard_tanh"), [0, 0, 1, 1, 1, 1, 1, 0, 0])
    np.testing.assert_array_equal(derivative("sparse_sigmoid"), [0, 0, 0, 0.5, 0.5, 0.5, 0, 0, 0])
    np.testing.assert_array_equal(derivative("soft_shrink"), [1, 1, 1, 0, 0, 0, 1, 1, 1])
    np.testing.assert_array_equal(derivative("hard_shrink"), [1, 1, 1, 0, 0, 0, 1, 1, 1])
    assert derivative("celu")[4] == 2.0  # max and min both pass the gradient on a tie
    assert derivative("elu")[4] == 1.0


def test_unknown_activation_gradient_is_refused():
    with pytest.raises(ref.UnsupportedActivation, match="'bogus'"):
        ref.get_activation_gradient("bogus")


@pytest.mark.parametrize("merge_mode", ref.MERGE_MODES)
@pytest.mark.parametrize("return_sequences", [False, True])
def test_bidirectional_gradients_match_finite_differences(merge_mode, return_sequences):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((N, T, D))
    fwd = [rng.standard_normal((D, 4 * M)), rng.standard_normal((M, 4 * M)), rng.standard_normal(4 * M)]
    bwd = [rng.standard_normal((D, 4 * M)), rng.standard_normal((M, 4 * M)), rng.standard_normal(4 * M)]
    states = [rng.standard_normal((N, M)) for _ in range(4)]
    mask = random_mask(rng, N, T)
    kwargs = dict(merge_mode=merge_mode, return_sequences=return_sequences, return_state=True, mask=mask)
    out_shape = (N, T, M) if return_sequences else (N, M)
    if merge_mode is None:
        g_out = [rng.standard_normal(out_shape), rng.standard_normal(out_shape)]
    elif merge_mode == "concat":
        g_out = rng.standard_normal(out_shape[:-1] + (2 * M,))
    else:
        g_out = rng.standard_normal(out_shape)
    g_states = [rng.standard_normal((N, M)) for _ in range(4)]

    def loss():
        out, *final = ref.bidirectional(ref.lstm, x, fwd, bwd, initial_state=states, **kwargs)
        total = sum(np.sum(g * s) for g, s in zip(g_states, final))
        if merge_mode is None:
            return total + np.sum(g_out[0] * out[0]) + np.sum(g_out[1] * out[1])
        return total + np.sum(g_out * out)

    grads = ref.bidirectional_backward(ref.lstm, x, fwd, bwd, g_out, initial_state=states, d_states=g_states, **kwargs)
    assert_gradient("x", grads["x"], numeric_gradient(loss, x))
    for direction, weights in (("forward", fwd), ("backward", bwd)):
        for name, array in zip(("kernel", "recurrent_kernel", "bias"), weights):
            assert_gradient(f"{direction} {name}", grads[direction][name], numeric_gradient(loss, array))
    for i, state in enumerate(states):
        assert_gradient(f"state {i}", grads["initial_state"][i], numeric_gradient(loss, state))


@pytest.mark.parametrize("activation", [None, "softmax", "relu"])
def test_dense_gradients_match_finite_differences(activation):
    rng = np.random.default_rng(7)
    x, W, b = rng.standard_normal((N, T, M)), rng.standard_normal((M, 4)), rng.standard_normal(4)
    g = rng.standard_normal((N, T, 4))
    loss = lambda: np.sum(g * ref.dense(x, W, b, activation=activation))
    grads = ref.dense_backward(x, W, b, g, activation=activation)
    for name, array in (("x", x), ("kernel", W), ("bias", b)):
        assert_gradient(name, grads[name], numeric_gradient(loss, array))


def test_a_stack_chains_the_backward_functions():
    """GRU (sequences) -> LSTM -> Dense: each layer's input gradient is the previous layer's upstream."""
    rng = np.random.default_rng(11)
    x = rng.standard_normal((N, T, D))
    gru_w = [rng.standard_normal((D, 3 * M)), rng.standard_normal((M, 3 * M)), rng.standard_normal((2, 3 * M))]
    lstm_w = [rng.standard_normal((M, 4 * M)), rng.standard_normal((M, 4 * M)), rng.standard_normal(4 * M)]
    dense_w = [rng.standard_normal((M, 3)), rng.standard_normal(3)]
    mask = random_mask(rng, N, T)
    g = rng.standard_normal((N, 3))

    def forward():
        h1 = ref.gru(x, *gru_w, return_sequences=True, mask=mask)
        h2 = ref.lstm(h1, *lstm_w, mask=mask)
        return h1, h2, ref.dense(h2, *dense_w)

    loss = lambda: np.sum(g * forward()[2])
    h1, h2, _ = forward()
    d_dense = ref.dense_backward(h2, *dense_w, g)
    d_lstm = ref.lstm_backward(h1, *lstm_w, d_dense["x"], mask=mask)
    d_gru = ref.gru_backward(x, *gru_w, d_lstm["x"], return_sequences=True, mask=mask)
    assert_gradient("x", d_gru["x"], numeric_gradient(loss, x))
    for name, array in zip(("kernel", "recurrent_kernel", "bias"), gru_w):
        assert_gradient(f"gru {name}", d_gru[name], numeric_gradient(loss, array))
    for name, array in zip(("kernel", "recurrent_kernel", "bias"), lstm_w):
        assert_gradient(f"lstm {name}", d_lstm[name], numeric_gradient(loss, array))


@pytest.mark.parametrize("cell", ["simple_rnn", "lstm", "gru"])
def test_float32_on_request(cell):
    rng = np.random.default_rng(2)
    params, mask = cell_case(cell, rng, mask=True)
    args = (params["x"], params["kernel"], params["recurrent_kernel"], params["bias"])
    g = rng.standard_normal((N, T, M))
    backward = ref.BACKWARD[FORWARD[cell]]
    exact = backward(*args, g, return_sequences=True, mask=mask)
    single = backward(*args, g, return_sequences=True, mask=mask, dtype=np.float32)
    for name in ("x", "kernel", "recurrent_kernel", "bias"):
        assert exact[name].dtype == np.float64 and single[name].dtype == np.float32
        np.testing.assert_allclose(single[name], exact[name], rtol=1e-4, atol=1e-5, err_msg=name)
    # float32 inputs still give float64 gradients unless float32 is asked for
    assert backward(*(a.astype(np.float32) for a in args), g, return_sequences=True)["kernel"].dtype == np.float64


def test_bad_upstream_gradients_are_refused():
    rng = np.random.default_rng(0)
    params, _ = cell_case("lstm", rng)
    args = (params["x"], params["kernel"], params["recurrent_kernel"], params["bias"])
    with pytest.raises(ValueError, match=r"d_output must have the output's shape \(3, 2\), got \(3, 5, 2\)"):
        ref.lstm_backward(*args, np.zeros((N, T, M)))
    with pytest.raises(ValueError, match="d_states needs return_state=True"):
        ref.lstm_backward(*args, np.zeros((N, M)), d_states=[np.zeros((N, M))] * 2)
    with pytest.raises(ValueError, match=r"d_states needs 2 array\(s\), got 1"):
        ref.lstm_backward(*args, np.zeros((N, M)), return_state=True, d_states=[np.zeros((N, M))])
    with pytest.raises(ValueError, match="dtype must be a floating type"):
        ref.lstm_backward(*args, np.zeros((N, M)), dtype=np.int32)


@pytest.mark.parametrize("cell", ["simple_rnn", "lstm"])
def test_dh_is_the_gradient_of_each_steps_hidden_state(cell):
    """``dh[:, k]`` against finite differences of a probe added to the state the cell computes at step k."""
    rng = np.random.default_rng(9)
    params, mask = cell_case(cell, rng, mask=True)
    x, W, U, b = params["x"], params["kernel"], params["recurrent_kernel"], params["bias"]
    g = rng.standard_normal((N, T, M))
    probe = np.zeros((T, N, M))  # processing order

    def loss():
        k = iter(range(T))

        def step(xw_t, states):
            if cell == "simple_rnn":
                h = np.tanh(xw_t + states[0] @ U) + probe[next(k)]
                return h, [h]
            z = xw_t + states[0] @ U
            i, f, c_, o = (z[:, j * M : (j + 1) * M] for j in range(4))
            c = ref.ACTIVATIONS["sigmoid"](f) * states[1] + ref.ACTIVATIONS["sigmoid"](i) * np.tanh(c_)
            h = ref.ACTIVATIONS["sigmoid"](o) * np.tanh(c) + probe[next(k)]
            return h, [h, c]

        zeros = [np.zeros((N, M)) for _ in range(N_STATES[cell])]
        out, _ = ref.recurrent(
            step,
            x.transpose(1, 0, 2).copy(),
            lambda xb: xb @ W + b,
            zeros,
            return_sequences=True,
            go_backwards=True,
            mask=mask,
        )
        return np.sum(g * out)

    grads = ref.BACKWARD[FORWARD[cell]](x, W, U, b, g, return_sequences=True, go_backwards=True, mask=mask)
    assert_gradient("dh", grads["dh"], numeric_gradient(loss, probe).transpose(1, 0, 2))


# ---------------------------------------------------------------- whole check models, no TensorFlow


def check_model(**options):
    from rnn_parity.architecture import layers_for
    from rnn_parity.case import make_case
    from rnn_parity.spec import build_spec

    spec = build_spec(N=2, T=4, D=2, K=2, **options)
    layers = layers_for(spec)
    return layers, make_case(spec, layers)


@pytest.mark.parametrize(
    "options",
    [
        {"cell": "lstm", "mask": "post", "return_sequences": True, "M": (3,)},
        {"cell": "gru", "bidirectional": "mul", "initial_state": True, "M": (2, 3)},
        {"cell": "simple_rnn", "bidirectional": "none", "mask": "pre", "M": (3,)},
        {"cell": "gru", "reset_after": False, "go_backwards": True, "initial_state": True, "M": (3,)},
    ],
)
def test_model_gradients_pass_the_finite_difference_check(options):
    from rnn_parity.gradients import finite_differences, loss_weights, model_gradients
    from rnn_parity.runtime import SequentialRuntime

    layers, case = check_model(**options)
    x, starts = case.batches[-1], case.initial_states
    out = SequentialRuntime(layers, case.weights).run(x, initial_states=starts).output
    upstream = loss_weights([o.shape for o in out] if isinstance(out, list) else [out.shape], seed=1)
    grads = model_gradients(layers, case.weights, x, upstream, initial_states=starts)
    fd = finite_differences(layers, case.weights, x, upstream, grads, initial_states=starts, max_elements=8)
    assert fd.passed, fd.errors
    assert set(fd.errors) == set(grads.arrays) and fd.max_error < 1e-6
    assert all(0 < n <= 8 for n in fd.checked.values())

    # A wrong gradient fails the check.
    first = next(name for name in grads.arrays if name.endswith("recurrent_kernel"))
    grads.arrays[first] = grads.arrays[first] * 1.001
    assert not finite_differences(layers, case.weights, x, upstream, grads, initial_states=starts).passed
