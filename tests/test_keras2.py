"""Files written by Keras 2: detection, translation, verify and export against Keras 2 itself, the upgrade report.

The fixtures are real Keras 2 ``.h5`` files written by tf_keras (the ``keras2`` extra),
CuDNNLSTM/CuDNNGRU ones too (tf_keras builds and saves them on a CPU; only running them needs a GPU).
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from rnn_parity import runtime
from rnn_parity.errors import InvalidInput, Unsupported
from rnn_parity.keras2 import (
    HARD_SIGMOID_KERAS2,
    cudnn_weights_as_keras,
    detect,
    keras2_activation,
    plan,
    translate,
    translate_for_keras2,
)
from rnn_parity.model_file import read_model_file

from conftest import invoke, invoke_json, python_without

TOL = {"atol": 1e-5, "rtol": 1.3e-6}


@pytest.fixture(scope="module")
def tf_keras():
    from rnn_parity.keras_runner import import_keras

    import_keras()  # TensorFlow's log levels first
    return pytest.importorskip("tf_keras", reason="tf-keras (the keras2 extra) is not installed")


def _seeded_weights(model, seed=0):  # a model or a layer
    rng = np.random.default_rng(seed)
    model.set_weights([rng.uniform(-0.6, 0.6, w.shape).astype(np.float32) for w in model.get_weights()])


def _keras2_models(k2):
    """name → a Keras 2 model; each file exercises what its name says."""
    from tf_keras.api._v1.keras.layers import CuDNNGRU, CuDNNLSTM

    models = {}
    models["hard"] = k2.Sequential(
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
    models["plain"] = k2.Model(ids, k2.layers.TimeDistributed(k2.layers.Dense(2), name="tagger")(h))
    x = k2.Input((None, 3), name="x")
    h = CuDNNLSTM(4, return_sequences=True, name="fast")(x)
    h = k2.layers.Bidirectional(CuDNNGRU(3, return_sequences=True), name="bi")(h)
    models["cudnn"] = k2.Model(x, CuDNNGRU(2, name="last")(h))
    models["time_major"] = k2.Sequential(
        [
            k2.layers.Masking(input_shape=(None, 3)),
            k2.layers.LSTM(4, time_major=True, recurrent_activation="hard_sigmoid", return_sequences=True, name="lstm"),
            k2.layers.Bidirectional(k2.layers.GRU(3, time_major=True, return_sequences=True), name="bi"),
            k2.layers.SimpleRNN(2, time_major=True, name="last"),
        ]
    )
    enc_in, dec_in = k2.Input((None, 3), name="enc_in"), k2.Input((None, 2), name="dec_in")
    _, h, c = k2.layers.LSTM(4, return_state=True, name="enc")(k2.layers.Masking(name="enc_mask")(enc_in))
    dec = k2.layers.LSTM(4, return_sequences=True, name="dec")(
        k2.layers.Masking(name="dec_mask")(dec_in), initial_state=[h, c]
    )
    models["seq2seq"] = k2.Model([enc_in, dec_in], k2.layers.Dense(2, name="proj")(dec))
    # Two inputs with their own padding, and a Conv1D branch without a mask (it stops there in Keras 2).
    a, b = k2.Input((None, 3), name="a"), k2.Input((None, 3), name="b")
    la = k2.layers.LSTM(4, return_sequences=True, name="la")(k2.layers.Masking(name="mask_a")(a))
    lb = k2.layers.GRU(4, return_sequences=True, name="lb")(k2.layers.Masking(name="mask_b")(b))
    conv = k2.layers.Conv1D(4, 2, padding="same", name="conv")(b)
    merged = {
        "add": k2.layers.Add(name="add")([la, lb]),
        "mul": k2.layers.Multiply(name="mul")([la, lb]),
        "max": k2.layers.Maximum(name="max")([la, lb]),
        "cat": k2.layers.Concatenate(name="cat")([la, lb]),
        "cat_t": k2.layers.Concatenate(axis=1, name="cat_t")([la, lb]),
        "mixed": k2.layers.Average(name="mixed")([la, conv]),
    }
    models["merge"] = k2.Model([a, b], [k2.layers.SimpleRNN(3, name=f"r_{k}")(v) for k, v in merged.items()])
    return models


@pytest.fixture(scope="module")
def keras2_models(tf_keras):
    """The Keras 2 models behind :func:`keras2_files`: what Keras 2 computes with each file."""
    models = _keras2_models(tf_keras)
    for model in models.values():
        _seeded_weights(model)
    return models


@pytest.fixture(scope="module")
def keras2_files(keras2_models, tmp_path_factory):
    folder = tmp_path_factory.mktemp("keras2")
    paths = {}
    for key, model in keras2_models.items():
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
    assert [(c.layer, c.option) for c in out.changes] == [("bi/lstm", "activation=hard_sigmoid")]
    assert out.changes_at("bi") == out.changes


def test_translate_refuses_what_keras3_cannot_express():
    with pytest.raises(Unsupported) as err:
        translate(_model(_lstm_entry(time_major=True)), "2.3.1", where="m.h5")
    assert str(err.value) == "m.h5: Keras 2 file: layer 'lstm' (LSTM): time_major=True has no Keras 3 equivalent"


def test_cudnn_layers_run_as_the_lstm_and_gru_computing_the_same():
    cudnn = {"class_name": "CuDNNGRU", "config": {"name": "fast", "units": 2, "time_major": False}}
    bi = {"class_name": "Bidirectional", "config": {"name": "bi", "layer": {**cudnn, "class_name": "CuDNNLSTM"}}}
    out = translate(_model(cudnn, bi), "2.15.0")
    gru, wrapped = out.config["config"]["layers"][0], out.config["config"]["layers"][1]["config"]["layer"]
    assert gru == {
        "class_name": "GRU",
        "config": {
            "name": "fast",
            "units": 2,
            "activation": "tanh",
            "recurrent_activation": "sigmoid",
            "use_bias": True,
            "reset_after": True,
        },
    }
    assert wrapped["class_name"] == "LSTM" and wrapped["config"]["recurrent_activation"] == "sigmoid"
    assert out.cudnn == {"fast": "CuDNNGRU", "bi": "CuDNNLSTM"}
    assert out.rewrites[0] == (
        "fast: CuDNNGRU runs as GRU(recurrent_activation=sigmoid, reset_after=True), weights converted as Keras 2 "
        "loads them into one (kernels re-laid out per gate, bias = [input bias, recurrent bias], (2, 3·units))"
    )
    assert out.changes == []


def test_translation_for_keras2_writes_out_only_the_old_defaults():
    """What Keras 2 (any 2.x) reads as its writer meant it: time_major and hard_sigmoid stay."""
    raw = _model(_lstm_entry(time_major=True, implementation=1), {"class_name": "GRU", "config": {"name": "g"}})
    out = translate_for_keras2(raw, "2.2.4")
    lstm, gru = (e["config"] for e in out.config["config"]["layers"])
    assert lstm == {
        "name": "lstm",
        "units": 2,
        "time_major": True,
        "implementation": 1,
        "recurrent_activation": "hard_sigmoid",
    }
    assert gru["reset_after"] is False and out.changes == []
    assert out.rewrites == [
        "lstm: recurrent_activation=hard_sigmoid written out (Keras 2.2.4 default)",
        "g: recurrent_activation=hard_sigmoid written out (Keras 2.2.4 default)",
        "g: reset_after=False written out (Keras 2's GRU without the option)",
    ]


def test_cudnn_weight_conversion_by_hand():
    """cuDNN's row-major (units, features) matrix of a gate is stored in that gate's (features, units) block."""
    kernel = np.arange(18.0).reshape(3, 6)  # GRU, 3 features, 2 units: gate z's block is [[0, 1], [6, 7], [12, 13]]
    recurrent = np.arange(12.0).reshape(2, 6)  # gate z's block [[0, 1], [6, 7]]
    k, r, b = cudnn_weights_as_keras("CuDNNGRU", [kernel, recurrent, np.arange(12.0)])
    # cuDNN reads [0, 1, 6, 7, 12, 13] as W_z = [[0, 1, 6], [7, 12, 13]]; Keras multiplies x by W_z.T
    np.testing.assert_array_equal(k[:, :2], [[0, 7], [1, 12], [6, 13]])
    np.testing.assert_array_equal(r[:, :2], [[0, 6], [1, 7]])  # U_z = block.T
    np.testing.assert_array_equal(b, [np.arange(6.0), np.arange(6.0, 12.0)])  # input biases, recurrent biases
    lstm = cudnn_weights_as_keras("CuDNNLSTM", [np.ones((3, 8)), np.ones((2, 8)), np.arange(16.0)])
    np.testing.assert_array_equal(lstm[2], np.arange(8.0) + np.arange(8.0, 16.0))  # an LSTM adds them
    with pytest.raises(InvalidInput, match=r"^CuDNNLSTM weights have shapes \(3, 6\), \(2, 6\), \(12,\)"):
        cudnn_weights_as_keras("CuDNNLSTM", [kernel, recurrent, np.arange(12.0)])


def _only_keras2(monkeypatch, installed: bool):
    monkeypatch.setattr("rnn_parity.keras2.keras2_installed", lambda: installed)


def _h5(folder, name, config, version="2.15.0"):
    """A file that looks like what Keras 2 writes, as far as detection and plan() read it (no weights inside)."""
    import h5py

    path = folder / name
    with h5py.File(path, "w") as f:
        f.attrs["keras_version"], f.attrs["backend"] = version, "tensorflow"
        f.attrs["model_config"] = json.dumps(config)
        f.create_group("model_weights")
    return read_model_file(path)


def test_plan_picks_keras2_for_a_keras2_file_when_it_is_installed(tmp_path, monkeypatch):
    hard = _h5(tmp_path, "hard.h5", _model(_lstm_entry(recurrent_activation="hard_sigmoid")))
    plain = _h5(tmp_path, "plain.h5", _model(_lstm_entry(time_major=False)))
    _only_keras2(monkeypatch, True)
    chosen = plan(hard)
    assert (chosen.keras, chosen.reason) == (2, "written by Keras 2, which is installed (--keras auto)")
    assert chosen.translation.config["config"]["layers"][0]["config"]["recurrent_activation"] == "hard_sigmoid"
    assert plan(plain, "3").keras == 3 and plan(plain, "3").translation.rewrites
    assert plan(plain, backend="jax").reason == "--backend jax: Keras 2 runs on TensorFlow only"
    with pytest.raises(InvalidInput, match=r"^--backend torch: Keras 2 runs on TensorFlow only \(--keras 2\)$"):
        plan(plain, "2", backend="torch")
    with pytest.raises(Unsupported) as err:
        plan(hard, "3")
    assert str(err.value) == (
        f"{hard.path}: written by Keras 2 (keras_version 2.15.0), and Keras 3 computes it differently: "
        "recurrent_activation=hard_sigmoid changed meaning: Keras 2 clip(0.2x + 0.5, 0, 1), Keras 3 relu6(x + 3) / 6 "
        "(layers lstm); verify it against Keras 2 with --keras 2, or see `rnn-parity upgrade` for the difference "
        "per layer"
    )
    keras3 = _h5(tmp_path, "k3.h5", _model(_lstm_entry()), version="3.15.1")
    assert (plan(keras3).keras, plan(keras3).translation) == (3, None)
    with pytest.raises(InvalidInput, match=r"k3.h5: --keras 2: written by Keras 3.15.1, not Keras 2; Keras 3 verifies"):
        plan(keras3, "2")


def test_plan_without_keras2_translates_what_keras3_computes_alike(tmp_path, monkeypatch):
    _only_keras2(monkeypatch, False)
    plain = plan(_h5(tmp_path, "plain.h5", _model(_lstm_entry())))
    assert (plain.keras, plain.reason) == (
        3,
        "written by Keras 2, which is not installed: its Keras 3 translation (--keras auto)",
    )
    major = _h5(tmp_path, "major.h5", _model(_lstm_entry(time_major=True)))
    with pytest.raises(Unsupported) as err:
        plan(major)
    assert str(err.value) == (
        f"{major.path}: written by Keras 2 (keras_version 2.15.0), and Keras 3 cannot run it: layer 'lstm' (LSTM): "
        "time_major=True has no Keras 3 equivalent; verifying it needs Keras 2 itself: "
        "pip install 'rnn-parity[keras2]'"
    )
    with pytest.raises(
        Unsupported, match=r"plain.h5: --keras 2 runs Keras 2 itself: pip install 'rnn-parity\[keras2\]'$"
    ):
        plan(_h5(tmp_path, "plain.h5", _model(_lstm_entry())), "2")


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
def test_a_keras_archive_written_by_keras2_is_read_as_keras2(keras2_models, tmp_path):
    """Keras 2.12+ (and tf_keras) also write .keras archives: metadata.json's keras_version says which Keras."""
    paths = {key: tmp_path / f"{key}.keras" for key in ("plain", "hard")}
    for key, path in paths.items():
        keras2_models[key].save(path)
    report, exported = _exported(paths["plain"], tmp_path / "plain.npz", "--keras", "2")
    assert report["keras_side"]["keras"] == 2
    ids = np.array([[3, 7, 1, 0, 0], [5, 2, 9, 4, 8]])
    np.testing.assert_allclose(exported.predict(ids), np.asarray(keras2_models["plain"](ids)), **TOL)
    keras3 = invoke_json(["verify", paths["plain"], "--keras", "3", "--format", "json"])
    assert keras3["passed"] and "model: tf_keras's Functional read as Keras 3's" in keras3["model"]["keras2_rewrites"]
    refused = invoke(["verify", paths["hard"], "--keras", "3"], 4).stderr
    assert "written by Keras 2 (metadata.json keras_version 2." in refused and "hard_sigmoid changed meaning" in refused
    upgrade = invoke_json(["upgrade", paths["hard"]], expected=1)
    assert upgrade["summary"].startswith("no: recurrent_activation=hard_sigmoid changed meaning")


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
# verify and export of Keras 2 files: against Keras 2 itself, or Keras 3 where it computes the same.
# --------------------------------------------------------------------------


