"""One check, end to end: spec → case → (Keras, NumPy reference) → comparisons.

:func:`run_check` is the library entry point behind ``rnn-parity check``; it
returns a :class:`CheckResult` and never prints.

Every check compares three sides (:mod:`rnn_parity.parity`): Keras's output,
the reference in Keras's compute dtype ("low", float32 by default) and the
reference in float64 (the ground truth). Keras against the truth, measured
against what a correct low-precision implementation gets wrong on the same
case, tells rounding from a real discrepancy (:class:`ThreeWay`). The last
recurrent layer's output is also compared at every timestep (:class:`TimeProfile`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

from . import backend, keras_runner
from .architecture import LayerDesc, last_recurrent, layers_for, sequence_twin
from .case import CaseData, make_case
from .compare import Comparison
from .environment import environment
from .errors import RnnParityError
from .gradient_check import GradientResult, run_gradient_check
from .impl import Implementation, resolve_impl
from .impl_side import ImplResult, run_impl_side
from .keras_call import resolve_one
from .parity import StepProfile, compare_side, named_arrays, run_reference
from .recurrent import state_names
from .runtime import SequentialRuntime, Trace
from .spec import CheckSpec
from .tolerance import ThreeWay, Tolerance, ToleranceRule

__all__ = ["CheckResult", "LayerResult", "TimeProfile", "run_check"]

#: The reference's name for the last recurrent layer's output at every step (the time profile's).
SEQUENCE = "sequence"


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

    @classmethod
    def of(cls, layer: str, steps: StepProfile) -> TimeProfile:
        """Keras's side of the core's step profile of ``layer``."""
        return cls(
            layer=layer,
            keras_error=steps.error,
            low_error=steps.low_error,
            first_divergence=steps.first_bad_step,
            growth_per_step=steps.growth_per_step,
            tolerance=steps.tolerance,
            scale=steps.scale,
        )


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
    #: with ``spec.gradients``: the gradients compared (:mod:`rnn_parity.gradient_check`)
    gradients: GradientResult | None = None
    #: the user's own implementation, when one was given: then the verdict is it against Keras
    impl: ImplResult | None = None

    @property
    def keras_passed(self) -> bool:
        """Keras against the reference: every layer's output and every state, and the gradients when compared."""
        return (
            all(layer.comparison.passed for layer in self.layers)
            and all(c.passed for c in self.states.values())
            and (self.gradients is None or self.gradients.passed)
        )

    @property
    def passed(self) -> bool:
        """The verdict: the user's implementation against Keras when there is one, else Keras against the reference."""
        return self.impl.passed if self.impl is not None else self.keras_passed

    # ----- the Python API's view (rnn_parity.check) -----
    def __bool__(self) -> bool:
        return self.passed

    @property
    def max_abs_diff(self) -> float:
        """The verdict's ``max |Δ|`` on the model output (inf when the implementation returned nothing)."""
        if self.impl is not None:
            return self.impl.max_abs_diff
        return self.output.max_abs_diff

    def to_dict(self) -> dict:
        """The JSON report, as ``rnn-parity check --format json`` prints it."""
        from .report import check_report

        return check_report(self)

    def text(self, width: int = 100) -> str:
        """The report's table as plain text."""
        from .render import check_table, plain_text

        return plain_text(check_table(self.to_dict()), width)

    def __rich__(self):
        from .render import check_table

        return check_table(self.to_dict())

    def _repr_html_(self) -> str:
        from .render import check_table, html

        return html(check_table(self.to_dict()))

    def __repr__(self) -> str:
        verdict = "PASS" if self.passed else "FAIL"
        sides = "impl vs Keras" if self.impl is not None else "Keras vs reference"
        return f"<CheckResult {verdict}: {sides}, max |Δ| = {self.max_abs_diff:.3g}>"


def _namer(layers: list[LayerDesc]):
    """``(outputs, states)`` → named arrays: states are ``h``/``c`` in a one-layer model, ``layer.h`` in a stack."""
    labels = {desc.name: state_names(desc.class_name, desc.config) for desc in layers}
    stack = sum(desc.is_recurrent for desc in layers) > 1
    key = (lambda layer, label: f"{layer}.{label}") if stack else (lambda layer, label: label)
    return lambda outputs, states: named_arrays(outputs, states, labels, key)


