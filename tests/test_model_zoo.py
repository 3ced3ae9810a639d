"""Real-world architectures around recurrent layers: verify and export, end to end.

A CNN-LSTM, an LSTM → LayerNormalization → GRU → BatchNormalization stack, an
LSTM with (causal, masked) Attention, ``RNN(LSTMCell)``, TimeDistributed around
convolution, normalization and a bidirectional LSTM, ``RNN(StackedRNNCells)``
(also in Bidirectional), MultiHeadAttention (self, causal and cross attention)
with Dot around an LSTM, and ConvLSTM1D/2D/3D (strides, valid and same padding,
channels_first, per-position masks, Bidirectional, initial and stateful states):
each is a real Keras model (briefly trained, or with seeded weights) saved to a
file, verified layer by layer at the default tolerances and exported; the export
runs in a process without TensorFlow. Models the runtime still cannot reproduce
are refused with exit 4, naming the layer.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import saved_models

from rnn_parity import runtime

from conftest import invoke, invoke_json

pytestmark = [
    pytest.mark.keras,
    # Keras's own warning where a layer that does not support masking ends a mask, as frame_proj does on purpose
    pytest.mark.filterwarnings("ignore:Layer 'frame_proj' .* will therefore destroy the mask:UserWarning"),
]


def cnn_lstm(folder):
    keras = saved_models._keras()
    L = keras.layers
    model = keras.Sequential(
        [
            keras.Input((12, 3)),
            L.Conv1D(6, 3, padding="causal", dilation_rate=2, activation="relu", name="conv"),
            L.MaxPooling1D(2, name="pool"),
            L.Conv1D(4, 2, strides=2, padding="same", groups=2, name="conv2"),
            L.AveragePooling1D(2, strides=1, padding="same", name="avg"),
            L.DepthwiseConv1D(2, depth_multiplier=2, padding="same", name="depthwise"),
            L.SeparableConv1D(5, 2, dilation_rate=2, activation="tanh", name="separable"),
            L.LSTM(5, name="lstm"),
            L.Dense(2, name="dense"),
        ]
    )
    rng = np.random.default_rng(0)
    saved_models._fit(model, rng.standard_normal((16, 12, 3)).astype("float32"), rng.standard_normal((16, 2)))
    return saved_models._save(model, folder, "cnn_lstm")


def norm_stack(folder):
    keras = saved_models._keras()
    L = keras.layers
    model = keras.Sequential(
        [
            keras.Input((7, 3)),
            L.Masking(name="masking"),
            L.LSTM(6, return_sequences=True, name="lstm"),
            L.LayerNormalization(name="layer_norm"),
            L.GRU(4, return_sequences=True, name="gru"),
            L.BatchNormalization(name="batch_norm"),
            L.Dense(2, name="dense"),
        ]
    )
    rng = np.random.default_rng(1)
    x = saved_models._padded_floats(rng, 16, 7, 3)
    saved_models._fit(model, x, rng.standard_normal((16, 7, 2)))
    return saved_models._save(model, folder, "norm_stack")


def attention_lstm(folder):
    keras = saved_models._keras()
    L = keras.layers
    ids = keras.Input((9,), dtype="int32", name="tokens")
    h = L.Embedding(30, 6, mask_zero=True, name="embedding")(ids)
    h = L.LSTM(5, return_sequences=True, name="lstm")(h)
    context = L.Attention(use_scale=True, name="attention")([h, h], use_causal_mask=True)
    additive = L.AdditiveAttention(name="additive")([h, context], use_causal_mask=False)
    h = L.Concatenate(name="concat")([h, context, additive])
    h = L.GlobalAveragePooling1D(name="pool")(h)
    model = keras.Model(ids, L.Dense(2, name="dense")(h))
    rng = np.random.default_rng(2)
    saved_models._fit(model, saved_models._ids(rng, 16, 9, 30), rng.standard_normal((16, 2)))
    return saved_models._save(model, folder, "attention_lstm", formats=("keras",))


def rnn_cell(folder):
    keras = saved_models._keras()
    L = keras.layers
    model = keras.Sequential(
        [
            keras.Input((6, 3)),
            L.Masking(name="masking"),
            L.RNN(L.LSTMCell(4), return_sequences=True, go_backwards=True, name="rnn_lstm"),
            L.Bidirectional(L.RNN(L.GRUCell(3, reset_after=False), return_sequences=True), name="bi_rnn_gru"),
            L.RNN(L.SimpleRNNCell(3), name="rnn_simple"),
            L.Dense(2, name="dense"),
        ]
    )
    rng = np.random.default_rng(3)
    saved_models._fit(model, saved_models._padded_floats(rng, 16, 6, 3), rng.standard_normal((16, 2)))
    return saved_models._save(model, folder, "rnn_cell")


def reshapers(folder):
    """The elementwise and reshaping layers of the registry, around an LSTM, in one Sequential model."""
    keras = saved_models._keras()
    L = keras.layers
    model = keras.Sequential(
        [
            keras.Input((6, 4)),
            L.ZeroPadding1D((1, 2), name="pad"),
            L.Cropping1D((2, 0), name="crop"),
            L.UpSampling1D(2, name="up"),
            L.ReLU(max_value=2.0, negative_slope=0.1, threshold=0.2, name="relu"),
            L.LeakyReLU(0.2, name="leaky"),
            L.ELU(0.5, name="elu"),
            L.PReLU(shared_axes=[1], name="prelu"),
            L.Rescaling(0.5, offset=0.1, name="rescale"),
            L.UnitNormalization(name="unit"),
            L.Softmax(name="softmax"),
            L.LSTM(4, return_sequences=True, name="lstm"),
            L.Reshape((7, 8), name="reshape"),
            L.Permute((2, 1), name="permute"),
            L.Flatten(name="flatten"),
            L.Dense(2, name="dense"),
        ]
    )
    rng = np.random.default_rng(4)
    saved_models._fit(model, rng.standard_normal((16, 6, 4)).astype("float32"), rng.standard_normal((16, 2)))
    return saved_models._save(model, folder, "reshapers")


def _seeded_weights(model, rng):
    """Every weight drawn from U(-0.6, 0.6), as a trained model's are nowhere at their initial values (fitting
    these models would compile Keras's training graph for longer than the rest of the test takes)."""
    model.set_weights([rng.uniform(-0.6, 0.6, w.shape).astype(w.dtype) for w in model.get_weights()])
    return model