def _exported(path, target, *extra):
    report = invoke_json(["export", path, "-o", target, *extra])
    assert report["passed"] is True and report["export"]["written"] is True
    return report, runtime.load(target)


@pytest.mark.keras
def test_a_hard_sigmoid_file_is_verified_and_exported_against_keras2(tf_keras, keras2_models, keras2_files, tmp_path):
    """Sequential, Masking, LSTM(hard_sigmoid), GRU(reset_after=False): the model as Keras 2 trained it."""
    report, exported = _exported(keras2_files["hard"], tmp_path / "hard.npz")
    assert report["keras_side"] == {
        "keras": 2,
        "label": f"Keras 2 (tf_keras {tf_keras.__version__})",
        "reason": "written by Keras 2, which is installed (--keras auto)",
    }
    assert report["versions"]["tf_keras"] == tf_keras.__version__ and report["model"]["keras2_rewrites"] == []
    by_name = {layer["name"]: layer for layer in report["layers"]}
    assert by_name["lstm"]["options"]["recurrent_activation"] == "keras2:hard_sigmoid"
    assert by_name["lstm"]["masks"][0]["keras"] and by_name["lstm"]["masks"][0]["passed"]
    assert exported.graph["layers"][1]["config"]["recurrent_activation"] == "keras2:hard_sigmoid"
    assert exported.graph["verification"]["keras_side"] == f"Keras 2 (tf_keras {tf_keras.__version__})"
    assert exported.graph["format_version"] == 1
    x = np.random.default_rng(7).standard_normal((5, 6, 3)).astype(np.float32)
    x[0, 3:] = 0.0  # masked steps
    np.testing.assert_allclose(exported.predict(x), np.asarray(keras2_models["hard"](x)), **TOL)
    table = invoke(["verify", keras2_files["hard"], "--N", 2], 0).stdout
    assert f"NumPy float64 vs Keras 2 (tf_keras {tf_keras.__version__})" in table


