"""Diagnostics: statistics, tolerance modes, the three-way comparison, error over time, plots, explain."""

from __future__ import annotations

import json
import os
import shlex

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from rnn_parity import reference
from rnn_parity.checker import run_check
from rnn_parity.compare import compare
from rnn_parity.spec import build_spec
from rnn_parity.tolerance import AUTO_FACTOR, AUTO_FLOOR_ULPS, resolve

from conftest import invoke, invoke_json

# ------------------------------------------------------------------ statistics (no Keras)


def test_statistics_by_hand():
    expected = np.array([[1.0, 2.0, 0.0, -4.0]])
    actual = np.array([[1.0, 2.1, 0.0, -4.0]])
    c = compare(actual, expected, atol=0.01, rtol=0.0)
    assert c.max_abs_diff == pytest.approx(0.1)
    assert c.mean_abs_diff == pytest.approx(0.025)
    assert c.max_rel_diff == pytest.approx(0.05)
    assert c.worst_index == (0, 1) and c.worst_axes == ("sample", "unit")
    assert (c.actual_at_worst, c.expected_at_worst) == (2.1, 2.0)
    assert c.required_atol == pytest.approx(0.1)
    assert c.required_rtol == pytest.approx((0.1 - 0.01) / 2.0)
    assert c.mismatches == 1 and c.mismatch_fraction == 0.25 and not c.passed


def test_relative_error_stays_finite_where_the_reference_is_zero():
    c = compare(np.array([1e-7, 1.0]), np.array([0.0, 1.0]), atol=1e-6, rtol=0)
    floor = np.finfo(np.float32).eps * 1.0
    assert c.max_rel_diff == pytest.approx(1e-7 / floor)
    assert np.isfinite(c.max_rel_diff)


def test_required_rtol_is_infinite_when_an_element_over_atol_has_reference_zero():
    c = compare(np.array([0.5]), np.array([0.0]), atol=0.1, rtol=0)
    assert c.required_rtol == float("inf")


# derandomized like the other property tests; HYPOTHESIS_SEARCH=1 draws fresh examples
@settings(max_examples=60, derandomize=not os.environ.get("HYPOTHESIS_SEARCH"), deadline=None)
@given(
    pair=st.integers(1, 40).flatmap(
        lambda n: st.tuples(*[hnp.arrays(np.float64, n, elements=st.floats(-4, 4, width=32))] * 2)
    ),
    atol=st.sampled_from([0.0, 1e-6, 1e-3]),
    rtol=st.sampled_from([0.0, 1.3e-6, 1e-2]),
)
def test_the_smallest_passing_tolerances_pass_and_nothing_smaller_does(pair, atol, rtol):
    actual, expected = pair
    c = compare(actual, expected, atol=atol, rtol=rtol)
    assert compare(actual, expected, atol=c.required_atol, rtol=rtol).passed
    if c.required_atol > 0:
        assert not compare(actual, expected, atol=np.nextafter(c.required_atol, 0), rtol=rtol).passed
    if np.isfinite(c.required_rtol):
        assert compare(actual, expected, atol=atol, rtol=c.required_rtol * (1 + 1e-9)).passed
        if c.required_rtol > 0:
            assert not compare(actual, expected, atol=atol, rtol=c.required_rtol * (1 - 1e-9)).passed
    assert c.passed == (c.required_atol <= atol) == (c.required_rtol <= rtol)


def test_max_mismatch_frac_tolerates_outliers_but_not_nan():
    expected = np.zeros(100)
    actual = expected.copy()
    actual[:3] = 1.0
    assert not compare(actual, expected, atol=1e-3, rtol=0).passed
    assert compare(actual, expected, atol=1e-3, rtol=0, max_mismatch_frac=0.03).passed
    assert not compare(actual, expected, atol=1e-3, rtol=0, max_mismatch_frac=0.02).passed
    actual[50] = np.nan
    c = compare(actual, expected, atol=1e-3, rtol=0, max_mismatch_frac=1.0)
    assert not c.passed and c.nonfinite == 1 and c.max_abs_diff == float("inf")


