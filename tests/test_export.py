"""``rnn-parity export``: a verified model as one .npz that NumPy alone runs, checked in a TensorFlow-free process."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import saved_models
from test_runtime_graph import CLI_STACK
from test_verify import _perturbed

from rnn_parity import runtime
from rnn_parity.compare import compare

from conftest import FRAMEWORKS, invoke, invoke_json, python_without

pytestmark = pytest.mark.keras

TOL = {"atol": 1e-5, "rtol": 1.3e-6}


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return lambda name, fmt="keras": saved_models.saved(name, tmp_path_factory)[fmt]


@pytest.fixture(scope="module")
def exported(model, tmp_path_factory):
    """The issue's Sequential model exported from .keras: (report, path)."""
    path = tmp_path_factory.mktemp("export") / "deploy" / "tagger.npz"
    report = invoke_json(["export", model("sequential"), "-o", path])
    return report, path


def _fresh_ids(seed=123, n=5, t=12, vocab=30):
    rng = np.random.default_rng(seed)
    ids = rng.integers(1, vocab, size=(n, t)).astype(np.int32)
    lengths = rng.integers(1, t + 1, size=n)
    ids[np.arange(t)[None, :] >= lengths[:, None]] = 0
    return ids


def _predict_without_tensorflow(npz, inputs: dict[str, np.ndarray], folder) -> list[np.ndarray]:
    """Run the exported model in a child process where tensorflow, keras (and click, rich, pydantic…) cannot
    be imported."""
    feed = folder / "feed.npz"
    np.savez(feed, **inputs)
    out = folder / "out.npz"
    code = f"""
        import numpy as np
        from rnn_parity.runtime import load
        model = load({str(npz)!r})
        with np.load({str(feed)!r}) as feed:
            inputs = {{name: feed[name] for name in model.input_names}}
        y = model.predict(inputs)
        np.savez({str(out)!r}, *(y if isinstance(y, list) else [y]))
    """
    done = python_without(code, blocked=FRAMEWORKS + CLI_STACK)
    assert done.returncode == 0, done.stderr
    # threadpoolctl: read by predict to run the per-step products on one BLAS thread
    assert done.attempted == [] and done.loaded == ["numpy", "rnn_parity", "threadpoolctl"]
    with np.load(out) as data:
        return [data[f"arr_{i}"] for i in range(len(data.files))]


def test_export_writes_one_npz_that_loads_without_pickles(exported):
    report, path = exported
    assert report["passed"] and report["command"] == "export"
    assert report["export"]["written"] is True and report["export"]["bytes"] == path.stat().st_size
    assert report["export"]["path"] == str(path) and report["export"]["format_version"] == 1
    assert all(c["passed"] for c in report["export"]["roundtrip"].values())
    with np.load(path, allow_pickle=False) as data:
        graph = json.loads(data["graph"].tobytes().decode("utf-8"))
        assert all(data[key].dtype != object for key in data.files)
        assert sorted(k for k in data.files if k.startswith("weights/embedding/")) == ["weights/embedding/0"]
    assert graph["format"] == "rnn-parity.model" and graph["format_version"] == 1
    assert [layer["name"] for layer in graph["layers"]] == ["embedding", "bidirectional", "gru", "dense"]
    assert graph["inputs"] == [{"name": "ids", "shape": [None, None], "dtype": "int32"}]
    assert graph["outputs"] == [["dense", 0]]
    assert graph["source"]["format"] == "keras" and len(graph["source"]["sha256"]) == 64
    verification = graph["verification"]
    assert verification["passed"] is True and verification["reference_dtype"] == "float64"
    # a float32 model runs in float32 by default: the round trip verified it so
    assert graph["dtype"] == "float32" and report["export"]["dtype"] == "float32"
    assert runtime.load(path).dtype == np.float32
    assert verification["atol"] == 1e-5 and verification["seed"] == 0
    # Keras numbers the wrapped layer's name after the models built before it in the process
    assert re.search(r"forward_lstm(_\d+)?/lstm_cell/kernel$", graph["layers"][1]["weights"][0])


