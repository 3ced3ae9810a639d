"""The ``impl`` side of a check: a user's own function against Keras, the reference and the truth.

:func:`run_impl_side` calls the function (:mod:`rnn_parity.impl`), names what
it returned as the other sides are named (the model output under the Dense's
name, final states ``h``/``c``, the last recurrent layer's sequence), and hands
it to the parity core twice: against Keras (the verdict) and against the
reference. When it fails, the mistake library (:mod:`rnn_parity.mistakes`)
looks for the classic mistake that reproduces its output.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

from .architecture import LayerDesc, last_recurrent
from .case import CaseData
from .impl import Implementation, ImplFailure, ImplReturn, call_impl
from .mistakes import Setup, Suspect, match_mistakes
from .parity import Reference, SideParity, compare_side
from .spec import CheckSpec
from .tolerance import ThreeWay

__all__ = ["ImplResult", "run_impl_side"]


@dataclass(frozen=True)
class ImplResult:
    """The user's implementation in one check.

    Attributes:
        target: how the user named it (``rnn.py:my_rnn``, or the function's name).
        dtype: what ``x`` and the weights were given in; returned_dtype: what it returned.
        failure: why there is nothing to compare (it raised, timed out, returned a wrong shape).
        vs_keras: every array it returned against Keras's: the verdict.
        vs_reference: the same arrays against the NumPy reference.
        three_way: its output and the low-precision reference against the float64 truth.
        suspects: known mistakes whose output matches its output, closest first.
        mistakes_tried: how many of the library's mistakes apply to this case (0 when it passed).
    """

    target: str
    dtype: str
    returned_dtype: str | None
    failure: ImplFailure | None
    vs_keras: SideParity | None
    vs_reference: SideParity | None
    three_way: ThreeWay | None
    output_name: str
    suspects: tuple[Suspect, ...]
    mistakes_tried: int
    seconds: float

    @property
    def passed(self) -> bool:
        return self.failure is None and self.vs_keras is not None and self.vs_keras.passed

    @property
    def max_abs_diff(self) -> float:
        """``max |yours - Keras|`` on the model output; inf when the function returned nothing usable."""
        return float("inf") if self.vs_keras is None else self.vs_keras[self.output_name].comparison.max_abs_diff


def _named(result: ImplReturn, spec: CheckSpec, layers: list[LayerDesc], namer: Callable, sequence: str | None) -> dict:
    """The function's arrays under the names the other sides use."""
    out = layers[-1].name
    states = {}
    if spec.return_state and result.states is not None and result.states[-1] is not None:
        states = {last_recurrent(layers).name: result.states[-1]}
    arrays = namer({out: result.output}, states)
    if sequence is not None and result.hidden is not None:
        arrays[sequence] = result.hidden
    return arrays


def run_impl_side(
    impl: Implementation,
    *,
    spec: CheckSpec,
    layers: list[LayerDesc],
    case: CaseData,
    weights: Mapping[str, list],
    keras_arrays: Mapping,
    reference: Reference,
    namer: Callable,
    sequence: str | None,
) -> ImplResult:
    """Call ``impl`` on the check's data and compare it.

    Args:
        weights: layer name → Keras's weights (what the function is given, flat, in layer order).
        keras_arrays: Keras's side, named as ``reference`` names its arrays.
        namer: ``namer(outputs, states)`` → named arrays, the check's naming.
        sequence: the name of the last recurrent layer's sequence among the sides'
            arrays, or None when the check does not follow it (then ``hidden`` is ignored).
    """
    flat = [w for layer in layers for w in weights.get(layer.name, [])]
    returned = call_impl(
        impl, spec, flat, case.batches, case.initial_states, dtype=spec.impl_dtype, timeout=spec.timeout
    )
    out = layers[-1].name
    if isinstance(returned, ImplFailure):
        return ImplResult(impl.name, spec.impl_dtype, None, returned, None, None, None, out, (), 0, returned.seconds)
    arrays = _named(returned, spec, layers, namer, sequence if sequence in reference.expected else None)
    against_keras = replace(reference, expected={**reference.expected, **keras_arrays})
    where = lambda name: f"your implementation's {name!r}"  # noqa: E731
    vs_keras = compare_side("impl", arrays, against_keras, where=where)
    vs_reference = compare_side("impl", arrays, reference, where=where)
    suspects, tried = (), 0
    if not vs_keras.passed:
        tol = vs_keras[out].tolerance
        setup = Setup(spec, tuple(layers), weights, case.batches, case.initial_states)
        found, tried = match_mistakes(
            setup, returned.output, atol=tol.atol, rtol=tol.rtol, max_mismatch_frac=tol.max_mismatch_frac
        )
        suspects = tuple(found)
    return ImplResult(
        target=impl.name,
        dtype=spec.impl_dtype,
        returned_dtype=returned.dtype,
        failure=None,
        vs_keras=vs_keras,
        vs_reference=vs_reference,
        three_way=reference.three_way(out, returned.output),
        output_name=out,
        suspects=suspects,
        mistakes_tried=tried,
        seconds=returned.seconds,
    )