@pytest.mark.keras
def test_an_old_keras2_file_means_the_defaults_of_the_keras_that_wrote_it(keras2_files, tmp_path):
    """A file from Keras 2.2 with no recurrent_activation or reset_after: Keras 2 today reads it with 2.2's defaults."""
    import shutil

    import h5py

    path = tmp_path / "old.h5"
    shutil.copyfile(keras2_files["hard"], path)
    with h5py.File(path, "r+") as f:
        config = json.loads(f.attrs["model_config"])
        for entry in config["config"]["layers"]:
            for key in ("recurrent_activation", "reset_after"):
                entry["config"].pop(key, None)
        f.attrs["model_config"], f.attrs["keras_version"] = json.dumps(config), "2.2.4"
    report = invoke_json(["verify", path, "--keras", "2"])
    assert report["passed"] is True
    assert report["model"]["keras2_rewrites"] == [
        "lstm: recurrent_activation=hard_sigmoid written out (Keras 2.2.4 default)",
        "gru: recurrent_activation=hard_sigmoid written out (Keras 2.2.4 default)",
        "gru: reset_after=False written out (Keras 2's GRU without the option)",
    ]
    by_name = {layer["name"]: layer["options"] for layer in report["layers"]}
    assert by_name["gru"]["recurrent_activation"] == "keras2:hard_sigmoid" and by_name["gru"]["reset_after"] is False


