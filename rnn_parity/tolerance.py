"""Which tolerance a comparison uses: ``explicit``, ``dtype`` or ``auto``.

* ``explicit``: the spec's ``atol`` and ``rtol`` (defaults 1e-5 and 1.3e-6).
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

from dataclasses import dataclass

import numpy as np

from .compare import max_abs_error

__all__ = ["AUTO_FACTOR", "AUTO_FLOOR_ULPS", "DTYPE_TOLERANCES", "Tolerance", "resolve"]

#: (rtol, atol) by the dtype Keras computes in, as torch.testing.assert_close uses.
DTYPE_TOLERANCES = {"float64": (1e-7, 1e-7), "float32": (1.3e-6, 1e-5), "float16": (1e-3, 1e-5)}
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


def resolve(mode: str, *, atol: float, rtol: float, compute_dtype: str, max_mismatch_frac: float = 0.0,
            truth=None, low=None) -> Tolerance:
    """The tolerance for one compared array.

    ``truth`` (float64 reference) and ``low`` (the reference in Keras's compute
    dtype) are needed for ``auto`` only.
    """
    if mode == "explicit":
        return Tolerance(mode, atol, rtol, max_mismatch_frac)
    if mode == "dtype":
        d_rtol, d_atol = DTYPE_TOLERANCES[compute_dtype]
        return Tolerance(mode, d_atol, d_rtol, max_mismatch_frac)
    if mode == "auto":
        basis = max_abs_error(low, truth)
        scale = max_abs_error(truth, np.zeros_like(np.asarray(truth, dtype=np.float64))) if np.size(truth) else 1.0
        bound = AUTO_FACTOR * basis + AUTO_FLOOR_ULPS * ulp(scale, compute_dtype)
        return Tolerance(mode, float(bound), 0.0, max_mismatch_frac, basis)
    raise ValueError(f"unknown tolerance mode {mode!r}")
