"""``check --gradients``: the NumPy BPTT against the Keras backend's autodiff, through the parity core.

The loss is ``L = Σ G·y`` over the model's output on the last batch, ``G`` a
standard-normal array drawn from the case's seed
(:func:`rnn_parity.gradients.loss_weights`). The reference side is
:func:`rnn_parity.gradients.model_gradients` (float64 truth, and the compute and
reference dtypes the tolerance rule asks for), the Keras side
:func:`rnn_parity.keras_gradients.keras_gradients`; the gradients are compared
as named arrays (``input``, ``lstm/kernel``, ``lstm/initial_state/h``, ...) by
:func:`rnn_parity.parity.compare_side`, with the same statistics and tolerance
resolution as the forward arrays.

Beside them, ``‖dL/dh_t‖`` of the last recurrent layer at every step, from both
sides (Keras's through a probe; a Bidirectional layer shows its forward direction,
NumPy's only), and with ``fd_check`` the finite-difference check of the NumPy
gradients (:func:`rnn_parity.gradients.finite_differences`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from .architecture import LayerDesc, last_recurrent
from .case import CaseData
from .gradients import FiniteDifferences, finite_differences, loss_weights, model_gradients, step_norms
from .parity import SideParity, compare_side, run_reference
from .spec import CheckSpec
from .tolerance import ToleranceRule

__all__ = ["GradientResult", "StepNorms", "run_gradient_check"]


@dataclass(frozen=True)
class StepNorms:
    """``‖dL/dh_t‖`` (Euclidean, over batch and units) at every step of one layer, processing order.

    Attributes:
        layer: the recurrent layer (``<layer>/forward`` for a Bidirectional one's forward direction).
        reference: from the NumPy BPTT in float64.
        keras: from the backend's autodiff, or None (a Bidirectional layer is not probed).
    """

    layer: str
    reference: list[float]
    keras: list[float] | None


@dataclass(frozen=True)
class GradientResult:
    """Every gradient compared, ``dL/dh_t`` over time and the finite-difference check.

    ``passed`` holds when every gradient is within its tolerance and, when it ran,
    the finite-difference check passed.
    """

    parity: SideParity
    steps: StepNorms | None
    fd: FiniteDifferences | None
    loss: float
    seconds: dict[str, float]

    @property
    def passed(self) -> bool:
        return self.parity.passed and (self.fd is None or self.fd.passed)

    @property
    def max_abs_diff(self) -> float:
        return max((a.comparison.max_abs_diff for a in self.parity.arrays.values()), default=0.0)


def run_gradient_check(spec: CheckSpec, layers: list[LayerDesc], weights: dict, case: CaseData) -> GradientResult:
    """Gradients of the check model from Keras and from NumPy, compared; ``weights`` as Keras read them back."""
    from .keras_gradients import keras_gradients, keras_step_gradients

    x, starts = case.batches[-1], case.initial_states
    started = time.perf_counter()
    truth = model_gradients(layers, weights, x, lambda shapes: loss_weights(shapes, spec.seed), initial_states=starts)
    upstream = truth.upstream

    def run(dtype: str):
        if dtype == "float64":
            return truth
        return model_gradients(layers, weights, x, upstream, initial_states=starts, dtype=dtype)

    rule = ToleranceRule.of(spec, spec.compute_dtype)
    runs = run_reference(run, rule, spec.reference_dtype)
    reference = runs.reference(rule, arrays=lambda r: r.arrays)
    reference_seconds = time.perf_counter() - started

    started = time.perf_counter()
    keras = keras_gradients(layers, weights, x, upstream, initial_states=starts, dtype=spec.keras_dtype)
    parity = compare_side("gradients", keras, reference)

    last = last_recurrent(layers)
    steps = None
    if last.is_bidirectional:
        steps = StepNorms(f"{last.name}/forward", step_norms(truth.dh[f"{last.name}/forward"]), None)
    else:
        probe = keras_step_gradients(
            layers, weights, x, upstream, last.name, initial_states=starts, dtype=spec.keras_dtype
        )
        steps = StepNorms(last.name, step_norms(truth.dh[last.name]), step_norms(probe))
    keras_seconds = time.perf_counter() - started

    fd = None
    if spec.fd_check:
        started = time.perf_counter()
        fd = finite_differences(layers, weights, x, upstream, truth, initial_states=starts, seed=spec.seed)
        fd_seconds = time.perf_counter() - started
    seconds = {"keras": keras_seconds, "reference": reference_seconds}
    if fd is not None:
        seconds["fd_check"] = fd_seconds
    return GradientResult(parity, steps, fd, truth.loss, seconds)
