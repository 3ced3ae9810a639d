"""The ``check`` command: exit codes, the table, the JSON, reproducibility and every bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from conftest import invoke, invoke_json, python_without

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "3")}


def run_module(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "rnn_parity", *args], capture_output=True, text=True, env=ENV, timeout=300
    )


# ------------------------------------------------------------------ success paths


@pytest.mark.keras
def test_default_table_passes():
    out = invoke(["check"], 0).stdout
    assert "rnn-parity check  PASS" in out
    assert "N=1 T=10 D=3 M=5 K=2" in out
    for weight in ("Wx kernel 3×5", "Wh recurrent_kernel 5×5", "bh bias 5", "Wo kernel 5×2", "bo bias 2"):
        assert weight in out
    assert "smallest passing" in out and "atol" in out


@pytest.mark.keras
def test_design_card_example_and_aliases_agree():
    short = invoke_json(["check", "--T", "10", "--M", "5"])
    long = invoke_json(
        ["check", "--timesteps", "10", "--units", "5", "--batch", "1", "--features", "3", "--outputs", "2"]
    )
    assert short["passed"] is True
    assert short["config"] == long["config"]
    assert short["max_abs_diff"] == long["max_abs_diff"]


@pytest.mark.keras
def test_json_fields():
    report = invoke_json(["check", "--N", "2", "--T", "4"])
    for key in (
        "passed",
        "max_abs_diff",
        "max_rel_diff",
        "atol",
        "rtol",
        "worst_index",
        "required_atol",
        "config",
        "param_counts",
        "versions",
    ):
        assert key in report
    assert report["passed"] is True and report["status"] == "pass"
    assert report["atol"] == 1e-5 and report["rtol"] == 1.3e-6
    assert all(isinstance(i, int) for i in report["worst_index"]) and len(report["worst_index"]) == 2
    assert {k: report["config"][k] for k in ("N", "T", "D", "M", "K", "seed", "reference_dtype")} == {
        "N": 2,
        "T": 4,
        "D": 3,
        "M": 5,
        "K": 2,
        "seed": 0,
        "reference_dtype": "float64",
    }
    assert report["param_counts"] == {"simple_rnn": 45, "dense": 12, "total": 57}
    assert set(report["versions"]) >= {"python", "numpy", "keras", "tensorflow"}
    assert report["versions"]["keras"].startswith("3.")
    assert 0 <= report["max_abs_diff"] < 1e-6
    assert isinstance(report["required_atol"], float)  # its meaning: test_diagnostics, smallest passing tolerances
    layer = report["layers"][0]
    assert [w["shape"] for w in layer["weights"]] == [[3, 5], [5, 5], [5]]
    assert layer["params"] == layer["params_formula"] == 45


@pytest.mark.keras
def test_same_seed_same_report_different_seed_different_case():
    strip = lambda r: {k: v for k, v in r.items() if k != "seconds"}
    a = invoke_json(["check", "--seed", "3", "--N", "2"])
    b = invoke_json(["check", "--seed", "3", "--N", "2"])
    c = invoke_json(["check", "--seed", "4", "--N", "2"])
    assert strip(a) == strip(b)
    assert a["reference_at_worst"] != c["reference_at_worst"]


@pytest.mark.keras
def test_parity_violation_exits_1():
    out = invoke(["check", "--atol", "0", "--rtol", "0", "--T", "50"], 1).stdout
    assert "FAIL" in out
    report = invoke_json(["check", "--atol", "0", "--rtol", "0", "--T", "50"], 1)
    assert report["passed"] is False and report["mismatches"] > 0
    assert report["required_atol"] == report["max_abs_diff"] > 0


@pytest.mark.keras
def test_output_file_is_written(tmp_path):
    target = tmp_path / "new" / "dir" / "report.json"
    result = invoke(["check", "--format", "json", "--output", str(target)], 0)
    assert result.stdout == ""
    assert json.loads(target.read_text())["passed"] is True
    assert [p.name for p in target.parent.iterdir()] == ["report.json"]  # no temporary file left behind


@pytest.mark.keras
def test_stdout_carries_only_the_table_and_stderr_stays_quiet():
    """In a real process: TensorFlow's banners and absl lines never reach the user."""
    proc = run_module("check")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("rnn-parity check  PASS")
    assert proc.stderr == ""


def test_help_and_bad_options_never_import_tensorflow():
    code = """
        from rnn_parity.cli import main
        codes = []
        for args in (["--help"], ["check", "--help"], ["verify", "--help"], ["export", "--help"],
                     ["sweep", "--help"], ["check", "--T", "0"], ["check", "--atol", "nan"]):
            try:
                main(args)
            except SystemExit as exc:
                codes.append(exc.code)
        print("exit codes", codes)
    """
    done = python_without(code)
    assert done.returncode == 0, done.stderr
    assert done.attempted == []
    assert done.stdout.splitlines()[-1] == "exit codes [0, 0, 0, 0, 0, 2, 2]"
    assert "--input FILE.npy|FILE.npz" in done.stdout  # verify's help was printed in full


def test_python_dash_m_help():
    proc = run_module("--help")
    assert proc.returncode == 0
    assert "check" in proc.stdout and "Exit codes" in proc.stdout


# ------------------------------------------------------------------ bad input: exit 2, one line, no traceback