def time_distributed(folder):
    """Frames of positions: a 4-D mask, TimeDistributed around Conv1D, LayerNormalization and Bidirectional(LSTM)."""
    keras = saved_models._keras()
    L = keras.layers
    frames = keras.Input((5, 6, 3), name="frames")
    h = L.Masking(name="masking")(frames)  # mask (batch, frames, positions)
    h = L.TimeDistributed(L.Conv1D(4, 3, padding="same", activation="relu"), name="td_conv")(h)
    h = L.TimeDistributed(L.LayerNormalization(), name="td_norm")(h)
    h = L.TimeDistributed(L.Bidirectional(L.LSTM(3)), name="td_bilstm")(h)  # each frame's positions, masked
    h = L.Conv1D(4, 1, name="frame_proj")(h)  # does not support masking: the 3-D mask ends here
    h = L.LSTM(4, return_sequences=True, name="lstm")(h)
    model = keras.Model(frames, L.TimeDistributed(L.Dense(2), name="td_dense")(h))
    rng = np.random.default_rng(5)
    _seeded_weights(model, rng)
    return saved_models._save(model, folder, "time_distributed", formats=("keras",))


def stacked_cells(folder):
    """RNN(StackedRNNCells): masked and backwards, inside Bidirectional, and started from other layers' tensors
    (Keras nests them by cell) returning every cell's states."""
    keras = saved_models._keras()
    L = keras.layers
    x = keras.Input((6, 3), name="x")
    context = keras.Input((2,), name="context")
    start = [[L.Dense(3, name="h0")(context), L.Dense(3, name="c0")(context)], L.Dense(2, name="g0")(context)]
    h = L.Masking(name="masking")(x)
    h = L.RNN(
        L.StackedRNNCells([L.LSTMCell(4), L.GRUCell(3)]), return_sequences=True, go_backwards=True, name="stacked"
    )(h)
    h = L.Bidirectional(
        L.RNN(L.StackedRNNCells([L.GRUCell(3, reset_after=False), L.SimpleRNNCell(2)]), return_sequences=True),
        name="bi_stacked",
    )(h)
    out, *states = keras.tree.flatten(
        L.RNN(L.StackedRNNCells([L.LSTMCell(3), L.GRUCell(2)]), return_state=True, name="stacked_state")(
            h, initial_state=start
        )
    )
    model = keras.Model([x, context], [L.Dense(2, name="dense")(out), L.Concatenate(name="states")(states)])
    _seeded_weights(model, np.random.default_rng(6))
    return saved_models._save(model, folder, "stacked_cells", formats=("keras",))


