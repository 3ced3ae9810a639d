"""Real-world architectures around recurrent layers: verify and export, end to end.

A CNN-LSTM, an LSTM → LayerNormalization → GRU → BatchNormalization stack, an
LSTM with (causal, masked) Attention and ``RNN(LSTMCell)``: each is a real,
briefly trained Keras model saved to a file, verified layer by layer at the
default tolerances and exported; the export runs in a process without TensorFlow.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import saved_models

from conftest import invoke, invoke_json

pytestmark = pytest.mark.keras


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


BUILDERS = {f.__name__: f for f in (cnn_lstm, norm_stack, attention_lstm, rnn_cell, reshapers)}
_CACHE: dict = {}


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    def path(name, fmt="keras"):
        if name not in _CACHE:
            _CACHE[name] = BUILDERS[name](tmp_path_factory.mktemp(name))
        return _CACHE[name][fmt]

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


@pytest.mark.parametrize("name", ["cnn_lstm", "norm_stack", "attention_lstm", "rnn_cell", "reshapers"])
def test_the_model_exports_and_runs_without_tensorflow(model, keras, tmp_path, name):
    target = tmp_path / f"{name}.npz"
    invoke(["export", model(name), "-o", target], 0)
    loaded = keras.models.load_model(model(name), compile=False)
    spec = loaded.inputs[0]
    rng = np.random.default_rng(7)
    if spec.dtype == "int32":
        x = saved_models._ids(rng, 3, spec.shape[1], 30)
    else:
        x = rng.standard_normal((3, *spec.shape[1:])).astype("float32")
    np.save(tmp_path / "x.npy", x)
    script = (
        "import sys, numpy as np\n"
        "from rnn_parity import runtime\n"
        f"out = runtime.load({str(target)!r}).predict(np.load({str(tmp_path / 'x.npy')!r}))\n"
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules\n"
        f"np.save({str(tmp_path / 'y.npy')!r}, out)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), loaded.predict(x, verbose=0), atol=1e-5, rtol=1.3e-6)