def test_p99():
    expected = np.zeros(1000)
    actual = np.linspace(0, 1, 1000)
    c = compare(actual, expected, atol=1, rtol=0)
    assert c.p99_abs_diff == np.sort(actual)[990]  # the 99th percentile, 'higher' method: 0.99·999 → 990


def _passes(actual, truth, tol) -> bool:
    return compare(actual, truth, atol=tol.atol, rtol=tol.rtol).passed


def test_explicit_tolerances_are_the_given_ones_whatever_the_dtype():
    for dtype in ("float16", "float32", "float64"):
        t = resolve("explicit", atol=1e-4, rtol=2e-5, compute_dtype=dtype)
        assert (t.mode, t.atol, t.rtol) == ("explicit", 1e-4, 2e-5)


@pytest.mark.parametrize(
    ("dtype", "worse"),
    [
        # torch.testing's float64 values let one float32 rounding through, not four float32 ulps
        ("float64", lambda v: v * (1 + 4 * np.finfo(np.float32).eps)),
        ("float32", lambda v: v.astype(np.float16)),
        ("float16", lambda v: v * (1 + 4 * np.finfo(np.float16).eps)),
    ],
    ids=["float64", "float32", "float16"],
)
def test_dtype_mode_passes_rounding_to_the_compute_dtype_and_nothing_coarser(dtype, worse):
    truth = np.random.default_rng(0).uniform(-4, 4, 10_000)
    tol = resolve("dtype", atol=0, rtol=0, compute_dtype=dtype)  # the given atol/rtol play no part
    assert _passes(truth.astype(dtype), truth, tol)
    assert not _passes(worse(truth), truth, tol)
    stricter = resolve("dtype", atol=0, rtol=0, compute_dtype={"float16": "float32"}.get(dtype, "float64"))
    assert stricter.atol <= tol.atol and stricter.rtol <= tol.rtol


def test_auto_passes_up_to_its_factor_times_the_low_precision_error_plus_a_floor():
    rng = np.random.default_rng(1)
    truth = rng.uniform(-2, 2, 1000)
    low = truth + rng.uniform(-3e-7, 3e-7, truth.size)
    tol = resolve("auto", atol=0, rtol=0, compute_dtype="float32", truth=truth, low=low)
    basis = np.abs(low - truth).max()
    floor = AUTO_FLOOR_ULPS * np.spacing(np.float32(np.abs(truth).max()))
    assert tol.basis == basis
    off = np.zeros_like(truth)
    off[17] = 1.0
    assert _passes(truth + 0.99 * (AUTO_FACTOR * basis + floor) * off, truth, tol)
    assert not _passes(truth + 1.01 * (AUTO_FACTOR * basis + floor) * off, truth, tol)
    # an exact low-precision reference still leaves the floor: float32 rounding passes, a bug does not
    exact = resolve("auto", atol=0, rtol=0, compute_dtype="float32", truth=truth, low=truth)
    assert _passes(truth.astype(np.float32), truth, exact)
    assert not _passes(truth + 1e-4 * off, truth, exact)


# ------------------------------------------------------------------ against Keras


@pytest.mark.keras
def test_long_sequence_passes_auto_for_the_right_reason():
    result = run_check(build_spec(T=1000, M=64, tolerance="auto"))
    assert result.passed
    assert result.three_way.diagnosis == "rounding"
    assert result.three_way.roundoff_ratio < AUTO_FACTOR
    assert len(result.time.keras_error) == 1000 and result.time.first_divergence is None
    assert result.tolerance.mode == "auto"


@pytest.mark.keras
def test_a_real_bug_is_called_a_discrepancy_and_located_in_time(monkeypatch):
    """Keras 2's hard_sigmoid in the reference: auto must fail it, and say where it starts."""
    monkeypatch.setitem(reference.ACTIVATIONS, "hard_sigmoid", lambda x: np.clip(0.2 * x + 0.5, 0, 1))
    result = run_check(build_spec(cell="gru", recurrent_activation="hard_sigmoid", T=30, N=4, tolerance="auto"))
    assert not result.passed
    assert result.three_way.diagnosis == "discrepancy"
    assert result.three_way.roundoff_ratio > 1000
    assert result.time.first_divergence == 0