def attention_heads(folder):
    """MultiHeadAttention around an LSTM: self-attention with the padding mask, a residual, causal attention,
    cross-attention over a masked memory (query, value, key), and Dot (scores and a cosine)."""
    keras = saved_models._keras()
    L = keras.layers
    ids = keras.Input((7,), dtype="int32", name="tokens")
    memory = keras.Input((4, 3), name="memory")
    h = L.LSTM(6, return_sequences=True, name="lstm")(L.Embedding(20, 5, mask_zero=True, name="embedding")(ids))
    attended = L.MultiHeadAttention(2, 3, name="self_attention")(h, h)
    h = L.LayerNormalization(name="norm")(L.Add(name="residual")([h, attended]))
    causal = L.MultiHeadAttention(2, 4, value_dim=3, output_shape=5, use_bias=False, name="causal_attention")(
        h, h, use_causal_mask=True
    )
    m = L.GRU(5, return_sequences=True, name="memory_gru")(L.Masking(name="memory_mask")(memory))
    cross = L.MultiHeadAttention(3, 2, name="cross_attention")(causal, m, m)
    scores = L.Dot(axes=(2, 2), name="scores")([causal, cross])
    pooled = L.GlobalAveragePooling1D(name="pool")(cross)
    cosine = L.Dot(axes=1, normalize=True, name="cosine")(
        [pooled, L.GlobalAveragePooling1D(name="pool_causal")(causal)]
    )
    model = keras.Model([ids, memory], [L.Dense(2, name="dense")(pooled), scores, cosine])
    _seeded_weights(model, np.random.default_rng(7))
    return saved_models._save(model, folder, "attention_heads", formats=("keras",))


def conv_lstm_stack(folder):
    """ConvLSTM1D returning sequences (valid) → ConvLSTM1D (same, dilated) → Dense on each position."""
    keras = saved_models._keras()
    L = keras.layers
    model = keras.Sequential(
        [
            keras.Input((4, 7, 2)),
            L.ConvLSTM1D(3, 3, return_sequences=True, name="conv_lstm1"),
            L.ConvLSTM1D(2, 2, padding="same", dilation_rate=2, name="conv_lstm2"),
            L.Dense(2, name="dense"),
        ]
    )
    _seeded_weights(model, np.random.default_rng(8))
    return saved_models._save(model, folder, "conv_lstm_stack")


