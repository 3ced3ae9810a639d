"""Reliability (docs/guarantees.md): outputs never replace devices, signals keep results, bounded inputs.

Device nodes, FIFOs and symlinks are made in tmp dirs with ``os.mknod`` and
``os.mkfifo``; real /dev nodes are never named.
"""

from __future__ import annotations

import io
import json
import os
import signal
import stat
import threading
import zipfile

import numpy as np
import pytest
from test_runtime_graph import _embedding_graph, _embedding_weights, _error, _write

from rnn_parity import files, limits, signals
from rnn_parity.errors import InvalidInput, Unsupported, one_line
from rnn_parity.model_file import read_model_file
from rnn_parity.model_inputs import match_arrays
from rnn_parity.runtime import load, pack
from rnn_parity.spec import build_spec

from conftest import invoke


def _null_device(folder) -> str:
    """A character device like /dev/null (major 1, minor 3), made in ``folder``."""
    path = folder / "mynull"
    os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    return str(path)


def _is_char_device(path) -> bool:
    return stat.S_ISCHR(os.lstat(path).st_mode)


# ----- outputs: atomic over regular files, in place into anything else -----


def test_a_device_node_is_written_in_place_not_replaced(tmp_path):
    null = _null_device(tmp_path)
    files.check_writable(null, "-o")
    files.ensure_writable(null, "--output")
    files.write_atomic(null, "report\n")
    assert _is_char_device(null)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mynull"]  # no temporary file left beside it


def test_a_fifo_is_written_like_tee(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()))
    reader.start()
    files.write_atomic(fifo, "through the pipe")
    reader.join(timeout=10)
    assert got == [b"through the pipe"] and stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_a_symlink_stays_a_symlink(tmp_path):
    target = tmp_path / "real.json"
    target.write_text("old")
    link = tmp_path / "link.json"
    link.symlink_to(target)
    files.write_atomic(link, "new")
    assert link.is_symlink() and target.read_text() == "new"
    device_link = tmp_path / "to-null"
    device_link.symlink_to(_null_device(tmp_path))
    files.write_atomic(device_link, "x")
    assert device_link.is_symlink() and _is_char_device(tmp_path / "mynull")


@pytest.mark.keras
def test_check_writes_its_report_into_a_device_node(tmp_path):
    null = _null_device(tmp_path)
    invoke(["check", "--T", "2", "--format", "json", "-o", null], 0)
    assert _is_char_device(null)


def test_several_reports_may_name_the_same_device_but_not_the_same_file(tmp_path):
    null = _null_device(tmp_path)
    files.ensure_distinct({"--json": null, "--junit-xml": null})
    with pytest.raises(InvalidInput, match="--json and --markdown both write"):
        files.ensure_distinct({"--json": tmp_path / "r", "--markdown": tmp_path / "r"})


def test_an_empty_output_path_is_refused():
    result = invoke(["check", "-o", ""], 2)
    assert result.stderr == "Error: --output: the path is empty\n" and result.stdout == ""


def test_a_path_ending_in_a_slash_names_a_folder_and_is_refused(tmp_path):
    # Path("out/") is Path("out"): without this, -o out/ would quietly write a file named out
    target = f"{tmp_path}/out/"
    result = invoke(["check", "-o", target], 2)
    assert result.stderr == f"Error: --output {target}: names a folder; give a file name in it\n"
    assert not (tmp_path / "out").exists()


def test_an_unwritable_folder_is_found_by_a_probe_not_by_permission_bits(tmp_path):
    # Root passes every os.access test; /proc takes no new file whatever the bits say.
    with pytest.raises(InvalidInput, match=r"^-o /proc/x.npz: cannot write there \("):
        files.check_writable("/proc/x.npz", "-o")
    assert not list(tmp_path.iterdir())


def test_a_report_that_cannot_be_written_goes_to_a_fallback_file(tmp_path):
    blocked = tmp_path / "reports"
    blocked.write_text("a file where a folder was expected")
    fallback = files.write_or_fallback(blocked / "r.json", '{"a": 1}', "--json")
    assert fallback.written_to is not None and json.loads(fallback.written_to.read_text()) == {"a": 1}
    assert fallback.message().startswith(f"--json {blocked / 'r.json'}: cannot write there (")
    assert fallback.message().endswith(f"; written to {fallback.written_to} instead")
    fallback.written_to.unlink()


# ----- signals -----


