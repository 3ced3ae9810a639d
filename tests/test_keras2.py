"""Files written by Keras 2: detection, translation for Keras 3, and the upgrade report.

The fixtures are real Keras 2 ``.h5`` files written by tf_keras (the ``keras2`` extra).
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from rnn_parity.errors import Unsupported
from rnn_parity.keras2 import HARD_SIGMOID_KERAS2, detect, keras2_activation, translate

from conftest import invoke, invoke_json


@pytest.fixture(scope="module")
def tf_keras():
    from rnn_parity.keras_runner import import_keras

    import_keras()  # TensorFlow's log levels first
    return pytest.importorskip("tf_keras", reason="tf-keras (the keras2 extra) is not installed")


def _seeded_weights(model, seed=0):  # a model or a layer
    rng = np.random.default_rng(seed)
    model.set_weights([rng.uniform(-0.6, 0.6, w.shape).astype(np.float32) for w in model.get_weights()])


@pytest.fixture(scope="module")
def keras2_files(tf_keras, tmp_path_factory):
    """Keras 2 files: a hard_sigmoid LSTM (Sequential), a sigmoid tagger (Functional), a masked Sequential one."""
    k2, folder = tf_keras, tmp_path_factory.mktemp("keras2")
    hard = k2.Sequential(
        [
            k2.layers.Masking(input_shape=(6, 3)),
            k2.layers.LSTM(4, recurrent_activation="hard_sigmoid", return_sequences=True, name="lstm"),
            k2.layers.GRU(3, reset_after=False, name="gru"),
            k2.layers.Dense(2, name="dense"),
        ]
    )
    ids = k2.Input((None,), dtype="int32", name="tokens")
    h = k2.layers.Embedding(20, 5, mask_zero=True, name="embedding")(ids)
    h = k2.layers.Bidirectional(k2.layers.LSTM(4, return_sequences=True), name="bi")(h)
    h = k2.layers.GRU(3, return_sequences=True, name="gru")(h)
    out = k2.layers.TimeDistributed(k2.layers.Dense(2), name="tagger")(h)
    plain = k2.Model(ids, out)
    masked = k2.Sequential(
        [
            k2.layers.Masking(input_shape=(6, 3)),
            k2.layers.LSTM(4, return_sequences=True, name="lstm"),
            k2.layers.GRU(3, reset_after=False, return_sequences=True, name="gru"),
            k2.layers.TimeDistributed(k2.layers.Dense(2), name="tagger"),
        ]
    )
    paths = {}
    for key, model in (("hard", hard), ("plain", plain), ("masked", masked)):
        _seeded_weights(model)
        paths[key] = folder / f"{key}.h5"
        with warnings.catch_warnings():  # tf_keras calls .h5 "legacy"; Keras 2 users wrote exactly these
            warnings.simplefilter("ignore", UserWarning)
            model.save(paths[key])
    return paths


def _stored(path):
    import h5py

    with h5py.File(path, "r") as f:
        return json.loads(f.attrs["model_config"])


# --------------------------------------------------------------------------
# The configuration alone.
# --------------------------------------------------------------------------


def _lstm_entry(**config):
    return {"class_name": "LSTM", "config": {"name": "lstm", "units": 2, **config}}


def _model(*entries):
    return {"class_name": "Sequential", "config": {"name": "m", "layers": list(entries)}}


def test_translate_drops_what_does_not_change_the_result():
    raw = _model(_lstm_entry(time_major=False, implementation=1, recurrent_activation="sigmoid"))
    out = translate(raw, "2.15.0")
    assert out.config["config"]["layers"][0]["config"] == {
        "name": "lstm",
        "units": 2,
        "recurrent_activation": "sigmoid",
    }
    assert out.rewrites == [
        "lstm: dropped time_major=False (Keras 3 is always batch-major)",
        "lstm: dropped implementation=1 (schedules the same arithmetic)",
    ]
    assert out.changes == []
    assert "time_major" in raw["config"]["layers"][0]["config"]  # the input is left alone


def test_translate_writes_out_keras2_defaults_by_version():
    old_gru = {"class_name": "GRU", "config": {"name": "gru", "units": 2}}
    out = translate(_model(_lstm_entry(), old_gru), "2.2.4")
    lstm_cfg, gru_cfg = (e["config"] for e in out.config["config"]["layers"])
    assert lstm_cfg["recurrent_activation"] == gru_cfg["recurrent_activation"] == "hard_sigmoid"
    assert gru_cfg["reset_after"] is False
    assert [c.layer for c in out.changes] == ["lstm", "gru"]
    assert out.changes[0].keras2 == HARD_SIGMOID_KERAS2
    assert translate(_model(_lstm_entry()), "2.4.0").config["config"]["layers"][0]["config"][
        "recurrent_activation"
    ] == ("sigmoid")


def test_translate_finds_hard_sigmoid_inside_wrappers():
    bi = {"class_name": "Bidirectional", "config": {"name": "bi", "layer": _lstm_entry(activation="hard_sigmoid")}}
    out = translate(_model(bi), "2.15.0")
    assert [(c.layer, c.option) for c in out.changes] == [("bi/lstm", "activation")]
    assert out.changes_at("bi") == out.changes


def test_translate_refuses_what_keras3_cannot_express():
    cudnn = {"class_name": "CuDNNLSTM", "config": {"name": "fast", "units": 2}}
    with pytest.raises(Unsupported) as err:
        translate(_model(_lstm_entry(time_major=True), cudnn), "2.3.1", where="m.h5")
    assert str(err.value) == (
        "m.h5: Keras 2 file: layer 'lstm' (LSTM): time_major=True has no Keras 3 equivalent"
        " | layer 'fast' (CuDNNLSTM): CuDNN layers are not translated yet"
    )


# --------------------------------------------------------------------------
# Real files.
# --------------------------------------------------------------------------


@pytest.mark.keras
def test_detect_tells_keras2_from_keras3_files(keras2_files, keras, tmp_path):
    found = detect(keras2_files["hard"], _stored(keras2_files["hard"]))
    assert found is not None and found.keras_version.startswith("2.") and found.backend == "tensorflow"
    inputs = keras.Input((4, 2))
    model = keras.Model(inputs, keras.layers.LSTM(2)(inputs))
    model.save(tmp_path / "k3.h5")
    assert detect(tmp_path / "k3.h5", _stored(tmp_path / "k3.h5")) is None


@pytest.mark.keras
def test_upgrade_names_the_hard_sigmoid_lstm(keras2_files):
    report = invoke_json(["upgrade", keras2_files["hard"]], expected=1)
    by_name = {layer["name"]: layer for layer in report["layers"]}
    assert report["same"] is False
    assert by_name["masking"]["same"] is True
    assert by_name["lstm"]["same"] is False and 1e-3 < by_name["lstm"]["max_abs"] < 0.5
    assert by_name["lstm"]["reason"].startswith("recurrent_activation=hard_sigmoid changed meaning: Keras 2 clip(")
    assert by_name["gru"]["reason"] == "its input differs (from layer lstm)"
    assert report["summary"].startswith("no: recurrent_activation=hard_sigmoid changed meaning")
    assert report["summary"].endswith("at layer lstm)")
    assert "lstm: dropped time_major=False (Keras 3 is always batch-major)" in report["rewrites"]
    # The reference computing Keras 2's hard_sigmoid agrees with Keras 2 at every layer.
    assert all(layer["reference"]["same"] and layer["reference"]["max_abs"] < 1e-5 for layer in report["layers"])


@pytest.mark.keras
def test_upgrade_keeps_a_sigmoid_model(keras2_files):
    report = invoke_json(["upgrade", keras2_files["plain"], "--N", 3, "--T", 7], expected=0)
    assert report["same"] is True
    assert report["summary"] == "yes: Keras 3 computes the same model"
    assert [layer["name"] for layer in report["layers"]] == ["embedding", "bi", "gru", "tagger"]
    assert all(layer["max_abs"] < 1e-5 for layer in report["layers"])
    assert all(layer["reference"]["same"] for layer in report["layers"])


@pytest.mark.keras
def test_upgrade_table_and_refusals(keras2_files, tmp_path, keras):
    table = invoke(["upgrade", keras2_files["hard"], "--N", 2], expected=1).stdout
    assert "CHANGED" in table and "hard_sigmoid changed" in table
    inputs = keras.Input((4, 2))
    keras.Model(inputs, keras.layers.LSTM(2)(inputs)).save(tmp_path / "k3.keras")
    result = invoke(["upgrade", tmp_path / "k3.keras"], expected=2)
    assert result.stderr == (
        f"Error: {tmp_path / 'k3.keras'}: was not written by Keras 2 (keras_version {keras.__version__})\n"
    )
    assert invoke(["upgrade", keras2_files["hard"], "--T", 0], expected=2).stderr == (
        "Error: --T must be a positive integer, got 0\n"
    )


@pytest.mark.keras
@pytest.mark.parametrize("cell", ["LSTM", "GRU"])
def test_reference_computes_keras2_hard_sigmoid(tf_keras, cell):
    """Keras 2's own layer against the reference with Keras 2's hard_sigmoid (clip(0.2x + 0.5, 0, 1))."""
    from rnn_parity import reference

    kwargs = {"reset_after": False} if cell == "GRU" else {}
    layer = getattr(tf_keras.layers, cell)(3, recurrent_activation="hard_sigmoid", return_sequences=True, **kwargs)
    x = np.random.default_rng(4).standard_normal((2, 6, 4)).astype(np.float32) * 2
    layer.build(x.shape)
    _seeded_weights(layer)
    got = np.asarray(layer(x))
    function = reference.lstm if cell == "LSTM" else reference.gru
    want = function(
        x.astype(np.float64),
        *layer.get_weights(),
        recurrent_activation=keras2_activation("hard_sigmoid"),
        return_sequences=True,
        **kwargs,
    )
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=1.3e-6)
    keras3_meaning = function(
        x.astype(np.float64), *layer.get_weights(), recurrent_activation="hard_sigmoid", return_sequences=True, **kwargs
    )
    assert np.max(np.abs(got - keras3_meaning)) > 1e-3  # the two meanings really differ on these inputs


# --------------------------------------------------------------------------
# verify and export of Keras 2 files.
# --------------------------------------------------------------------------


@pytest.mark.keras
def test_a_keras2_file_verifies_and_exports_through_its_translation(keras2_files, tmp_path):
    """Sequential and Functional Keras 2 files with Embedding, Bidirectional, GRU and TimeDistributed."""
    report = invoke_json(["verify", keras2_files["plain"], "--N", 3, "--T", 7])
    assert report["passed"] is True and report["model"]["keras_version"].startswith("2.")
    assert report["model"]["keras2_rewrites"] == [
        "tokens: batch_input_shape renamed batch_shape",
        "embedding: dropped batch_input_shape=[None, None] (the model's InputLayer keeps the shape)",
        "bi/lstm: dropped time_major=False (Keras 3 is always batch-major)",
        "bi/lstm: dropped implementation=2 (schedules the same arithmetic)",
        "gru: dropped time_major=False (Keras 3 is always batch-major)",
        "gru: dropped implementation=2 (schedules the same arithmetic)",
    ]
    assert {layer["name"] for layer in report["layers"]} == {"embedding", "bi", "gru", "tagger"}
    target = tmp_path / "plain.npz"
    invoke(["export", keras2_files["plain"], "-o", target], 0)
    from rnn_parity import runtime

    ids = np.array([[3, 5, 7, 0, 0], [1, 2, 3, 4, 5]], dtype=np.int32)
    out = runtime.load(target).predict(ids)
    assert out.shape == (2, 5, 2) and np.all(np.isfinite(out))


@pytest.mark.keras
def test_a_keras2_file_keras3_computes_differently_is_refused_with_the_reason(keras2_files):
    path = keras2_files["hard"]
    result = invoke(["verify", path], 4)
    assert result.stderr == (
        f"Error: {path}: written by Keras 2 (keras_version {_stored_version(path)}), and Keras 3 computes it "
        "differently: recurrent_activation=hard_sigmoid changed meaning: Keras 2 clip(0.2x + 0.5, 0, 1), "
        "Keras 3 relu6(x + 3) / 6 (layers lstm); see `rnn-parity upgrade` for the difference per layer\n"
    )


def _stored_version(path):
    import h5py

    with h5py.File(path, "r") as f:
        value = f.attrs["keras_version"]
    return value.decode() if isinstance(value, bytes) else str(value)


@pytest.mark.keras
def test_a_masked_keras2_sequential_file_verifies_and_exports(keras2_files, tmp_path):
    report = invoke_json(["verify", keras2_files["masked"]])
    assert report["passed"] is True
    by_name = {layer["name"]: layer for layer in report["layers"]}
    assert by_name["gru"]["masks"][0]["keras"] and by_name["gru"]["masks"][0]["passed"]
    invoke(["export", keras2_files["masked"], "-o", tmp_path / "masked.npz"], 0)