@pytest.mark.keras
def test_first_divergence_under_a_tight_tolerance():
    result = run_check(build_spec(T=60, atol=0.0, rtol=0.0, N=2, M=8))
    curve = np.array(result.time.keras_error)
    assert result.time.first_divergence == int(np.flatnonzero(curve > 0)[0])


@pytest.mark.keras
def test_lstm_return_sequences_json_has_the_diagnostics():
    report = invoke_json(["check", "--cell", "lstm", "--return-sequences"])
    for key in (
        "timestep_max_abs_diff",
        "first_divergence",
        "roundoff_ratio",
        "environment",
        "three_way",
        "p99_abs_diff",
        "mean_rel_diff",
        "required_rtol",
        "mismatch_fraction",
        "tolerance",
        "diagnosis",
    ):
        assert key in report, key
    assert len(report["timestep_max_abs_diff"]) == report["config"]["T"] == 10
    assert report["first_divergence"] is None
    assert report["worst_axes"] == ["sample", "timestep", "unit"]
    env = report["environment"]
    assert isinstance(env["onednn"], bool)
    for key in ("python", "numpy", "keras", "tensorflow", "keras_backend", "blas", "cpu", "cpu_count", "command"):
        assert key in env, key
    assert env["command"] == "rnn-parity check --cell lstm --return-sequences"


@pytest.mark.keras
def test_the_reproduce_command_reproduces():
    first = invoke_json(
        [
            "check",
            "--cell",
            "gru",
            "--no-reset-after",
            "--T",
            "7",
            "--seed",
            "5",
            "--mask",
            "pre",
            "--N",
            "3",
            "--tolerance",
            "auto",
        ]
    )
    args = shlex.split(first["environment"]["command"])[1:]
    again = invoke_json(args)
    assert again["config"] == first["config"]
    assert again["max_abs_diff"] == first["max_abs_diff"]


@pytest.mark.keras
@pytest.mark.parametrize("keras_dtype", ["float64", "float16", "mixed_float16"])
def test_other_keras_dtypes(keras_dtype):
    result = run_check(build_spec(keras_dtype=keras_dtype, cell="lstm", N=3, tolerance="auto"))
    assert result.passed, result.three_way
    if keras_dtype == "float64":
        assert result.output.max_abs_diff < 1e-13


@pytest.mark.keras
def test_dtype_mode_for_float64_keras_is_tight():
    """A float64 model gets float64's tolerance (not float32's), and passes it with room to spare."""
    result = run_check(build_spec(keras_dtype="float64", tolerance="dtype", cell="gru", T=50))
    assert result.tolerance == resolve("dtype", atol=0, rtol=0, compute_dtype="float64")
    assert result.passed and result.output.max_abs_diff < 1e-12