@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_sigterm_and_sighup_interrupt_like_ctrl_c(signum, code):
    before = signal.getsignal(signum)
    with signals.terminate_as_interrupt() as received:
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signum)
            signal.sigtimedwait([], 0.1)  # give the handler its chance to run
        os.kill(os.getpid(), signum)  # a second signal while cleaning up is ignored
    assert received.exit_code(130) == code and received.exit_code(1) == 1
    assert signal.getsignal(signum) is before


def _interrupted_inside_c_code(interrupt: KeyboardInterrupt) -> SystemError:
    """What CPython raises when a signal handler's exception comes out of a C function (NumPy's __array__)."""
    try:
        raise SystemError("<built-in method __array__ of numpy.ndarray> returned a result with an exception set")
    except SystemError as exc:
        exc.__cause__ = interrupt
        return exc


def test_an_interrupt_that_comes_back_as_a_c_function_s_error_is_raised_again():
    with pytest.raises(signals.Terminated):
        signals.reraise_interrupt(_interrupted_inside_c_code(signals.Terminated(signal.SIGTERM)))
    with pytest.raises(KeyboardInterrupt):
        signals.reraise_interrupt(_interrupted_inside_c_code(KeyboardInterrupt()))
    signals.reraise_interrupt(ValueError("an error of its own"))  # returns
    with signals.terminate_as_interrupt() as received:
        received.signum = signal.SIGTERM  # the handler ran, and C code turned its exception into another
        with pytest.raises(signals.Terminated):
            signals.reraise_interrupt(ValueError("whatever the C code raised"))


def test_a_sigterm_inside_numpy_stops_the_sweep_instead_of_failing_the_case(monkeypatch):
    """Seen once in a test run: SIGTERM during a case became that case's SystemError, and the sweep ran on."""
    from rnn_parity import sweep

    def interrupted(spec, time_profile=True):
        raise _interrupted_inside_c_code(signals.Terminated(signal.SIGTERM))

    monkeypatch.setattr(sweep, "run_check", interrupted)
    with pytest.raises(signals.Terminated):
        sweep.run_case(0, build_spec(T=2))
    invoke_result = _cli_with(monkeypatch, interrupted)
    assert invoke_result.stderr == "Error: interrupted\n"


def _cli_with(monkeypatch, run_check):
    from rnn_parity import checker

    monkeypatch.setattr(checker, "run_check", run_check)
    return invoke(["check", "--T", "2"], 130)


# ----- bounded inputs -----


def _keras_archive(path, config: bytes) -> str:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("config.json", config)
        archive.writestr("metadata.json", b'{"keras_version": "3"}')
        archive.writestr("model.weights.h5", b"")
    return str(path)


def test_a_huge_config_member_is_refused_before_it_is_decompressed(tmp_path):
    path = _keras_archive(tmp_path / "bomb.keras", b" " * limits.MAX_JSON_BYTES + b"{}")
    assert os.path.getsize(path) < 1_000_000
    with pytest.raises(InvalidInput, match="config.json is 67108866 bytes once decompressed, over the limit"):
        read_model_file(path)


def test_deeply_nested_json_is_one_line_exit_2(tmp_path):
    path = _keras_archive(tmp_path / "deep.keras", b"[" * 100_000 + b"]" * 100_000)
    result = invoke(["verify", path], 2)
    assert result.stderr.count("\n") == 1 and "nested too deeply" in result.stderr
    path = _keras_archive(tmp_path / "deep2.keras", b"[" * 150 + b"]" * 150)
    with pytest.raises(InvalidInput, match="nested 150 levels deep, over the limit of 100"):
        read_model_file(path)


def test_runtime_load_refuses_a_deeply_nested_graph(tmp_path):
    path = tmp_path / "deep.npz"
    text = b'{"format": "rnn-parity.model", "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    np.savez(path, graph=np.frombuffer(text, dtype=np.uint8))
    assert "nested too deeply" in _error(lambda: load(path))


@pytest.mark.parametrize(
    "options",
    [{"M": 200_000, "N": 1, "T": 1, "D": 1, "K": 1}, {"K": 10**12}, {"M": (4, 100_000), "T": 1}],
)
def test_the_memory_estimate_counts_weights_and_the_dense_layer(options):
    with pytest.raises(InvalidInput, match="arrays need about .* over --max-memory 4.0 GiB"):
        build_spec("cli", **options)


def test_sweep_validation_uses_the_same_estimate(cfg):
    result = invoke(["sweep", cfg("cases: [{K: 1000000000000}]\n"), "--dry-run"], 2)
    assert "arrays need about" in result.stderr


