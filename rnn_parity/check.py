"""One check, end to end: spec → case → (Keras, NumPy reference) → comparisons.

:func:`run_check` is the library entry point behind ``rnn-parity check``; it
returns a :class:`CheckResult` and never prints.

Every check compares three things: Keras's output, the reference in Keras's
compute dtype ("low", float32 by default) and the reference in float64 (the
ground truth). Keras against the truth, measured against what a correct
low-precision implementation gets wrong on the same case, tells rounding from
a real discrepancy (:class:`ThreeWay`). The last recurrent layer's output is
also compared at every timestep (:class:`TimeProfile`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import numpy as np

from . import backend, keras_runner
from .architecture import LayerDesc, last_recurrent, layers_for, sequence_twin
from .case import CaseData, make_case
from .compare import Comparison, compare, max_abs_error
from .environment import environment
from .errors import RnnParityError
from .runtime import SequentialRuntime, Trace
from .spec import CheckSpec
from .tolerance import ThreeWay, Tolerance, resolve, worst_three_way

__all__ = ["CheckResult", "LayerResult", "TimeProfile", "run_check", "state_names"]


@dataclass(frozen=True)
class LayerResult:
    """One layer: its description, Keras's parameter count, and its output compared."""

    desc: LayerDesc
    keras_params: int
    comparison: Comparison


@dataclass(frozen=True)
class TimeProfile:
    """The last recurrent layer's output compared at every timestep (processing order).

    Attributes:
        layer: the layer followed.
        keras_error: per timestep, ``max |keras - expected|`` over samples and units.
        low_error: per timestep, ``max |low - truth|``: the rounding of a correct
            implementation in Keras's compute dtype, for scale.
        first_divergence: the first timestep with an element over tolerance, or None.
        growth_per_step: the slope of ``log10(keras_error)`` against t (least squares
            over steps with a non-zero error), or None with fewer than 3 such steps.
    """

    layer: str
    keras_error: list[float]
    low_error: list[float]
    first_divergence: int | None
    growth_per_step: float | None
    tolerance: Tolerance
    #: max |expected| over the sequence: ``atol + rtol·scale`` is the loosest per-element tolerance
    scale: float


@dataclass(frozen=True)
class CheckResult:
    """Everything a report needs.

    ``output`` compares the model's output; ``layers`` every layer's output;
    ``states`` each final state returned with ``return_state``. ``passed`` holds
    only when every one of these comparisons passes.
    """

    spec: CheckSpec
    layers: tuple[LayerResult, ...]
    output: Comparison
    states: dict[str, Comparison]
    tolerance: Tolerance
    three_way: ThreeWay
    #: None when ``time_profile`` is off and the model does not return sequences
    time: TimeProfile | None
    total_params: int
    versions: dict[str, str | None]
    environment: dict
    seconds: dict[str, float]
    #: with ``keep_sequences``: the last batch's input ``x`` and the last recurrent
    #: layer's output at every step from Keras and from the reference (``keras``, ``reference``)
    sequences: dict | None = None

    @property
    def passed(self) -> bool:
        return all(layer.comparison.passed for layer in self.layers) and all(c.passed for c in self.states.values())


def state_names(desc: LayerDesc) -> list[str]:
    """``h`` (and ``c`` for LSTM), prefixed ``forward_``/``backward_`` inside Bidirectional."""
    names = ["h", "c"] if desc.cell_class == "LSTM" else ["h"]
    if desc.class_name == "Bidirectional":
        return [f"{side}_{n}" for side in ("forward", "backward") for n in names]
    return names


def _run_reference(layers, weights, case: CaseData, dtype: str) -> Trace:
    runtime = SequentialRuntime(layers, weights, dtype=dtype, explicit_masks=True)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):  # overflow is reported as non-finite
        for x in case.batches:
            trace = runtime.run(x, initial_states=case.initial_states)
    return trace


