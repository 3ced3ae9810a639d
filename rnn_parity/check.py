"""One check, end to end: spec → case → (Keras, NumPy reference) → comparisons.

:func:`run_check` is the library entry point behind ``rnn-parity check``; it
returns a :class:`CheckResult` and never prints.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from . import keras_runner
from .architecture import LayerDesc, layers_for
from .case import make_case
from .compare import Comparison, compare
from .errors import RnnParityError
from .runtime import SequentialRuntime
from .spec import CheckSpec

__all__ = ["CheckResult", "LayerResult", "run_check", "state_names"]


@dataclass(frozen=True)
class LayerResult:
    """One layer: its description, Keras's parameter count, and its output compared."""

    desc: LayerDesc
    keras_params: int
    comparison: Comparison


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
    total_params: int
    versions: dict[str, str | None]
    seconds: dict[str, float]

    @property
    def passed(self) -> bool:
        return all(layer.comparison.passed for layer in self.layers) and all(
            c.passed for c in self.states.values()
        )


def state_names(desc: LayerDesc) -> list[str]:
    """``h`` (and ``c`` for LSTM), prefixed ``forward_``/``backward_`` inside Bidirectional."""
    names = ["h", "c"] if desc.cell_class == "LSTM" else ["h"]
    if desc.class_name == "Bidirectional":
        return [f"{side}_{n}" for side in ("forward", "backward") for n in names]
    return names


def run_check(spec: CheckSpec) -> CheckResult:
    """Build the Keras model for ``spec``, run it and the reference, compare."""
    layers = layers_for(spec)
    case = make_case(spec, layers)

    started = time.perf_counter()
    keras_result = keras_runner.run_keras(layers, case, stateful=spec.stateful)
    keras_seconds = time.perf_counter() - started

    for desc in layers:
        got = [tuple(w.shape) for w in keras_result.weights.get(desc.name, [])]
        want = [w.shape for w in desc.weights]
        if got != want:
            raise RnnParityError(f"layer {desc.name}: Keras's weights have shapes {got}, expected {want}")

    started = time.perf_counter()
    runtime = SequentialRuntime(layers, keras_result.weights, dtype=spec.reference_dtype)
    with np.errstate(over="ignore", invalid="ignore"):  # overflow shows up as non-finite values in the report
        for x in case.batches:
            trace = runtime.run(x, initial_states=case.initial_states)
    reference_seconds = time.perf_counter() - started

    tol = {"atol": spec.atol, "rtol": spec.rtol}
    layer_results = tuple(
        LayerResult(desc, keras_result.param_counts[desc.name],
                    compare(keras_result.outputs[desc.name], trace.outputs[desc.name], **tol))
        for desc in layers
    )
    states = {}
    for desc in layers:
        for label, got, want in zip(state_names(desc), keras_result.states.get(desc.name, []),
                                    trace.states.get(desc.name, [])):
            key = label if len(spec.M) == 1 else f"{desc.name}.{label}"
            states[key] = compare(got, want, **tol)
    return CheckResult(
        spec=spec,
        layers=layer_results,
        output=layer_results[-1].comparison,
        states=states,
        total_params=keras_result.total_params,
        versions=keras_runner.versions(),
        seconds={"keras": keras_seconds, "reference": reference_seconds},
    )