def conv_lstm_grids(folder):
    """Frames through a strided, valid ConvLSTM2D and volumes through a small channels_first ConvLSTM3D (backwards,
    no bias), each → Flatten → Dense."""
    keras = saved_models._keras()
    L = keras.layers
    frames = keras.Input((3, 6, 5, 2), name="frames")
    volumes = keras.Input((3, 2, 4, 3, 3), name="volumes")  # (timesteps, channels, depth, height, width)
    h = L.ConvLSTM2D(3, (3, 2), strides=(2, 1), name="conv_lstm2d")(frames)
    v = L.ConvLSTM3D(
        2, 2, padding="same", data_format="channels_first", go_backwards=True, use_bias=False, name="conv_lstm3d"
    )(volumes)
    outputs = [
        L.Dense(2, name="frames_dense")(L.Flatten(name="frames_flat")(h)),
        L.Dense(1, name="volumes_dense")(L.Flatten(name="volumes_flat")(v)),
    ]
    model = keras.Model([frames, volumes], outputs)
    _seeded_weights(model, np.random.default_rng(9))
    return saved_models._save(model, folder, "conv_lstm_grids", formats=("keras",))


def conv_lstm_masked(folder):
    """Masking in front of a ConvLSTM2D (same padding: one mask flag per grid position) returning its sequence
    and states, then Bidirectional(ConvLSTM2D), which the mask reaches too, and a ConvLSTM2D started from the
    states (called with initial_state, it is not handed the mask)."""
    keras = saved_models._keras()
    L = keras.layers
    frames = keras.Input((4, 5, 4, 2), name="frames")
    masked = L.Masking(name="masking")(frames)
    sequence, h, c = L.ConvLSTM2D(3, 3, padding="same", return_sequences=True, return_state=True, name="conv_lstm")(
        masked
    )
    both = L.Bidirectional(L.ConvLSTM2D(2, (3, 1), padding="same", return_sequences=True), name="bi")(sequence)
    restarted = L.ConvLSTM2D(3, (1, 3), padding="same", return_sequences=True, name="restarted")(
        masked, initial_state=[h, c]
    )
    model = keras.Model(frames, [L.Dense(2, name="dense")(both), h, c, restarted])
    _seeded_weights(model, np.random.default_rng(10))
    return saved_models._save(model, folder, "conv_lstm_masked", formats=("keras",))


def conv_lstm_stateful(folder):
    """A fixed batch of 2 through a stateful ConvLSTM1D (its h and c carried from one call to the next)."""
    keras = saved_models._keras()
    L = keras.layers
    model = keras.Sequential(
        [
            keras.Input(batch_shape=(2, 3, 6, 2)),
            L.ConvLSTM1D(2, 3, padding="same", stateful=True, return_sequences=True, name="conv_lstm"),
            L.Dense(1, name="dense"),
        ]
    )
    _seeded_weights(model, np.random.default_rng(11))
    return saved_models._save(model, folder, "conv_lstm_stateful", formats=("keras",))


def still_refused(folder):
    """Valid Keras the runtime does not reproduce, one refusal each (never trained: they never run)."""
    keras = saved_models._keras()
    L = keras.layers
    x = keras.Input((5, 3), name="x")
    h = L.LSTM(4, return_sequences=True, name="lstm")(x)
    frames = keras.Input((5, 4, 3), name="frames")
    per_frame = L.TimeDistributed(L.LSTM(3, return_sequences=True), name="td")(frames)
    models = {
        "scores": keras.Model(x, L.MultiHeadAttention(2, 2, name="mha")(h, h, return_attention_scores=True)),
        "gate": keras.Model(x, L.MultiHeadAttention(2, 2, use_gate=True, name="mha")(h, h)),
        "axes": keras.Model(frames, L.MultiHeadAttention(2, 2, name="mha")(per_frame, per_frame)),
        "rank4": keras.Model(frames, L.MultiHeadAttention(2, 2, attention_axes=(1,), name="mha")(per_frame, per_frame)),
        "conv2d": keras.Sequential(
            [
                keras.Input((3, 4, 4, 2)),
                L.TimeDistributed(L.Conv2D(2, 2), name="td_conv2d"),
                L.TimeDistributed(L.Flatten(), name="td_flatten"),
                L.LSTM(2, name="lstm"),
            ]
        ),
    }
    grids = keras.Input((3, 6, 2), name="grids")
    models["sparsemax"] = keras.Model(grids, L.ConvLSTM1D(2, 3, activation="sparsemax", name="conv_lstm")(grids))
    return {name: saved_models._save(m, folder, name, formats=("keras",))["keras"] for name, m in models.items()}


