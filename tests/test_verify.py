"""``rnn-parity verify``: saved, briefly trained models, layer by layer against Keras."""

from __future__ import annotations

import json

import numpy as np
import pytest
import saved_models

from rnn_parity import runtime

from conftest import invoke, invoke_json, python_without

pytestmark = pytest.mark.keras


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """``model(name, fmt)`` → the path of a saved test model (built once per session)."""
    return lambda name, fmt="keras": saved_models.saved(name, tmp_path_factory)[fmt]


def _layers(report):
    return {layer["name"]: layer for layer in report["layers"]}


# ----- the models of the "done when" -----


@pytest.mark.parametrize("fmt", ["keras", "h5"])
def test_the_sequential_tagger_verifies(model, fmt):
    report = invoke_json(["verify", model("sequential", fmt)])
    assert report["passed"] and report["status"] == "pass" and report["first_failure"] is None
    assert report["command"] == "verify"
    assert report["model"]["format"] == fmt and report["model"]["class_name"] == "Sequential"
    assert [layer["name"] for layer in report["layers"]] == ["embedding", "bidirectional", "gru", "dense"]
    layers = _layers(report)
    # Embedding(mask_zero) → Bidirectional(return_sequences) carry the mask, the GRU ends it; both sides agree.
    for name in ("embedding", "bidirectional"):
        assert layers[name]["masks"] == [
            {"keras": True, "reference": True, "mismatches": 0, "size": 40, "passed": True}
        ]
    assert layers["gru"]["masks"][0]["keras"] is False and layers["gru"]["masks"][0]["reference"] is False
    assert layers["bidirectional"]["cell"] == "LSTM" and layers["bidirectional"]["shape"] == [4, 10, 12]
    assert report["config"] == {
        "input": None,
        "N": 4,
        "T": 10,
        "seed": 0,
        "atol": 1e-5,
        "rtol": 1.3e-6,
        "reference_dtype": "float64",
        "tolerance": "explicit",
        "max_mismatch_frac": 0.0,
    }
    assert report["diagnosis"] == "rounding" and report["three_way"]["low_dtype"] == "float32"
    assert report["environment"]["command"].startswith("rnn-parity verify ")
    assert 0 < report["max_abs_diff"] < 1e-6
    assert report["param_counts"]["total"] == sum(layer["params"] for layer in report["layers"])


def test_the_test_models_are_trained(model, keras):
    loaded = keras.saving.load_model(model("sequential"), compile=False)
    forget_bias = loaded.get_layer("bidirectional").get_weights()[2][6:12]
    assert not np.allclose(forget_bias, 1.0)  # unit_forget_bias starts at exactly 1
    assert np.abs(loaded.get_layer("dense").get_weights()[1]).max() > 0  # Dense bias starts at 0


def test_the_functional_model_with_two_branches_verifies(model):
    report = invoke_json(["verify", model("two_branches")])
    assert report["passed"], report["first_failure"]
    assert report["model"]["class_name"] == "Functional"
    assert [spec["name"] for spec in report["model"]["inputs"]] == ["tokens", "features"]
    layers = _layers(report)
    assert layers["both"]["inputs"] == ["words", "signal"]
    assert layers["head"]["class_name"] == "TimeDistributed" and layers["head"]["shape"] == [4, 10, 2]
    assert layers["head"]["masks"][0]["keras"] and layers["head"]["masks"][0]["passed"]
    assert report["inputs"]["shapes"] == {"tokens": [4, 10], "features": [4, 10, 3]}
    assert set(report["inputs"]["lengths"]) == {"tokens", "features"}


# ----- more shapes and options -----


@pytest.mark.parametrize(
    "name, fmt",
    [
        ("two_branches_unmasked", "keras"),
        ("two_branches_unmasked", "h5"),
        ("assorted", "keras"),
        ("assorted", "h5"),
        ("merges", "keras"),
        ("stateful", "h5"),
        ("autoencoder", "h5"),
        ("encoder_decoder", "keras"),
    ],
)
def test_more_models_verify(model, name, fmt):
    report = invoke_json(["verify", model(name, fmt)])
    assert report["passed"], report["first_failure"]
    assert all(layer["passed"] for layer in report["layers"])
    assert all(output["passed"] for output in report["outputs"].values())


