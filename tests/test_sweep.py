"""Running sweeps: summary, reports, isolation, --fail-fast, interruption, exit codes, atomic writes.

These run real (tiny) checks against Keras; faults are injected by wrapping
``rnn_parity.sweep.run_check`` for one case.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from junitparser import Error, Failure, JUnitXml, Skipped

from rnn_parity import files
from rnn_parity import sweep as sweep_module
from rnn_parity.checker import run_check

from conftest import invoke

QUICK = """
defaults: {N: 2, D: 2, M: 3, K: 2}
cases:
  - {name: a, T: 2}
  - {name: b, T: 3, cell: gru}
  - {name: c, T: 4, cell: lstm}
  - {name: d, T: 5, mask: post}
"""

IMPOSSIBLE = """
# one case no float32 computation can meet: exact equality with a float64 reference over 300 steps
defaults: {N: 2, D: 2, M: 3, K: 2}
cases:
  - {name: ordinary, T: 3}
  - {name: impossible, T: 300, N: 4, M: 8, atol: 0, rtol: 0, reference_dtype: float64}
  - {name: also-ordinary, T: 4, cell: gru}
"""


def fault_in(monkeypatch, timesteps: int, exc: BaseException):
    """Make the case with ``T == timesteps`` raise ``exc`` inside the check."""

    def faulty(spec, **kwargs):
        if spec.T == timesteps:
            raise exc
        return run_check(spec, **kwargs)

    monkeypatch.setattr(sweep_module, "run_check", faulty)


def load(path) -> dict:
    return json.loads(Path(path).read_text())


#: The three reports, two of them in folders that do not exist yet.
REPORTS = ["--json", "out/r.json", "--junit-xml", "deep/er/r.xml", "--markdown", "r.md"]


# ----- a passing sweep -----
@pytest.mark.keras
def test_a_passing_sweep_prints_the_table_and_the_counts_and_writes_three_reports(cfg, tmp_path):
    result = invoke(["sweep", cfg(QUICK), *REPORTS], 0)
    out = result.stdout.splitlines()
    assert out[-1] == "4 passed, 0 failed, 0 errors"
    table = [line.split() for line in out if line.split()[:1] in (["a"], ["b"], ["c"], ["d"])]
    assert [row[0] for row in table] == ["a", "b", "c", "d"]
    assert all("PASS" in row for row in table)
    assert table[1][1:6] == ["N=2", "T=3", "D=2", "M=3", "K=2"]
    # progress: plain lines on a stderr that is not a terminal
    progress = result.stderr.splitlines()
    assert [line.split()[:3] for line in progress] == [
        ["[1/4]", "PASS", "a"],
        ["[2/4]", "PASS", "b"],
        ["[3/4]", "PASS", "c"],
        ["[4/4]", "PASS", "d"],
    ]
    assert "0 failed · 0 errors · elapsed 0:00:" in progress[-1] and progress[-1].endswith("ETA 0:00:00")

    data = load(tmp_path / "out/r.json")
    assert [c["name"] for c in data["cases"]] == ["a", "b", "c", "d"]
    first = data["cases"][0]
    assert (first["status"], first["error"], first["config_file"], first["passed"]) == ("pass", None, "c.yaml", True)
    assert isinstance(first["seconds"], float) and set(first["check_seconds"]) == {"keras", "reference"}
    assert first["config"]["T"] == 2 and first["layers"][0]["name"] == "simple_rnn"
    assert data["summary"] | {"seconds": 0} == {
        "total": 4, "passed": 4, "failed": 0, "errors": 0, "not_run": 0, "interrupted": False,
        "stopped_early": False, "workers": 1, "seconds": 0, "exit_code": 0,
    }  # fmt: skip
    assert data["configs"] == ["c.yaml"] and data["not_run"] == [] and data["shard"] is None
    assert set(data["versions"]) == {"rnn_parity", "python", "numpy", "keras", "tensorflow", "jax", "torch", "backend"}

    xml = JUnitXml.fromfile(str(tmp_path / "deep/er/r.xml"))
    [suite] = list(xml)
    cases = list(suite)
    assert [(c.name, c.classname) for c in cases] == [(n, "c") for n in "abcd"]
    assert all(c.is_passed and c.time >= 0 for c in cases)
    assert (suite.tests, suite.failures, suite.errors, suite.name) == (4, 0, 0, "c.yaml")

    md = (tmp_path / "r.md").read_text().splitlines()
    assert md[0] == "### rnn-parity sweep: ✅ parity holds"
    assert "**4 passed, 0 failed, 0 errors**" in md[2]
    rows = [line for line in md if line.startswith("| `")]
    assert [row.split("|")[1].strip() for row in rows] == ["`a`", "`b`", "`c`", "`d`"]
    assert all("✅ PASS" in row for row in rows)


@pytest.mark.keras
def test_the_smoke_config_passes_with_valid_reports(tmp_path, monkeypatch):
    """The issue's first "done when": smoke.yaml, three reports, JUnit read by a real parser."""
    smoke = Path(__file__).resolve().parent.parent / "configs" / "smoke.yaml"
    monkeypatch.chdir(tmp_path)
    result = invoke(["sweep", str(smoke), "--json", "r.json", "--junit-xml", "out/r.xml", "--markdown", "r.md"], 0)
    data = load("r.json")
    n = data["summary"]["total"]
    assert result.stdout.splitlines()[-1] == f"{n} passed, 0 failed, 0 errors"
    [suite] = list(JUnitXml.fromfile("out/r.xml"))
    assert len(list(suite)) == n == len(data["cases"])
    assert sum(line.startswith("| `") for line in Path("r.md").read_text().splitlines()) == n


