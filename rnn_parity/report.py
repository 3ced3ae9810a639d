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
    """The ``check --format json`` object (README, "JSON report")."""
    out = result.output
    three = result.three_way
    timeline = result.time
    return {
        "schema_version": SCHEMA_VERSION,
        "passed": result.passed,
        "status": "pass" if result.passed else "fail",
        "max_abs_diff": out.max_abs_diff,
        "mean_abs_diff": out.mean_abs_diff,
        "p99_abs_diff": out.p99_abs_diff,
        "max_rel_diff": out.max_rel_diff,
        "mean_rel_diff": out.mean_rel_diff,
        "p99_rel_diff": out.p99_rel_diff,
        "atol": out.atol,
        "rtol": out.rtol,
        "tolerance": result.tolerance.to_dict(),
        "worst_index": list(out.worst_index),
        "worst_axes": list(out.worst_axes),
        "keras_at_worst": out.actual_at_worst,
        "reference_at_worst": out.expected_at_worst,
        "required_atol": out.required_atol,
        "required_rtol": out.required_rtol,
        "mismatches": out.mismatches,
        "mismatch_fraction": out.mismatch_fraction,
        "size": out.size,
        "nonfinite": out.nonfinite,
        "roundoff_ratio": three.roundoff_ratio,
        "diagnosis": three.diagnosis,
        "three_way": {
            "low_dtype": three.low_dtype,
            "keras_vs_truth": three.keras_vs_truth,
            "low_vs_truth": three.low_vs_truth,
            "keras_vs_low": three.keras_vs_low,
        },
        "time_layer": timeline.layer,
        "timestep_max_abs_diff": timeline.keras_error,
        "timestep_low_max_abs_diff": timeline.low_error,
        "first_divergence": timeline.first_divergence,
        "time_tolerance": {"atol": timeline.tolerance.atol, "rtol": timeline.tolerance.rtol,
                           "reference_scale": timeline.scale},
        "error_growth_per_step": timeline.growth_per_step,
        "config": result.spec.public_config(),
        "param_counts": {**{layer.desc.name: layer.keras_params for layer in result.layers},
                         "total": result.total_params},
        "layers": [_layer_entry(layer) for layer in result.layers],
        "states": {name: c.to_dict() for name, c in result.states.items()},
        "versions": result.versions,
        "environment": result.environment,
        "seconds": result.seconds,
    }


def exit_code(result: CheckResult) -> int:
    return EXIT_OK if result.passed else EXIT_PARITY