@pytest.mark.keras
@pytest.mark.parametrize("keras", ["2", "3"])
def test_a_functional_file_verifies_against_either_keras(keras2_models, keras2_files, tmp_path, keras):
    """Embedding(mask_zero), Bidirectional(LSTM), GRU(reset_after=True), TimeDistributed(Dense)."""
    report, exported = _exported(keras2_files["plain"], tmp_path / "plain.npz", "--keras", keras, "--T", 7)
    assert report["keras_side"]["keras"] == int(keras) and report["keras_side"]["reason"] == f"--keras {keras}"
    assert [layer["name"] for layer in report["layers"]] == ["embedding", "bi", "gru", "tagger"]
    if keras == "3":
        assert report["keras_side"]["label"].startswith("Keras 3 (")
        assert report["model"]["keras2_rewrites"][:2] == [
            "tokens: batch_input_shape renamed batch_shape",
            "embedding: dropped batch_input_shape=[None, None] (the model's InputLayer keeps the shape)",
        ]
    ids = np.array([[3, 5, 7, 0, 0], [1, 2, 3, 4, 5]], dtype=np.int32)
    np.testing.assert_allclose(exported.predict(ids), np.asarray(keras2_models["plain"](ids)), **TOL)


def _cudnn(cell, x, kernel, recurrent, bias, backwards=False):
    """cuDNN's equations from the weights as CuDNNLSTM/CuDNNGRU store them (W_g: the gate's block read row-major)."""
    D, M = kernel.shape[0], recurrent.shape[0]
    gates = 4 if cell == "lstm" else 3
    W = [kernel[:, g * M : (g + 1) * M].reshape(M, D) for g in range(gates)]
    R = [recurrent[:, g * M : (g + 1) * M] for g in range(gates)]  # read row-major: the block itself
    bw, br = np.split(bias, 2)
    bw, br = np.split(bw, gates), np.split(br, gates)
    sigmoid = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    h = c = np.zeros((x.shape[0], M))
    out = []
    for t in (reversed if backwards else iter)(range(x.shape[1])):
        xw = [x[:, t] @ W[g].T + bw[g] for g in range(gates)]
        hr = [h @ R[g].T + br[g] for g in range(gates)]
        if cell == "lstm":  # i, f, c, o
            i, f, o = sigmoid(xw[0] + hr[0]), sigmoid(xw[1] + hr[1]), sigmoid(xw[3] + hr[3])
            c = f * c + i * np.tanh(xw[2] + hr[2])
            h = o * np.tanh(c)
        else:  # z, r, h
            z, r = sigmoid(xw[0] + hr[0]), sigmoid(xw[1] + hr[1])
            h = z * h + (1 - z) * np.tanh(xw[2] + r * hr[2])
        out.append(h)
    out = np.stack(out[::-1] if backwards else out, axis=1)
    return out