# ----- failures, errors, exit codes -----
@pytest.mark.keras
def test_an_impossible_case_fails_alone_and_every_report_names_it(cfg, tmp_path):
    result = invoke(["sweep", cfg(IMPOSSIBLE), *REPORTS], 1)
    out = result.stdout.splitlines()
    assert out[-1] == "2 passed, 1 failed, 0 errors"
    rows = [line.split() for line in out if line.split()[:1] in (["ordinary"], ["impossible"], ["also-ordinary"])]
    assert [row[0] for row in rows] == ["impossible", "ordinary", "also-ordinary"]  # failures first
    assert "FAIL" in rows[0] and "PASS" in rows[1] and "PASS" in rows[2]

    data = load(tmp_path / "out/r.json")
    by_name = {c["name"]: c for c in data["cases"]}
    assert [c["name"] for c in data["cases"]] == ["ordinary", "impossible", "also-ordinary"]  # config order
    bad = by_name["impossible"]
    assert bad["status"] == "fail" and bad["passed"] is False and bad["max_abs_diff"] > 0
    assert (bad["atol"], bad["rtol"]) == (0.0, 0.0)
    assert data["summary"]["failed"] == 1 and data["summary"]["exit_code"] == 1

    [suite] = list(JUnitXml.fromfile(str(tmp_path / "deep/er/r.xml")))
    results = {c.name: c.result for c in suite}
    [failure] = results["impossible"]
    assert isinstance(failure, Failure) and failure.type == "ParityFailure"
    assert failure.message.startswith(f"max abs diff {bad['max_abs_diff']:.3e}, tolerance atol 0 + rtol 0*|numpy|")
    assert "smallest passing atol" in failure.text
    assert results["ordinary"] == [] and results["also-ordinary"] == []

    md = (tmp_path / "r.md").read_text()
    assert md.startswith("### rnn-parity sweep: ❌ parity violated")
    first_row = next(line for line in md.splitlines() if line.startswith("| `"))
    assert first_row.startswith("| `impossible` |") and "❌ FAIL" in first_row and "fails: " in first_row