def test_an_initial_state_call_ignores_the_mask_as_keras_does(model):
    layers = _layers(invoke_json(["verify", model("encoder_decoder")]))
    assert layers["decoder"]["initial_state"] == ["h", "c"]
    assert layers["h"]["inputs"] == ["encoder", "encoder"]
    assert layers["decoder"]["notes"] == [
        "Keras does not pass the input mask to a layer called with initial_state: every step is computed"
    ]
    assert layers["decoder"]["masks"][0]["keras"] and layers["decoder"]["masks"][0]["passed"]
    assert set(layers["encoder"]["states"]) == {
        f"encoder.{side}_{s}" for side in ("forward", "backward") for s in ("h", "c")
    }
    assert all(state["passed"] for state in layers["encoder"]["states"].values())


def test_merges_and_two_outputs(model):
    report = invoke_json(["verify", model("merges")])
    assert list(report["outputs"]) == ["score", "pooled"]
    layers = _layers(report)
    assert layers["both_ways"]["shape"] == [2, 4, 10, 4]  # merge_mode=None: two outputs, stacked
    assert len(layers["both_ways"]["masks"]) == 2
    for name in ("total", "difference", "product", "joined"):
        assert layers[name]["masks"][0]["keras"] and layers[name]["masks"][0]["passed"], name
    # Maximum of a masked and an unmasked input, and a pooling layer: no mask, on both sides.
    for name in ("top", "pooled"):
        assert layers[name]["masks"][0] == {
            "keras": False,
            "reference": False,
            "mismatches": 0,
            "size": 0,
            "passed": True,
        }


def test_the_table(model):
    out = invoke(["verify", model("two_branches")], 0).stdout
    assert out.startswith("rnn-parity verify  PASS\n")
    for text in (
        "Functional 'two_branches'",
        "inputs: seeded tokens 4×10, features 4×10×3  seed=0",
        "words",
        "signal",
        "both",
        "head",
        "TimeDistributed",
        "Model output head: Keras vs NumPy",
    ):
        assert text in out


# ----- finding the layer (and step) that breaks -----


def _perturbed(fn, start):
    def wrong(*args, **kwargs):
        out = fn(*args, **kwargs)
        if kwargs.get("return_state"):
            seq, *states = out
            seq = seq.copy()
            seq[:, start:] += 1e-3
            return (seq, *states)
        return out

    return wrong


def test_the_first_layer_over_tolerance_is_named_with_its_step(model, monkeypatch):
    monkeypatch.setitem(runtime.RECURRENT_FUNCTIONS, "GRU", _perturbed(runtime.RECURRENT_FUNCTIONS["GRU"], 3))
    report = invoke_json(["verify", model("two_branches")], 1)
    assert report["first_failure"] == {"layer": "signal", "class_name": "GRU", "reason": "output", "step": 3}
    layers = _layers(report)
    assert layers["words"]["passed"] and layers["lookup"]["passed"] and layers["pad"]["passed"]
    assert not layers["both"]["passed"] and not layers["head"]["passed"]
    assert report["passed"] is False and report["mismatches"] > 0
    out = invoke(["verify", model("two_branches")], 1).stdout
    assert "first failure: layer signal (GRU), output, from step 3\n" in out


def test_zero_tolerance_fails_where_float32_rounding_first_shows(model):
    report = invoke_json(["verify", model("sequential"), "--atol", "0", "--rtol", "0"], 1)
    # The Embedding copies rows exactly; the first arithmetic happens in the Bidirectional LSTM.
    assert report["first_failure"]["layer"] == "bidirectional"
    assert _layers(report)["embedding"]["max_abs_diff"] == 0