def _stored_weights(path, layer):
    import h5py

    with h5py.File(path, "r") as f:
        group = f["model_weights"][layer]
        names = [n.decode() if isinstance(n, bytes) else str(n) for n in group.attrs["weight_names"]]
        return [group[n][()].astype(np.float64) for n in names]


@pytest.mark.keras
def test_cudnn_layers_verify_and_export_with_keras2s_weight_conversion(keras2_files, tmp_path):
    """CuDNNLSTM → Bidirectional(CuDNNGRU) → CuDNNGRU: Keras 2 runs them as LSTM/GRU on a CPU."""
    path = keras2_files["cudnn"]
    report, exported = _exported(path, tmp_path / "cudnn.npz")
    assert report["keras_side"]["keras"] == 2
    assert [layer["class_name"] for layer in report["layers"]] == ["LSTM", "Bidirectional", "GRU"]
    assert [r.split(":")[0] for r in report["model"]["keras2_rewrites"]] == ["fast", "bi/cu_dnngru", "last"]
    # Keras 2 converts the weights as it loads them into the LSTM/GRU; ours are the same, to the bit.
    for layer, cell in (("fast", "CuDNNLSTM"), ("last", "CuDNNGRU")):
        ours = cudnn_weights_as_keras(cell, [w.astype(np.float32) for w in _stored_weights(path, layer)])
        for mine, theirs in zip(ours, exported.weights[layer], strict=True):
            np.testing.assert_array_equal(mine, theirs)
    # Keras 3 runs our conversion and agrees.
    assert invoke_json(["verify", path, "--keras", "3"])["passed"] is True
    # The exported model computes cuDNN's equations on the weights as stored.
    x = np.random.default_rng(3).standard_normal((2, 5, 3))
    h = _cudnn("lstm", x, *_stored_weights(path, "fast"))
    bi = _stored_weights(path, "bi")
    h = np.concatenate([_cudnn("gru", h, *bi[:3]), _cudnn("gru", h, *bi[3:], backwards=True)], axis=-1)
    want = _cudnn("gru", h, *_stored_weights(path, "last"))[:, -1]
    np.testing.assert_allclose(exported.predict(x), want, **TOL)