@pytest.mark.keras
def test_an_exception_in_one_case_is_its_error_and_the_sweep_goes_on(cfg, tmp_path, monkeypatch):
    fault_in(monkeypatch, 3, RuntimeError("boom\nsecond line"))
    result = invoke(["sweep", cfg(QUICK), *REPORTS], 3)
    out = result.stdout.splitlines()
    assert out[-2:] == ["error in b: RuntimeError: boom", "3 passed, 0 failed, 1 errors"]
    data = load(tmp_path / "out/r.json")
    b = data["cases"][1]
    assert (b["name"], b["status"], b["error"]) == ("b", "error", "RuntimeError: boom\nsecond line")
    assert b["config"]["cell"] == "gru" and "max_abs_diff" not in b
    assert [c["status"] for c in data["cases"]] == ["pass", "error", "pass", "pass"]
    [suite] = list(JUnitXml.fromfile(str(tmp_path / "deep/er/r.xml")))
    [error] = {c.name: c.result for c in suite}["b"]
    assert isinstance(error, Error) and error.type == "RuntimeError" and error.message == "RuntimeError: boom"
    assert "⚠️ ERROR" in (tmp_path / "r.md").read_text()


@pytest.mark.keras
def test_a_memory_error_is_recorded_too(cfg, monkeypatch):
    fault_in(monkeypatch, 4, MemoryError())
    result = invoke(["sweep", cfg(QUICK)], 3)
    assert "error in c: MemoryError" in result.stdout.splitlines()


@pytest.mark.keras
def test_a_failure_outranks_an_error(cfg, monkeypatch):
    fault_in(monkeypatch, 4, ValueError("bad"))
    result = invoke(["sweep", cfg(IMPOSSIBLE)], 1)
    assert result.stdout.splitlines()[-1] == "1 passed, 1 failed, 1 errors"


@pytest.mark.keras
def test_fail_fast_stops_after_the_first_error(cfg, tmp_path, monkeypatch):
    fault_in(monkeypatch, 3, RuntimeError("boom"))
    result = invoke(["sweep", cfg(QUICK), "--fail-fast", *REPORTS], 3)
    out = result.stdout.splitlines()
    assert out[-2:] == [
        "stopped at the first failure or error (--fail-fast): 2 of 4 cases did not run",
        "1 passed, 0 failed, 1 errors",
    ]
    data = load(tmp_path / "out/r.json")
    assert [c["name"] for c in data["cases"]] == ["a", "b"]
    assert data["not_run"] == [{"name": "c", "config_file": "c.yaml"}, {"name": "d", "config_file": "c.yaml"}]
    assert data["summary"]["stopped_early"] is True and data["summary"]["not_run"] == 2
    [suite] = list(JUnitXml.fromfile(str(tmp_path / "deep/er/r.xml")))
    skipped = [c.name for c in suite if c.result and isinstance(c.result[0], Skipped)]
    assert skipped == ["c", "d"]


@pytest.mark.keras
def test_ctrl_c_writes_the_finished_cases_marked_interrupted_and_exits_130(cfg, tmp_path, monkeypatch):
    fault_in(monkeypatch, 4, KeyboardInterrupt())
    result = invoke(["sweep", cfg(QUICK), *REPORTS], 130)
    out = result.stdout.splitlines()
    assert out[-2:] == ["interrupted: 2 of 4 cases did not run", "2 passed, 0 failed, 0 errors"]
    data = load(tmp_path / "out/r.json")
    assert [c["name"] for c in data["cases"]] == ["a", "b"]
    assert data["summary"]["interrupted"] is True and data["summary"]["exit_code"] == 130
    assert [c["name"] for c in data["not_run"]] == ["c", "d"]
    [suite] = list(JUnitXml.fromfile(str(tmp_path / "deep/er/r.xml")))
    messages = {c.name: c.result[0].message for c in suite if c.result}
    assert messages == {"c": "not run: interrupted", "d": "not run: interrupted"}
    assert (tmp_path / "r.md").read_text().startswith("### rnn-parity sweep: ⏹ interrupted")


