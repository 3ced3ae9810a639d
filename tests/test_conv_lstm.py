"""ConvLSTM1D/2D/3D in NumPy (rnn_parity.conv_lstm): by hand, against a plain loop, and against Keras 3.

The Keras tests build every case into one functional model per dtype, called once, so the whole
comparison costs a few seconds of Keras time; stateful, channels_first and the Masking failure
go through ``predict_on_batch``.
"""

from __future__ import annotations

import itertools
import math
import os
from dataclasses import dataclass, field

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rnn_parity import reference as ref
from rnn_parity.conv_lstm import conv_lstm, conv_output_shape, convolution
from rnn_parity.errors import InvalidInput, Unsupported

#: The get_config() keys conv_lstm takes, as a registry entry would keep them.
KEPT = (
    "filters",
    "kernel_size",
    "strides",
    "padding",
    "data_format",
    "dilation_rate",
    "activation",
    "recurrent_activation",
    "use_bias",
    "return_sequences",
    "return_state",
    "go_backwards",
    "zero_output_for_mask",
)
TOLERANCE = {"float64": 1e-12, "float32": 1e-5}


def _sigmoid(v: float) -> float:
    return 1 / (1 + math.exp(-v))


def _close(got, want, dtype: str):
    got, want = (list(v) if isinstance(v, (list, tuple)) else [v] for v in (got, want))
    assert len(got) == len(want)
    for g, w in zip(got, want):
        g, w = np.asarray(g), np.asarray(w)
        assert g.shape == w.shape and g.dtype == np.dtype(dtype)
        np.testing.assert_allclose(g, w, rtol=TOLERANCE[dtype], atol=TOLERANCE[dtype])


# --------------------------------------------------------------------------
# By hand: values anyone can check.
# --------------------------------------------------------------------------


def test_convolution_by_hand():
    x = np.arange(1, 6, dtype=np.float64).reshape(1, 5, 1)  # 1 2 3 4 5
    ones = np.ones((2, 1, 1))
    np.testing.assert_array_equal(convolution(x, ones)[0, :, 0], [3, 5, 7, 9])
    # same, stride 2: ceil(5/2) = 3 outputs, one padding zero, after the end
    np.testing.assert_array_equal(convolution(x, ones, strides=2, padding="same")[0, :, 0], [3, 7, 5])
    # dilation 2: taps two apart
    np.testing.assert_array_equal(convolution(x, ones, dilation_rate=2)[0, :, 0], [4, 6, 8])
    # 2-D, a 2x2 window of ones over a 3x3 grid, with two output channels (the second doubled)
    grid = np.arange(9, dtype=np.float64).reshape(1, 3, 3, 1)  # 0..8
    kernel = np.stack([np.ones((2, 2, 1)), 2 * np.ones((2, 2, 1))], axis=-1)
    y = convolution(grid, kernel)
    np.testing.assert_array_equal(y[0, :, :, 0], [[8, 12], [20, 24]])
    np.testing.assert_array_equal(y[..., 1], 2 * y[..., 0])
    # 3-D: the sum of a whole 2x2x2 cube
    cube = np.arange(8, dtype=np.float64).reshape(1, 2, 2, 2, 1)
    assert convolution(cube, np.ones((2, 2, 2, 1, 1))).ravel().tolist() == [28.0]


def test_conv_output_shape_follows_tensorflow():
    assert conv_output_shape((7,), 3) == (5,)
    assert conv_output_shape((7, 6), 3, strides=2, padding="same") == (4, 3)
    assert conv_output_shape((7, 6, 5), (3, 1, 2), dilation_rate=(2, 1, 1)) == (3, 6, 4)
    assert conv_output_shape((2,), 3) == (0,)


def test_conv_lstm1d_by_hand():
    """Two steps of a ConvLSTM1D with constant weights, one channel and one filter.

    Kernel size 2, valid: step 1 sees the pairs of x_1 = [1, 2, 3]. The recurrent
    convolution is "same" on 2 positions: the one padding zero goes after the end.
    """
    w, u, b = (0.1, 0.2, 0.3, 0.4), (0.5, -0.5, 0.25, 1.0), (0.0, 1.0, 0.0, -0.5)  # gates i, f, c, o
    kernel = np.tile(np.array(w), (2, 1, 1))  # (2, 1, 4)
    recurrent_kernel = np.tile(np.array(u), (2, 1, 1))
    x = np.array([[1.0, 2.0, 3.0], [0.5, -1.0, 2.0]]).reshape(1, 2, 3, 1)

    h, c = [0.0, 0.0], [0.0, 0.0]
    for xt in x[0, :, :, 0]:
        pair_sums = [xt[0] + xt[1], xt[1] + xt[2]]
        h_sums = [h[0] + h[1], h[1] + 0.0]  # "same": h[2] is the padding zero
        z = [[w[g] * pair_sums[p] + b[g] + u[g] * h_sums[p] for g in range(4)] for p in range(2)]
        c = [_sigmoid(z[p][1]) * c[p] + _sigmoid(z[p][0]) * math.tanh(z[p][2]) for p in range(2)]
        h = [_sigmoid(z[p][3]) * math.tanh(c[p]) for p in range(2)]

    out, h_T, c_T = conv_lstm(x, kernel, recurrent_kernel, np.array(b), return_state=True)
    np.testing.assert_allclose(out[0, :, 0], h, rtol=1e-15)
    np.testing.assert_allclose(h_T[0, :, 0], h, rtol=1e-15)
    np.testing.assert_allclose(c_T[0, :, 0], c, rtol=1e-15)