def test_tolerance_modes(model, monkeypatch):
    report = invoke_json(["verify", model("two_branches"), "--tolerance", "auto"])
    assert report["tolerance"]["mode"] == "auto" and report["rtol"] == 0
    assert report["diagnosis"] == "rounding" and report["roundoff_ratio"] < 10
    assert invoke_json(["verify", model("sequential"), "--tolerance", "dtype"])["tolerance"]["atol"] == 1e-5
    # A real bug (a perturbed GRU from step 3) is a discrepancy under auto, not rounding.
    monkeypatch.setitem(runtime.RECURRENT_FUNCTIONS, "GRU", _perturbed(runtime.RECURRENT_FUNCTIONS["GRU"], 3))
    report = invoke_json(["verify", model("two_branches"), "--tolerance", "auto"], 1)
    assert report["diagnosis"] == "discrepancy" and report["first_failure"]["layer"] == "signal"


def test_tolerance_options_are_checked(model):
    result = invoke(["verify", model("sequential"), "--tolerance", "auto", "--atol", "1e-3"], 2)
    assert result.stderr == "Error: --atol 0.001 applies to explicit tolerances, but --tolerance auto\n"
    result = invoke(["verify", model("sequential"), "--max-mismatch-frac", "2"], 2)
    assert result.stderr == "Error: --max-mismatch-frac must be ≤ 1, got 2.0\n"


# ----- inputs -----


def test_sizes_and_seed_shape_the_inputs(model):
    report = invoke_json(["verify", model("sequential"), "--N", "3", "--T", "7", "--seed", "5"])
    assert report["inputs"]["shapes"] == {"ids": [3, 7]}
    assert report["config"]["seed"] == 5 and report["passed"]


def test_inputs_from_npy_and_npz(model, tmp_path):
    ids = np.array([[3, 4, 5, 0, 0], [1, 2, 3, 4, 5]], dtype=np.int32)
    np.save(tmp_path / "ids.npy", ids)
    report = invoke_json(["verify", model("sequential"), "--input", tmp_path / "ids.npy"])
    assert report["passed"] and report["inputs"]["source"] == str(tmp_path / "ids.npy")
    assert report["config"]["input"] == str(tmp_path / "ids.npy") and report["config"]["seed"] is None
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "both.npz", tokens=ids, features=rng.standard_normal((2, 5, 3)).astype(np.float32))
    assert invoke_json(["verify", model("two_branches"), "--input", tmp_path / "both.npz"])["passed"]


def test_bad_inputs_are_one_line_errors(model, tmp_path):
    seq = model("sequential")
    np.save(tmp_path / "big.npy", np.array([[1, 99]]))
    np.save(tmp_path / "flat.npy", np.array([1, 2]))
    np.savez(tmp_path / "named.npz", words=np.array([[1, 2]]))
    cases = {
        ("--input", tmp_path / "big.npy"): f"--input {tmp_path / 'big.npy'}: ids for 'ids' must lie in "
        "[0, 30) (layer 'embedding'), got 1 to 99",
        ("--input", tmp_path / "flat.npy"): f"--input {tmp_path / 'flat.npy'}: array for 'ids' has shape "
        "(2,), the model expects (N, T)",
        ("--input", tmp_path / "none.npy"): f"--input {tmp_path / 'none.npy'}: no such file",
        ("--input", tmp_path / "big.npy", "--N", "2"): "--N shape(s) the seeded inputs; they cannot be combined "
        "with --input",
        ("--N", "0"): "--N must be a positive integer, got 0",
        ("--atol", "-1"): "--atol must be ≥ 0, got -1.0",
    }
    for args, message in cases.items():
        assert invoke(["verify", seq, *args], 2).stderr == f"Error: {message}\n"
    result = invoke(["verify", model("two_branches"), "--input", tmp_path / "named.npz"], 2)
    assert result.stderr == (
        f"Error: --input {tmp_path / 'named.npz'}: the model takes input(s) "
        "['tokens', 'features']; the file holds ['words']\n"
    )