# ----- writing reports -----
@pytest.mark.keras
def test_reports_are_written_atomically_into_new_folders(cfg, tmp_path, monkeypatch):
    written = []
    real = files.write_atomic

    def spy(path, data):
        written.append(str(path))
        real(path, data)

    monkeypatch.setattr(files, "write_atomic", spy)
    invoke(["sweep", cfg(QUICK), "--filter", "a", *REPORTS], 0)
    assert written == ["out/r.json", "deep/er/r.xml", "r.md"]
    leftovers = [p for p in tmp_path.rglob("*") if p.name.startswith(".")]
    assert leftovers == []


def test_write_atomic_leaves_the_old_file_when_writing_fails(tmp_path, monkeypatch):
    target = tmp_path / "r.json"
    target.write_text("old")

    def broken_fsync(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError):
        files.write_atomic(target, "new")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


def test_on_a_terminal_progress_is_a_bar_with_done_failed_elapsed_and_eta():
    import io
    from types import SimpleNamespace

    from rich.console import Console

    from rnn_parity.progress import SweepProgress

    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=150, color_system=None)
    with SweepProgress(3, console=console) as progress:
        assert progress.live
        progress.advance(SimpleNamespace(name="a"), SimpleNamespace(status="pass", seconds=0.1))
        progress.advance(SimpleNamespace(name="b"), SimpleNamespace(status="fail", seconds=0.1))
        progress._bar.refresh()
        shown = buffer.getvalue()
    assert "2/3" in shown and "1 failed" in shown and "elapsed" in shown and "ETA" in shown
    assert (progress.done, progress.failed) == (2, 1)


@pytest.mark.keras
def test_a_sweep_case_reports_what_check_reports_for_the_same_options(cfg, tmp_path):
    from conftest import invoke_json

    invoke(["sweep", cfg("cases:\n  - {T: 3, cell: gru, M: [4, 3], mask: post, N: 2}\n"), "--json", "r.json"], 0)
    [case] = load(tmp_path / "r.json")["cases"]
    direct = invoke_json(["check", "--T", "3", "--cell", "gru", "--M", "4,3", "--mask", "post", "--N", "2"])
    sweep_only = {"name", "config_file", "status", "error", "seconds", "check_seconds"}
    # A passing case skips the time profile (a gate needs it only to explain a failure).
    timing = {"time_layer", "timestep_max_abs_diff", "timestep_low_max_abs_diff", "first_divergence",
              "time_tolerance", "error_growth_per_step"}  # fmt: skip
    # The one designed difference: the sweep decided `keras_call: auto` over its whole config, so its
    # reproduce command pins the call that ran; a lone check's command is the command as asked.
    sweep_command = case["environment"].pop("command")
    direct_command = direct["environment"].pop("command")
    assert sweep_command == f"{direct_command} --keras-call {case['config']['keras_call']}"
    assert {k: v for k, v in case.items() if k not in sweep_only | timing} == {
        k: v for k, v in direct.items() if k not in ("seconds", "status") and k not in timing
    }
    assert case["status"] == direct["status"] == "pass"
    assert all(case[k] is None for k in timing) and direct["timestep_max_abs_diff"]


@pytest.mark.keras
def test_a_failing_sweep_case_is_rerun_with_its_time_profile(cfg, tmp_path):
    invoke(["sweep", cfg("cases:\n  - {T: 30, atol: 0.0, rtol: 0.0, N: 2}\n"), "--json", "r.json"], 1)
    [case] = load(tmp_path / "r.json")["cases"]
    assert case["status"] == "fail"
    assert len(case["timestep_max_abs_diff"]) == 30 and case["first_divergence"] is not None