def _sequence_model(layers: list[LayerDesc], twin: LayerDesc, weights: dict, case: CaseData):
    """The layers up to the last recurrent one, with its twin in its place, and the twin's weights and start."""
    last = last_recurrent(layers)
    weights = {**weights, twin.name: weights[last.name]}
    starts = dict(case.initial_states)
    if last.name in starts:
        starts[twin.name] = starts[last.name]
    return [*layers[: layers.index(last)], twin], weights, replace(case, initial_states=starts)


def _per_timestep(actual, expected) -> np.ndarray:
    """``max |a - e|`` over everything but the timestep axis (the second to last)."""
    a = np.stack(actual) if isinstance(actual, list) else np.asarray(actual)
    e = np.stack(expected) if isinstance(expected, list) else np.asarray(expected)
    with np.errstate(invalid="ignore", over="ignore"):
        d = np.abs(a.astype(np.float64) - e.astype(np.float64))
    d = np.where(np.isfinite(d), d, np.inf)
    t_axis = d.ndim - 2
    return d.max(axis=tuple(i for i in range(d.ndim) if i != t_axis)) if d.size else np.zeros(0)


def _first_divergence(actual, expected, tol: Tolerance) -> int | None:
    a = np.stack(actual) if isinstance(actual, list) else np.asarray(actual)
    e = np.stack(expected) if isinstance(expected, list) else np.asarray(expected)
    a, e = a.astype(np.float64), e.astype(np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        bad = ~(np.abs(a - e) <= tol.atol + tol.rtol * np.abs(e))
    t_axis = bad.ndim - 2
    per_t = bad.any(axis=tuple(i for i in range(bad.ndim) if i != t_axis))
    hits = np.flatnonzero(per_t)
    return int(hits[0]) if hits.size else None


def _growth(errors: np.ndarray) -> float | None:
    t = np.flatnonzero((errors > 0) & np.isfinite(errors))
    if t.size < 3:
        return None
    slope, _ = np.polyfit(t.astype(np.float64), np.log10(errors[t]), 1)
    return float(slope)


def run_check(spec: CheckSpec, *, keep_sequences: bool = False, time_profile: bool | None = None) -> CheckResult:
    """Build the Keras model for ``spec``, run it and the reference, compare.

    ``keep_sequences`` keeps the arrays behind the time profile (for ``explain``);
    ``time_profile`` overrides the spec's (a sweep runs without it first).
    """
    backend.select(spec.backend)
    layers = layers_for(spec)
    # The time profile needs the last recurrent layer's full sequence: its own output when it
    # returns sequences, else a twin that does (skipped with time_profile off: it costs a layer).
    twin = sequence_twin(layers)
    wanted = spec.time_profile if time_profile is None else time_profile
    profiled = twin is None or wanted or keep_sequences
    if not profiled:
        twin = None
    case = make_case(spec, layers)

    started = time.perf_counter()
    keras_result = keras_runner.run_keras(layers, case, stateful=spec.stateful, dtype=spec.keras_dtype, twin=twin)
    keras_seconds = time.perf_counter() - started

    for desc in layers:
        got = [tuple(w.shape) for w in keras_result.weights.get(desc.name, [])]
        want = [w.shape for w in desc.weights]
        if got != want:
            raise RnnParityError(f"layer {desc.name}: Keras's weights have shapes {got}, expected {want}")

    # The reference in float64 (truth), in Keras's compute dtype (low) and in the
    # requested reference dtype; each dtype runs once.
    started = time.perf_counter()
    if twin is not None:
        seq_layers, seq_weights, seq_case = _sequence_model(layers, twin, keras_result.weights, case)
    runs: dict[str, tuple[Trace, Trace | None]] = {}
    for dtype in dict.fromkeys(["float64", spec.compute_dtype, spec.reference_dtype]):
        runs[dtype] = (
            _run_reference(layers, keras_result.weights, case, dtype),
            _run_reference(seq_layers, seq_weights, seq_case, dtype) if twin else None,
        )
    reference_seconds = time.perf_counter() - started

    truth, low = runs["float64"][0], runs[spec.compute_dtype][0]
    # auto compares against the truth; explicit and dtype against the requested reference dtype
    expected = truth if spec.tolerance == "auto" else runs[spec.reference_dtype][0]

    def tolerance_for(t_arr, l_arr) -> Tolerance:
        return resolve(
            spec.tolerance,
            atol=spec.atol,
            rtol=spec.rtol,
            compute_dtype=spec.compute_dtype,
            max_mismatch_frac=spec.max_mismatch_frac,
            truth=t_arr,
            low=l_arr,
        )

    def compared(actual, want, t_arr, l_arr) -> tuple[Comparison, Tolerance]:
        tol = tolerance_for(t_arr, l_arr)
        return compare(actual, want, atol=tol.atol, rtol=tol.rtol, max_mismatch_frac=tol.max_mismatch_frac), tol

    layer_results, output_tol = [], None
    for desc in layers:
        comparison, output_tol = compared(
            keras_result.outputs[desc.name],
            expected.outputs[desc.name],
            truth.outputs[desc.name],
            low.outputs[desc.name],
        )
        layer_results.append(LayerResult(desc, keras_result.param_counts[desc.name], comparison))
    states = {}
    for desc in layers:
        got_states = keras_result.states.get(desc.name, [])
        for i, (label, got) in enumerate(zip(state_names(desc), got_states)):
            key = label if len(spec.M) == 1 else f"{desc.name}.{label}"
            states[key], _ = compared(
                got, expected.states[desc.name][i], truth.states[desc.name][i], low.states[desc.name][i]
            )

    # Diagnosed over every compared array (the model output's unless another is worse).
    out_name = layers[-1].name
    diagnosed = [(out_name, keras_result.outputs[out_name], truth.outputs[out_name], low.outputs[out_name])]
    diagnosed += [(d.name, keras_result.outputs[d.name], truth.outputs[d.name], low.outputs[d.name]) for d in layers]
    for desc in layers:
        for i, (label, got) in enumerate(zip(state_names(desc), keras_result.states.get(desc.name, []))):
            diagnosed.append((f"{desc.name}.{label}", got, truth.states[desc.name][i], low.states[desc.name][i]))
    rounding = worst_three_way(diagnosed, spec.compute_dtype)

    last = last_recurrent(layers)
    profile, k_seq, e_seq = None, None, None
    if profiled:
        if twin is not None:
            trace_of = {dtype: runs[dtype][1].outputs[twin.name] for dtype in runs}
            k_seq = keras_result.sequences[last.name]
        else:
            trace_of = {dtype: runs[dtype][0].outputs[last.name] for dtype in runs}
            k_seq = keras_result.outputs[last.name]
        e_seq = trace_of["float64" if spec.tolerance == "auto" else spec.reference_dtype]
        t_seq, l_seq = trace_of["float64"], trace_of[spec.compute_dtype]
        seq_tol = tolerance_for(t_seq, l_seq)
        keras_curve = _per_timestep(k_seq, e_seq)
        profile = TimeProfile(
            layer=last.name,
            keras_error=[float(v) for v in keras_curve],
            low_error=[float(v) for v in _per_timestep(l_seq, t_seq)],
            first_divergence=_first_divergence(k_seq, e_seq, seq_tol),
            growth_per_step=_growth(keras_curve),
            tolerance=seq_tol,
            scale=max_abs_error(e_seq, np.zeros_like(np.asarray(e_seq, dtype=np.float64))),
        )
    return CheckResult(
        spec=spec,
        layers=tuple(layer_results),
        output=layer_results[-1].comparison,
        states=states,
        tolerance=output_tol,
        three_way=rounding,
        time=profile,
        total_params=keras_result.total_params,
        versions=keras_runner.versions(),
        environment=environment(spec.command_line("check")),
        seconds={"keras": keras_seconds, "reference": reference_seconds},
        sequences={"x": case.batches[-1], "keras": k_seq, "reference": e_seq} if keep_sequences else None,
    )