BAD = [
    (["--T", "0"], "Error: --T must be a positive integer, got 0"),
    (["--N", "-3"], "Error: --N must be a positive integer, got -3"),
    (["--D", "2.5"], "Error: Invalid value for '--D' / '--features': '2.5' is not a valid integer."),
    (["--K", "x"], "Error: Invalid value for '--K' / '--outputs': 'x' is not a valid integer."),
    (["--M", "0"], "Error: --M must be a positive integer, got '0'"),
    (["--M", "64,x"], "Error: --M must be a positive integer or a list such as 64,32, got '64,x'"),
    (["--atol", "-1"], "Error: --atol must be ≥ 0, got -1.0"),
    (["--rtol", "nan"], "Error: --rtol must be a finite number, got nan"),
    (["--atol", "inf"], "Error: --atol must be a finite number, got inf"),
    (
        ["--reference-dtype", "float16"],
        "Error: Invalid value for '--reference-dtype': 'float16' is not one of 'float64', 'float32'.",
    ),
    (["--format", "xml"], "Error: Invalid value for '--format': 'xml' is not one of 'table', 'json'."),
    (
        ["--max-memory", "lots"],
        "Error: Invalid value for '--max-memory': expected a size such as 4GiB or 512MB, got 'lots'",
    ),
    (
        ["--N", "100000", "--T", "1000", "--D", "100"],
        "Error: this case's arrays need about 171.4 GiB, over --max-memory 4.0 GiB; raise it if the machine has room",
    ),
    (
        ["--N", "64", "--T", "100", "--max-memory", "1MB"],
        "Error: this case's arrays need about 1.8 MiB, over --max-memory 976.6 KiB; raise it if the machine has room",
    ),
    (["--activation", "my_act"], "Error: --activation must be a Keras built-in activation"),
    (["--no-reset-after"], "Error: --no-reset-after is a GRU option, but --cell simple_rnn"),
    (["--cell", "gru", "--no-unit-forget-bias"], "Error: --no-unit-forget-bias is an LSTM option, but --cell gru"),
    (
        ["--recurrent-activation", "sigmoid"],
        "Error: --recurrent-activation sigmoid is an LSTM/GRU option, but --cell simple_rnn",
    ),
    (
        ["--bidirectional", "sum", "--go-backwards"],
        "Error: Keras's Bidirectional refuses a layer that goes backwards: --bidirectional sum with --go-backwards",
    ),
    (
        ["--bidirectional", "none", "--M", "4,3"],
        "Error: --bidirectional none returns two outputs, which the next layer of a stack (--M 4,3) cannot take",
    ),
    (
        ["--bidirectional", "concat", "--stateful", "--return-state"],
        "Error: Keras 3's Bidirectional fails to build a stateful layer that returns its state: --bidirectional concat "
        "with --stateful and --return-state",
    ),
    (["--stateful", "--initial-state"], "Error: --stateful and --initial-state both set the start state; choose one"),
    (["--cell", "rnn"], "Error: Invalid value for '--cell': 'rnn' is not one of 'simple_rnn', 'lstm', 'gru'."),
    (["--bogus"], "Error: No such option '--bogus'"),
]


@pytest.mark.parametrize(("args", "message"), BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_input_exits_2_with_one_line(args, message):
    result = invoke(["check", *args], 2)
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith(message)
    assert "Traceback" not in result.stderr


def test_unwritable_output_path(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = invoke(["check", "--output", str(blocker / "r.json")], 2)
    assert result.stderr.startswith(f"Error: --output {blocker / 'r.json'}: cannot write there")
    result = invoke(["check", "--output", str(tmp_path)], 2)
    assert result.stderr == f"Error: Invalid value for '--output' / '-o': File '{tmp_path}' is a directory.\n"


def test_internal_error_is_one_line_exit_3(monkeypatch):
    import rnn_parity.checker

    def boom(spec):
        raise RuntimeError("graph exploded\nsecond line")

    monkeypatch.setattr(rnn_parity.checker, "run_check", boom)
    result = invoke(["check"], 3)
    assert result.stderr == (
        "Error: internal error: RuntimeError: graph exploded (rerun with --debug for the traceback)\n"
    )
    result = invoke(["check", "--debug"], 3)
    assert "Traceback" in result.stderr and "RuntimeError: graph exploded" in result.stderr


def test_version():
    from rnn_parity import __version__

    assert invoke(["--version"], 0).stdout.strip() == f"rnn-parity, version {__version__}"


def test_an_unknown_backend_is_one_line_exit_2():
    proc = subprocess.run([sys.executable, "-m", "rnn_parity", "check"], capture_output=True, text=True,
                          env={**ENV, "KERAS_BACKEND": "bogus"}, timeout=300)  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert (
        proc.stderr
        == "Error: KERAS_BACKEND=bogus: not a Keras backend this tool runs on (one of tensorflow, jax, torch)\n"
    )
    assert "tensorflow" not in proc.stdout


@pytest.mark.parametrize("args", [["check", "--backend", "jax"], ["sweep", "c.yaml"], ["check", "--backend", "all"]])
def test_a_backend_that_is_not_installed_is_exit_2_with_the_pip_command(args, cfg, monkeypatch):
    from rnn_parity import backend

    cfg("cases:\n  - {backend: jax}\n")
    monkeypatch.setattr(backend, "installed", lambda name: False)
    result = invoke(args, 2)
    assert result.stderr.count("\n") == 1
    assert "pip install 'rnn-parity[" in result.stderr
