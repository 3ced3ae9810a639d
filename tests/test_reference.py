"""The NumPy reference against values computed by hand and Keras's published golden values.

No TensorFlow here: these tests pin the reference on its own. The golden values also pin
``naive_oracle``, which ``test_oracle.py`` then compares the reference with on random cases.
"""

from __future__ import annotations

import math
from functools import partial

import naive_oracle
import numpy as np
import pytest

from rnn_parity import reference as ref


def const(shape, value):
    return np.full(shape, value, dtype=np.float32)


# ---------------------------------------------------------------- hand-computed cases


def test_simple_rnn_one_unit_by_hand():
    # x = [1, 2], W = 0.5, U = 0.5, b = 0.1:  h1 = tanh(0.6);  h2 = tanh(1.0 + 0.1 + 0.5 h1)
    x = np.array([[[1.0], [2.0]]])
    out = ref.simple_rnn(x, [[0.5]], [[0.5]], [0.1], return_sequences=True)
    h1 = math.tanh(0.6)
    h2 = math.tanh(1.1 + 0.5 * h1)
    np.testing.assert_allclose(out[0, :, 0], [h1, h2], rtol=1e-15)


def test_notebook_loop_equals_reference():
    """The seed notebook's loop, written literally, gives the reference's answer."""
    rng = np.random.default_rng(1)
    T, D, M, K = 10, 3, 5, 2
    X = rng.standard_normal((1, T, D))
    Wx, Wh, bh = rng.standard_normal((D, M)), rng.standard_normal((M, M)) * 0.3, rng.standard_normal(M)
    Wo, bo = rng.standard_normal((M, K)), rng.standard_normal(K)
    h_last = np.zeros(M)
    for t in range(T):
        h = np.tanh(X[0][t].dot(Wx) + h_last.dot(Wh) + bh)
        h_last = h
    y = h_last.dot(Wo) + bo
    got = ref.dense(ref.simple_rnn(X, Wx, Wh, bh), Wo, bo)
    np.testing.assert_allclose(got[0], y, rtol=1e-13)


def test_lstm_one_unit_by_hand():
    # One unit, one step from zero state: z = x W + b with W = [1, 2, 3, 4], b = 0, x = 0.5
    x = np.array([[[0.5]]])
    W = np.array([[1.0, 2.0, 3.0, 4.0]])
    out, h, c = ref.lstm(x, W, np.zeros((1, 4)), np.zeros(4), return_state=True)
    sig = lambda v: 1 / (1 + math.exp(-v))
    i, f, g, o = sig(0.5), sig(1.0), math.tanh(1.5), sig(2.0)
    c_expected = f * 0 + i * g
    assert c[0, 0] == pytest.approx(c_expected, rel=1e-14)
    assert h[0, 0] == pytest.approx(o * math.tanh(c_expected), rel=1e-14)
    assert out[0, 0] == h[0, 0]


def test_gru_update_gate_weighs_the_old_state():
    # With z = 1 (huge bias on the z block) the state never changes: h' = z*h + (1-z)*ĥ = h.
    m = 2
    b = np.zeros((2, 3 * m))
    b[0, :m] = 50.0
    h0 = np.array([[0.3, -0.7]])
    x = np.ones((1, 4, 3))
    out = ref.gru(x, np.ones((3, 3 * m)), np.ones((m, 3 * m)), b, initial_state=[h0])
    np.testing.assert_allclose(out, h0, atol=1e-15)


def test_gru_reset_after_and_before_differ_only_through_the_reset_gate():
    """reset_after: ĥ = g(x·W_h + b_x + r ⊙ (h·U_h + b_u)); before: ĥ = g(x·W_h + (r ⊙ h)·U_h + b).

    With the reset gate open (r = 1) both are g(x·W_h + h·U_h + b_x + b_u): the same GRU once the
    single bias is the sum of the two. With the same weights and r free they differ.
    """
    rng = np.random.default_rng(0)
    m = 3
    x = rng.standard_normal((2, 6, 4))
    W, U = rng.standard_normal((4, 3 * m)), rng.standard_normal((m, 3 * m))
    b_after = rng.standard_normal((2, 3 * m))  # row 0 added to x·W, row 1 to h·U
    h0 = rng.standard_normal((2, m))
    run = lambda bias, reset_after: ref.gru(
        x, W, U, bias, reset_after=reset_after, initial_state=[h0], return_sequences=True
    )

    free_after, free_before = run(b_after, True), run(b_after.sum(axis=0), False)
    assert np.abs(free_after - free_before).max() > 1e-2

    b_after[0, m : 2 * m] = 40.0  # sigmoid(40 + O(10)) == 1.0 in float64: the reset gate is open
    open_after, open_before = run(b_after, True), run(b_after.sum(axis=0), False)
    np.testing.assert_allclose(open_after, open_before, rtol=1e-12, atol=1e-14)