@pytest.mark.keras
def test_a_time_major_file_verifies_against_keras2_only(keras2_models, keras2_files, tmp_path):
    """Masking → LSTM → Bidirectional(GRU) → SimpleRNN, all time_major: inputs (timesteps, batch, features)."""
    path = keras2_files["time_major"]
    report, exported = _exported(path, tmp_path / "time_major.npz", "--N", 3, "--T", 7)  # 3 samples of 7 steps
    assert report["inputs"]["shapes"] == {report["model"]["inputs"][0]["name"]: [7, 3, 3]}  # (time, batch, features)
    assert exported.graph["layers"][1]["config"]["time_major"] is True and report["export"]["format_version"] == 2
    x = np.random.default_rng(5).standard_normal((8, 2, 3)).astype(np.float32)  # 8 steps, 2 samples
    x[5:, 1] = 0.0  # sample 1's last steps masked
    want = np.asarray(keras2_models["time_major"](x))
    assert want.shape == (2, 2)  # the last layer's state is batch-major
    np.testing.assert_allclose(exported.predict(x), want, **TOL)
    sequence = runtime.load(tmp_path / "time_major.npz").run(x).outputs["bi"]
    assert sequence.shape == (8, 2, 6)  # a returned sequence stays time-major
    strict = invoke_json(["verify", path, "--atol", "0", "--rtol", "0", "--format", "json"], 1)
    axes = {layer["name"]: layer["worst_axes"] for layer in strict["layers"]}
    assert axes["lstm"] == axes["bi"] == ["timestep", "sample", "unit"] and axes["last"] == ["sample", "unit"]
    result = invoke(["verify", path, "--keras", "3"], 4)
    assert "Keras 3 cannot run it: layer 'lstm' (LSTM): time_major=True has no Keras 3 equivalent" in result.stderr