# ----- runtime.load validates everything at load -----


def _mutated(tmp_path, change_graph=None, change_weights=None):
    graph, weights = _embedding_graph(), _embedding_weights()
    if change_graph:
        change_graph(graph)
    if change_weights:
        change_weights(weights)
    path = tmp_path / "m.npz"
    path.write_bytes(pack(graph, weights))
    return path


def _gru(graph) -> dict:
    return graph["layers"][1]["config"]


@pytest.mark.parametrize(
    "graph_change, weights_change, message",
    [
        (None, lambda w: w["gru"].__setitem__(1, np.zeros((3, 6))), "weight 1 (recurrent_kernel) has shape (3, 6)"),
        (None, lambda w: w["gru"].__setitem__(0, np.zeros((4, 6))), "its kernel takes 4 features, its input has 2"),
        (lambda g: _gru(g).update(activation="nope"), None, "activation='nope' is not an activation"),
        (lambda g: _gru(g).update(units=10**12), None, "units must be an integer from 1 to 2147483647"),
        (lambda g: _gru(g).update(units="4"), None, "units must be an integer from 1 to 2147483647, got '4'"),
        (lambda g: _gru(g).update(units=3), None, "weight 0 (kernel) has shape (2, 6), the config needs (?, 9)"),
        (lambda g: _gru(g).update(return_sequences="yes"), None, "return_sequences must be true or false"),
        (None, lambda w: w["emb"].__setitem__(0, w["emb"][0] * 1j), "holds complex128, not real floating-point"),
        (None, lambda w: w["emb"].__setitem__(0, np.array([["1.0", "2"]] * 5)), "holds <U3, not real floating"),
        (
            None,
            lambda w: w["gru"][2].__setitem__(4, np.nan),
            "weight bias holds 1 non-finite value(s) (first nan at [4])",
        ),
        (None, lambda w: w["emb"][0].__setitem__((3, 1), np.inf), "weight embeddings holds 1 non-finite value(s)"),
        (lambda g: g["inputs"][0].update(dtype="string"), None, "input 'ids' has dtype 'string'"),
    ],
)
def test_runtime_load_validates_the_whole_graph(tmp_path, graph_change, weights_change, message):
    path = _mutated(tmp_path, graph_change, weights_change)
    error = _error(lambda: load(path))
    assert error.startswith(f"{path}: ") and message in error and "\n" not in error


def test_a_known_keras_layer_the_runtime_lacks_is_unsupported(tmp_path):
    path = _mutated(tmp_path, lambda g: g["layers"][1].update(class_name="Conv2D"))
    with pytest.raises(Unsupported, match="layer 'gru': Conv2D is not supported by the NumPy runtime"):
        load(path)
    path = _mutated(tmp_path, lambda g: g["layers"][1].update(class_name="Mystery"))
    assert "Mystery is not supported" in _error(lambda: load(path))


def test_a_valid_export_still_loads(tmp_path):
    ids = np.array([[1, 4, 2, 0]])
    assert load(_write(tmp_path)).predict(ids).shape == (1, 2)


def test_an_oversized_graph_entry_is_refused_before_it_is_read(tmp_path, monkeypatch):
    monkeypatch.setattr("rnn_parity.runtime.MAX_JSON_BYTES", 100)
    path = _write(tmp_path)
    assert "the 'graph' entry is" in _error(lambda: load(path))


# ----- inputs -----

_X_GRAPH = {"inputs": [{"name": "x", "shape": [None, None, 3], "dtype": "float32"}], "layers": []}


def test_an_input_without_timesteps_is_invalid():
    message = _error(lambda: match_arrays(_X_GRAPH, {"x": np.zeros((2, 0, 3))}, "in.npz"))
    assert message == "--input in.npz: array for 'x' has shape (2, 0, 3): no timesteps"
    runtime = load(io.BytesIO(pack(_embedding_graph(), _embedding_weights())), where="m.npz")
    assert _error(lambda: runtime.predict(np.zeros((2, 0), dtype=int))) == "input 'ids': shape (2, 0) has an empty axis"


def test_extra_arrays_in_an_input_file_are_refused():
    arrays = {"x": np.zeros((2, 4, 3)), "stray": np.zeros(1)}
    assert _error(lambda: match_arrays(_X_GRAPH, arrays, "in.npz")) == (
        "--input in.npz: holds array(s) ['stray'] the model does not take (its inputs are ['x'])"
    )


