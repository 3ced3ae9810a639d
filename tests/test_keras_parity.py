"""The reference against real Keras models: seeded, randomised, every cell × every option."""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rnn_parity import reference
from rnn_parity.checker import run_check
from rnn_parity.spec import build_spec

pytestmark = pytest.mark.keras

CELLS = ["simple_rnn", "lstm", "gru"]

OPTIONS = {
    "defaults": {},
    "N>1": {"N": 7},
    "T=1": {"T": 1, "N": 3},
    "M=1": {"M": 1, "N": 2},
    "float32 reference": {"reference_dtype": "float32", "N": 3},
    "no bias": {"use_bias": False, "N": 2},
    "return_sequences": {"return_sequences": True, "N": 3},
    "return_state": {"return_state": True, "N": 3},
    "go_backwards": {"go_backwards": True, "return_sequences": True, "N": 3},
    "initial_state": {"initial_state": True, "return_state": True, "N": 3},
    "initial_state + mask": {"initial_state": True, "mask": "pre", "return_sequences": True, "N": 5},
    "mask post": {"mask": "post", "return_sequences": True, "N": 6},
    "mask pre": {"mask": "pre", "return_sequences": True, "N": 6},
    "mask + go_backwards": {"mask": "post", "go_backwards": True, "return_sequences": True, "N": 6},
    "mask, last output": {"mask": "pre", "N": 6, "return_state": True},
    "stateful": {"stateful": True, "N": 4, "return_state": True},
    "unroll": {"unroll": True, "N": 2, "return_sequences": True},
    "stack": {"M": (6, 4), "N": 3, "return_state": True},
    "bidirectional concat": {"bidirectional": "concat", "return_sequences": True, "N": 3},
    "bidirectional sum masked": {"bidirectional": "sum", "mask": "post", "return_sequences": True, "N": 5},
    "bidirectional mul": {"bidirectional": "mul", "N": 3},
    "bidirectional ave masked last": {"bidirectional": "ave", "mask": "pre", "N": 5, "return_state": True},
    "bidirectional none": {"bidirectional": "none", "return_sequences": True, "return_state": True, "N": 3},
    "bidirectional stack + initial_state": {
        "bidirectional": "concat",
        "M": (5, 3),
        "initial_state": True,
        "return_state": True,
        "N": 3,
    },
    "relu / hard_sigmoid": {"activation": "relu", "N": 2},
}


def _for_cell(cell: str, options: dict) -> dict:
    kwargs = {"cell": cell, "seed": 11, **options}
    if kwargs.get("activation") == "relu" and cell != "simple_rnn":
        kwargs["recurrent_activation"] = "hard_sigmoid"
    return kwargs


@pytest.mark.parametrize("option", list(OPTIONS))
@pytest.mark.parametrize("cell", CELLS)
def test_every_cell_and_option_matches_keras(cell, option):
    result = run_check(build_spec(**_for_cell(cell, OPTIONS[option])))
    assert result.passed, {layer.desc.name: layer.comparison for layer in result.layers}
    for layer in result.layers:
        assert layer.keras_params == layer.desc.param_count
    if OPTIONS[option].get("return_state"):
        assert result.states and all(c.passed for c in result.states.values())


RESET_BEFORE = {
    "mask post": {"mask": "post", "return_sequences": True, "N": 3},
    "go_backwards + initial_state": {"go_backwards": True, "initial_state": True, "return_state": True, "N": 3},
    "bidirectional sum, mask pre": {"bidirectional": "sum", "mask": "pre", "return_sequences": True, "N": 3},
    "no bias, stateful": {"use_bias": False, "stateful": True, "N": 2},
}


@pytest.mark.parametrize("options", RESET_BEFORE.values(), ids=RESET_BEFORE.keys())
def test_gru_without_reset_after(options):
    spec = build_spec(cell="gru", reset_after=False, **options)
    result = run_check(spec)
    assert result.passed, {layer.desc.name: layer.comparison for layer in result.layers}
    # Keras built the reset-before GRU: one bias of 3·M, not two (reset_after's (2, 3·M))
    d, m = spec.D, spec.M[0]
    per_direction = 3 * (d * m + m * m + (m if spec.use_bias else 0))
    gru = next(layer for layer in result.layers if layer.desc.cell_class == "GRU")
    assert gru.keras_params == per_direction * (2 if spec.bidirectional else 1)


def test_lstm_without_unit_forget_bias():
    assert run_check(build_spec(cell="lstm", unit_forget_bias=False, N=2)).passed


@pytest.mark.parametrize("activation", sorted(reference.ACTIVATIONS))
def test_every_activation_matches_keras(activation):
    cell = "gru" if activation in ("sigmoid", "softmax") else "simple_rnn"
    t = 3 if activation == "exponential" else 6  # exp of exp of … overflows float32 by T=6
    assert run_check(build_spec(activation=activation, cell=cell, N=2, T=t)).passed


def test_overflow_to_infinity_is_a_failure():
    """Both sides overflow to inf: equal, but NaN/Inf is a failure by rule."""
    result = run_check(build_spec(activation="exponential", N=2, T=6))
    assert not result.passed
    assert result.output.nonfinite > 0


def test_long_sequence_float64_reference():
    result = run_check(build_spec(T=500, N=4, D=8, M=32))
    assert result.passed
    assert result.output.max_abs_diff < 1e-6


