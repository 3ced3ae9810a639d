"""Statistics of two arrays and the pass rule, written once.

The rule, per element, with ``actual`` from Keras and ``expected`` from the
NumPy reference::

    |actual - expected| <= atol + rtol * |expected|

(numpy's ``isclose`` convention, not Polygraphy's "over both"). A NaN or an
infinity in either array fails that element. Differences are taken in float64
whatever the inputs' dtypes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

__all__ = ["Comparison", "compare"]


@dataclass(frozen=True)
class Comparison:
    """The verdict on one pair of arrays and what explains it.

    Attributes:
        passed: every element within tolerance, and all values finite.
        max_abs_diff: ``max |actual - expected|`` (inf when a value is not finite).
        mean_abs_diff: the mean of ``|actual - expected|``.
        max_rel_diff: ``max |actual - expected| / |expected|`` over elements whose
            expected value is not 0; an element with ``expected == 0`` counts 0
            when it matches exactly and inf otherwise.
        worst_index: the element furthest over (or closest to) the tolerance,
            ``|d| - rtol·|expected|`` largest; a non-finite element first.
        actual_at_worst, expected_at_worst: both values there.
        required_atol: the smallest atol that passes with this rtol.
        mismatches: how many elements fail; size: how many were compared.
        nonfinite: how many elements are NaN or infinite in either array.
    """

    passed: bool
    max_abs_diff: float
    mean_abs_diff: float
    max_rel_diff: float
    worst_index: tuple[int, ...]
    actual_at_worst: float
    expected_at_worst: float
    atol: float
    rtol: float
    required_atol: float
    mismatches: int
    size: int
    shape: tuple[int, ...]
    nonfinite: int

    def to_dict(self) -> dict:
        data = asdict(self)
        data["worst_index"] = list(self.worst_index)
        data["shape"] = list(self.shape)
        return data


def _as_array(value) -> np.ndarray:
    if isinstance(value, (list, tuple)):
        return np.stack([np.asarray(v) for v in value])
    return np.asarray(value)


def compare(actual, expected, *, atol: float, rtol: float) -> Comparison:
    """Compare ``actual`` (Keras) with ``expected`` (the reference) under the rule above.

    A list of arrays (Bidirectional with ``merge_mode=None``) is stacked first.
    Raises ValueError when the shapes differ.
    """
    a = _as_array(actual).astype(np.float64)
    e = _as_array(expected).astype(np.float64)
    if a.shape != e.shape:
        raise ValueError(f"shapes differ: Keras {a.shape}, reference {e.shape}")
    if a.size == 0:
        return Comparison(True, 0.0, 0.0, 0.0, (), float("nan"), float("nan"), atol, rtol, 0.0, 0, 0, a.shape, 0)
    finite = np.isfinite(a) & np.isfinite(e)
    with np.errstate(invalid="ignore", over="ignore"):
        diff = np.where(finite, np.abs(a - e), np.inf)
    scale = np.abs(np.where(finite, e, 0.0))
    excess = diff - rtol * scale  # > atol means the element fails
    failing = ~(excess <= atol)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.where(scale > 0, diff / np.where(scale > 0, scale, 1.0), np.where(diff == 0, 0.0, np.inf))
    flat_worst = int(np.argmax(excess))
    worst = tuple(int(i) for i in np.unravel_index(flat_worst, a.shape))
    return Comparison(
        passed=not bool(failing.any()),
        max_abs_diff=float(diff.max()),
        mean_abs_diff=float(diff.mean()),
        max_rel_diff=float(rel.max()),
        worst_index=worst,
        actual_at_worst=float(a[worst]),
        expected_at_worst=float(e[worst]),
        atol=float(atol),
        rtol=float(rtol),
        required_atol=float(max(excess.max(), 0.0)),
        mismatches=int(failing.sum()),
        size=int(a.size),
        shape=tuple(a.shape),
        nonfinite=int((~finite).sum()),
    )