BUILDERS = {
    f.__name__: f
    for f in (
        cnn_lstm,
        norm_stack,
        attention_lstm,
        rnn_cell,
        reshapers,
        time_distributed,
        stacked_cells,
        attention_heads,
        conv_lstm_stack,
        conv_lstm_grids,
        conv_lstm_masked,
        conv_lstm_stateful,
        still_refused,
    )
}
_CACHE: dict = {}


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    def path(name, fmt="keras"):
        if name not in _CACHE:
            _CACHE[name] = BUILDERS[name](tmp_path_factory.mktemp(name))
        return _CACHE[name][fmt]  # a format, or for still_refused a case

    return path


def _layers(report):
    return {layer["name"]: layer for layer in report["layers"]}


@pytest.mark.parametrize(
    "name, fmt",
    [
        ("cnn_lstm", "keras"),
        ("cnn_lstm", "h5"),
        ("norm_stack", "keras"),
        ("attention_lstm", "keras"),
        ("rnn_cell", "h5"),
        ("reshapers", "keras"),
        ("time_distributed", "keras"),
        ("stacked_cells", "keras"),
        ("attention_heads", "keras"),
        ("conv_lstm_stack", "keras"),
        ("conv_lstm_stack", "h5"),
        ("conv_lstm_grids", "keras"),
        ("conv_lstm_masked", "keras"),
    ],
)
def test_the_model_verifies_at_the_default_tolerances(model, name, fmt):
    report = invoke_json(["verify", model(name, fmt)])
    assert report["passed"] is True
    assert report["tolerance"]["atol"] == 1e-5 and report["tolerance"]["rtol"] == 1.3e-6
    assert all(layer["passed"] for layer in report["layers"])
    assert 0 < report["max_abs_diff"] < 1e-5  # float32 rounding: real arithmetic on both sides


def test_masks_pass_where_keras_passes_them(model):
    norm = _layers(invoke_json(["verify", model("norm_stack")]))
    for name in ("lstm", "layer_norm", "gru", "batch_norm", "dense"):  # the normalizations pass it on
        (mask,) = norm[name]["masks"]
        assert mask["keras"] and mask["reference"] and mask["passed"], name
    attention = _layers(invoke_json(["verify", model("attention_lstm")]))
    (mask,) = attention["attention"]["masks"]  # the query's mask
    assert mask["keras"] and mask["reference"] and mask["passed"]
    (pooled,) = attention["pool"]["masks"]
    assert not pooled["keras"] and not pooled["reference"]


def test_a_wrong_mask_rule_would_fail(model, monkeypatch):
    """Attention without its causal mask (a plausible mistake) breaks parity at that layer: the test can fail."""
    from rnn_parity import layer_ops

    real = layer_ops.attention
    monkeypatch.setattr(layer_ops, "attention", lambda *a, **k: real(*a, **{**k, "use_causal_mask": False}))
    report = invoke_json(["verify", model("attention_lstm")], 1)
    assert report["first_failure"]["layer"] == "attention"