def test_a_masked_position_keeps_its_state():
    """A grid-position mask: the masked position repeats its output and keeps h and c; the others move on."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 3, 4, 2))
    kernel, recurrent_kernel = rng.standard_normal((1, 2, 8)), rng.standard_normal((1, 2, 8))  # 1x1: no mixing
    mask = np.ones((1, 3, 4), dtype=bool)
    mask[0, 2, 1] = False
    seq, h, c = conv_lstm(x, kernel, recurrent_kernel, return_sequences=True, return_state=True, mask=mask)
    free_seq, free_h, free_c = conv_lstm(x[:, :2], kernel, recurrent_kernel, return_sequences=True, return_state=True)
    full = conv_lstm(x, kernel, recurrent_kernel, return_sequences=True)
    np.testing.assert_array_equal(seq[0, 2, 1], seq[0, 1, 1])
    np.testing.assert_array_equal(h[0, 1], free_h[0, 1])
    np.testing.assert_array_equal(c[0, 1], free_c[0, 1])
    np.testing.assert_array_equal(np.delete(seq[0, 2], 1, axis=0), np.delete(full[0, 2], 1, axis=0))


def test_the_shared_loop_broadcasts_a_mask_over_any_state_rank():
    """reference.recurrent on (batch, positions, 1) states: a (batch, timesteps) mask and a per-position one."""
    x_tm = np.arange(1, 7, dtype=np.float64).reshape(3, 1, 2, 1)  # steps of two positions

    def running_sum(x_t, states):
        new = states[0] + x_t
        return new, [new]

    zero = [np.zeros((1, 2, 1))]
    whole_steps = np.array([[True, False, True]])
    out, (s,) = ref.recurrent(
        running_sum, x_tm, lambda block: block.copy(), zero, mask=whole_steps, return_sequences=True
    )
    np.testing.assert_array_equal(out[0, :, :, 0], [[1, 2], [1, 2], [6, 8]])
    positions = np.array([[[True, True], [True, False], [False, True]]])
    out, (s,) = ref.recurrent(
        running_sum, x_tm, lambda block: block.copy(), zero, mask=positions, return_sequences=True
    )
    np.testing.assert_array_equal(out[0, :, :, 0], [[1, 2], [4, 2], [4, 8]])
    np.testing.assert_array_equal(s[0, :, 0], [4, 8])


# --------------------------------------------------------------------------
# What conv_lstm refuses.
# --------------------------------------------------------------------------


def _weights(rng, rank, channels, filters, kernel_size=3, use_bias=True, scale=0.5):
    ks = (kernel_size,) * rank if isinstance(kernel_size, int) else tuple(kernel_size)
    kernel = rng.standard_normal((*ks, channels, 4 * filters)) * scale
    recurrent_kernel = rng.standard_normal((*ks, filters, 4 * filters)) * scale
    bias = rng.standard_normal(4 * filters) * scale if use_bias else None
    return kernel, recurrent_kernel, bias


@pytest.mark.parametrize(
    ("change", "error", "message"),
    [
        ({"strides": 2, "dilation_rate": 2}, InvalidInput, "Keras refuses strides > 1 with dilation_rate > 1"),
        ({"padding": "causal"}, InvalidInput, "padding must be one of ('valid', 'same'). Received: padding='causal'"),
        ({"strides": (1, 0)}, InvalidInput, "strides must be positive. Received: strides=(1, 0)"),
        ({"strides": (1, 1, 1)}, InvalidInput, "strides must be an integer or 2 integers"),
        ({"data_format": None}, InvalidInput, "data_format must be one of"),
        ({"rank": 3}, InvalidInput, "a rank-3 ConvLSTM needs a 5-D kernel, got shape (3, 3, 2, 12)"),
        ({"filters": 4}, InvalidInput, "filters=4 but the kernel has 12 = 4 × 3 columns"),
        ({"kernel_size": (3, 2)}, InvalidInput, "kernel_size=(3, 2) but the kernel is (3, 3, 2, 12)"),
        ({"use_bias": False}, InvalidInput, "use_bias=False but bias is given"),
        ({"activation": "my_gelu"}, Unsupported, "ConvLSTM: activation 'my_gelu' is not supported"),
        ({"mask": np.ones((2, 4, 6, 5), bool)}, InvalidInput, "mask must be (batch, timesteps) = (2, 4), or follow"),
        ({"mask": np.ones((2, 3), bool)}, InvalidInput, "got (2, 3)"),
        ({"initial_state": [np.zeros((2, 4, 3, 3))]}, InvalidInput, "initial_state is [h, c], got 1 array(s)"),
        ({"initial_state": [np.zeros((2, 6, 5, 3))] * 2}, InvalidInput, "initial_state h must be (2, 4, 3, 3)"),
        ({"data_format": "channels_first"}, InvalidInput, "kernel (3, 3, 2, 12) reads 2 channels but x has 6"),
    ],
)
def test_bad_arguments_are_refused_by_name(change, error, message):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 4, 6, 5, 2))
    with pytest.raises(error) as caught:
        conv_lstm(x, *_weights(rng, 2, 2, 3), **change)
    assert message in str(caught.value)


def test_bad_shapes_are_refused_by_name():
    rng = np.random.default_rng(0)
    weights = _weights(rng, 2, 2, 3)
    with pytest.raises(
        InvalidInput, match=r"takes x \(batch, timesteps, \*spatial, channels\), got shape \(2, 4, 6, 2\)"
    ):
        conv_lstm(np.zeros((2, 4, 6, 2)), *weights)
    with pytest.raises(InvalidInput, match=r"output is empty: grid \(2, 6\), kernel_size \(3, 3\)"):
        conv_lstm(np.zeros((2, 4, 2, 6, 2)), *weights)
    with pytest.raises(InvalidInput, match=r"recurrent_kernel must be \(3, 3, 3, 12\)"):
        conv_lstm(np.zeros((2, 4, 6, 6, 2)), weights[0], weights[1][:, :, :2], weights[2])
    with pytest.raises(Unsupported, match="a mask of grid positions"):
        conv_lstm(
            np.zeros((2, 4, 2, 6, 6)),
            *weights,
            data_format="channels_first",
            padding="same",
            mask=np.ones((2, 4, 6, 6), bool),
        )


# --------------------------------------------------------------------------
# Against a deliberately plain loop: per sample, per step, per output position.
# --------------------------------------------------------------------------


def _plain_conv(grid, kernel, strides, padding, dilation):
    """One sample's convolution, position by position and tap by tap."""
    rank = grid.ndim - 1
    size = kernel.shape[:rank]
    if padding == "same":
        out = [-(-n // s) for n, s in zip(grid.shape, strides)]
        before = [
            max((o - 1) * s + d * (k - 1) + 1 - n, 0) // 2
            for o, s, d, k, n in zip(out, strides, dilation, size, grid.shape)
        ]
    else:
        out = [(n - d * (k - 1) - 1) // s + 1 for n, s, d, k in zip(grid.shape, strides, dilation, size)]
        before = [0] * rank
    y = np.zeros((*out, kernel.shape[-1]))
    for p in itertools.product(*map(range, out)):
        for j in itertools.product(*map(range, size)):
            q = tuple(pi * s + ji * d - b for pi, ji, s, d, b in zip(p, j, strides, dilation, before))
            if all(0 <= qi < n for qi, n in zip(q, grid.shape)):
                y[p] += grid[q] @ kernel[j]
    return y


def _plain_conv_lstm(
    x, W, U, b, *, strides, padding, dilation, mask, initial_state, go_backwards, zero_output_for_mask
):
    """``(sequence in processing order, h, c)`` for every sample, one at a time."""
    rank = W.ndim - 2
    f = U.shape[-2]
    sequences, hs, cs = [], [], []
    for n in range(x.shape[0]):
        out_grid = _plain_conv(x[n, 0], W, strides, padding, dilation).shape[:-1]
        h = np.zeros((*out_grid, f)) if initial_state is None else initial_state[0][n]
        c = np.zeros((*out_grid, f)) if initial_state is None else initial_state[1][n]
        previous, sequence = np.zeros((*out_grid, f)), []
        for t in reversed(range(x.shape[1])) if go_backwards else range(x.shape[1]):
            z = _plain_conv(x[n, t], W, strides, padding, dilation) + (0 if b is None else b)
            z = z + _plain_conv(h, U, (1,) * rank, "same", (1,) * rank)
            i, fg, g, o = (z[..., k * f : (k + 1) * f] for k in range(4))
            c_new = 1 / (1 + np.exp(-fg)) * c + 1 / (1 + np.exp(-i)) * np.tanh(g)
            h_new = 1 / (1 + np.exp(-o)) * np.tanh(c_new)
            keep = True if mask is None else mask[n, t]
            keep = np.reshape(keep, np.shape(keep) + (1,) * (rank + 1 - np.ndim(keep)))
            h, c = np.where(keep, h_new, h), np.where(keep, c_new, c)
            output = np.where(keep, h_new, 0.0 if zero_output_for_mask else previous)
            sequence.append(output)
            previous = output
        sequences.append(sequence)
        hs.append(h)
        cs.append(c)
    return np.array(sequences), np.array(hs), np.array(cs)


# derandomized: the same examples on every run; HYPOTHESIS_SEARCH=1 draws fresh ones, more of them
settings.register_profile(
    "conv_lstm",
    max_examples=200 if os.environ.get("HYPOTHESIS_SEARCH") else 30,
    deadline=None,
    derandomize=not os.environ.get("HYPOTHESIS_SEARCH"),
    suppress_health_check=[HealthCheck.too_slow],
)


@st.composite
def _layouts(draw):
    rank = draw(st.integers(1, 3))
    grid = tuple(draw(st.lists(st.integers(1, 5 if rank < 3 else 3), min_size=rank, max_size=rank)))
    kernel_size = tuple(draw(st.integers(1, 3)) for _ in range(rank))
    strided = draw(st.booleans())
    steps = tuple(draw(st.integers(1, 2)) for _ in range(rank))
    strides, dilation = (steps, (1,) * rank) if strided else ((1,) * rank, steps)
    padding = draw(st.sampled_from(["valid", "same"]))
    out = conv_output_shape(grid, kernel_size, strides=strides, padding=padding, dilation_rate=dilation)
    if 0 in out:  # the valid window does not fit: pad instead
        padding = "same"
    return rank, grid, kernel_size, strides, dilation, padding


@settings(settings.get_profile("conv_lstm"))
@given(
    layout=_layouts(),
    n=st.integers(1, 2),
    t=st.integers(1, 3),
    channels=st.integers(1, 2),
    filters=st.integers(1, 2),
    seed=st.integers(0, 2**16),
    use_bias=st.booleans(),
    mask=st.sampled_from(["none", "steps", "positions"]),
    go_backwards=st.booleans(),
    initial_state=st.booleans(),
    zero_output_for_mask=st.booleans(),
    dtype=st.sampled_from(["float64", "float32"]),
)
def test_conv_lstm_equals_a_plain_loop(
    layout, n, t, channels, filters, seed, use_bias, mask, go_backwards, initial_state, zero_output_for_mask, dtype
):
    rank, grid, kernel_size, strides, dilation, padding = layout
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, t, *grid, channels))
    W, U, b = _weights(rng, rank, channels, filters, kernel_size, use_bias, scale=0.7)
    out = conv_output_shape(grid, kernel_size, strides=strides, padding=padding, dilation_rate=dilation)
    masks = {"none": None, "steps": rng.random((n, t)) < 0.6, "positions": rng.random((n, t, *out)) < 0.6}
    states = [rng.standard_normal((n, *out, filters)) for _ in "hc"] if initial_state else None
    options = {"mask": masks[mask], "initial_state": states, "go_backwards": go_backwards}
    options["zero_output_for_mask"] = zero_output_for_mask
    want = _plain_conv_lstm(x, W, U, b, strides=strides, padding=padding, dilation=dilation, **options)
    got = conv_lstm(
        x.astype(dtype),
        W,
        U,
        b,
        strides=strides,
        padding=padding,
        dilation_rate=dilation,
        return_sequences=True,
        return_state=True,
        **options,
    )
    _close(got, want, dtype)
    last = conv_lstm(x.astype(dtype), W, U, b, strides=strides, padding=padding, dilation_rate=dilation, **options)
    _close(last, want[0][:, -1], dtype)


# --------------------------------------------------------------------------
# Against Keras 3's ConvLSTM1D/2D/3D in real keras.Models.
# --------------------------------------------------------------------------

N, T, CHANNELS, FILTERS = 2, 4, 2, 3
GRIDS = {1: (7,), 2: (6, 5), 3: (4, 5, 3)}
#: A (batch, timesteps) mask passed to the layer by hand.
STEP_MASK = np.array([[True, True, False, True], [False, True, True, False]])


@dataclass(frozen=True)
class Case:
    """One ConvLSTM layer of the comparison model.

    ``mask``: "none"; "steps", :data:`STEP_MASK` passed as ``layer(x, mask=...)``; or
    "masking", a ``Masking(0.0)`` layer before the ConvLSTM (a mask of grid positions).
    ``keras_weights``: keep the weights Keras initialised (``unit_forget_bias``'s ones in
    the f block of the bias, a Fortran-ordered orthogonal recurrent kernel).
    """

    name: str
    rank: int
    options: dict = field(default_factory=dict)
    mask: str = "none"
    initial_state: bool = False
    keras_weights: bool = False


CASES = [
    *(Case(f"{r}d_default", r) for r in (1, 2, 3)),
    *(Case(f"{r}d_same_sequences", r, {"padding": "same", "return_sequences": True}) for r in (1, 2, 3)),
    *(Case(f"{r}d_strides_state", r, {"padding": "same", "strides": 2, "return_state": True}) for r in (1, 2, 3)),
    *(
        Case(f"{r}d_dilated_backwards", r, {"dilation_rate": 2, "go_backwards": True, "return_sequences": True})
        for r in (1, 2)
    ),
    Case("3d_dilated_same_backwards", 3, {"padding": "same", "dilation_rate": (1, 2, 1), "go_backwards": True}),
    Case("2d_uneven_kernel_strides", 2, {"kernel_size": (3, 2), "strides": (2, 1), "return_state": True}),
    Case("1d_step_mask_backwards", 1, {"go_backwards": True, "return_sequences": True, "return_state": True}, "steps"),
    Case("2d_step_mask", 2, {"padding": "same", "return_sequences": True}, "steps"),
    Case("2d_step_mask_zero_output", 2, {"return_sequences": True, "zero_output_for_mask": True}, "steps"),
    Case("2d_step_mask_last", 2, {"strides": 2, "return_state": True}, "steps"),
    *(Case(f"{r}d_masking", r, {"padding": "same", "return_sequences": True}, "masking") for r in (1, 2, 3)),
    Case("1d_masking_backwards_state", 1, {"padding": "same", "go_backwards": True, "return_state": True}, "masking"),
    Case("2d_initial_state", 2, {"padding": "same", "strides": 2, "return_state": True}, initial_state=True),
    Case("1d_initial_state_mask", 1, {"return_sequences": True}, "steps", initial_state=True),
    Case("1d_relu_hard_sigmoid", 1, {"activation": "relu", "recurrent_activation": "hard_sigmoid"}),
    Case("2d_linear_softsign", 2, {"activation": None, "recurrent_activation": "softsign", "return_sequences": True}),
    Case("3d_no_bias", 3, {"use_bias": False, "padding": "same", "return_state": True}),
    Case("2d_keras_initial_weights", 2, {"padding": "same", "return_sequences": True}, keras_weights=True),
]


def _inputs(seed=7):
    """The model's inputs: a sequence per rank with some all-zero grid positions (Masking's), the step mask."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for rank, grid in GRIDS.items():
        x = rng.standard_normal((N, T, *grid, CHANNELS))
        x[rng.random((N, T, *grid)) < 0.25] = 0.0  # masked positions, for the Masking cases
        x[1, 2] = 0.0  # and a whole step
        arrays[f"x{rank}"] = x
    arrays["step_mask"] = STEP_MASK
    return arrays


def _out_grid(case: Case) -> tuple[int, ...]:
    o = case.options
    return conv_output_shape(
        GRIDS[case.rank],
        o.get("kernel_size", 3),
        strides=o.get("strides", 1),
        padding=o.get("padding", "valid"),
        dilation_rate=o.get("dilation_rate", 1),
    )


def _build(keras, dtype: str):
    """One functional model holding every case, its seeded weights, and its inputs (the case's states among them)."""
    arrays = _inputs()
    rng = np.random.default_rng(11)
    inputs = {
        name: keras.Input(a.shape[1:], name=name, dtype="bool" if a.dtype == bool else dtype)
        for name, a in arrays.items()
    }
    outputs, layers = {}, {}
    for case in CASES:
        options = {"kernel_size": 3, **case.options}
        layer = getattr(keras.layers, f"ConvLSTM{case.rank}D")(FILTERS, dtype=dtype, name=case.name, **options)
        x = inputs[f"x{case.rank}"]
        call = {}
        if case.mask == "masking":
            x = keras.layers.Masking(0.0, dtype=dtype)(x)
        elif case.mask == "steps":
            call["mask"] = inputs["step_mask"]
        if case.initial_state:
            states = [rng.standard_normal((N, *_out_grid(case), FILTERS)) for _ in "hc"]
            for k, s in zip("hc", states):
                arrays[f"{case.name}_{k}"] = s
                inputs[f"{case.name}_{k}"] = keras.Input(s.shape[1:], name=f"{case.name}_{k}", dtype=dtype)
            call["initial_state"] = [inputs[f"{case.name}_h"], inputs[f"{case.name}_c"]]
        result = layer(x, **call)
        for k, tensor in enumerate(result if isinstance(result, (list, tuple)) else [result]):
            outputs[f"{case.name}:{k}"] = tensor
        layers[case.name] = layer
    model = keras.Model(inputs, outputs)
    for case in CASES:
        if not case.keras_weights:
            layer = layers[case.name]
            layer.set_weights([rng.standard_normal(w.shape) * 0.5 for w in layer.get_weights()])
    feed = {name: a if a.dtype == bool else a.astype(dtype) for name, a in arrays.items()}
    return model, layers, feed


@pytest.fixture(scope="module", params=["float64", "float32"])
def keras_run(request, keras):
    """Every case computed by Keras in one eager call: ``(dtype, layers, inputs, outputs)``.

    Eager, as ``verify`` runs a saved model's layers; compiling the 30 layers' loops for
    ``predict_on_batch`` would cost ~5 s per dtype (the tests below the grid take that path).
    """
    dtype = request.param
    model, layers, feed = _build(keras, dtype)
    outputs = {k: keras.ops.convert_to_numpy(v) for k, v in model(feed, training=False).items()}
    return dtype, layers, feed, outputs


def _reference(case: Case, layer, feed: dict):
    config = layer.get_config()
    x = feed[f"x{case.rank}"]
    call = {}
    if case.mask == "masking":
        call["mask"] = np.any(x != 0, axis=-1)  # Masking's mask; the masked inputs are zeros already
    elif case.mask == "steps":
        call["mask"] = feed["step_mask"]
    if case.initial_state:
        call["initial_state"] = [feed[f"{case.name}_h"], feed[f"{case.name}_c"]]
    result = conv_lstm(x, *layer.get_weights(), rank=case.rank, **{k: config[k] for k in KEPT}, **call)
    return list(result) if isinstance(result, tuple) else [result]


@pytest.mark.keras
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_conv_lstm_matches_keras(keras_run, case):
    dtype, layers, feed, outputs = keras_run
    want = [outputs[f"{case.name}:{k}"] for k in range(3 if case.options.get("return_state") else 1)]
    _close(_reference(case, layers[case.name], feed), want, dtype)


@pytest.mark.keras
def test_the_cases_reach_what_they_claim(keras_run):
    """The Masking cases really mask grid positions, the keras_weights case has unit_forget_bias's ones."""
    _, layers, feed, _ = keras_run
    for rank in GRIDS:
        position_mask = np.any(feed[f"x{rank}"] != 0, axis=-1)
        grid_axes = tuple(range(2, rank + 2))
        assert (position_mask.any(axis=grid_axes) & ~position_mask.all(axis=grid_axes)).any()  # partly masked steps
    bias = layers["2d_keras_initial_weights"].get_weights()[2]
    np.testing.assert_array_equal(bias, np.r_[np.zeros(FILTERS), np.ones(FILTERS), np.zeros(2 * FILTERS)])


@pytest.mark.keras
def test_stateful_conv_lstm_matches_keras_over_two_calls(keras):
    """stateful=True: the second call starts from the first call's final states."""
    rng = np.random.default_rng(3)
    inputs = keras.Input(batch_shape=(N, T, 5, 4, CHANNELS), dtype="float64")
    layer = keras.layers.ConvLSTM2D(FILTERS, 3, padding="same", stateful=True, return_sequences=True, dtype="float64")
    model = keras.Model(inputs, layer(inputs))
    weights = [rng.standard_normal(w.shape) * 0.5 for w in layer.get_weights()]
    layer.set_weights(weights)
    first, second = (rng.standard_normal((N, T, 5, 4, CHANNELS)) for _ in range(2))
    keras_second = (model.predict_on_batch(first), model.predict_on_batch(second))[1]
    _, h, c = conv_lstm(first, *weights, padding="same", return_sequences=True, return_state=True)
    _close(
        conv_lstm(second, *weights, padding="same", return_sequences=True, initial_state=[h, c]),
        keras_second,
        "float64",
    )


@pytest.mark.keras
def test_masking_before_a_valid_conv_lstm_fails_in_keras_and_is_refused(keras):
    """Masking's mask has the input's grid; with padding="valid" the states' grid is smaller and Keras fails."""
    x = np.random.default_rng(0).standard_normal((N, T, 6, CHANNELS))
    inputs = keras.Input(x.shape[1:], dtype="float64")
    layer = keras.layers.ConvLSTM1D(FILTERS, 3, dtype="float64")
    model = keras.Model(inputs, layer(keras.layers.Masking(0.0, dtype="float64")(inputs)))
    with pytest.raises(ValueError, match="Dimensions must be equal"):
        model.predict_on_batch(x)
    with pytest.raises(
        InvalidInput,
        match=r"or follow it with the output grid \(4,\); got \(2, 4, 6\)",
    ):
        conv_lstm(x, *layer.get_weights(), mask=np.ones((N, T, 6), bool))


@pytest.mark.keras
def test_channels_first_conv_lstm3d_matches_keras(keras):
    """channels_first: TensorFlow runs it on the CPU for ConvLSTM3D only (through XLA); 1-D and 2-D fail there."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((N, 3, CHANNELS, 4, 3, 5))
    mask = np.array([[True, False, True], [True, True, False]])
    inputs, mask_input = keras.Input(x.shape[1:], dtype="float64"), keras.Input((3,), dtype="bool")
    layer = keras.layers.ConvLSTM3D(
        FILTERS, (2, 3, 2), padding="same", data_format="channels_first", return_state=True, dtype="float64"
    )
    model = keras.Model([inputs, mask_input], layer(inputs, mask=mask_input))
    weights = [rng.standard_normal(w.shape) * 0.5 for w in layer.get_weights()]
    layer.set_weights(weights)
    config = {k: layer.get_config()[k] for k in KEPT}
    _close(conv_lstm(x, *weights, mask=mask, **config), model.predict_on_batch([x, mask]), "float64")


@pytest.mark.keras
def test_keras2_conv_lstm_defaults_to_keras2_hard_sigmoid(keras):
    """Keras 2's ConvLSTM2D defaults to recurrent_activation="hard_sigmoid"; Keras 3's to sigmoid.

    Keras 2's hard_sigmoid is clip(0.2x + 0.5, 0, 1). A Keras 2 file writes the name out, so
    Keras 3 reads it as its own relu6(x + 3) / 6: another model.
    """
    tf_keras = pytest.importorskip("tf_keras", reason="tf-keras (the keras2 extra) is not installed")
    rng = np.random.default_rng(2)
    x = rng.standard_normal((N, T, 6, 5, CHANNELS)) * 2
    mask = STEP_MASK
    layer = tf_keras.layers.ConvLSTM2D(FILTERS, 3, padding="same", return_sequences=True, dtype="float64")
    layer.build(x.shape)
    layer.set_weights([rng.standard_normal(w.shape) * 0.5 for w in layer.get_weights()])
    config, weights = layer.get_config(), layer.get_weights()
    assert config["recurrent_activation"] == "hard_sigmoid"
    got = np.asarray(layer(x, mask=mask))
    options = {"padding": "same", "return_sequences": True, "mask": mask}
    _close(conv_lstm(x, *weights, recurrent_activation="keras2:hard_sigmoid", **options), got, "float64")
    keras3_meaning = conv_lstm(x, *weights, recurrent_activation="hard_sigmoid", **options)
    assert np.max(np.abs(got - keras3_meaning)) > 1e-3


# --------------------------------------------------------------------------
# In the layer registry (verify, export, the exported model's load-time checks).
# --------------------------------------------------------------------------

#: ConvLSTM2D's get_config() as Keras 3 gives it, the keys that change nothing at inference included.
KERAS_CONFIG = {
    "name": "conv_lstm2d",
    "trainable": True,
    "dtype": {"module": "keras", "class_name": "DTypePolicy", "config": {"name": "float32"}, "registered_name": None},
    "return_sequences": True,
    "return_state": False,
    "go_backwards": False,
    "stateful": False,
    "unroll": False,
    "zero_output_for_mask": False,
    "filters": 3,
    "kernel_size": (3, 2),
    "strides": (2, 1),
    "padding": "valid",
    "data_format": "channels_last",
    "dilation_rate": (1, 1),
    "activation": "tanh",
    "recurrent_activation": "sigmoid",
    "use_bias": True,
    "kernel_initializer": {"module": "keras.initializers", "class_name": "GlorotUniform", "config": {"seed": None}},
    "unit_forget_bias": True,
    "kernel_regularizer": None,
    "dropout": 0.0,
    "recurrent_dropout": 0.0,
    "seed": None,
}


def test_the_registry_keeps_what_conv_lstm_reads_and_checks_it():
    from rnn_parity.layers import LAYERS

    spec, problems = LAYERS["ConvLSTM2D"], []
    kept = spec.keep(KERAS_CONFIG, problems)
    assert problems == []
    assert kept == {
        "filters": 3,
        "kernel_size": [3, 2],
        "strides": [2, 1],
        "padding": "valid",
        "data_format": "channels_last",
        "dilation_rate": [1, 1],
        "activation": "tanh",
        "recurrent_activation": "sigmoid",
        "use_bias": True,
        "return_sequences": True,
        "return_state": False,
        "go_backwards": False,
        "stateful": False,
        "zero_output_for_mask": False,
    }
    assert spec.keep(kept, []) == kept  # the exported config reads back as it is
    assert spec.weights(kept, [5]) == [
        ("kernel", (3, 2, 5, 12)),
        ("recurrent_kernel", (3, 2, 3, 12)),
        ("bias", (12,)),
    ]
    assert spec.tensors({**kept, "return_state": True}) == 3 and spec.features({**kept, "return_state": True}, [5]) == [
        3,
        3,
        3,
    ]
    assert spec.features({**kept, "data_format": "channels_first"}, [5]) == [None]  # the last axis is the grid's
    bad = {
        "kernel_size": [3],
        "strides": (2, 2),
        "dilation_rate": 2,
        "padding": "causal",
        "data_format": None,
        "time_major": "no",
    }
    spec.keep({**KERAS_CONFIG, **bad}, problems)
    assert problems == [
        "kernel_size must be an integer or 2 integers from 1 to 2147483647, got [3]",
        "padding='causal' is not supported (one of valid, same)",
        "data_format=None is not supported (one of channels_last, channels_first)",
        "strides > 1 together with dilation_rate > 1 (Keras refuses it)",
        "time_major must be true or false, got 'no'",
    ]


def _conv_lstm_graph(weights):
    config = {"filters": 3, "kernel_size": 3, "return_sequences": True}
    layer = {"name": "conv", "class_name": "ConvLSTM1D", "config": config, "inputs": [["x", 0]]}
    graph = {"inputs": [{"name": "x", "shape": [None, 4, 7, 2]}], "outputs": [["conv", 0]], "layers": [layer]}
    return graph, {"conv": weights}


def test_an_exported_conv_lstm_s_weights_are_checked_at_load_against_its_config_and_input():
    from rnn_parity.model_checks import validate_model
    from rnn_parity.runtime import GraphRuntime

    rng = np.random.default_rng(1)
    weights = list(_weights(rng, 1, CHANNELS, FILTERS))
    graph, arrays = _conv_lstm_graph(weights)
    validate_model(graph, arrays, "m.npz")
    x = rng.standard_normal((2, 4, 7, CHANNELS))
    np.testing.assert_array_equal(GraphRuntime(graph, arrays).predict(x), conv_lstm(x, *weights, return_sequences=True))
    for changed, message in [
        (
            [np.zeros((3, 4, 12)), *weights[1:]],
            "layer 'conv' (ConvLSTM1D): its kernel takes 4 features, its input has 2",
        ),
        (
            [weights[0], np.zeros((3, 2, 12)), weights[2]],
            "layer 'conv' (ConvLSTM1D): weight 1 (recurrent_kernel) has shape (3, 2, 12), the config needs (3, 3, 12)",
        ),
        (weights[:2], "layer 'conv' (ConvLSTM1D): needs 3 weight arrays, got 2"),
    ]:
        with pytest.raises(InvalidInput) as caught:
            validate_model(*_conv_lstm_graph(changed), "m.npz")
        assert str(caught.value) == f"m.npz: {message}"


def test_a_grid_mask_the_reference_cannot_line_up_is_refused_naming_the_layer_class():
    """Masking before a channels_first ConvLSTM gives flags over (channels, *grid[:-1]): refused when it runs."""
    from rnn_parity.runtime import GraphRuntime

    rng = np.random.default_rng(2)
    config = {"filters": 2, "kernel_size": 2, "padding": "same", "data_format": "channels_first"}
    layers = [
        {"name": "masking", "class_name": "Masking", "config": {}, "inputs": [["x", 0]]},
        {"name": "conv", "class_name": "ConvLSTM1D", "config": config, "inputs": [["masking", 0]]},
    ]
    graph = {"inputs": [{"name": "x", "shape": [None, 3, 2, 5]}], "outputs": [["conv", 0]], "layers": layers}
    runtime = GraphRuntime(graph, {"conv": list(_weights(rng, 1, 2, 2, kernel_size=2))})
    with pytest.raises(Unsupported, match=r"^ConvLSTM1D: a mask of grid positions \(1, 3, 2\) with channels_first"):
        runtime.predict(rng.standard_normal((1, 3, 2, 5)))


@pytest.mark.keras
def test_the_registry_s_mask_rule_is_conv_lstm_s_compute_mask(keras):
    from rnn_parity.layers import LAYERS

    mask = np.ones((N, T, 5), bool)
    for options in (
        {},
        {"return_sequences": True},
        {"return_state": True},
        {"return_sequences": True, "return_state": True},
    ):
        layer = keras.layers.ConvLSTM1D(FILTERS, 3, padding="same", **options)
        got = layer.compute_mask(None, mask)
        want = LAYERS["ConvLSTM1D"].mask.compute(options, [None], [mask])
        if options.get("return_state"):  # the output's, then none for h and c
            assert got[1:] == [None, None] and LAYERS["ConvLSTM1D"].tensors(options) == 3
            got = got[0]
        assert (got is None and want is None) or (got is mask and want is mask), options


# --------------------------------------------------------------------------
# Keras 2's ConvLSTMs: what their files mean, and where Keras 2 computes otherwise than Keras 3.
# --------------------------------------------------------------------------


def _keras2_model(*entries):
    return {"class_name": "Sequential", "config": {"name": "m", "layers": list(entries)}}


def test_a_keras2_conv_lstm_file_is_translated_with_what_its_options_meant():
    from rnn_parity.keras2 import keras2_graph, translate

    conv = {"class_name": "ConvLSTM2D", "config": {"name": "conv", "filters": 2, "kernel_size": [3, 3]}}
    conv["config"]["time_major"] = True  # stored by Keras 2, never read by its ConvLSTM
    out = translate(_keras2_model(conv), "2.15.0")
    assert out.config["config"]["layers"][0]["config"] == {
        "name": "conv",
        "filters": 2,
        "kernel_size": [3, 3],
        "recurrent_activation": "hard_sigmoid",
    }
    assert out.rewrites == [
        "conv: dropped time_major=True (Keras 2's ConvLSTM never reads it: batch-major)",
        "conv: recurrent_activation=hard_sigmoid written out (Keras 2's ConvLSTM default)",
    ]
    assert [(c.layer, c.option) for c in out.changes] == [("conv", "recurrent_activation=hard_sigmoid")]

    masking = {"class_name": "Masking", "config": {"name": "masking"}}
    sigmoid = {"class_name": "ConvLSTM1D", "config": {"name": "inner", "recurrent_activation": "sigmoid"}}
    bi = {"class_name": "Bidirectional", "config": {"name": "bi", "layer": sigmoid}}
    assert translate(_keras2_model(masking, bi), "2.15.0").changes == []
    sigmoid["config"]["return_sequences"] = True
    (change,) = translate(_keras2_model(masking, bi), "2.15.0").changes
    assert change.describe() == (
        "Bidirectional(ConvLSTM) returning sequences in a masked model changed meaning: Keras 2 repeats the previous "
        "output at a masked step, Keras 3 gives zeros there"
    )
    sigmoid["config"]["time_major"] = True
    assert [c.option for c in translate(_keras2_model(masking, bi), "2.15.0").changes] == [
        "Bidirectional(ConvLSTM) returning sequences in a masked model",
        "Bidirectional(ConvLSTM(time_major=True)) returning sequences",
    ]
    with pytest.raises(Unsupported) as caught:
        keras2_graph("Sequential", {"layers": [masking, bi]}, "m.h5")
    assert str(caught.value) == (
        "m.h5: layer 'bi' (Bidirectional): Bidirectional(ConvLSTM) returning sequences in a masked model: Keras 2 "
        "repeats the previous output at a masked step, Keras 3 gives zeros there (the runtime follows Keras 3); not "
        "supported for Keras 2 yet | layer 'bi' (Bidirectional): Bidirectional(ConvLSTM(time_major=True)) returning "
        "sequences: Keras 2 reverses the backward sequence along the batch axis, Keras 3 along the time axis (the "
        "runtime follows Keras 3); not supported for Keras 2 yet"
    )


@pytest.mark.keras
def test_keras2_s_bidirectional_conv_lstm_computes_otherwise_than_keras3(keras):
    """Keras 2's Bidirectional sets zero_output_for_mask on the layers it wraps, but its ConvLSTM's call never
    passes it on: a masked step repeats the previous output (Keras 3: zeros). And it reverses the backward
    sequence on axis 0 for a wrapped layer with time_major=True, which a ConvLSTM alone never reads."""
    tf_keras = pytest.importorskip("tf_keras", reason="tf-keras (the keras2 extra) is not installed")
    rng = np.random.default_rng(4)
    x = rng.standard_normal((N, T, 6, CHANNELS))
    options = {"padding": "same", "recurrent_activation": "keras2:hard_sigmoid", "return_sequences": True}

    def keras2(wrapped: bool, mask=None, **more):
        layer = tf_keras.layers.ConvLSTM1D(FILTERS, 3, padding="same", return_sequences=True, dtype="float64", **more)
        if wrapped:
            layer = tf_keras.layers.Bidirectional(layer, dtype="float64")
        layer.build(x.shape)
        layer.set_weights([rng.standard_normal(w.shape) * 0.5 for w in layer.get_weights()])
        return np.asarray(layer(x, mask=mask)), layer.get_weights()

    def directions(weights, mask=None):
        forward = conv_lstm(x, *weights[:3], mask=mask, **options)
        return forward, conv_lstm(x, *weights[3:], go_backwards=True, mask=mask, **options)

    got, weights = keras2(True, STEP_MASK)
    forward, backward = directions(weights, STEP_MASK)
    _close(got, np.concatenate([forward, backward[:, ::-1]], axis=-1), "float64")
    keras3 = ref.bidirectional(conv_lstm, x, weights[:3], weights[3:], mask=STEP_MASK, **options)
    assert np.max(np.abs(got - keras3)) > 1e-3  # Keras 3 zeros the masked steps of both directions
    got, weights = keras2(True, time_major=True)
    forward, backward = directions(weights)
    _close(got, np.concatenate([forward, backward[::-1]], axis=-1), "float64")  # the samples swapped
    got, weights = keras2(False, time_major=True)
    _close(got, conv_lstm(x, *weights, **options), "float64")


# ----- a report names a ConvLSTM's axes: time is axis 1, then the grid ------------------------------------
def test_the_registry_names_a_conv_lstm_s_axes():
    from rnn_parity.layers import LAYERS

    def axes(class_name, **cfg):
        kept = LAYERS[class_name].keep({"filters": 3, "kernel_size": 3, **cfg}, problems := [])
        assert not problems
        return LAYERS[class_name].axis_names(kept)

    grid2 = ("sample", "row", "column", "filter")
    assert axes("ConvLSTM2D", return_sequences=True) == (("sample", "timestep", "row", "column", "filter"), grid2)
    assert axes("ConvLSTM2D") == (grid2, grid2)
    assert axes("ConvLSTM3D", data_format="channels_first")[0] == ("sample", "filter", "depth", "row", "column")
    wrapped = {"class_name": "ConvLSTM1D", "config": {"filters": 2, "kernel_size": 3, "return_sequences": True}}
    bidirectional = LAYERS["Bidirectional"].keep({"layer": wrapped, "merge_mode": None}, [])
    assert LAYERS["Bidirectional"].axis_names(bidirectional)[0] == ("sample", "timestep", "position", "filter")
    distributed = LAYERS["TimeDistributed"].keep({"layer": wrapped}, [])
    assert LAYERS["TimeDistributed"].axis_names(distributed)[0] == ("sample", "frame", "timestep", "position", "filter")


def test_the_first_bad_step_is_read_on_the_named_time_axis():
    from rnn_parity.parity import first_bad_step
    from rnn_parity.tolerance import Tolerance

    expected = np.zeros((2, 5, 4, 3))  # (sample, timestep, position, filter)
    actual = expected.copy()
    actual[1, 3, 1, 0] = 1.0
    tol = Tolerance("explicit", atol=1e-6, rtol=0.0)
    assert first_bad_step(actual, expected, tol, ("sample", "timestep", "position", "filter")) == 3
    assert first_bad_step(actual, expected, tol) == 1  # the rank's guess would read the grid as time
    assert first_bad_step(actual[:, 0], expected[:, 0], tol, ("sample", "position", "filter")) is None


@pytest.mark.keras
def test_verify_reports_a_conv_lstm_failure_on_its_time_axis(keras, tmp_path):
    from conftest import invoke_json

    i = keras.Input((6, 5, 4, 2))
    layer = keras.layers.ConvLSTM2D(3, 3, padding="same", return_sequences=True, return_state=True, name="grid")
    keras.Model(i, layer(i)).save(tmp_path / "m.keras")
    x = np.random.default_rng(0).standard_normal((2, 6, 5, 4, 2)).astype("float32")
    x[:, :3] = 0.0  # zero input, zero state: both sides give exactly 0 until step 3
    np.save(tmp_path / "x.npy", x)
    args = ["verify", str(tmp_path / "m.keras"), "--input", str(tmp_path / "x.npy"), "--atol", "0", "--rtol", "0"]
    report = invoke_json([*args, "--format", "json"], 1)
    assert report["first_failure"]["step"] == 3
    assert report["worst_axes"] == ["sample", "timestep", "row", "column", "filter"]
    assert report["worst_index"][1] >= 3
    assert report["states"]["grid.h"]["worst_axes"] == ["sample", "row", "column", "filter"]
