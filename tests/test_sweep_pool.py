"""``--workers``: a process pool gives the serial results, in config order; a dying worker is survived."""

from __future__ import annotations

import json
import os
import textwrap

import pytest

from rnn_parity import sweep as sweep_module
from rnn_parity.config import load_cases
from rnn_parity.sweep import CaseOutcome

from conftest import invoke

CONFIG = """
defaults: {N: 3, D: 2, K: 2}
grid:
  cell: [simple_rnn, lstm, gru]
  T: [1, 7]
cases:
  - {name: stack-masked, M: [4, 3], mask: pre, return_sequences: true, cell: gru}
  - {name: bidirectional, bidirectional: sum, cell: lstm, T: 5}
  - {name: stateful, stateful: true, T: 4}
"""

#: What changes from run to run: wall times, and how many processes ran the sweep.
TIMING = {"seconds", "check_seconds"}


def without_timing(report: dict) -> dict:
    cases = [{k: v for k, v in case.items() if k not in TIMING} for case in report["cases"]]
    summary = {k: v for k, v in report["summary"].items() if k not in ("seconds", "workers")}
    return {**report, "cases": cases, "summary": summary}


@pytest.mark.keras
def test_two_workers_give_the_serial_results_in_config_order(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "c.yaml").write_text(textwrap.dedent(CONFIG))
    serial = invoke(["sweep", "c.yaml", "--json", "serial.json"], 0)
    pooled = invoke(["sweep", "c.yaml", "--json", "pooled.json", "--workers", "2"], 0)
    a = json.loads((tmp_path / "serial.json").read_text())
    b = json.loads((tmp_path / "pooled.json").read_text())
    assert (a["summary"]["workers"], b["summary"]["workers"]) == (1, 2)
    assert [c["name"] for c in b["cases"]] == [c["name"] for c in a["cases"]]
    assert without_timing(a) == without_timing(b)  # every difference, every layer, bit for bit
    assert serial.stdout.splitlines()[-1] == pooled.stdout.splitlines()[-1] == "9 passed, 0 failed, 0 errors"


# ----- a worker that dies -----
def light_init() -> None:
    """Workers for the crash test: no TensorFlow needed."""


def die_on_T3(index, spec) -> CaseOutcome:
    """Runs in a worker: the case with T=3 kills its process, as the kernel's OOM killer would."""
    if spec.T == 3:
        os._exit(9)
    return CaseOutcome(index, "pass", {"T": spec.T}, None, 0.0)


def test_a_case_that_kills_its_worker_is_its_error_and_the_others_still_run(tmp_path):
    (tmp_path / "c.yaml").write_text("grid:\n  T: [1, 2, 3, 4, 5, 6]\n")
    cases = load_cases([str(tmp_path / "c.yaml")])
    outcomes: dict[int, CaseOutcome] = {}
    seen = []
    interrupted, stopped = sweep_module._run_pool(
        cases, outcomes, n=2, fail_fast=False, on_done=lambda c, o: seen.append(c.name), run=die_on_T3,
        init=light_init,
    )  # fmt: skip
    assert (interrupted, stopped) == (False, False)
    assert sorted(seen) == sorted(c.name for c in cases)
    statuses = {cases[i].spec.T: o.status for i, o in outcomes.items()}
    assert statuses == {1: "pass", 2: "pass", 3: "error", 4: "pass", 5: "pass", 6: "pass"}
    assert outcomes[2].error == sweep_module.WORKER_DIED


def test_workers_option_values():
    assert sweep_module.parse_workers("auto") == "auto"
    assert sweep_module.parse_workers("3") == 3
    assert sweep_module.resolve_workers(8, 3) == 3  # never more processes than cases
    assert sweep_module.resolve_workers("auto", 100) >= 1
    for bad in ("0", "-1", "two", "1.5"):
        with pytest.raises(Exception, match="must be a positive integer or auto"):
            sweep_module.parse_workers(bad)
    assert invoke(["sweep", "x.yaml", "--workers", "two"], 2).stderr == (
        "Error: Invalid value for '--workers': must be a positive integer or auto, got 'two'\n"
    )
