"""Turn results into plain data: the JSON report and the exit code.

The JSON layout is documented field by field in README ("JSON report").
"""

from __future__ import annotations

from .check import CheckResult
from .compare import Comparison
from .errors import EXIT_OK, EXIT_PARITY

__all__ = ["check_report", "exit_code", "export_report", "verify_report"]

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


def _headline(passed: bool, out: Comparison) -> dict:
    """The top-level figures every report shares: the verdict and the model output's statistics."""
    return {
        "schema_version": SCHEMA_VERSION,
        "passed": passed,
        "status": "pass" if passed else "fail",
        "max_abs_diff": out.max_abs_diff,
        "mean_abs_diff": out.mean_abs_diff,
        "p99_abs_diff": out.p99_abs_diff,
        "max_rel_diff": out.max_rel_diff,
        "mean_rel_diff": out.mean_rel_diff,
        "p99_rel_diff": out.p99_rel_diff,
        "atol": out.atol,
        "rtol": out.rtol,
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
    }


def check_report(result: CheckResult) -> dict:
    """The ``check --format json`` object (README, "JSON report")."""
    three = result.three_way
    timeline = result.time
    return {
        **_headline(result.passed, result.output),
        "tolerance": result.tolerance.to_dict(),
        "roundoff_ratio": three.roundoff_ratio,
        "diagnosis": three.diagnosis,
        "three_way": three.to_dict(),
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


def exit_code(result) -> int:
    """0 when parity holds, 1 when it is violated (check, verify and export results alike)."""
    return EXIT_OK if result.passed else EXIT_PARITY


def _verify_layer_entry(layer) -> dict:
    cfg = layer.config
    inner = cfg.get("layer", {}) if layer.class_name in ("Bidirectional", "TimeDistributed") else {}
    cell = inner.get("class_name") if layer.class_name == "Bidirectional" else (
        layer.class_name if layer.class_name in ("SimpleRNN", "LSTM", "GRU") else None)
    units = cfg.get("units", inner.get("config", {}).get("units"))
    return {
        "name": layer.name,
        "class_name": layer.class_name,
        "cell": cell,
        "units": units,
        "inputs": list(layer.inputs),
        "initial_state": list(layer.initial_state),
        "options": cfg,
        "weights": [{"name": name, "shape": list(shape)} for name, shape in layer.weights],
        "params": layer.params,
        **layer.comparison.to_dict(),
        "passed": layer.passed,
        "output_passed": layer.comparison.passed,
        "masks": [m.to_dict() for m in layer.masks],
        "states": {name: c.to_dict() for name, c in layer.states.items()},
        "first_bad_step": layer.first_bad_step,
        "notes": list(layer.notes),
    }


def _first_failure(result) -> dict | None:
    layer = result.first_failure
    if layer is None:
        return None
    if not layer.comparison.passed:
        reason = "output"
    elif not all(m.passed for m in layer.masks):
        reason = "mask"
    else:
        reason = "state " + next(name for name, c in layer.states.items() if not c.passed)
    return {"layer": layer.name, "class_name": layer.class_name, "reason": reason, "step": layer.first_bad_step}


def verify_report(result) -> dict:
    """The ``verify --format json`` object (a :class:`~rnn_parity.verify.VerifyResult`)."""
    opts, feeds, mf = result.options, result.feeds, result.model_file
    time_dims = [shape[1] for shape in feeds.shapes().values() if len(shape) > 1]
    return {
        **_headline(result.passed, result.output),
        "command": "verify",
        "first_failure": _first_failure(result),
        "model": {
            "path": str(mf.path),
            "format": mf.format,
            "class_name": result.graph["keras_class"],
            "name": result.graph["name"],
            "keras_version": mf.keras_version,
            "sha256": mf.sha256,
            "inputs": result.graph["inputs"],
            "outputs": list(result.outputs),
        },
        "config": {
            "input": opts.input,
            "N": feeds.N,
            "T": time_dims[0] if time_dims else None,
            "seed": None if opts.input is not None else opts.seed_value,
            "atol": opts.atol_value,
            "rtol": opts.rtol_value,
            "reference_dtype": opts.reference_dtype,
            "tolerance": opts.tolerance,
            "max_mismatch_frac": opts.max_mismatch_frac,
        },
        "tolerance": result.tolerance.to_dict(),
        "roundoff_ratio": result.three_way.roundoff_ratio,
        "diagnosis": result.three_way.diagnosis,
        "three_way": result.three_way.to_dict(),
        "inputs": {"source": feeds.source, "shapes": feeds.shapes(), "lengths": feeds.lengths},
        "param_counts": {**{layer.name: layer.params for layer in result.layers}, "total": result.total_params},
        "layers": [_verify_layer_entry(layer) for layer in result.layers],
        "outputs": {name: c.to_dict() for name, c in result.outputs.items()},
        "states": {name: c.to_dict() for layer in result.layers for name, c in layer.states.items()},
        "versions": result.versions,
        "environment": result.environment,
        "seconds": result.seconds,
    }


def export_report(result) -> dict:
    """The ``export --format json`` object: the verification, then what was written."""
    report = verify_report(result.verify)
    report["command"] = "export"
    report["passed"] = result.passed
    report["status"] = "pass" if result.passed else "fail"
    report["export"] = {
        "path": str(result.path),
        "written": result.written,
        "bytes": result.size,
        "format_version": result.verify.graph.get("format_version"),
        "roundtrip": {name: c.to_dict() for name, c in result.roundtrip.items()},
    }
    return report
