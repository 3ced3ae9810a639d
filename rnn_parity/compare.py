"""Statistics of two arrays and the pass rule, written once.

The rule, per element, with ``actual`` from Keras and ``expected`` from the
NumPy reference::

    |actual - expected| <= atol + rtol * |expected|

(numpy's ``isclose`` convention, not Polygraphy's "over both"). The arrays pass
when the fraction of elements that break it is at most ``max_mismatch_frac``
(default 0: none may) and every value is finite: a NaN or an infinity in either
array always fails. Differences are taken in float64 whatever the inputs' dtypes.

Relative error is ``|actual - expected| / max(|expected|, floor)`` with
``floor = eps(float32) · max|expected|``: where the reference is 0 it measures
the error against the array's own scale instead of dividing by zero.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

__all__ = ["Comparison", "compare", "REL_FLOOR_EPS"]

#: The relative-error floor, as a fraction of the array's largest |expected|.
REL_FLOOR_EPS = float(np.finfo(np.float32).eps)


@dataclass(frozen=True)
class Comparison:
    """The verdict on one pair of arrays and what explains it.

    Attributes:
        passed: mismatch fraction within ``max_mismatch_frac``, and all values finite.
        max_abs_diff, mean_abs_diff, p99_abs_diff: of ``|actual - expected|``
            (inf when a value is not finite).
        max_rel_diff, mean_rel_diff, p99_rel_diff: of the relative error (module doc).
        worst_index: the element furthest over (or closest to) the tolerance,
            ``|d| - rtol·|expected|`` largest; a non-finite element first.
        worst_axes: the names of the index's axes, e.g. ``["sample", "timestep", "unit"]``.
        actual_at_worst, expected_at_worst: both values there.
        required_atol: the smallest atol that passes every element with this rtol.
        required_rtol: the smallest rtol that passes every element with this atol
            (inf when an element over atol has expected 0).
        mismatches, mismatch_fraction: elements that break the rule.
        size, shape: what was compared; nonfinite: NaN/inf elements in either array.
    """

    passed: bool
    max_abs_diff: float
    mean_abs_diff: float
    p99_abs_diff: float
    max_rel_diff: float
    mean_rel_diff: float
    p99_rel_diff: float
    worst_index: tuple[int, ...]
    worst_axes: tuple[str, ...]
    actual_at_worst: float
    expected_at_worst: float
    atol: float
    rtol: float
    max_mismatch_frac: float
    required_atol: float
    required_rtol: float
    mismatches: int
    mismatch_fraction: float
    size: int
    shape: tuple[int, ...]
    nonfinite: int

    def to_dict(self) -> dict:
        data = asdict(self)
        for key in ("worst_index", "worst_axes", "shape"):
            data[key] = list(data[key])
        return data


def _as_array(value) -> np.ndarray:
    if isinstance(value, (list, tuple)):
        return np.stack([np.asarray(v) for v in value])
    return np.asarray(value)


def default_axes(ndim: int) -> tuple[str, ...]:
    """Axis names for a model output: (sample, unit) or (sample, timestep, unit)."""
    return {
        1: ("unit",),
        2: ("sample", "unit"),
        3: ("sample", "timestep", "unit"),
        4: ("direction", "sample", "timestep", "unit"),
    }.get(ndim, tuple(f"axis{i}" for i in range(ndim)))


def compare(
    actual, expected, *, atol: float, rtol: float, max_mismatch_frac: float = 0.0, axes: tuple[str, ...] | None = None
) -> Comparison:
    """Compare ``actual`` (Keras) with ``expected`` (the reference) under the rule above.

    A list of arrays (Bidirectional with ``merge_mode=None``) is stacked first.
    Raises ValueError when the shapes differ.
    """
    a = _as_array(actual).astype(np.float64)
    e = _as_array(expected).astype(np.float64)
    if a.shape != e.shape:
        raise ValueError(f"shapes differ: Keras {a.shape}, reference {e.shape}")
    axes = tuple(axes) if axes is not None else default_axes(a.ndim)
    if len(axes) != a.ndim:
        raise ValueError(f"{len(axes)} axis names {axes} for an array of rank {a.ndim}")
    nan = float("nan")
    if a.size == 0:
        return Comparison(
            passed=True,
            max_abs_diff=0.0,
            mean_abs_diff=0.0,
            p99_abs_diff=0.0,
            max_rel_diff=0.0,
            mean_rel_diff=0.0,
            p99_rel_diff=0.0,
            worst_index=(),
            worst_axes=axes,
            actual_at_worst=nan,
            expected_at_worst=nan,
            atol=float(atol),
            rtol=float(rtol),
            max_mismatch_frac=float(max_mismatch_frac),
            required_atol=0.0,
            required_rtol=0.0,
            mismatches=0,
            mismatch_fraction=0.0,
            size=0,
            shape=tuple(a.shape),
            nonfinite=0,
        )
    finite = np.isfinite(a) & np.isfinite(e)
    with np.errstate(invalid="ignore", over="ignore"):
        diff = np.where(finite, np.abs(a - e), np.inf)
    scale = np.abs(np.where(finite, e, 0.0))
    floor = max(REL_FLOOR_EPS * float(scale.max()), float(np.finfo(np.float64).tiny))
    with np.errstate(over="ignore"):  # an all-zero reference: relative error is infinite, as it should be
        rel = diff / np.maximum(scale, floor)
    excess = diff - rtol * scale  # an element fails when this is over atol
    failing = ~(excess <= atol)
    with np.errstate(divide="ignore", invalid="ignore"):
        over_atol = diff > atol
        needed_rtol = np.where(over_atol, np.where(scale > 0, (diff - atol) / scale, np.inf), 0.0)
    worst = tuple(int(i) for i in np.unravel_index(int(np.argmax(excess)), a.shape))
    mismatches = int(failing.sum())
    nonfinite = int((~finite).sum())
    fraction = mismatches / a.size
    return Comparison(
        passed=nonfinite == 0 and fraction <= max_mismatch_frac,
        max_abs_diff=float(diff.max()),
        mean_abs_diff=_mean(diff),
        p99_abs_diff=_p99(diff),
        max_rel_diff=float(rel.max()),
        mean_rel_diff=_mean(rel),
        p99_rel_diff=_p99(rel),
        worst_index=worst,
        worst_axes=axes,
        actual_at_worst=float(a[worst]),
        expected_at_worst=float(e[worst]),
        atol=float(atol),
        rtol=float(rtol),
        max_mismatch_frac=float(max_mismatch_frac),
        required_atol=float(max(excess.max(), 0.0)),
        required_rtol=float(needed_rtol.max()),
        mismatches=mismatches,
        mismatch_fraction=fraction,
        size=int(a.size),
        shape=tuple(a.shape),
        nonfinite=nonfinite,
    )


def _mean(values: np.ndarray) -> float:
    with np.errstate(over="ignore", invalid="ignore"):
        return float(values.mean())


def _p99(values: np.ndarray) -> float:
    return float(np.percentile(values, 99, method="higher"))  # "higher": no inf - inf interpolation


def max_abs_error(actual, expected) -> float:
    """``max |actual - expected|`` in float64 (inf when a value is not finite)."""
    a = _as_array(actual).astype(np.float64)
    e = _as_array(expected).astype(np.float64)
    if a.size == 0:
        return 0.0
    with np.errstate(invalid="ignore", over="ignore"):
        d = np.abs(a - e)
    return float(np.where(np.isfinite(d), d, np.inf).max())