# ---------------------------------------------------------------- Keras's golden values
# From Keras 3's own layer tests: Constant(0.01) kernel, Constant(0.02) recurrent kernel,
# Constant(0.03) bias, np.arange inputs.

ARANGE_2x3x4 = np.arange(24).reshape((2, 3, 4)).astype("float32")
ARANGE_3x6x4 = np.arange(72).reshape((3, 6, 4)).astype("float32")


def test_simple_rnn_keras_golden():
    args = (ARANGE_2x3x4, const((4, 4), 0.01), const((4, 4), 0.02), const(4, 0.03))
    np.testing.assert_allclose(ref.simple_rnn(*args)[:, 0], [0.405432, 0.73605347], atol=1e-6)
    np.testing.assert_allclose(ref.simple_rnn(*args, go_backwards=True)[:, 0], [0.11144729, 0.5528889], atol=1e-6)


def _lstm_bias(m, unit_forget_bias=True):
    b = const(4 * m, 0.03)
    if unit_forget_bias:
        b[m : 2 * m] = 1.0
    return b


@pytest.mark.parametrize(
    ("kwargs", "bias", "expected"),
    [
        ({}, _lstm_bias(3), [0.6288687, 0.86899155, 0.9460773]),
        ({"go_backwards": True}, _lstm_bias(3), [0.35622165, 0.74789524, 0.8872726]),
        ({}, _lstm_bias(3, unit_forget_bias=False), [0.57019705, 0.8661914, 0.9459622]),
        ({}, None, [0.54986924, 0.86226785, 0.9443936]),
    ],
)
@pytest.mark.parametrize("lstm", [ref.lstm, partial(naive_oracle.layer, "lstm")], ids=["reference", "oracle"])
def test_lstm_keras_golden(lstm, kwargs, bias, expected):
    out = lstm(ARANGE_3x6x4, const((4, 12), 0.01), const((3, 12), 0.02), bias, **kwargs)
    np.testing.assert_allclose(out, np.repeat(np.array(expected)[:, None], 3, axis=1), atol=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "bias", "expected"),
    [
        ({}, const((2, 9), 0.03), [0.5217289, 0.6371659, 0.39384964]),
        ({"go_backwards": True}, const((2, 9), 0.03), [0.24406259, 0.611516, 0.3928808]),
        ({"reset_after": False}, const(9, 0.03), [0.51447755, 0.6426879, 0.40208298]),
        ({}, None, [0.49988455, 0.64701194, 0.4103359]),
    ],
)
@pytest.mark.parametrize("gru", [ref.gru, partial(naive_oracle.layer, "gru")], ids=["reference", "oracle"])
def test_gru_keras_golden(gru, kwargs, bias, expected):
    out = gru(ARANGE_3x6x4, const((4, 9), 0.01), const((3, 9), 0.02), bias, **kwargs)
    np.testing.assert_allclose(out, np.repeat(np.array(expected)[:, None], 3, axis=1), atol=1e-6)


def test_gru_stateful_keras_golden():
    """Keras's stateful GRU test: the second call starts from the first call's state."""
    args = (const((4, 12), 0.01), const((4, 12), 0.02), const((2, 12), 0.03))
    _, h = ref.gru(ARANGE_2x3x4, *args, return_state=True)
    out = ref.gru(ARANGE_2x3x4, *args, initial_state=[h])
    np.testing.assert_allclose(out[:, 0], [0.29542392, 0.5885018], atol=1e-6)


# ---------------------------------------------------------------- sequence semantics


@pytest.fixture
def weights():
    rng = np.random.default_rng(7)
    return rng.standard_normal((3, 4)) * 0.5, rng.standard_normal((4, 4)) * 0.3, rng.standard_normal(4) * 0.1