@pytest.mark.parametrize(
    "name",
    [
        "cnn_lstm",
        "norm_stack",
        "attention_lstm",
        "rnn_cell",
        "reshapers",
        "time_distributed",
        "stacked_cells",
        "attention_heads",
        "conv_lstm_stack",
        "conv_lstm_grids",
        "conv_lstm_masked",
    ],
)
def test_the_model_exports_and_runs_without_tensorflow(model, keras, tmp_path, name):
    target = tmp_path / f"{name}.npz"
    invoke(["export", model(name), "-o", target], 0)
    loaded = keras.models.load_model(model(name), compile=False)
    rng = np.random.default_rng(7)
    xs = {}
    for spec in loaded.inputs:
        if spec.dtype == "int32":
            xs[spec.name] = saved_models._ids(rng, 3, spec.shape[1], 20)
        else:
            xs[spec.name] = rng.standard_normal((3, *spec.shape[1:])).astype("float32")
    np.savez(tmp_path / "x.npz", **xs)
    script = (
        "import sys, numpy as np\n"
        "from rnn_parity import runtime\n"
        f"x = dict(np.load({str(tmp_path / 'x.npz')!r}))\n"
        f"out = runtime.load({str(target)!r}).predict(x if len(x) > 1 else next(iter(x.values())))\n"
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules\n"
        f"np.savez({str(tmp_path / 'y.npz')!r}, *(out if isinstance(out, list) else [out]))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    want = loaded.predict(list(xs.values()) if len(xs) > 1 else next(iter(xs.values())), verbose=0)
    with np.load(tmp_path / "y.npz") as got:
        outs = [got[f"arr_{i}"] for i in range(len(got.files))]
    for got_out, want_out in zip(outs, want if isinstance(want, list) else [want], strict=True):
        np.testing.assert_allclose(got_out, want_out, atol=1e-5, rtol=1.3e-6)


def test_multi_head_attention_clears_the_masks_of_its_inputs_as_keras_does(model):
    """Keras's MultiHeadAttention removes the masks attached to its query, value and key (set_keras_mask(…, None)):
    the LSTM it reads reports no mask afterwards, and the residual Add after it finds none to combine."""
    layers = _layers(invoke_json(["verify", model("attention_heads")]))
    for name in ("lstm", "memory_gru", "residual"):
        (mask,) = layers[name]["masks"]
        assert not mask["keras"] and not mask["reference"], name
    (query,) = layers["self_attention"]["masks"]  # the query's (padding) mask, attached to the output
    assert query["keras"] and query["reference"] and query["passed"]


def test_time_distributed_masks_the_positions_of_each_frame_as_keras_does(model, tmp_path):
    """Padded positions inside frames (not only whole padded frames, which the seeded inputs give): the wrapped
    Bidirectional(LSTM) is handed each frame's (batch·frames, positions) mask."""
    rng = np.random.default_rng(8)
    x = rng.standard_normal((4, 5, 6, 3)).astype("float32")
    x[np.arange(6)[None, None, :] >= rng.integers(1, 7, size=(4, 5))[..., None]] = 0.0  # padded positions
    x[np.arange(5)[None, :] >= np.array([5, 3, 2, 4])[:, None]] = 0.0  # padded frames
    np.savez(tmp_path / "frames.npz", frames=x)
    report = invoke_json(["verify", model("time_distributed"), "--input", tmp_path / "frames.npz"])
    assert report["passed"] is True
    (frames,) = _layers(report)["td_bilstm"]["masks"]  # TimeDistributed passes the 3-D mask on
    assert frames["keras"] and frames["reference"] and frames["passed"]


def test_a_stacked_rnn_reports_every_cells_states(model):
    layer = _layers(invoke_json(["verify", model("stacked_cells")]))["stacked_state"]
    assert list(layer["states"]) == ["stacked_state.cell0_h", "stacked_state.cell0_c", "stacked_state.cell1_h"]
    assert all(state["passed"] for state in layer["states"].values())
    assert layer["initial_state"] == ["h0", "c0", "g0"]  # Keras's [[h0, c0], g0], flattened in cell order
    assert "initial_state" in layer["notes"][0]  # Keras does not hand it the mask then


@pytest.mark.parametrize(
    "case, message",
    [
        (
            "scores",
            "layer 'mha' (MultiHeadAttention): called with return_attention_scores=True, which is not supported",
        ),
        ("gate", "layer 'mha' (MultiHeadAttention): use_gate=True is not supported"),
        (
            "axes",  # the default for (batch, frames, positions, features): both middle axes
            "layer 'mha' (MultiHeadAttention): attention_axes=[1, 2] is not supported (the runtime attends over "
            "the steps axis)",
        ),
        ("rank4", "layer 'mha' (MultiHeadAttention): takes inputs of rank 3 (batch, steps, features), got rank 4"),
        ("conv2d", "layer 'td_conv2d' (TimeDistributed): wraps Conv2D, which the runtime does not implement"),
        (
            "sparsemax",
            "layer 'conv_lstm' (ConvLSTM1D): activation='sparsemax' is not an activation the reference implements",
        ),
    ],
)
def test_what_stays_unsupported_is_refused_naming_the_layer(model, case, message):
    path = model("still_refused", case)
    assert invoke(["verify", path], 4).stderr == f"Error: {path}: unsupported: {message}\n"


def _positions_masked(rng, shape):
    """Frames with some grid positions zeroed (a mask flag per position, not only whole padded steps)."""
    x = rng.standard_normal(shape).astype("float32")
    x[rng.random(shape[:-1]) < 0.3] = 0.0
    x[0, 2:] = 0.0  # and padded steps
    return x


def test_a_conv_lstm_masks_each_grid_position_as_keras_does(model, keras, tmp_path):
    """Masking before a same-padded ConvLSTM2D: each grid position keeps its own h and c where it is masked,
    through the ConvLSTM, its states and the Bidirectional(ConvLSTM2D) the mask reaches; verified, then the
    exported model on the same frames against Keras."""
    x = _positions_masked(np.random.default_rng(12), (3, 4, 5, 4, 2))
    flags = np.any(x != 0, axis=-1)
    assert (flags.any(axis=(2, 3)) & ~flags.all(axis=(2, 3))).any()  # steps partly masked
    np.savez(tmp_path / "frames.npz", frames=x)
    target = tmp_path / "masked.npz"
    report = invoke_json(["export", model("conv_lstm_masked"), "--input", tmp_path / "frames.npz", "-o", target])
    assert report["passed"] is True
    layers = _layers(report)
    for name in ("conv_lstm", "bi", "dense"):
        (mask,) = layers[name]["masks"]
        assert mask["keras"] and mask["reference"] and mask["passed"] and mask["size"] == flags.size, name
    assert list(layers["conv_lstm"]["states"]) == ["conv_lstm.h", "conv_lstm.c"]
    assert all(state["passed"] for state in layers["conv_lstm"]["states"].values())
    assert layers["restarted"]["initial_state"] == ["conv_lstm", "conv_lstm"] and layers["restarted"]["passed"]
    assert "initial_state" in layers["restarted"]["notes"][0]  # Keras computes every step of it
    want = keras.models.load_model(model("conv_lstm_masked"), compile=False)(x)
    for got, expected in zip(runtime.load(target).predict(x), want, strict=True):
        np.testing.assert_allclose(got, keras.ops.convert_to_numpy(expected), atol=1e-5, rtol=1.3e-6)


def test_a_stateful_conv_lstm_carries_its_grids_of_states_like_keras(model, keras, tmp_path):
    target = tmp_path / "stateful.npz"
    assert invoke_json(["export", model("conv_lstm_stateful"), "-o", target])["passed"] is True
    loaded, exported = keras.models.load_model(model("conv_lstm_stateful"), compile=False), runtime.load(target)
    rng = np.random.default_rng(13)
    calls = [rng.standard_normal((2, 3, 6, 2)).astype("float32") for _ in range(3)]
    for x in calls:  # each call starts from the previous call's h and c, in Keras and in the runtime
        np.testing.assert_allclose(exported.predict(x), keras.ops.convert_to_numpy(loaded(x)), atol=1e-5, rtol=1.3e-6)
    exported.reset_states()
    first = exported.predict(calls[0])
    assert not np.allclose(first, exported.predict(calls[0]))  # the states really are carried