def test_the_export_matches_keras_in_a_process_without_tensorflow(exported, model, keras, tmp_path):
    _, path = exported
    ids = _fresh_ids()  # not the inputs export verified with
    (numpy_out,) = _predict_without_tensorflow(path, {"ids": ids}, tmp_path)
    keras_out = keras.saving.load_model(model("sequential"), compile=False).predict(ids, verbose=0)
    result = compare(keras_out, numpy_out, **TOL)
    assert result.passed, result
    assert numpy_out.shape == (5, 3)


def test_the_h5_file_exports_the_same_model(model, tmp_path):
    invoke(["export", model("sequential", "h5"), "-o", tmp_path / "from_h5.npz"], 0)
    invoke(["export", model("sequential"), "-o", tmp_path / "from_keras.npz"], 0)
    ids = _fresh_ids(seed=7)
    np.testing.assert_array_equal(
        runtime.load(tmp_path / "from_h5.npz").predict(ids), runtime.load(tmp_path / "from_keras.npz").predict(ids)
    )


def test_a_functional_model_with_two_inputs_exports(model, keras, tmp_path):
    path = tmp_path / "two.npz"
    invoke(["export", model("two_branches"), "-o", path], 0)
    rng = np.random.default_rng(9)
    inputs = {
        "tokens": _fresh_ids(seed=9, n=3, t=6, vocab=20),
        "features": rng.standard_normal((3, 6, 3)).astype(np.float32),
    }
    inputs["features"][0, 4:] = 0.0
    (numpy_out,) = _predict_without_tensorflow(path, inputs, tmp_path)
    keras_out = keras.saving.load_model(model("two_branches"), compile=False).predict(
        [inputs["tokens"], inputs["features"]], verbose=0
    )
    assert compare(keras_out, numpy_out, **TOL).passed


def test_several_outputs_and_float32(model, keras, tmp_path):
    path = tmp_path / "merges.npz"
    invoke(["export", model("merges"), "-o", path, "--reference-dtype", "float32"], 0)
    x = np.random.default_rng(10).standard_normal((2, 7, 2)).astype(np.float32)
    x[1, 5:] = 0.0
    loaded = runtime.load(path)
    assert loaded.dtype == np.float32  # the dtype it was verified with
    outs = loaded.predict(x)
    want = keras.saving.load_model(model("merges"), compile=False).predict(x, verbose=0)
    assert len(outs) == 2 and all(compare(k, n, **TOL).passed for k, n in zip(want, outs, strict=True))
    assert all(o.dtype == np.float32 for o in outs)


def _wrong_in(dtype, fn):
    """``fn``, off by 1e-3 from its third step on, when it computes in ``dtype`` only."""
    wrong = _perturbed(fn, 2)
    return lambda x, *args, **kwargs: (wrong if np.asarray(x).dtype == dtype else fn)(x, *args, **kwargs)


def test_the_round_trip_runs_in_the_exported_dtype(model, tmp_path, monkeypatch):
    """The layer-by-layer verification compares Keras with the float64 reference; the file is written only
    if it also matches Keras in the dtype it will run in."""
    monkeypatch.setitem(runtime.RECURRENT_FUNCTIONS, "GRU", _wrong_in(np.float32, runtime.RECURRENT_FUNCTIONS["GRU"]))
    target = tmp_path / "f32.npz"
    report = invoke_json(["export", model("sequential"), "-o", target], 1)
    assert report["first_failure"] is None and not target.exists()
    assert report["export"]["dtype"] == "float32" and report["export"]["written"] is False
    assert report["export"]["roundtrip"]["dense"]["passed"] is False
    kept = tmp_path / "f64.npz"
    report = invoke_json(["export", model("sequential"), "-o", kept, "--dtype", "float64"], 0)
    assert report["export"]["dtype"] == "float64" and report["export"]["written"] is True
    loaded = runtime.load(kept)
    assert loaded.dtype == np.float64 and runtime.load(kept, dtype="float32").dtype == np.float32
    assert invoke(["export", model("sequential"), "-o", kept, "--dtype", "float16"], 2).stderr.startswith(
        "Error: Invalid value for '--dtype': 'float16' is not one of 'float32', 'float64'."
    )