def test_parity_failure_is_detected(monkeypatch):
    """Swap in Keras 2's hard_sigmoid: the very bug old ports have. The check must fail."""
    monkeypatch.setitem(reference.ACTIVATIONS, "hard_sigmoid", lambda x: np.clip(0.2 * x + 0.5, 0, 1))
    result = run_check(build_spec(cell="lstm", recurrent_activation="hard_sigmoid", N=4))
    assert not result.passed
    assert result.output.max_abs_diff > 1e-4
    assert result.output.mismatches > 0


def test_flipped_backward_sequence_is_detected(monkeypatch):
    """A Bidirectional that forgets to flip the backward sequence back must fail the check."""

    def no_flip(layer, x, fwd, bwd, *, merge_mode, return_sequences, return_state, mask, initial_state, **kw):
        y, *fwd_states = layer(x, *fwd, return_sequences=return_sequences, return_state=True, mask=mask, **kw)
        y_rev, *bwd_states = layer(
            x, *bwd, return_sequences=return_sequences, return_state=True, mask=mask, go_backwards=True, **kw
        )
        return (np.concatenate([y, y_rev], axis=-1), *fwd_states, *bwd_states)

    monkeypatch.setattr(reference, "bidirectional", no_flip)
    result = run_check(build_spec(bidirectional="concat", return_sequences=True, N=2))
    assert not result.passed


# derandomize: the same 25 examples on every run, so a CI gate is reproducible; widen the search
# by hand with e.g. HYPOTHESIS_SEARCH=1 (a fresh random draw of 200 examples) before a release.
settings.register_profile(
    "parity",
    max_examples=200 if os.environ.get("HYPOTHESIS_SEARCH") else 25,
    deadline=None,
    derandomize=not os.environ.get("HYPOTHESIS_SEARCH"),
    suppress_health_check=[HealthCheck.too_slow],
)


@settings(settings.get_profile("parity"))
@given(
    cell=st.sampled_from(CELLS),
    n=st.integers(1, 4),
    t=st.integers(1, 12),
    d=st.integers(1, 5),
    units=st.lists(st.integers(1, 6), min_size=1, max_size=2),
    k=st.integers(1, 3),
    seed=st.integers(0, 2**16),
    return_sequences=st.booleans(),
    return_state=st.booleans(),
    go_backwards=st.booleans(),
    mask=st.sampled_from(["none", "post", "pre"]),
    bidirectional=st.sampled_from([None, "concat", "sum", "mul", "ave"]),
    use_bias=st.booleans(),
    reference_dtype=st.sampled_from(["float64", "float32"]),
    start=st.sampled_from(["zeros", "initial_state", "stateful"]),
    gate_variant=st.booleans(),
)
def test_random_shapes_and_options_match_keras(
    cell,
    n,
    t,
    d,
    units,
    k,
    seed,
    return_sequences,
    return_state,
    go_backwards,
    mask,
    bidirectional,
    use_bias,
    reference_dtype,
    start,
    gate_variant,
):
    if bidirectional:
        go_backwards = False  # Keras 3 refuses it (tested in test_cli)
        if start == "stateful":
            return_state = False  # Keras 3 cannot build it (tested in test_cli)
    spec = build_spec(
        cell=cell,
        N=n,
        T=t,
        D=d,
        M=tuple(units),
        K=k,
        seed=seed,
        return_sequences=return_sequences,
        return_state=return_state,
        go_backwards=go_backwards,
        mask=mask,
        bidirectional=bidirectional,
        use_bias=use_bias,
        reference_dtype=reference_dtype,
        initial_state=start == "initial_state",
        stateful=start == "stateful",
        # the other GRU form, and LSTM without the unit forget bias
        **({"gru": {"reset_after": not gate_variant}, "lstm": {"unit_forget_bias": not gate_variant}}.get(cell, {})),
    )
    result = run_check(spec)
    assert result.passed, (result.output, result.states)


def test_keras_drops_the_masking_mask_when_initial_state_tensors_are_passed(keras):
    """Pins a Keras 3 behaviour the check works around (keras_runner passes the mask explicitly).

    ``Layer.__call__`` fills in ``mask`` from the input only when the call has a
    single tensor argument; with ``initial_state`` tensors the Masking layer's mask
    is silently ignored. If this test starts failing, Keras changed: revisit the
    work-around and README's note.
    """
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 4, 3)).astype("float32")
    x[0, :2] = 0.0
    h0 = rng.standard_normal((2, 2)).astype("float32")
    x_in, s_in = keras.Input((4, 3)), keras.Input((2,))
    rnn = keras.layers.SimpleRNN(2, return_sequences=True)
    model = keras.Model([x_in, s_in], rnn(keras.layers.Masking(0.0)(x_in), initial_state=[s_in]))
    got = model.predict([x, h0], verbose=0)
    weights = rnn.get_weights()
    mask = np.any(x != 0, axis=-1)
    unmasked = reference.simple_rnn(x, *weights, initial_state=[h0], return_sequences=True)
    masked = reference.simple_rnn(x, *weights, initial_state=[h0], mask=mask, return_sequences=True)
    np.testing.assert_allclose(got, unmasked, atol=1e-6)
    assert not np.allclose(got, masked, atol=1e-3)
