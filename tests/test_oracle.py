"""The optimised NumPy reference equals a deliberately plain loop (``naive_oracle``), without Keras.

The oracle is pinned on Keras's own golden values (``test_reference.py``); here hypothesis draws
weights, masks, directions, initial states, return options, activations, both GRU forms and
Bidirectional's merge modes, and the reference must give the oracle's numbers: to rounding in
float64, and within float32's accumulated rounding when it computes in float32.
"""

from __future__ import annotations

import os

import naive_oracle as oracle
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rnn_parity import reference as ref

FUNCTIONS = {"simple_rnn": ref.simple_rnn, "lstm": ref.lstm, "gru": ref.gru}
GATES = {"simple_rnn": 1, "lstm": 4, "gru": 3}

# derandomized: the same examples on every run; HYPOTHESIS_SEARCH=1 draws fresh ones, more of them
settings.register_profile(
    "oracle",
    max_examples=300 if os.environ.get("HYPOTHESIS_SEARCH") else 60,
    deadline=None,
    derandomize=not os.environ.get("HYPOTHESIS_SEARCH"),
    suppress_health_check=[HealthCheck.too_slow],
)

# ----- the oracle itself (Keras's golden values pin it in test_reference.py)


def test_the_oracle_masks_as_keras_does():
    """A masked step keeps the state and repeats the output (zeros before the first real step)."""
    x = np.arange(8, dtype=np.float64).reshape(1, 4, 2) / 8
    W, U, b = np.full((2, 1), 0.5), np.full((1, 1), 0.5), np.zeros(1)
    mask = np.array([[False, True, False, True]])
    seq, h = oracle.layer("simple_rnn", x, W, U, b, mask=mask, return_sequences=True, return_state=True)
    h1 = np.tanh(x[0, 1].sum() * 0.5)
    h3 = np.tanh(x[0, 3].sum() * 0.5 + 0.5 * h1)
    np.testing.assert_allclose(seq[0, :, 0], [0.0, h1, h1, h3], rtol=1e-15)
    np.testing.assert_allclose(h[0], [h3], rtol=1e-15)
    zeros = oracle.layer("simple_rnn", x, W, U, b, mask=mask, return_sequences=True, zero_output_for_mask=True)
    np.testing.assert_allclose(zeros[0, :, 0], [0.0, h1, 0.0, h3], rtol=1e-15)


# ----- the reference against the oracle


def _weights(rng, cell, d, m, *, use_bias, reset_after, scale=0.6):
    g = GATES[cell]
    kernel = rng.standard_normal((d, g * m)) * scale
    recurrent_kernel = rng.standard_normal((m, g * m)) * scale
    if not use_bias:
        return [kernel, recurrent_kernel, None]
    bias_shape = (2, 3 * m) if cell == "gru" and reset_after else (g * m,)
    return [kernel, recurrent_kernel, rng.standard_normal(bias_shape) * scale]


def _mask(rng, kind, n, t):
    if kind == "none":
        return None
    if kind == "random":
        return rng.random((n, t)) < 0.6
    lengths = rng.integers(0, t + 1, size=n)  # padding, possibly a whole row
    steps = np.arange(t)[None, :]
    return steps < lengths[:, None] if kind == "post" else steps >= (t - lengths)[:, None]


def _close(got, want, dtype):
    tol = {"float64": 1e-12, "float32": 2e-5}[dtype]
    if isinstance(want, (list, tuple)):
        assert isinstance(got, (list, tuple)) and len(got) == len(want)
        for g, w in zip(got, want):
            _close(g, w, dtype)
        return
    assert np.asarray(got).dtype == np.dtype(dtype)
    np.testing.assert_allclose(np.asarray(got, dtype=np.float64), want, rtol=tol, atol=tol)


cells = st.sampled_from(["simple_rnn", "lstm", "gru"])
activations = st.sampled_from(sorted(oracle.ACTIVATIONS))


@settings(settings.get_profile("oracle"))
@given(
    cell=cells,
    n=st.integers(1, 3),
    t=st.integers(1, 7),
    d=st.integers(1, 4),
    m=st.integers(1, 4),
    seed=st.integers(0, 2**16),
    use_bias=st.booleans(),
    reset_after=st.booleans(),
    mask=st.sampled_from(["none", "random", "post", "pre"]),
    go_backwards=st.booleans(),
    initial_state=st.booleans(),
    return_sequences=st.booleans(),
    return_state=st.booleans(),
    activation=activations,
    recurrent_activation=activations,
    dtype=st.sampled_from(["float64", "float32"]),
)
def test_the_reference_layers_equal_the_oracle(
    cell,
    n,
    t,
    d,
    m,
    seed,
    use_bias,
    reset_after,
    mask,
    go_backwards,
    initial_state,
    return_sequences,
    return_state,
    activation,
    recurrent_activation,
    dtype,
):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, t, d))
    weights = _weights(rng, cell, d, m, use_bias=use_bias, reset_after=reset_after)
    options = {
        "activation": activation,
        "mask": _mask(rng, mask, n, t),
        "go_backwards": go_backwards,
        "return_sequences": return_sequences,
        "return_state": return_state,
        "initial_state": (
            [rng.standard_normal((n, m)) for _ in range(oracle.N_STATES[cell])] if initial_state else None
        ),
    }
    cell_options = {}
    if cell != "simple_rnn":
        cell_options["recurrent_activation"] = recurrent_activation
    if cell == "gru":
        cell_options["reset_after"] = reset_after
    want = oracle.layer(cell, x, *weights, **options, **cell_options)
    got = FUNCTIONS[cell](x.astype(dtype), *weights, **options, **cell_options)
    _close(got, want, dtype)


@settings(settings.get_profile("oracle"))
@given(
    cell=cells,
    n=st.integers(1, 3),
    t=st.integers(1, 6),
    d=st.integers(1, 3),
    m=st.integers(1, 3),
    seed=st.integers(0, 2**16),
    use_bias=st.booleans(),
    reset_after=st.booleans(),
    merge_mode=st.sampled_from(["concat", "sum", "mul", "ave", None]),
    mask=st.sampled_from(["none", "random", "post", "pre"]),
    initial_state=st.booleans(),
    return_sequences=st.booleans(),
    return_state=st.booleans(),
    activation=activations,
)
def test_the_reference_bidirectional_equals_the_oracle(
    cell,
    n,
    t,
    d,
    m,
    seed,
    use_bias,
    reset_after,
    merge_mode,
    mask,
    initial_state,
    return_sequences,
    return_state,
    activation,
):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, t, d))
    forward = _weights(rng, cell, d, m, use_bias=use_bias, reset_after=reset_after)
    backward = _weights(rng, cell, d, m, use_bias=use_bias, reset_after=reset_after)
    k = oracle.N_STATES[cell]
    options = {
        "merge_mode": merge_mode,
        "mask": _mask(rng, mask, n, t),
        "return_sequences": return_sequences,
        "return_state": return_state,
        "initial_state": [rng.standard_normal((n, m)) for _ in range(2 * k)] if initial_state else None,
        "activation": activation,
    }
    if cell == "gru":
        options["reset_after"] = reset_after
    want = oracle.bidirectional(cell, x, forward, backward, **options)
    got = ref.bidirectional(FUNCTIONS[cell], x, forward, backward, **options)
    _close(got, want, "float64")