def test_go_backwards_returns_processing_order(weights):
    x = np.random.default_rng(0).standard_normal((2, 6, 3))
    backwards = ref.simple_rnn(x, *weights, go_backwards=True, return_sequences=True)
    forward_on_flipped = ref.simple_rnn(x[:, ::-1], *weights, return_sequences=True)
    np.testing.assert_array_equal(backwards, forward_on_flipped)


def test_masked_step_carries_state_and_repeats_output(weights):
    x = np.random.default_rng(0).standard_normal((1, 4, 3))
    mask = np.array([[True, False, True, False]])
    seq, h = ref.simple_rnn(x, *weights, mask=mask, return_sequences=True, return_state=True)
    np.testing.assert_array_equal(seq[0, 1], seq[0, 0])  # masked: repeats the previous output
    np.testing.assert_array_equal(seq[0, 3], seq[0, 2])
    # The state after the masked step is the state before it: same as running [x0, x2] unmasked.
    compact = ref.simple_rnn(x[:, [0, 2]], *weights, return_sequences=True)
    np.testing.assert_allclose(seq[0, 2], compact[0, 1], rtol=1e-14)
    np.testing.assert_array_equal(h, seq[:, 3])


def test_masked_first_steps_emit_zeros_but_keep_initial_state(weights):
    x = np.random.default_rng(0).standard_normal((1, 3, 3))
    h0 = np.full((1, 4), 0.5)
    mask = np.array([[False, False, True]])
    seq = ref.simple_rnn(x, *weights, mask=mask, initial_state=[h0], return_sequences=True)
    np.testing.assert_array_equal(seq[0, :2], 0.0)
    expected = ref.simple_rnn(x[:, 2:], *weights, initial_state=[h0])
    np.testing.assert_allclose(seq[0, 2], expected[0], rtol=1e-14)


def test_zero_output_for_mask(weights):
    x = np.random.default_rng(0).standard_normal((1, 3, 3))
    mask = np.array([[True, False, True]])
    seq = ref.simple_rnn(x, *weights, mask=mask, return_sequences=True, zero_output_for_mask=True)
    np.testing.assert_array_equal(seq[0, 1], 0.0)
    assert np.all(seq[0, 2] != 0)


def test_last_output_with_trailing_padding_is_the_last_real_output(weights):
    x = np.random.default_rng(0).standard_normal((1, 5, 3))
    mask = np.array([[True, True, True, False, False]])
    last = ref.simple_rnn(x, *weights, mask=mask)
    np.testing.assert_allclose(last, ref.simple_rnn(x[:, :3], *weights), rtol=1e-14)


def test_initial_state_and_return_state(weights):
    x = np.random.default_rng(0).standard_normal((2, 3, 3))
    h0 = np.random.default_rng(1).standard_normal((2, 4))
    out, h = ref.simple_rnn(x, *weights, initial_state=[h0], return_state=True)
    np.testing.assert_array_equal(out, h)
    assert not np.allclose(out, ref.simple_rnn(x, *weights))


def test_computes_in_the_input_dtype(weights):
    x = np.random.default_rng(0).standard_normal((2, 3, 3)).astype(np.float32)
    assert ref.simple_rnn(x, *weights).dtype == np.float32
    assert ref.lstm(x, np.ones((3, 16)), np.ones((4, 16)), np.ones(16)).dtype == np.float32
    assert ref.gru(x.astype(np.float64), np.ones((3, 12)), np.ones((4, 12))).dtype == np.float64


def test_vectorised_over_the_batch(weights):
    x = np.random.default_rng(0).standard_normal((5, 4, 3))
    batched = ref.simple_rnn(x, *weights, return_sequences=True)
    one_by_one = np.concatenate([ref.simple_rnn(x[i : i + 1], *weights, return_sequences=True) for i in range(5)])
    np.testing.assert_allclose(batched, one_by_one, rtol=1e-14)


def test_bidirectional_merge_modes_and_alignment():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 5, 3))
    fwd = [rng.standard_normal((3, 4)), rng.standard_normal((4, 4)) * 0.3, rng.standard_normal(4)]
    bwd = [rng.standard_normal((3, 4)), rng.standard_normal((4, 4)) * 0.3, rng.standard_normal(4)]
    y = ref.simple_rnn(x, *fwd, return_sequences=True)
    y_rev = ref.simple_rnn(x, *bwd, return_sequences=True, go_backwards=True)[:, ::-1]
    run = lambda mode: ref.bidirectional(ref.simple_rnn, x, fwd, bwd, merge_mode=mode, return_sequences=True)
    np.testing.assert_allclose(run("concat"), np.concatenate([y, y_rev], -1))
    np.testing.assert_allclose(run("sum"), y + y_rev)
    np.testing.assert_allclose(run("mul"), y * y_rev)
    np.testing.assert_allclose(run("ave"), (y + y_rev) / 2)
    both = run(None)
    np.testing.assert_allclose(both[0], y)
    np.testing.assert_allclose(both[1], y_rev)
    # Without return_sequences the backward output is its last processed step (input step 0).
    last = ref.bidirectional(ref.simple_rnn, x, fwd, bwd, merge_mode="concat")
    np.testing.assert_allclose(last[:, 4:], y_rev[:, 0])