@pytest.mark.keras
def test_table_says_whether_it_is_rounding(tmp_path):
    out = invoke(["check", "--T", "300", "--M", "16", "--tolerance", "auto", "--plot", tmp_path / "e.png"], 0).stdout
    assert "diagnosis" in out and "float32 rounding growth" in out
    assert "error over time" in out and "oneDNN" in out and "reproduce: rnn-parity check" in out
    png = (tmp_path / "e.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


@pytest.mark.keras
def test_time_profile_can_be_turned_off(tmp_path):
    report = invoke_json(["check", "--no-time-profile"])
    assert report["timestep_max_abs_diff"] is None and report["first_divergence"] is None
    assert report["config"]["time_profile"] is False and report["passed"]
    # a model that returns sequences has its profile for free
    assert invoke_json(["check", "--no-time-profile", "--return-sequences"])["timestep_max_abs_diff"]
    result = invoke(["check", "--no-time-profile", "--plot", tmp_path / "e.png"], 2)
    assert result.stderr == "Error: --plot draws the time profile, which --no-time-profile turns off\n"


def test_plot_without_matplotlib_is_one_line(monkeypatch, tmp_path):
    import builtins

    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name.startswith("matplotlib"):
            raise ImportError("no matplotlib")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    result = invoke(["check", "--plot", tmp_path / "e.png"], 2)
    assert result.stderr == (
        "Error: --plot: plots need matplotlib: pip install 'rnn-parity[plot]' (or pip install matplotlib)\n"
    )
    assert not (tmp_path / "e.png").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--tolerance", "auto", "--atol", "1e-3"],
            "Error: --atol 0.001 applies to explicit tolerances, but --tolerance auto\n",
        ),
        (
            ["--tolerance", "dtype", "--rtol", "1e-3"],
            "Error: --rtol 0.001 applies to explicit tolerances, but --tolerance dtype\n",
        ),
        (["--max-mismatch-frac", "1.5"], "Error: --max-mismatch-frac must be ≤ 1, got 1.5\n"),
        (
            ["--tolerance", "loose"],
            "Error: Invalid value for '--tolerance': 'loose' is not one of 'explicit', 'dtype', 'auto'.\n",
        ),
        (
            ["--keras-dtype", "bfloat16"],
            "Error: Invalid value for '--keras-dtype': 'bfloat16' is not one of "
            "'float32', 'float64', 'float16', 'mixed_float16'.\n",
        ),
    ],
)
def test_bad_diagnostic_options(args, message):
    assert invoke(["check", *args], 2).stderr == message


@pytest.mark.keras
def test_explain_walks_through_the_notebook():
    out = invoke(["explain", "--T", "5", "--M", "3"], 0).stdout
    assert "h_t = tanh(x_t·Wx + h_(t-1)·Wh + bh)" in out
    assert "Wx = kernel 3×3" in out and "Wh = recurrent_kernel 3×3" in out
    assert "D·M + M² + M = 3·3 + 3² + 3 =" in out
    lines = [line for line in out.splitlines() if line.strip()[:2] in {f"{t} " for t in range(5)}]
    assert len(lines) >= 5  # one row per timestep
    assert "PASS" in out


@pytest.mark.keras
@pytest.mark.parametrize(
    "args",
    [
        ["--cell", "lstm"],
        ["--cell", "gru", "--no-reset-after"],
        ["--cell", "gru", "--bidirectional", "ave", "--mask", "post", "--N", "2"],
        ["--M", "4,3", "--go-backwards", "--T", "30"],
    ],
)
def test_explain_every_cell(args):
    out = invoke(["explain", *args], 0).stdout
    assert "Step by step" in out
    if "lstm" in args:
        assert "c_t = f_t ⊙ c_(t-1) + i_t ⊙ c~_t" in out and "4·(D·M + M² + M)" in out
    if "--no-reset-after" in args:
        assert "(r_t ⊙ h_(t-1))·U_h" in out
    if "--T" in args:
        assert "…" in out  # 30 steps: the middle is elided


def test_json_is_strict_even_with_infinities():
    from rnn_parity.render import to_json

    text = to_json({"a": float("inf"), "b": [float("nan"), 1.0]})
    assert json.loads(text) == {"a": "inf", "b": ["nan", 1.0]}


@pytest.mark.keras
def test_sweep_plot(cfg, tmp_path):
    name = cfg("grid:\n  T: [1, 5]\n  cell: [lstm, gru]\n")
    invoke(["sweep", name, "--plot", "out/by-t.png", "--plot-x", "T"], 0)
    invoke(["sweep", name, "--plot", "out/by-cell.png", "--plot-x", "cell"], 0)
    for png in ("by-t.png", "by-cell.png"):
        assert (tmp_path / "out" / png).read_bytes()[:4] == b"\x89PNG"
    result = invoke(["sweep", name, "--plot", "x.png", "--plot-x", "colour"], 2)
    assert result.stderr == "Error: --plot-x colour: not a config key (e.g. T, M, N, cell, seed)\n"
    assert not (tmp_path / "x.png").exists()