def _reference_run(layers: list[LayerDesc], weights: dict, case: CaseData, twin: LayerDesc | None, profiled: bool):
    """``run(dtype)``: the reference's named arrays, and the last recurrent layer's sequence when profiled."""
    named, last = _namer(layers), last_recurrent(layers)

    def run(dtype: str) -> dict:
        trace = _run_reference(layers, weights, case, dtype)
        arrays = named(trace.outputs, trace.states)
        if twin is not None:
            seq_layers, seq_weights, seq_case = _sequence_model(layers, twin, weights, case)
            arrays[SEQUENCE] = _run_reference(seq_layers, seq_weights, seq_case, dtype).outputs[twin.name]
        elif profiled:
            arrays[SEQUENCE] = trace.outputs[last.name]
        return arrays

    return run


def _run_reference(layers, weights, case: CaseData, dtype: str) -> Trace:
    runtime = SequentialRuntime(layers, weights, dtype=dtype, explicit_masks=True)
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


def _check_weight_shapes(layers: list[LayerDesc], weights: dict) -> None:
    for desc in layers:
        got = [tuple(w.shape) for w in weights.get(desc.name, [])]
        want = [w.shape for w in desc.weights]
        if got != want:
            raise RnnParityError(f"layer {desc.name}: Keras's weights have shapes {got}, expected {want}")


def run_check(
    spec: CheckSpec,
    *,
    keep_sequences: bool = False,
    time_profile: bool | None = None,
    impl: Implementation | None = None,
) -> CheckResult:
    """Build the Keras model for ``spec``, run it and the reference, compare.

    ``keep_sequences`` keeps the arrays behind the time profile (for ``explain``);
    ``time_profile`` overrides the spec's (a sweep runs without it first);
    ``impl`` is the user's implementation (default: ``spec.impl`` imported, if set).
    """
    backend.select(spec.backend)
    asked, spec = spec, resolve_one(spec)  # keras_call auto → the call this case runs (the report shows it)
    if impl is None and spec.impl is not None:
        impl = resolve_impl(spec.impl)
    layers = layers_for(spec)
    last = last_recurrent(layers)
    # The time profile needs the last recurrent layer's full sequence: its own output when it
    # returns sequences, else a twin that does (skipped with time_profile off: it costs a layer).
    twin = sequence_twin(layers)
    profiled = twin is None or keep_sequences or (spec.time_profile if time_profile is None else time_profile)
    twin = twin if profiled else None
    case = make_case(spec, layers)

    started = time.perf_counter()
    keras = keras_runner.run_keras(
        layers, case, stateful=spec.stateful, dtype=spec.keras_dtype, twin=twin, mode=spec.keras_call
    )
    keras_seconds = time.perf_counter() - started
    _check_weight_shapes(layers, keras.weights)

    rule = ToleranceRule.of(spec, spec.compute_dtype)
    runs = run_reference(_reference_run(layers, keras.weights, case, twin, profiled), rule, spec.reference_dtype)
    reference = runs.reference(rule)
    named = _namer(layers)(keras.outputs, keras.states)
    parity = compare_side("keras", named, reference)

    out = layers[-1].name
    profile, k_seq = None, None
    if profiled:
        k_seq = keras.sequences[last.name] if twin is not None else keras.outputs[last.name]
        profile = TimeProfile.of(last.name, reference.profile(SEQUENCE, k_seq))
    gradients = run_gradient_check(spec, layers, keras.weights, case) if spec.gradients else None
    mine = None
    if impl is not None:
        keras_arrays = _namer(layers)(keras.outputs, keras.states) | ({SEQUENCE: k_seq} if profiled else {})
        mine = run_impl_side(
            impl,
            spec=spec,
            layers=layers,
            case=case,
            weights=keras.weights,
            keras_arrays=keras_arrays,
            reference=reference,
            namer=_namer(layers),
            sequence=SEQUENCE if profiled else None,
        )
    return CheckResult(
        spec=spec,
        layers=tuple(
            LayerResult(desc=d, keras_params=keras.param_counts[d.name], comparison=parity[d.name].comparison)
            for d in layers
        ),
        output=parity[out].comparison,
        states=parity.comparisons([name for name in parity.arrays if name not in keras.outputs]),
        tolerance=parity[out].tolerance,
        # diagnosed over every compared array: the model output's unless another is worse
        three_way=reference.worst_three_way(named, out),
        time=profile,
        total_params=keras.total_params,
        versions=keras_runner.versions(),
        # a lone case resolves auto the same way every time, so the command as asked reproduces it
        environment=environment(asked.command_line("check")),
        seconds={"keras": keras_seconds, "reference": runs.seconds},
        sequences={"x": case.batches[-1], "keras": k_seq, "reference": reference.expected.get(SEQUENCE)}
        if keep_sequences
        else None,
        gradients=gradients,
        impl=mine,
    )