@pytest.mark.keras
def test_keras2_hands_the_mask_to_a_layer_called_with_initial_state(keras2_models, keras2_files, tmp_path):
    """Keras 2 records [x, h, c] as the decoder's inputs and masks its steps; Keras 3 would not."""
    path = keras2_files["seq2seq"]
    report, exported = _exported(path, tmp_path / "s2s.npz")
    dec = next(layer for layer in report["layers"] if layer["name"] == "dec")
    assert dec["initial_state"] == ["enc", "enc"] and dec["notes"] == [] and dec["masks"][0]["keras"]
    rng = np.random.default_rng(9)
    enc, dec_in = rng.standard_normal((3, 4, 3)).astype(np.float32), rng.standard_normal((3, 5, 2)).astype(np.float32)
    dec_in[0, 2:] = 0.0
    want = np.asarray(keras2_models["seq2seq"]([enc, dec_in]))
    np.testing.assert_allclose(exported.predict([enc, dec_in]), want, **TOL)
    refused = invoke(["verify", path, "--keras", "3"], 4).stderr
    assert "initial_state in a masked model changed meaning: Keras 2 passes the layer its input's mask" in refused


@pytest.mark.keras
def test_keras2_merging_layers_keep_keras2_s_mask_rules(keras2_models, keras2_files, tmp_path):
    """Keras 2's merges compute without the masks and merge them with AND; Keras 3's OR (and replace values)."""
    path = keras2_files["merge"]
    report, exported = _exported(path, tmp_path / "merge.npz", "--N", 5, "--T", 7)
    merges = [layer for layer in exported.graph["layers"] if layer["name"] in ("add", "mul", "max", "cat", "mixed")]
    assert all(layer["config"]["keras2_masks"] for layer in merges)
    assert report["export"]["format_version"] == 2  # a format-1 reader would ignore keras2_masks
    assert all(mask["passed"] for layer in report["layers"] for mask in layer["masks"])
    rng = np.random.default_rng(4)
    a, b = rng.standard_normal((3, 6, 3)).astype(np.float32), rng.standard_normal((3, 6, 3)).astype(np.float32)
    a[0, 4:], b[0, 2:], b[1, 5:] = 0.0, 0.0, 0.0  # the two inputs padded differently
    want = [np.asarray(y) for y in keras2_models["merge"]([a, b])]
    for got, expected in zip(exported.predict([a, b]), want, strict=True):
        np.testing.assert_allclose(got, expected, **TOL)
    # The same graph under Keras 3's rules computes another model: the test can fail.
    graph = {**exported.graph, "layers": [{**layer, "config": {k: v for k, v in layer["config"].items()
                                                               if k != "keras2_masks"}}
                                          for layer in exported.graph["layers"]]}  # fmt: skip
    weights = {
        layer["name"]: keras2_models["merge"].get_layer(layer["name"]).get_weights() for layer in graph["layers"]
    }
    keras3_rules = runtime.GraphRuntime(graph, weights).run({"a": a, "b": b}).model_outputs
    assert not np.allclose(keras3_rules[0], want[0], **TOL)  # r_add: Add's mask, the OR of the two

    upgrade = invoke_json(["upgrade", path], expected=1)
    layers = {layer["name"]: layer for layer in upgrade["layers"]}
    assert layers["add"]["same"] is False and layers["add"]["mask_same"] is False and layers["add"]["max_abs"] == 0
    assert layers["add"]["reason"].startswith("Add in a masked model changed meaning: Keras 2 the AND of the masks")
    assert layers["r_add"]["reason"] == "its input's mask differs (from layer add)"
    assert layers["r_mul"]["reason"] == "its input differs (from layer mul)"
    assert layers["cat_t"]["same"] and layers["r_cat_t"]["same"]  # joined on the time axis, both join the masks
    assert all(layer["reference"]["same"] for layer in upgrade["layers"])  # the runtime computes Keras 2's model
    refused = invoke(["verify", path, "--keras", "3"], 4).stderr
    assert "Concatenate in a masked model changed meaning: Keras 2 the AND of the joined masks" in refused
    assert "(layers mul)" in refused and "cat_t" not in refused


@pytest.mark.keras
def test_keras2_refusals(keras2_files, tmp_path, keras):
    assert invoke(["verify", keras2_files["plain"], "--keras", "2", "--backend", "jax"], 2).stderr == (
        "Error: --backend jax: Keras 2 runs on TensorFlow only (--keras 2)\n"
    )
    inputs = keras.Input((4, 2))
    keras.Model(inputs, keras.layers.LSTM(2)(inputs)).save(tmp_path / "k3.keras")
    assert invoke(["verify", tmp_path / "k3.keras", "--keras", "2"], 2).stderr == (
        f"Error: {tmp_path / 'k3.keras'}: --keras 2: written by Keras {keras.__version__}, not Keras 2; "
        "Keras 3 verifies it\n"
    )