# ----- small items -----


def test_a_quoted_tolerance_is_refused_but_a_plain_1e_5_is_a_number(cfg):
    result = invoke(["sweep", cfg('cases: [{atol: "1e-5"}]\n'), "--dry-run"], 2)
    assert result.stderr == "Error: c.yaml: cases[0].atol (line 1): must be a valid number, got '1e-5'\n"
    invoke(["sweep", cfg("cases: [{atol: 1e-5, rtol: 2E-6}]\n"), "--dry-run"], 0)


def test_a_bad_unit_count_is_reported_once():
    result = invoke(["check", "--M", "0"], 2)
    assert result.stderr == "Error: --M must be a positive integer, got '0'\n"


@pytest.mark.keras
def test_tensorflow_never_used_dumps_stay_off_stderr(keras, capfd):
    import tensorflow as tf

    tf.get_logger().error("Object was never used (type %s):\n%s", "Tensor", "stack")
    assert "never used" not in capfd.readouterr().err


# ----- sweeps: a report that cannot be written, SIGTERM -----

TWO = """
defaults: {N: 2, D: 2, M: 3, K: 2}
cases:
  - {name: a, T: 2}
  - {name: b, T: 3}
"""


@pytest.mark.keras
def test_a_sweep_whose_report_folder_vanishes_keeps_every_result(cfg, tmp_path, monkeypatch):
    import rnn_parity.sweep as sweep_module

    real = sweep_module.run_check

    def then_break_the_folder(spec, **kwargs):
        result = real(spec, **kwargs)
        if (tmp_path / "out").is_dir():  # the folder made at the start is replaced by a file mid-run
            (tmp_path / "out").rmdir()
            (tmp_path / "out").write_text("not a folder")
        return result

    monkeypatch.setattr(sweep_module, "run_check", then_break_the_folder)
    result = invoke(["sweep", cfg(TWO), "--json", "out/r.json", "--junit-xml", "r.xml", "--markdown", "r.md"], 2)
    assert result.stdout.splitlines()[-1] == "2 passed, 0 failed, 0 errors"
    [line] = [x for x in result.stderr.splitlines() if x.startswith("Error:")]
    assert line.startswith("Error: --json out/r.json: cannot write there (")
    fallback = line.rsplit("written to ", 1)[1].removesuffix(" instead")
    data = json.loads(open(fallback).read())
    assert [c["status"] for c in data["cases"]] == ["pass", "pass"]
    os.unlink(fallback)
    assert (tmp_path / "r.xml").exists() and (tmp_path / "r.md").exists()