def test_hard_sigmoid_is_keras3():
    v = np.array([-4.0, -3.0, -1.0, 0.0, 1.5, 3.0, 4.0])
    np.testing.assert_allclose(ref.get_activation("hard_sigmoid")(v), np.clip(v / 6 + 0.5, 0, 1))
    assert ref.get_activation("hard_sigmoid")(np.array([1.0]))[0] != pytest.approx(0.7)  # Keras 2's value


def test_sigmoid_is_stable_for_large_inputs():
    v = np.array([-1000.0, -30.0, 0.0, 30.0, 1000.0])
    with np.errstate(over="raise"):
        out = ref.get_activation("sigmoid")(v)
    np.testing.assert_allclose(out, [0.0, 1 / (1 + math.exp(30)), 0.5, 1 / (1 + math.exp(-30)), 1.0])


def test_unknown_activation_is_refused():
    with pytest.raises(ref.UnsupportedActivation, match="'my_act' is not supported"):
        ref.get_activation("my_act")
    with pytest.raises(ref.UnsupportedActivation):
        ref.simple_rnn(np.ones((1, 1, 1)), [[1.0]], [[1.0]], activation=lambda v: v)


def test_shape_errors_are_clear():
    with pytest.raises(ValueError, match="x must be"):
        ref.simple_rnn(np.ones((2, 3)), np.ones((3, 4)), np.ones((4, 4)))
    with pytest.raises(ValueError, match="kernel has 2 rows but x has 3 features"):
        ref.simple_rnn(np.ones((1, 2, 3)), np.ones((2, 4)), np.ones((4, 4)))
    with pytest.raises(ValueError, match=r"needs bias \(2, 6\)"):
        ref.gru(np.ones((1, 2, 3)), np.ones((3, 6)), np.ones((2, 6)), np.ones(6))


@pytest.mark.parametrize("block_bytes", [1, 100, 10_000])
@pytest.mark.parametrize("go_backwards", [False, True])
def test_projection_blocks_do_not_change_the_answer(monkeypatch, block_bytes, go_backwards):
    """Inputs are projected a block of timesteps at a time; block boundaries must be invisible."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((3, 23, 4))
    mask = rng.random((3, 23)) > 0.3
    args = (x, rng.standard_normal((4, 12)), rng.standard_normal((3, 12)) * 0.3, rng.standard_normal(12))
    kwargs = dict(return_sequences=True, return_state=True, go_backwards=go_backwards, mask=mask)
    whole = ref.lstm(*args, **kwargs)
    monkeypatch.setattr(ref, "_BLOCK_BYTES", block_bytes)
    for a, b in zip(whole, ref.lstm(*args, **kwargs)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", ["sigmoid", "tanh", "relu", "linear"])
def test_in_place_activations_on_one_unit_gate_blocks(dtype, name):
    """The gates are computed in place in column blocks of the projection; with one unit a
    block is an (n, 1) strided view, where NumPy 2.4's in-place float32 ``negative`` misreads
    (found by the property test: an LSTM with M=1, N=2 and a float32 reference)."""
    z = (np.arange(24, dtype=np.float64).reshape(6, 4) / 5 - 2).astype(dtype)
    expected = ref.get_activation(name)(z.copy())
    for block in range(4):
        view = z[:, block : block + 1]
        got = ref._in_place(name)(view)
        np.testing.assert_allclose(got, expected[:, block : block + 1], rtol=1e-6)


def test_float32_lstm_with_one_unit_matches_float64():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 4, 2))
    W, U = rng.standard_normal((2, 4)), rng.standard_normal((1, 4))
    np.testing.assert_allclose(ref.lstm(x.astype(np.float32), W, U), ref.lstm(x, W, U), atol=1e-6)