def test_sizes_the_model_fixes_cannot_be_changed(model):
    assert invoke(["verify", model("stateful", "h5"), "--N", "5"], 2).stderr == (
        "Error: --N 5: the model fixes the batch size to 2\n"
    )
    assert invoke(["verify", model("assorted"), "--T", "5"], 2).stderr == (
        "Error: --T 5: the model fixes the number of timesteps to 8\n"
    )


# ----- refusals: exit 4 -----


@pytest.mark.parametrize("fmt", ["keras", "h5"])
def test_a_lambda_layer_is_refused_by_name(model, fmt):
    path = model("lambda_model", fmt)
    assert invoke(["verify", path], 4).stderr == (
        f"Error: {path}: unsupported: layer 'double' (Lambda): a Lambda layer holds Python code; refused "
        "(models are loaded in Keras's safe mode, which never runs code from a file)\n"
    )


def test_an_unsupported_layer_is_refused_by_name(model):
    path = model("groupnorm_model")
    assert invoke(["verify", path], 4).stderr == (
        f"Error: {path}: unsupported: layer 'groupnorm' (GroupNormalization): not implemented by the NumPy reference\n"
    )


def test_custom_objects_and_options_are_refused(model):
    path = model("custom_layer_model")
    assert invoke(["verify", path], 4).stderr == (
        f"Error: {path}: unsupported: layer 'scale' (Scale): a custom object (registered as "
        "'parity_tests>Scale'); refused (safe mode loads no custom code)\n"
    )
    path = model("options_model")
    assert invoke(["verify", path], 4).stderr == (
        f"Error: {path}: unsupported: layer 'half' (LSTM): computes in float16 (dtype policy); the reference "
        "supports float32 and float64 models | layer 'cubed' (Dense): activation is a custom function "
        "('parity_tests>cube'); custom objects are refused\n"
    )


@pytest.mark.parametrize(
    "case, message",
    [
        (
            "op",
            "operation 'multiply' (keras.ops.Multiply): a Keras operation on data (keras.ops, or arithmetic on "
            "tensors) is not supported",
        ),
        ("nested", "layer 'inner' (Sequential): a nested model is not supported"),
        ("shared", "layer 'shared' (LSTM): called 2 times (a shared layer); not supported"),
        ("lora", "layer 'd' (Dense): LoRA adapters (lora_rank=2) are not supported"),
        (
            "backward",
            "layer 'bi' (Bidirectional): backward_layer is not the mirror image of the forward layer (same "
            "class and options, go_backwards=True)",
        ),
    ],
)
def test_more_refusals(model, case, message):
    path = model("refused", case)
    assert invoke(["verify", path], 4).stderr == f"Error: {path}: unsupported: {message}\n"


def test_a_float64_model_verifies_to_float64_precision(model):
    report = invoke_json(["verify", model("float64")])
    assert report["passed"] and report["max_abs_diff"] < 1e-12
    assert report["model"]["inputs"][0]["dtype"] == "float64"


# ----- bad files: exit 2, one line -----