@pytest.mark.keras  # the sweep imports Keras before its first case
def test_the_progress_line_counts_errors_apart_from_failures(cfg, monkeypatch):
    import rnn_parity.sweep as sweep_module

    def boom(spec, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(sweep_module, "run_check", boom)
    result = invoke(["sweep", cfg(TWO)], 3)
    assert "· 0 failed · 2 errors · elapsed" in result.stderr.splitlines()[-1]


MANY = """
defaults: {N: 1, D: 2, M: 2, K: 1, time_profile: false}
grid: {T: [1, 2, 3, 4, 5, 6, 7, 8]}
seeds: [0, 1, 2, 3, 4]
"""


@pytest.mark.slow
@pytest.mark.keras  # the sweep it signals runs real checks in its own process
@pytest.mark.parametrize("workers", ["1", "2"])
def test_sigterm_mid_sweep_keeps_partial_reports_and_reaps_the_workers(tmp_path, workers):
    import subprocess
    import sys

    import psutil
    from junitparser import JUnitXml

    (tmp_path / "many.yaml").write_text(MANY)
    args = [
        "sweep",
        "many.yaml",
        "--workers",
        workers,
        "--json",
        "r.json",
        "--junit-xml",
        "r.xml",
        "--markdown",
        "r.md",
    ]
    proc = subprocess.Popen(
        [sys.executable, "-m", "rnn_parity", *args],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    try:
        first = proc.stderr.readline()  # the first finished case: the sweep is under way
        assert first.startswith("[ 1/40]"), first
        children = psutil.Process(proc.pid).children(recursive=True)
        assert len(children) >= (3 if workers == "2" else 0)  # two workers and the resource tracker
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 143, err
    assert "Error: interrupted" not in err and "Traceback" not in err
    assert out.splitlines()[-2].startswith("interrupted: ") and out.splitlines()[-2].endswith("cases did not run")
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["summary"]["interrupted"] is True and data["summary"]["exit_code"] == 143
    assert 1 <= sum(c["status"] == "pass" for c in data["cases"]) < 40
    assert len(list(JUnitXml.fromfile(str(tmp_path / "r.xml")))) == 1
    assert (tmp_path / "r.md").read_text().startswith("### rnn-parity sweep: ⏹ interrupted")
    # the parent has exited, so every child must be gone; a loaded machine may take a moment to reap them
    _, alive = psutil.wait_procs(children, timeout=15)
    assert [c for c in alive if c.status() != psutil.STATUS_ZOMBIE] == []


# ----- saved models: unwritable export paths, non-finite weights -----


@pytest.fixture(scope="module")
def nan_row_model(tmp_path_factory):
    """Embedding(10, 3) → LSTM(2) → Dense(1), with one NaN in the embedding row of id 9, saved as .keras."""
    from rnn_parity.keras_runner import import_keras

    keras = import_keras()
    keras.utils.set_random_seed(0)
    # Every name given: Keras's automatic names count up per process, and other tests expect the first ones.
    model = keras.Sequential(
        [
            keras.Input(shape=(None,), dtype="int32", name="ids"),
            keras.layers.Embedding(10, 3, name="embedding"),
            keras.layers.LSTM(2, name="nan_lstm"),
            keras.layers.Dense(1, name="nan_dense"),
        ],
        name="nan_row",
    )
    table = model.layers[0].get_weights()[0]
    table[9, 1] = np.nan
    model.layers[0].set_weights([table])
    path = tmp_path_factory.mktemp("nan") / "nan_row.keras"
    model.save(path)
    return path


@pytest.mark.keras
def test_a_nan_weight_fails_verify_and_export_whether_the_inputs_reach_it_or_not(nan_row_model, tmp_path):
    ids = tmp_path / "ids.npy"
    np.save(ids, np.array([[1, 2, 3]], dtype=np.int32))  # id 9 is never looked up
    message = (
        "Error: layer 'embedding': weight embedding/embeddings holds 1 non-finite value(s) "
        "(first nan at [9, 1]); NaN and Inf weights are refused\n"
    )
    assert invoke(["verify", nan_row_model, "--input", ids], 1).stderr == message
    result = invoke(["export", nan_row_model, "-o", tmp_path / "m.npz"], 1)
    assert result.stderr == message and not (tmp_path / "m.npz").exists()


@pytest.mark.keras
def test_export_checks_both_paths_before_any_work(nan_row_model, tmp_path):
    result = invoke(["export", nan_row_model, "-o", "/proc/x.npz"], 2)
    assert result.stderr.startswith("Error: -o /proc/x.npz: cannot write there (") and result.stderr.count("\n") == 1
    result = invoke(["export", nan_row_model, "-o", tmp_path / "m.npz", "--report", "/proc/x.json"], 2)
    assert result.stderr.startswith("Error: --report /proc/x.json: cannot write there (")
    assert not (tmp_path / "m.npz").exists()


@pytest.mark.keras
def test_verify_refuses_an_input_without_timesteps(nan_row_model, tmp_path):
    empty = tmp_path / "empty.npy"
    np.save(empty, np.zeros((2, 0), dtype=np.int32))
    result = invoke(["verify", nan_row_model, "--input", empty], 2)
    assert result.stderr == f"Error: --input {empty}: array for 'ids' has shape (2, 0): no timesteps\n"


def test_numpy_overflow_warnings_stay_off_stderr():
    import warnings

    from rnn_parity.cli import run_guarded

    def body():
        np.float32(3e38) * np.float32(10)  # a real overflow RuntimeWarning
        return 0

    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        assert run_guarded(False, body) == 0
    assert seen == []


def test_a_keras_error_is_one_line_with_keras_own_reason():
    wrapped = ValueError(
        "Exception encountered when calling ConvLSTM1D.call().\n\n\x1b[1mIncompatible shapes for broadcasting: "
        "shapes=[(2, 1), (2, 6, 3)]\x1b[0m\n\nArguments received by ConvLSTM1D.call():\n  • training=False"
    )
    assert one_line(wrapped) == "ConvLSTM1D.call(): Incompatible shapes for broadcasting: shapes=[(2, 1), (2, 6, 3)]"
    assert one_line(ValueError("first\nsecond")) == "first"
    assert one_line(ValueError("")) == "ValueError"
