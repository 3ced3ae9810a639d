"""Turn results into plain data: the JSON reports and the exit codes.

The JSON layouts are documented field by field in README ("JSON report",
"Sweep reports").
"""

from __future__ import annotations

from .check import CheckResult
from .errors import EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_OK, EXIT_PARITY

__all__ = [
    "case_entry",
    "case_list",
    "check_report",
    "exit_code",
    "installed_versions",
    "sweep_exit_code",
    "sweep_report",
]

#: Bumped when a field changes meaning or disappears.
SCHEMA_VERSION = 1


def _layer_entry(layer) -> dict:
    desc = layer.desc
    return {
        "name": desc.name,
        "class_name": desc.class_name,
        "cell": desc.cell_class,
        "units": desc.cell_config.get("units") if desc.is_recurrent else desc.config.get("units"),
        "options": desc.options() if desc.is_recurrent else desc.config,
        "weights": [{"name": w.name, "symbol": w.symbol, "shape": list(w.shape)} for w in desc.weights],
        "params": layer.keras_params,
        "params_formula": desc.param_count,
        **layer.comparison.to_dict(),
    }


def check_report(result: CheckResult) -> dict:
    """The ``check --format json`` object."""
    out = result.output
    return {
        "schema_version": SCHEMA_VERSION,
        "passed": result.passed,
        "status": "pass" if result.passed else "fail",
        "max_abs_diff": out.max_abs_diff,
        "max_rel_diff": out.max_rel_diff,
        "mean_abs_diff": out.mean_abs_diff,
        "atol": out.atol,
        "rtol": out.rtol,
        "worst_index": list(out.worst_index),
        "keras_at_worst": out.actual_at_worst,
        "reference_at_worst": out.expected_at_worst,
        "required_atol": out.required_atol,
        "mismatches": out.mismatches,
        "size": out.size,
        "nonfinite": out.nonfinite,
        "config": result.spec.public_config(),
        "param_counts": {**{layer.desc.name: layer.keras_params for layer in result.layers},
                         "total": result.total_params},
        "layers": [_layer_entry(layer) for layer in result.layers],
        "states": {name: c.to_dict() for name, c in result.states.items()},
        "versions": result.versions,
        "seconds": result.seconds,
    }


def exit_code(result: CheckResult) -> int:
    return EXIT_OK if result.passed else EXIT_PARITY


# ----- sweeps -----
def installed_versions() -> dict[str, str | None]:
    """The stack's versions from package metadata, without importing TensorFlow."""
    import os
    import platform
    from importlib import metadata

    def version(name: str) -> str | None:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return None

    return {
        "python": platform.python_version(),
        "numpy": version("numpy"),
        "keras": version("keras"),
        "tensorflow": version("tensorflow"),
        "backend": os.environ.get("KERAS_BACKEND", "tensorflow"),
    }


def case_list(cases) -> list[dict]:
    """The cases a sweep would run (``--dry-run``): name, config file, every option, and the
    options that differ from ``check``'s defaults (sizes aside) as ``key=value`` text."""
    from .spec import CheckSpec

    default = CheckSpec().public_config()
    rows = []
    for case in cases:
        config = case.spec.public_config()
        options = [f"{k}={v}" for k, v in config.items() if k not in ("N", "T", "D", "M", "K") and v != default[k]]
        rows.append({"name": case.name, "config_file": case.config, "config": config, "options": ", ".join(options)})
    return rows


def case_entry(case, outcome) -> dict:
    """One case of the sweep JSON: its ``check`` JSON with ``name``, ``config_file``, ``status``,
    ``error`` and ``seconds`` (the case's wall time; the check's own timings move to ``check_seconds``)."""
    entry = {
        "name": case.name,
        "config_file": case.config,
        "status": outcome.status,
        "error": outcome.error,
        "seconds": outcome.seconds,
    }
    if outcome.report is None:
        entry["config"] = case.spec.public_config()
        return entry
    for key, value in outcome.report.items():
        if key == "seconds":
            entry["check_seconds"] = value
        elif key != "status":
            entry[key] = value
    return entry


def sweep_exit_code(result) -> int:
    """130 interrupted, else 1 if any case failed, else 3 if any case errored, else 0."""
    if result.interrupted:
        return EXIT_INTERRUPTED
    if result.count("fail"):
        return EXIT_PARITY
    if result.count("error"):
        return EXIT_INTERNAL
    return EXIT_OK


def sweep_report(result) -> dict:
    """The ``sweep --json`` object (finished cases in config order, those not run by name)."""
    entries = [case_entry(result.cases[o.index], o) for o in result.outcomes]
    versions = next((o.report["versions"] for o in result.outcomes if o.report), None) or installed_versions()
    configs = list(dict.fromkeys(case.config for case in result.cases))
    return {
        "schema_version": SCHEMA_VERSION,
        "configs": configs,
        "cases": entries,
        "not_run": [{"name": c.name, "config_file": c.config} for c in result.not_run],
        "summary": {
            "total": len(result.cases),
            "passed": result.count("pass"),
            "failed": result.count("fail"),
            "errors": result.count("error"),
            "not_run": len(result.not_run),
            "interrupted": result.interrupted,
            "stopped_early": result.stopped_early,
            "workers": result.workers,
            "seconds": result.seconds,
            "exit_code": sweep_exit_code(result),
        },
        "versions": versions,
    }