def _with_graph(path, folder, change) -> str:
    """A copy of the exported file whose graph ``change(graph)`` edited."""
    with np.load(path) as data:
        arrays = {key: data[key] for key in data.files}
    graph = json.loads(arrays["graph"].tobytes())
    change(graph)
    arrays["graph"] = np.frombuffer(json.dumps(graph).encode(), dtype=np.uint8)
    out = folder / "edited.npz"
    np.savez(out, **arrays)
    return out


def test_the_recorded_dtype(exported, tmp_path):
    _, path = exported
    older = _with_graph(path, tmp_path, lambda graph: graph.pop("dtype"))  # written before the field existed
    assert runtime.load(older).dtype == np.float64  # its verification.reference_dtype
    bad = _with_graph(path, tmp_path, lambda graph: graph.update(dtype="float16"))
    with pytest.raises(
        runtime.InvalidInput, match=r"edited.npz: dtype must be one of float32, float64, got 'float16'$"
    ):
        runtime.load(bad)
    assert runtime.load(bad, dtype="float64").dtype == np.float64  # an explicit dtype does not read the field
    with pytest.raises(runtime.InvalidInput, match=r"^dtype must be a float dtype, got 'nonsense'$"):
        runtime.load(path, dtype="nonsense")


def _blas_threads() -> int:
    from threadpoolctl import threadpool_info

    return min(lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas")


def test_predict_runs_on_one_blas_thread_and_restores_the_callers(exported, monkeypatch):
    from threadpoolctl import threadpool_limits

    _, path = exported
    seen = []
    gru = runtime.RECURRENT_FUNCTIONS["GRU"]
    monkeypatch.setitem(
        runtime.RECURRENT_FUNCTIONS, "GRU", lambda *a, **k: seen.append(_blas_threads()) or gru(*a, **k)
    )
    ids = _fresh_ids()
    model = runtime.load(path)
    with threadpool_limits(2):
        callers = _blas_threads()
        want = model.predict(ids)
        assert seen == [1] and _blas_threads() == callers
        model.blas_threads = None  # BLAS as the caller set it
        np.testing.assert_allclose(model.predict(ids), want, rtol=1e-5, atol=1e-6)
        assert seen == [1, callers] and _blas_threads() == callers
    assert model.blas_threads is None and runtime.load(path, blas_threads=2).blas_threads == 2
    for bad in (0, -1, 1.5, True, "1"):
        with pytest.raises(
            runtime.InvalidInput, match=rf"^blas_threads must be a positive integer or None, got {bad!r}$"
        ):
            model.blas_threads = bad


def test_the_runtime_reads_threadpoolctl_only_to_predict_and_runs_without_it(exported, tmp_path):
    _, path = exported
    code = f"""
        import sys
        import numpy as np
        from rnn_parity import blas_threads, runtime
        model = runtime.load({str(path)!r})
        assert "threadpoolctl" not in sys.modules
        print(model.predict(np.array([[4, 5, 6, 0]])).shape, blas_threads.available())
    """
    done = python_without(code, blocked=FRAMEWORKS + CLI_STACK + ("threadpoolctl",))
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["(1,", "3)", "False"] and done.attempted == ["threadpoolctl"]


def test_nothing_is_written_when_parity_fails(model, tmp_path, monkeypatch):
    monkeypatch.setitem(runtime.RECURRENT_FUNCTIONS, "GRU", _perturbed(runtime.RECURRENT_FUNCTIONS["GRU"], 0))
    target = tmp_path / "new" / "tagger.npz"
    report = invoke_json(["export", model("sequential"), "-o", target], 1)
    assert report["export"] == {
        "path": str(target),
        "written": False,
        "bytes": 0,
        "format_version": 1,
        "dtype": None,
        "roundtrip": {},
    }
    assert report["first_failure"]["layer"] == "gru"
    assert not target.exists() and not target.parent.exists()
    out = invoke(["export", model("sequential"), "-o", target], 1).stdout
    assert f"nothing written to {target}: parity does not hold" in " ".join(out.split())
    assert not target.parent.exists()


@pytest.mark.parametrize("name, code", [("lambda_model", 4), ("groupnorm_model", 4), ("dense_only", 2)])
def test_refused_models_write_nothing(model, tmp_path, name, code):
    target = tmp_path / "out" / "m.npz"
    result = invoke(["export", model(name), "-o", target], code)
    assert result.stderr.startswith(f"Error: {model(name)}: ") and result.stderr.count("\n") == 1
    assert not target.parent.exists()


def test_a_truncated_file_writes_nothing(model, tmp_path):
    cut = tmp_path / "cut.h5"
    cut.write_bytes(model("sequential", "h5").read_bytes()[:3000])
    target = tmp_path / "m.npz"
    result = invoke(["export", cut, "-o", target], 2)
    assert result.stderr.startswith(f"Error: {cut}: is truncated or damaged (HDF5: ")
    assert result.stderr.count("\n") == 1 and not target.exists()


def test_export_options(model, tmp_path):
    seq = model("sequential")
    assert invoke(["export", seq], 2).stderr == "Error: Missing option '-o' / '--output'.\n"
    assert invoke(["export", seq, "-o", seq], 2).stderr == (
        f"Error: -o {seq}: is the model file itself; choose another name\n"
    )
    assert invoke(["export", seq, "-o", tmp_path], 2).stderr == (
        f"Error: Invalid value for '-o' / '--output': File '{tmp_path}' is a directory.\n"
    )
    report_file = tmp_path / "reports" / "export.json"
    result = invoke(["export", seq, "-o", tmp_path / "m.npz", "--format", "json", "--report", report_file], 0)
    assert result.stdout == "" and json.loads(report_file.read_text())["export"]["written"] is True


def test_the_export_table(model, tmp_path):
    target = tmp_path / "m.npz"
    out = invoke(["export", model("sequential"), "-o", target], 0).stdout
    assert out.startswith("rnn-parity export  PASS\n")
    assert f"wrote {target} ({target.stat().st_size} bytes, format 1, runs in float32)" in " ".join(out.split())


#: What a NumPy-only deployment copies into a folder named rnn_parity (the runtime and what it imports).
RUNTIME_FILES = (
    "__init__.py",
    "runtime.py",
    "reference.py",
    "errors.py",
    "recurrent.py",
    "limits.py",
    "model_checks.py",
    "layer_spec.py",
    "layers.py",
    "layer_ops.py",
    "recurrent_layers.py",
    "rnn_cell.py",
    "blas_threads.py",
    "conv_lstm.py",
)


def test_the_copied_runtime_files_are_enough_to_run_an_export(exported, tmp_path):
    """Copy RUNTIME_FILES into a folder named rnn_parity: the export runs from there and nothing else."""
    import shutil

    import rnn_parity

    _, path = exported
    package = tmp_path / "deploy" / "rnn_parity"
    package.mkdir(parents=True)
    source = __import__("pathlib").Path(rnn_parity.__file__).parent
    for name in RUNTIME_FILES:
        shutil.copy(source / name, package / name)
    code = f"""
        # -I keeps the current folder and PYTHONPATH out, but an editable install's finder would still
        # supply any module missing from the copy: remove it
        sys.meta_path[:] = [f for f in sys.meta_path if not getattr(f, "__module__", "").startswith("__editable__")]
        sys.path.insert(0, {str(package.parent)!r})
        import numpy as np
        import rnn_parity.runtime as rt
        print(rt.load({str(path)!r}).predict(np.array([[4, 5, 6, 0]])).shape)
        outside = [m.__file__ for n, m in sys.modules.items() if n.startswith("rnn_parity")
                   and not m.__file__.startswith({str(package)!r})]
        assert outside == [], outside
    """
    done = python_without(code, blocked=FRAMEWORKS + CLI_STACK, flags=("-I",), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.attempted == []
    assert done.stdout.strip() == "(1, 3)"
