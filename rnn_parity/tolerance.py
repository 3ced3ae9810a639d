"""Which tolerance a comparison uses: ``explicit``, ``dtype`` or ``auto``.

* ``explicit``: the given ``atol`` and ``rtol`` (defaults :data:`DEFAULT_ATOL` and
  :data:`DEFAULT_RTOL`, float32's ``torch.testing`` values).
* ``dtype``: fixed per-dtype values like ``torch.testing``'s, chosen by the dtype
  Keras computes in (:data:`DTYPE_TOLERANCES`).
* ``auto``: passes when Keras's error against the float64 ground truth is at most
  :data:`AUTO_FACTOR` times the error that a correct NumPy implementation in
  Keras's compute dtype makes against the same truth, plus a floor of
  :data:`AUTO_FLOOR_ULPS` ulps (of that dtype) of the array's largest value.
  That is ``atol = AUTO_FACTOR · max|low − truth| + AUTO_FLOOR_ULPS · ulp(max|truth|)``
  and ``rtol = 0`` under the usual rule, so long sequences pass when their error
  is the rounding any correct implementation accumulates, and real bugs (errors
  of 1e-3 and more) still fail.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from .compare import max_abs_error

__all__ = [
    "AUTO_FACTOR",
    "AUTO_FLOOR_ULPS",
    "DEFAULT_ATOL",
    "DEFAULT_MODE",
    "DEFAULT_RTOL",
    "DTYPE_TOLERANCES",
    "MODES",
    "ThreeWay",
    "Tolerance",
    "ToleranceRule",
    "resolve",
    "three_way",
    "worst_three_way",
]

#: (rtol, atol) by the dtype Keras computes in, as torch.testing.assert_close uses.
DTYPE_TOLERANCES = {"float64": (1e-7, 1e-7), "float32": (1.3e-6, 1e-5), "float16": (1e-3, 1e-5)}
#: The explicit tolerances every command defaults to (``check``, ``verify``, ``export``, sweep configs);
#: why these: docs/tolerances.md, "Default tolerances and why".
DEFAULT_RTOL, DEFAULT_ATOL = DTYPE_TOLERANCES["float32"]
MODES = ("explicit", "dtype", "auto")
DEFAULT_MODE = "explicit"
AUTO_FACTOR = 10.0
AUTO_FLOOR_ULPS = 8


@dataclass(frozen=True)
class Tolerance:
    """A resolved tolerance and how it was chosen."""

    mode: str
    atol: float
    rtol: float
    max_mismatch_frac: float = 0.0
    #: auto mode: the low-precision reference's own max error that the bound is built on.
    basis: float | None = None

    def to_dict(self) -> dict:
        data = {"mode": self.mode, "atol": self.atol, "rtol": self.rtol, "max_mismatch_frac": self.max_mismatch_frac}
        if self.mode == "auto":
            data.update(factor=AUTO_FACTOR, floor_ulps=AUTO_FLOOR_ULPS, low_precision_error=self.basis)
        return data


def ulp(value: float, dtype: str) -> float:
    """The spacing of ``dtype`` at ``value`` (at least at 1.0)."""
    return float(np.spacing(np.asarray(max(abs(value), 1.0), dtype=dtype)))


@dataclass(frozen=True)
class ThreeWay:
    """Keras, the reference in Keras's compute dtype ("low") and the float64 truth, on one output.

    ``roundoff_ratio`` is ``keras_vs_truth / low_vs_truth`` (the denominator at
    least one ulp of the output's scale): near 1, Keras errs like any correct
    implementation in its dtype; far above :data:`AUTO_FACTOR`, something else
    is going on.
    """

    low_dtype: str
    keras_vs_truth: float
    low_vs_truth: float
    keras_vs_low: float
    roundoff_ratio: float
    #: the compared array this is about (a layer's output or ``layer.state``), when named
    array: str | None = None

    @property
    def diagnosis(self) -> str:
        if not np.isfinite(self.keras_vs_truth):
            return "non-finite"
        return "rounding" if self.roundoff_ratio <= AUTO_FACTOR else "discrepancy"

    def to_dict(self) -> dict:
        return {
            "low_dtype": self.low_dtype,
            "keras_vs_truth": self.keras_vs_truth,
            "low_vs_truth": self.low_vs_truth,
            "keras_vs_low": self.keras_vs_low,
            "array": self.array,
        }


def _scale(truth) -> float:
    values = np.abs(np.asarray(np.stack(truth) if isinstance(truth, list) else truth, dtype=np.float64))
    values = values[np.isfinite(values)]
    return float(values.max()) if values.size else 1.0


def three_way(keras, truth, low, compute_dtype: str) -> ThreeWay:
    """Compare Keras and the low-precision reference with the float64 truth."""
    keras_err, low_err = max_abs_error(keras, truth), max_abs_error(low, truth)
    floor = ulp(_scale(truth), compute_dtype)
    return ThreeWay(
        low_dtype=compute_dtype,
        keras_vs_truth=keras_err,
        low_vs_truth=low_err,
        keras_vs_low=max_abs_error(keras, low),
        roundoff_ratio=keras_err / max(low_err, floor),
    )


def resolve(
    mode: str, *, atol: float, rtol: float, compute_dtype: str, max_mismatch_frac: float = 0.0, truth=None, low=None
) -> Tolerance:
    """The tolerance for one compared array.

    ``truth`` (float64 reference) and ``low`` (the reference in Keras's compute
    dtype) are needed for ``auto`` only.
    """
    if mode == "explicit":
        return Tolerance(mode=mode, atol=atol, rtol=rtol, max_mismatch_frac=max_mismatch_frac)
    if mode == "dtype":
        d_rtol, d_atol = DTYPE_TOLERANCES[compute_dtype]
        return Tolerance(mode=mode, atol=d_atol, rtol=d_rtol, max_mismatch_frac=max_mismatch_frac)
    if mode == "auto":
        basis = max_abs_error(low, truth)
        bound = AUTO_FACTOR * basis + AUTO_FLOOR_ULPS * ulp(_scale(truth), compute_dtype)
        return Tolerance(mode=mode, atol=float(bound), rtol=0.0, max_mismatch_frac=max_mismatch_frac, basis=basis)
    raise ValueError(f"unknown tolerance mode {mode!r}")


@dataclass(frozen=True)
class ToleranceRule:
    """What the user asked for (mode, atol, rtol, mismatch fraction) and the dtype Keras computes in.

    :meth:`resolve` gives the tolerance of one array from its float64 truth and
    its low-precision reference (the two are only read in ``auto`` mode).
    """

    mode: str = DEFAULT_MODE
    atol: float = DEFAULT_ATOL
    rtol: float = DEFAULT_RTOL
    compute_dtype: str = "float32"
    max_mismatch_frac: float = 0.0

    @classmethod
    def of(cls, options, compute_dtype: str) -> ToleranceRule:
        """The rule of validated options (``tolerance``, ``atol``, ``rtol``, ``max_mismatch_frac``)."""
        return cls(
            mode=options.tolerance,
            atol=options.atol,
            rtol=options.rtol,
            compute_dtype=compute_dtype,
            max_mismatch_frac=options.max_mismatch_frac,
        )

    def resolve(self, truth=None, low=None) -> Tolerance:
        return resolve(
            self.mode,
            atol=self.atol,
            rtol=self.rtol,
            compute_dtype=self.compute_dtype,
            max_mismatch_frac=self.max_mismatch_frac,
            truth=truth,
            low=low,
        )


def worst_three_way(arrays, compute_dtype: str) -> ThreeWay:
    """:func:`three_way` over every compared array: the model output's unless another is worse.

    ``arrays`` is ``[(name, keras, truth, low), ...]`` with the model output
    first. When every array is rounding, the model output's diagnosis stands;
    otherwise the array that most needs explaining is reported (non-finite
    first, then the highest roundoff ratio), so a failing first layer is not
    called rounding because the model output happens to be close.
    """
    found = [replace(three_way(k, t, low, compute_dtype), array=name) for name, k, t, low in arrays]
    bad = [w for w in found if w.diagnosis != "rounding"]
    if not bad:
        return found[0]
    return max(bad, key=lambda w: (w.diagnosis == "non-finite", w.roundoff_ratio))
