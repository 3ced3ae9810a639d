"""One parity core: sides of named arrays → comparisons → one result type.

A *side* is one way of computing the same named arrays: Keras, the NumPy
reference in float64 (the truth), the reference in Keras's compute dtype
("low"), and whatever else is put beside them: a user's own implementation,
gradients, Keras on another backend. A side is a plain mapping
``{name: array}``; a list of arrays (``Bidirectional(merge_mode=None)``) is
compared stacked. Names are the caller's: ``check`` and ``verify`` use the
layer name for a layer's output and ``layer.h``/``layer.c`` for its states
(:func:`named_arrays`).

* :func:`run_reference` runs the reference once per distinct dtype and hands
  back the truth, the low-precision run and the *expected* run (the truth
  under ``--tolerance auto``, else the run in ``--reference-dtype``);
* :class:`Reference` holds those three sides with the
  :class:`~rnn_parity.tolerance.ToleranceRule`: it resolves each array's
  tolerance, gives the three-way rounding diagnosis
  (:meth:`Reference.three_way`) and the profile over timesteps
  (:meth:`Reference.profile`);
* :func:`compare_side` compares every array of one side with the expected
  one under its tolerance, finds the first timestep over tolerance
  (vectorised) and returns a :class:`SideParity`.

A new side plugs in without touching comparison code::

    from rnn_parity.parity import compare_side, run_reference
    from rnn_parity.tolerance import ToleranceRule

    rule = ToleranceRule("auto", compute_dtype="float32")
    runs = run_reference(lambda dtype: my_reference_arrays(dtype), rule, reference_dtype="float64")
    reference = runs.reference(rule)  # or runs.reference(rule, arrays=lambda trace: {...})
    impl = compare_side("impl", {"lstm": impl_out, "lstm.h": impl_h}, reference)
    impl.passed                    # every array within its own tolerance
    impl["lstm"].comparison        # max/mean/p99 errors, worst index, required atol (compare.Comparison)
    impl["lstm"].first_bad_step    # first timestep over tolerance, or None
    reference.three_way("lstm", impl_out).diagnosis   # "rounding", "discrepancy" or "non-finite"

The pass rule and the statistics are :func:`rnn_parity.compare.compare`'s;
the tolerance modes are :mod:`rnn_parity.tolerance`'s.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import numpy as np

from .compare import Comparison, compare, max_abs_error
from .errors import RnnParityError
from .tolerance import ThreeWay, Tolerance, ToleranceRule, three_way, worst_three_way

__all__ = [
    "ArrayParity",
    "Reference",
    "ReferenceRuns",
    "SideParity",
    "StepProfile",
    "compare_side",
    "compare_sides",
    "error_per_step",
    "first_bad_step",
    "named_arrays",
    "run_reference",
]

T = TypeVar("T")
Arrays = Mapping[str, Any]


def _float64(value) -> np.ndarray:
    if isinstance(value, (list, tuple)):
        return np.stack([np.asarray(v) for v in value]).astype(np.float64)
    return np.asarray(value).astype(np.float64)


def _shape(value) -> tuple[int, ...]:
    if isinstance(value, (list, tuple)):
        return (len(value), *np.shape(value[0])) if len(value) else (0,)
    return tuple(np.shape(value))


def _time_axes(ndim: int) -> tuple[int, ...]:
    """Every axis but the timestep axis, the second to last of ``(…, batch, timesteps, units)``."""
    return tuple(i for i in range(ndim) if i != ndim - 2)


def first_bad_step(actual, expected, tolerance: Tolerance, axes: Sequence[str] | None = None) -> int | None:
    """The first timestep holding an element over tolerance, or None (also for arrays without a time axis).

    The timestep axis is the one ``axes`` names ``"timestep"`` (none there: no
    time axis); without ``axes``, the second to last of an array of rank 3 or
    more: ``(batch, timesteps, units)``, or ``(direction, batch, timesteps,
    units)`` stacked. The rule is :func:`rnn_parity.compare.compare`'s, all at
    once; a non-finite element is over tolerance.
    """
    a, e = _float64(actual), _float64(expected)
    if a.shape != e.shape or (axes is None and a.ndim < 3) or (axes is not None and "timestep" not in axes):
        return None
    time = a.ndim - 2 if axes is None else list(axes).index("timestep")
    with np.errstate(invalid="ignore", over="ignore"):
        over = ~(np.abs(a - e) - tolerance.rtol * np.abs(e) <= tolerance.atol)
    hits = np.flatnonzero(over.any(axis=tuple(i for i in range(over.ndim) if i != time)))
    return int(hits[0]) if hits.size else None


def error_per_step(actual, expected) -> np.ndarray:
    """``max |actual - expected|`` at each timestep (the second to last axis); inf where a value is not finite."""
    a, e = _float64(actual), _float64(expected)
    if a.size == 0:
        return np.zeros(0)
    with np.errstate(invalid="ignore", over="ignore"):
        d = np.abs(a - e)
    return np.where(np.isfinite(d), d, np.inf).max(axis=_time_axes(d.ndim))


def _growth(errors: np.ndarray) -> float | None:
    """The slope of ``log10(error)`` against t over steps with a finite non-zero error (at least 3)."""
    t = np.flatnonzero((errors > 0) & np.isfinite(errors))
    if t.size < 3:
        return None
    slope, _ = np.polyfit(t.astype(np.float64), np.log10(errors[t]), 1)
    return float(slope)


@dataclass(frozen=True)
class ArrayParity:
    """One named array of a side against the expected one.

    Attributes:
        first_bad_step: the first timestep holding an element over tolerance
            (see :func:`first_bad_step`), None when there is none or no time axis.
    """

    name: str
    comparison: Comparison
    tolerance: Tolerance
    first_bad_step: int | None

    @property
    def passed(self) -> bool:
        return self.comparison.passed


@dataclass(frozen=True)
class SideParity:
    """Every array of one side compared: ``side["lstm"]`` is an :class:`ArrayParity`."""

    side: str
    arrays: dict[str, ArrayParity]

    @property
    def passed(self) -> bool:
        return all(entry.passed for entry in self.arrays.values())

    def __getitem__(self, name: str) -> ArrayParity:
        return self.arrays[name]

    def __contains__(self, name: str) -> bool:
        return name in self.arrays

    def comparisons(self, names=None) -> dict[str, Comparison]:
        """Name → comparison, for ``names`` (default: all, in the side's order)."""
        return {name: self.arrays[name].comparison for name in (self.arrays if names is None else names)}


@dataclass(frozen=True)
class StepProfile:
    """A sequence compared at every timestep (processing order).

    Attributes:
        error: per timestep, ``max |actual - expected|`` over everything else.
        low_error: per timestep, ``max |low - truth|``: the rounding of a correct
            implementation in the compute dtype, for scale.
        first_bad_step: the first timestep with an element over tolerance, or None.
        growth_per_step: the slope of ``log10(error)`` against t (least squares over
            steps with a non-zero error), or None with fewer than 3 such steps.
        tolerance: the sequence's resolved tolerance.
        scale: ``max |expected|``: ``atol + rtol·scale`` is the loosest per-element tolerance.
    """

    error: list[float]
    low_error: list[float]
    first_bad_step: int | None
    growth_per_step: float | None
    tolerance: Tolerance
    scale: float


@dataclass(frozen=True)
class Reference:
    """The reference sides every other side is compared with, and the tolerance rule.

    Attributes:
        truth: the reference in float64.
        low: the reference in the compute dtype of the side under test (Keras's).
        expected: what a side is compared with: ``truth`` in auto mode, else the
            reference in the requested dtype.
    """

    rule: ToleranceRule
    truth: Arrays
    low: Arrays
    expected: Arrays

    def tolerance(self, name: str) -> Tolerance:
        """The resolved tolerance of array ``name`` (auto mode reads its truth and low run)."""
        return self.rule.resolve(self.truth[name], self.low[name])

    def three_way(self, name: str, actual) -> ThreeWay:
        """``actual`` and the low-precision run, each against the truth: rounding or a discrepancy."""
        return three_way(actual, self.truth[name], self.low[name], self.rule.compute_dtype)

    def worst_three_way(self, actual: Arrays, first: str) -> ThreeWay:
        """:meth:`three_way` over every array of ``actual``: ``first``'s unless another is worse.

        See :func:`rnn_parity.tolerance.worst_three_way`: a failing first layer is
        not called rounding because the model output happens to be close.
        """
        names = [first, *(name for name in actual if name != first)]
        arrays = [(name, actual[name], self.truth[name], self.low[name]) for name in names]
        return worst_three_way(arrays, self.rule.compute_dtype)

    def profile(self, name: str, actual) -> StepProfile:
        """``actual``, a ``(…, timesteps, units)`` sequence, compared with ``expected[name]`` at every step."""
        expected, tol = self.expected[name], self.tolerance(name)
        errors = error_per_step(actual, expected)
        return StepProfile(
            error=[float(v) for v in errors],
            low_error=[float(v) for v in error_per_step(self.low[name], self.truth[name])],
            first_bad_step=first_bad_step(actual, expected, tol),
            growth_per_step=_growth(errors),
            tolerance=tol,
            scale=max_abs_error(expected, np.zeros_like(_float64(expected))),
        )


@dataclass(frozen=True)
class ReferenceRuns(Generic[T]):
    """What :func:`run_reference` ran: one result per role (a dtype run twice is the same object)."""

    truth: T
    low: T
    expected: T
    seconds: float

    def reference(self, rule: ToleranceRule, arrays: Callable[[T], Arrays] | None = None) -> Reference:
        """The :class:`Reference` of these runs, each turned into named arrays by ``arrays`` (default: as is)."""
        pick = arrays or (lambda run: run)
        return Reference(rule=rule, truth=pick(self.truth), low=pick(self.low), expected=pick(self.expected))


def run_reference(run: Callable[[str], T], rule: ToleranceRule, reference_dtype: str = "float64") -> ReferenceRuns[T]:
    """Call ``run(dtype)`` once per distinct dtype among float64, the compute dtype and ``reference_dtype``.

    Overflow in the reference is not an error here: it shows as a non-finite
    value, which every comparison reports.
    """
    started = time.perf_counter()
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        runs = {dtype: run(dtype) for dtype in dict.fromkeys(["float64", rule.compute_dtype, reference_dtype])}
    expected = runs["float64"] if rule.mode == "auto" else runs[reference_dtype]
    return ReferenceRuns(
        truth=runs["float64"],
        low=runs[rule.compute_dtype],
        expected=expected,
        seconds=time.perf_counter() - started,
    )


def named_arrays(
    outputs: Mapping[str, Any],
    states: Mapping[str, list],
    labels: Mapping[str, list[str]],
    key: Callable[[str, str], str] = lambda layer, label: f"{layer}.{label}",
) -> dict[str, Any]:
    """One side's arrays by name: each layer's output under its name, each final state under ``key(layer, label)``.

    ``labels`` gives the state names of each layer (see
    :func:`rnn_parity.recurrent.state_names`); a layer holding fewer states than
    labels (Keras returns them only with ``return_state``) gives fewer arrays.
    """
    arrays = dict(outputs)
    for layer, values in states.items():
        for label, value in zip(labels[layer], values):
            arrays[key(layer, label)] = value
    return arrays


def compare_side(
    side: str,
    actual: Arrays,
    reference: Reference,
    *,
    where: Callable[[str], str] = repr,
    axes: Mapping[str, Sequence[str]] | None = None,
) -> SideParity:
    """Compare every array of ``actual`` with ``reference.expected`` under its resolved tolerance.

    Args:
        side: the side's name, e.g. ``"keras"`` or ``"impl"`` (in messages and the result).
        actual: name → array; every name must be in the reference.
        where: how a name reads in an error message.
        axes: name → the names of the array's axes, where the rank alone does not tell
            them (see :func:`rnn_parity.compare.default_axes`); for a list of two
            arrays (a Bidirectional's two directions), the names of one, and the
            stacked array gains a leading ``direction`` axis.

    Raises:
        RnnParityError: an array's shape differs from the reference's.
    """
    arrays = {}
    for name, value in actual.items():
        expected, tol = reference.expected[name], reference.tolerance(name)
        if _shape(value) != _shape(expected):
            raise RnnParityError(f"{where(name)}: shapes differ: {side} {_shape(value)}, reference {_shape(expected)}")
        names = (axes or {}).get(name)
        if names is not None and isinstance(value, (list, tuple)):
            names = ("direction", *names)
        try:
            comparison = compare(
                value, expected, atol=tol.atol, rtol=tol.rtol, max_mismatch_frac=tol.max_mismatch_frac, axes=names
            )
        except ValueError as exc:  # e.g. the two arrays of a list that cannot be stacked
            raise RnnParityError(f"{where(name)}: {side}: {exc}") from None
        bad = comparison.mismatches or comparison.nonfinite
        step = first_bad_step(value, expected, tol, names) if bad else None
        arrays[name] = ArrayParity(name=name, comparison=comparison, tolerance=tol, first_bad_step=step)
    return SideParity(side=side, arrays=arrays)


def compare_sides(sides: Mapping[str, Arrays], reference: Reference, **options) -> dict[str, SideParity]:
    """:func:`compare_side` for each named side, e.g. ``{"tensorflow": ..., "jax": ...}``."""
    return {side: compare_side(side, actual, reference, **options) for side, actual in sides.items()}
