"""``check --backend all``: the same case on every installed Keras backend, each in its own process.

Keras binds its backend when it is first imported, so each backend runs the
case in a child process (``python -m rnn_parity.all_backends``, with
``KERAS_BACKEND`` set) that writes its full ``check`` report and the arrays
Keras computed (every layer's output and returned state) into a temporary
folder. The parent compares those arrays backend against backend and returns
one report (docs/backends.md, "check --backend all"):

- ``backends``: per backend that ran, its full check report, or
  ``{"status": "error", "error": ...}`` when the case crashed that backend only;
- ``skipped``: per backend that is not installed, the command that installs it;
- ``differences``: per pair of backends that ran, the largest ``|a - b|`` over
  every compared array and the array where it is;
- ``passed`` only when every backend that ran passed.

Only installed backends run; with none installed it is an InvalidInput (exit 2).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from itertools import combinations
from pathlib import Path

import numpy as np

from .backend import BACKENDS, install_command, installed_backends
from .errors import EXIT_INTERNAL, EXIT_OK, EXIT_PARITY, InvalidInput
from .spec import CheckSpec

__all__ = ["all_exit_code", "run_all"]

_REPORT = "report.json"
_ARRAYS = "arrays.npz"
#: The interpreter each backend's process runs (this one).
PYTHON = sys.executable
#: A backend that takes longer than this on one case is reported as an error.
TIMEOUT_SECONDS = 1800


def _keras_arrays(spec: CheckSpec) -> dict[str, np.ndarray]:
    """What Keras computes for the case, every layer's output and returned state, by name."""
    from . import keras_runner
    from .architecture import layers_for
    from .case import make_case
    from .keras_call import resolve_one

    spec = resolve_one(spec)
    layers = layers_for(spec)
    result = keras_runner.run_keras(
        layers, make_case(spec, layers), stateful=spec.stateful, dtype=spec.keras_dtype, mode=spec.keras_call
    )
    arrays = {}
    for name, value in result.outputs.items():
        parts = value if isinstance(value, list) else [value]
        for i, part in enumerate(parts):
            arrays[name if len(parts) == 1 else f"{name}[{i}]"] = np.asarray(part)
    for name, states in result.states.items():
        for i, state in enumerate(states):
            arrays[f"{name}.state{i}"] = np.asarray(state)
    return arrays


def _child(out_dir: str) -> int:
    """In the child process: run the check on this process's backend and write report and arrays."""
    from .checker import run_check
    from .report import check_report
    from .sweep import _describe

    spec = CheckSpec.model_validate_json(sys.stdin.read())
    out = Path(out_dir)
    try:
        result = run_check(spec)
        report = check_report(result)
        np.savez(out / _ARRAYS, **_keras_arrays(spec))
    except Exception as exc:  # noqa: BLE001 - an error of this backend only; the parent reports it
        report = {"status": "error", "passed": False, "error": _describe(exc)}
    from .render import to_json

    (out / _REPORT).write_text(to_json(report), encoding="utf-8")
    return 0


def _run_one(name: str, spec: CheckSpec) -> tuple[dict, dict[str, np.ndarray]]:
    with tempfile.TemporaryDirectory(prefix=f"rnn-parity-{name}-") as tmp:
        env = {**os.environ, "KERAS_BACKEND": name}
        started = time.perf_counter()
        try:
            proc = subprocess.run(
                [PYTHON, "-m", "rnn_parity.all_backends", tmp],
                input=spec.model_dump_json(),
                capture_output=True,
                text=True,
                env=env,
                timeout=TIMEOUT_SECONDS,
            )
        except subprocess.TimeoutExpired:
            return {"status": "error", "passed": False, "error": f"Timeout: no result after {TIMEOUT_SECONDS} s"}, {}
        seconds = time.perf_counter() - started
        report_path = Path(tmp) / _REPORT
        if not report_path.exists():
            lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
            last = lines[-1] if lines else "no output"
            error = f"BackendDied: the {name} process ended with exit code {proc.returncode} ({last})"
            return {"status": "error", "passed": False, "error": error, "process_seconds": seconds}, {}
        report = json.loads(report_path.read_text(encoding="utf-8"))
        report["process_seconds"] = seconds
        arrays_path = Path(tmp) / _ARRAYS
        arrays = {}
        if arrays_path.exists():
            with np.load(arrays_path) as data:
                arrays = {k: data[k] for k in data.files}
        return report, arrays


def _difference(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> dict:
    """The largest ``|a - b|`` over the arrays both hold, and where."""
    worst, where = 0.0, None
    for key in a.keys() & b.keys():
        x, y = a[key].astype(np.float64), b[key].astype(np.float64)
        if x.shape != y.shape:
            return {"max_abs_diff": float("inf"), "array": key, "note": f"shapes differ: {x.shape} and {y.shape}"}
        with np.errstate(invalid="ignore", over="ignore"):
            d = np.abs(x - y)
        value = float(np.max(np.where(np.isnan(d), np.inf, d))) if d.size else 0.0
        if where is None or value > worst:
            worst, where = value, key
    return {"max_abs_diff": worst, "array": where}


def run_all(spec: CheckSpec) -> dict:
    """Run ``spec`` on every installed backend; return the combined report (module docstring)."""
    names = installed_backends()
    if not names:
        commands = " or ".join(install_command(n) for n in BACKENDS)
        raise InvalidInput(f"--backend all: no Keras backend is installed; {commands}")
    reports, arrays = {}, {}
    for name in names:
        reports[name], arrays[name] = _run_one(name, spec)
    differences = []
    for a, b in combinations(names, 2):
        if arrays[a] and arrays[b]:
            differences.append({"backends": [a, b], **_difference(arrays[a], arrays[b])})
    statuses = [r.get("status") for r in reports.values()]
    passed = all(s == "pass" for s in statuses)
    status = "pass" if passed else ("fail" if "fail" in statuses else "error")
    finite = [d["max_abs_diff"] for d in differences]
    return {
        "passed": passed,
        "status": status,
        "command": spec.command_line("check") + " --backend all",
        "config": spec.public_config(),
        "backends": reports,
        "skipped": {n: install_command(n) for n in BACKENDS if n not in names},
        "differences": differences,
        "max_backend_difference": max(finite) if finite else None,
    }


def all_exit_code(report: dict) -> int:
    """0 every backend passed; 1 one violated parity; 3 one errored (and none violated parity)."""
    if report["passed"]:
        return EXIT_OK
    return EXIT_PARITY if report["status"] == "fail" else EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1]))
