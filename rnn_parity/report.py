"""Turn results into plain data: the JSON report and the exit code.

The JSON layout is documented field by field in README ("JSON report").
"""

from __future__ import annotations

from .check import CheckResult
from .errors import EXIT_OK, EXIT_PARITY

__all__ = ["check_report", "exit_code"]

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