@pytest.mark.keras
def test_without_keras2_the_command_says_how_to_install_it(keras2_files, tmp_path):
    """One line, exit 4, before TensorFlow is imported (tf_keras cannot be imported in this process)."""
    code = """
        import sys
        from click.testing import CliRunner
        from rnn_parity.cli import main
        for args in (["verify", sys.argv[1]], ["export", sys.argv[2], "-o", sys.argv[3], "--keras", "2"]):
            result = CliRunner().invoke(main, args)
            print(result.exit_code, result.stderr, end="")
    """
    target = tmp_path / "plain.npz"
    done = python_without(code, keras2_files["hard"], keras2_files["plain"], target, blocked=("tf_keras", "tensorflow"))
    assert done.returncode == 0, done.stderr
    assert done.stdout == (
        f"4 Error: {keras2_files['hard']}: written by Keras 2 (keras_version {_stored_version(keras2_files['hard'])}), "
        "and Keras 3 computes it differently: recurrent_activation=hard_sigmoid changed meaning: Keras 2 "
        "clip(0.2x + 0.5, 0, 1), Keras 3 relu6(x + 3) / 6 (layers lstm); verifying it needs Keras 2 itself: "
        "pip install 'rnn-parity[keras2]'\n"
        f"4 Error: {keras2_files['plain']}: --keras 2 runs Keras 2 itself: pip install 'rnn-parity[keras2]'\n"
    )
    assert "tensorflow" not in done.attempted and not target.exists()


def _stored_version(path):
    import h5py

    with h5py.File(path, "r") as f:
        value = f.attrs["keras_version"]
    return value.decode() if isinstance(value, bytes) else str(value)


@pytest.mark.keras
def test_a_conv_lstm_file_verifies_and_exports_against_keras2(tf_keras, tmp_path):
    """Masking → ConvLSTM2D (sequences) → ConvLSTM2D → Flatten → Dense, written by Keras 2: its ConvLSTMs default to
    Keras 2's hard_sigmoid, which the runtime computes; each grid position masked on its own, as Keras 2 does."""
    k2 = tf_keras
    model = k2.Sequential(
        [
            k2.layers.Masking(input_shape=(None, 5, 4, 2)),
            k2.layers.ConvLSTM2D(3, 3, padding="same", return_sequences=True, name="conv_lstm"),
            k2.layers.ConvLSTM2D(2, (2, 3), padding="same", name="conv_lstm_last"),
            k2.layers.Flatten(name="flat"),
            k2.layers.Dense(2, name="dense"),
        ]
    )
    _seeded_weights(model, seed=3)
    path = tmp_path / "conv_lstm.h5"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        model.save(path)
    report, exported = _exported(path, tmp_path / "conv_lstm.npz", "--T", 3)
    assert report["keras_side"]["keras"] == 2 and report["model"]["keras2_rewrites"] == []
    by_name = {layer["name"]: layer for layer in report["layers"]}
    assert by_name["conv_lstm"]["options"]["recurrent_activation"] == "keras2:hard_sigmoid"
    assert by_name["conv_lstm_last"]["options"]["recurrent_activation"] == "keras2:hard_sigmoid"
    assert by_name["conv_lstm"]["masks"][0]["keras"] and by_name["conv_lstm"]["masks"][0]["passed"]
    x = np.random.default_rng(4).standard_normal((3, 4, 5, 4, 2)).astype(np.float32)
    x[np.random.default_rng(5).random((3, 4, 5, 4)) < 0.3] = 0.0  # masked grid positions
    np.testing.assert_allclose(exported.predict(x), np.asarray(model(x)), **TOL)
    refused = invoke(["verify", path, "--keras", "3"], 4).stderr
    assert (
        "recurrent_activation=hard_sigmoid changed meaning" in refused
        and "(layers conv_lstm, conv_lstm_last)" in refused
    )
