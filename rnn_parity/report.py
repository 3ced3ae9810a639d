"""Turn results into plain data: the JSON reports and the exit codes.

The JSON layouts are documented field by field in docs/check.md ("JSON report"),
docs/verify-export.md and docs/sweeps.md ("Reports").
"""

from __future__ import annotations

from .checker import SEQUENCE, CheckResult
from .compare import Comparison
from .errors import EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_OK, EXIT_PARITY
from .recurrent import WRAPPERS, cell_of

__all__ = [
    "case_entry",
    "case_list",
    "check_report",
    "exit_code",
    "export_report",
    "gate_exit_code",
    "gradients_report",
    "installed_versions",
    "sweep_exit_code",
    "sweep_report",
    "verify_report",
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


def _time_fields(timeline) -> dict:
    if timeline is None:  # time_profile off
        keys = (
            "time_layer",
            "timestep_max_abs_diff",
            "timestep_low_max_abs_diff",
            "first_divergence",
            "time_tolerance",
            "error_growth_per_step",
        )
        return dict.fromkeys(keys)
    return {
        "time_layer": timeline.layer,
        "timestep_max_abs_diff": timeline.keras_error,
        "timestep_low_max_abs_diff": timeline.low_error,
        "first_divergence": timeline.first_divergence,
        "time_tolerance": {
            "atol": timeline.tolerance.atol,
            "rtol": timeline.tolerance.rtol,
            "reference_scale": timeline.scale,
        },
        "error_growth_per_step": timeline.growth_per_step,
    }


def check_report(result: CheckResult) -> dict:
    """The ``check --format json`` object (docs/check.md, "JSON report")."""
    three = result.three_way
    timeline = result.time
    report = {
        **_headline(result.passed, result.output),
        "tolerance": result.tolerance.to_dict(),
        "roundoff_ratio": three.roundoff_ratio,
        "diagnosis": three.diagnosis,
        "three_way": three.to_dict(),
        **_time_fields(timeline),
        "config": result.spec.public_config(),
        "param_counts": {
            **{layer.desc.name: layer.keras_params for layer in result.layers},
            "total": result.total_params,
        },
        "layers": [_layer_entry(layer) for layer in result.layers],
        "states": {name: c.to_dict() for name, c in result.states.items()},
        "versions": result.versions,
        "environment": result.environment,
        "seconds": result.seconds,
        "known_differences": _known_differences(result),
        "verdict": "impl_vs_keras" if result.impl is not None else "keras_vs_reference",
        "keras_passed": result.keras_passed,
        "impl": _impl_entry(result.impl) if result.impl is not None else None,
    }
    if result.gradients is not None:
        report["gradients"] = gradients_report(result.gradients)
    return report


def _impl_side(parity, names: dict) -> dict | None:
    """One comparison of the user's arrays: ``output``, ``hidden`` and states by name."""
    if parity is None:
        return None
    return {
        names.get(name, name): {**entry.comparison.to_dict(), "first_divergence": entry.first_bad_step}
        for name, entry in parity.arrays.items()
    }


def _impl_entry(impl) -> dict:
    """The ``impl`` object of a check report (docs/your-implementation.md)."""
    names = {impl.output_name: "output", SEQUENCE: "hidden"}
    hidden = impl.vs_keras.arrays.get(SEQUENCE) if impl.vs_keras is not None else None
    three = impl.three_way
    return {
        "target": impl.target,
        "passed": impl.passed,
        "max_abs_diff": impl.max_abs_diff,
        "dtype": impl.dtype,
        "returned_dtype": impl.returned_dtype,
        "failure": impl.failure.to_dict() if impl.failure is not None else None,
        "vs_keras": _impl_side(impl.vs_keras, names),
        "vs_reference": _impl_side(impl.vs_reference, names),
        "first_divergence": hidden.first_bad_step if hidden is not None else None,
        "roundoff_ratio": three.roundoff_ratio if three is not None else None,
        "three_way": {
            "low_dtype": three.low_dtype,
            "impl_vs_truth": three.keras_vs_truth,
            "low_vs_truth": three.low_vs_truth,
        }
        if three is not None
        else None,
        "suspected_mistakes": [suspect.to_dict() for suspect in impl.suspects],
        "mistakes_tried": impl.mistakes_tried,
        "seconds": impl.seconds,
    }


def _known_differences(result: CheckResult) -> list[dict]:
    """The named backend behaviours (rnn_parity.backend_notes) that can explain a failing check."""
    from .backend_notes import applying

    if result.passed:
        return []
    return [d.to_dict() for d in applying(result.spec, result.environment.get("keras_backend", "tensorflow"))]


def exit_code(result) -> int:
    """0 when parity holds, 1 when it is violated (check, verify and export results alike)."""
    return EXIT_OK if result.passed else EXIT_PARITY


def _verify_layer_entry(layer) -> dict:
    cfg = layer.config
    inner = cfg.get("layer", {}) if layer.class_name in WRAPPERS else {}
    cell = cell_of(layer.class_name, cfg)
    units = cfg.get("units", inner.get("config", {}).get("units"))
    return {
        "name": layer.name,
        "class_name": layer.class_name,
        "cell": cell.class_name if cell else None,
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
    return {
        **_headline(result.passed, result.output),
        "command": "verify",
        "first_failure": _first_failure(result),
        "keras_side": dict(result.keras_side),
        "model": {
            "path": str(mf.path),
            "format": mf.format,
            "class_name": result.graph["keras_class"],
            "name": result.graph["name"],
            "keras_version": mf.keras_version,
            "keras2_rewrites": None if result.keras2_rewrites is None else list(result.keras2_rewrites),
            "sha256": mf.sha256,
            "inputs": result.graph["inputs"],
            "outputs": list(result.outputs),
        },
        "config": {
            "input": opts.input,
            "N": feeds.N,
            "T": feeds.T,
            "seed": None if opts.input is not None else opts.seed_value,
            "atol": opts.atol,
            "rtol": opts.rtol,
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
        "dtype": result.dtype,
        "roundtrip": {name: c.to_dict() for name, c in result.roundtrip.items()},
    }
    return report


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
        "jax": version("jax"),
        "torch": version("torch"),
        "backend": os.environ.get("KERAS_BACKEND", "tensorflow"),
    }


def case_list(cases) -> list[dict]:
    """The cases a sweep would run (``--dry-run``): name, config file, every option, and the
    options that differ from ``check``'s defaults (sizes and the Keras call aside) as ``key=value`` text."""
    from .spec import CheckSpec

    default = CheckSpec().public_config()
    shown_apart = ("N", "T", "D", "M", "K", "keras_call")
    rows = []
    for case in cases:
        config = case.spec.public_config()
        options = [f"{k}={v}" for k, v in config.items() if k not in shown_apart and v != default[k]]
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
    return gate_exit_code(interrupted=result.interrupted, failed=result.count("fail"), errors=result.count("error"))


def gate_exit_code(*, interrupted: bool, failed: int, errors: int) -> int:
    """The sweep's rule from its counts (``merge-reports`` applies it to merged shards)."""
    if interrupted:
        return EXIT_INTERRUPTED
    if failed:
        return EXIT_PARITY
    if errors:
        return EXIT_INTERNAL
    return EXIT_OK


def sweep_report(result, shard: dict | None = None) -> dict:
    """The ``sweep --json`` object (finished cases in config order, those not run by name).

    ``shard`` is :func:`~rnn_parity.shards.shard_block` for a ``--shard I/N`` run, else None."""
    from . import __version__

    entries = [case_entry(result.cases[o.index], o) for o in result.outcomes]
    versions = next((o.report["versions"] for o in result.outcomes if o.report), None) or installed_versions()
    configs = list(dict.fromkeys(case.config for case in result.cases))
    if shard is not None:  # a shard of several configs may hold no case of some of them
        configs = list(dict.fromkeys(c["config_file"] for c in shard["sweep_cases"]))
    return {
        "schema_version": SCHEMA_VERSION,
        "configs": configs,
        "shard": shard,
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
        "versions": {"rnn_parity": __version__, **versions},
    }


def gradients_report(result) -> dict:
    """The ``gradients`` object of a check report (see docs/gradients.md, "JSON report")."""
    from .gradients import FD_STEP

    report = {
        "passed": result.passed,
        "max_abs_diff": result.max_abs_diff,
        "loss": result.loss,
        "arrays": {
            name: {**entry.comparison.to_dict(), "tolerance": entry.tolerance.to_dict()}
            for name, entry in result.parity.arrays.items()
        },
        "dh_norm": None,
        "fd_check": None,
        "seconds": result.seconds,
    }
    if result.steps is not None:
        report["dh_norm"] = {
            "layer": result.steps.layer,
            "reference": result.steps.reference,
            "keras": result.steps.keras,
        }
    if result.fd is not None:
        report["fd_check"] = {
            "passed": result.fd.passed,
            "max_rel_error": result.fd.max_error,
            "tolerance": result.fd.tolerance,
            "step": FD_STEP,
            "arrays": {
                name: {"rel_error": error, "checked": result.fd.checked[name]}
                for name, error in result.fd.errors.items()
            },
        }
    return report