def _bad_files(model, folder):
    seq_keras, seq_h5 = model("sequential"), model("sequential", "h5")
    files = {}
    cut = folder / "cut.keras"
    cut.write_bytes(seq_keras.read_bytes()[: seq_keras.stat().st_size // 2])
    files["truncated .keras"] = (
        cut,
        f"{cut}: is truncated or damaged (not a complete zip archive: File is not a zip file)",
    )
    cut_h5 = folder / "cut.h5"
    cut_h5.write_bytes(seq_h5.read_bytes()[: seq_h5.stat().st_size // 2])
    files["truncated .h5"] = (cut_h5, None)
    text = folder / "notes.keras"
    text.write_text("these are not weights\n")
    files["text"] = (text, f"{text}: is not a Keras model file (neither a .keras zip archive nor an HDF5 .h5 file)")
    npy = folder / "x.npy"
    np.save(npy, np.zeros(3))
    files["npy"] = (npy, f"{npy}: is a NumPy .npy array, not a Keras model (.keras or .h5)")
    npz = folder / "arrays.keras"
    np.savez(npz.with_suffix(".npz"), a=np.zeros(2))
    npz.write_bytes(npz.with_suffix(".npz").read_bytes())
    files["npz"] = (npz, f"{npz}: is a NumPy .npz archive, not a Keras model")
    files["missing"] = (folder / "nope.keras", f"{folder / 'nope.keras'}: no such file")
    files["folder"] = (
        folder,
        f"{folder}: is a folder, not a model file (save the model with model.save('model.keras'))",
    )
    renamed = folder / "h5.keras"
    renamed.write_bytes(seq_h5.read_bytes())
    files["renamed"] = (
        renamed,
        f"{renamed}: is an HDF5 (.h5) file but named .keras; Keras needs the name to end in .h5",
    )
    damaged = folder / "damaged.keras"
    import zipfile

    with zipfile.ZipFile(seq_keras) as src:
        members = {name: src.read(name) for name in src.namelist()}
    with zipfile.ZipFile(damaged, "w", compression=zipfile.ZIP_STORED) as dst:
        for name, data in members.items():
            dst.writestr(name, data)
    raw = bytearray(damaged.read_bytes())
    start = raw.find(b"\x89HDF")  # inside model.weights.h5, stored uncompressed
    raw[start + 2000 : start + 2064] = bytes(64)
    damaged.write_bytes(bytes(raw))
    files["damaged"] = (damaged, f"{damaged}: is damaged (model.weights.h5 fails its checksum)")
    files["no recurrent layer"] = (
        model("dense_only"),
        f"{model('dense_only')}: has no recurrent layer (SimpleRNN, LSTM, GRU, RNN or ConvLSTM1D/2D/3D); "
        "rnn-parity verifies recurrent models",
    )
    return files


def test_bad_files_are_one_line_exit_2(model, tmp_path, keras):
    weights_only = tmp_path / "w.weights.h5"
    keras.saving.load_model(model("sequential"), compile=False).save_weights(weights_only)
    files = _bad_files(model, tmp_path)
    files["weights only"] = (
        weights_only,
        f"{weights_only}: has no model configuration (a weights-only file? save the whole model with model.save)",
    )
    for label, (path, message) in files.items():
        result = invoke(["verify", path], 2)
        assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr, label
        if message is None:
            assert result.stderr.startswith(f"Error: {path}: is truncated or damaged (HDF5: "), label
        else:
            assert result.stderr == f"Error: {message}\n", label


def test_a_file_keras_cannot_reload_is_a_clean_exit_2(model, tmp_path, keras):
    """Keras 3 writes the mask operations of a Functional model to .h5 but cannot read them back."""
    path = tmp_path / "two_branches.h5"
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        keras.saving.load_model(model("two_branches"), compile=False).save(path)
    stderr = invoke(["verify", path], 2).stderr
    assert stderr.startswith(f"Error: {path}: Keras cannot load it: Unknown layer: 'NotEqual'.")
    assert stderr.endswith(
        " (Keras 3 cannot reload the mask operations of a Functional model from .h5; save it as .keras)\n"
    )
    assert stderr.count("\n") == 1


def test_refusals_come_before_tensorflow_is_imported(model, tmp_path):
    """Bad files and unsupported models are refused in a process where TensorFlow cannot even be imported."""
    cut = tmp_path / "cut.keras"
    cut.write_bytes(model("sequential").read_bytes()[:100])
    for path, code in ((model("lambda_model"), 4), (model("groupnorm_model"), 4), (cut, 2), (model("dense_only"), 2)):
        done = python_without("from rnn_parity.cli import main\nmain()", "verify", path)
        assert done.returncode == code, done.stderr
        assert done.stderr.startswith(f"Error: {path}: ") and done.stderr.count("\n") == 1
        assert done.attempted == []


def test_the_report_can_go_to_a_file(model, tmp_path):
    out = tmp_path / "reports" / "verify.json"
    assert invoke(["verify", model("sequential"), "--format", "json", "-o", out], 0).stdout == ""
    assert json.loads(out.read_text())["passed"] is True
