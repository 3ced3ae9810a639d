"""Pictures of where the error is: over time for one check, against a swept key for a sweep.

matplotlib is an optional extra (``pip install 'rnn-parity[plot]'``); without it
:func:`require_matplotlib` raises a one-line :class:`~rnn_parity.errors.InvalidInput`.
The functions take the plain report dicts, so a plot shows what the JSON says.
"""

from __future__ import annotations

import io
import math

from .errors import InvalidInput
from .files import write_atomic

__all__ = ["check_plot", "require_matplotlib", "sweep_plot"]

INSTALL_HINT = "plots need matplotlib: pip install 'rnn-parity[plot]' (or pip install matplotlib)"


def require_matplotlib(option: str = "--plot"):
    """Import matplotlib with a non-interactive backend, or raise a one-line error."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise InvalidInput(f"{option}: {INSTALL_HINT}") from None
    return plt


def _save(fig, path) -> None:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120, bbox_inches="tight")
    write_atomic(path, buffer.getvalue())


def _positive(values):
    """Zeros cannot sit on a log axis: show them at the floor of the plot."""
    finite = [v for v in values if v > 0 and math.isfinite(v)]
    floor = min(finite) / 10 if finite else 1e-12
    return [v if v > 0 else floor for v in values], floor


def check_plot(report: dict, path) -> None:
    """Error against timestep (log y): Keras, the low-precision reference, the tolerance, the first divergence."""
    plt = require_matplotlib()
    keras_err, floor = _positive(report["timestep_max_abs_diff"])
    low_err, _ = _positive(report["timestep_low_max_abs_diff"])
    steps = list(range(len(keras_err)))
    cfg, three = report["config"], report["three_way"]
    norms = (report.get("gradients") or {}).get("dh_norm")
    if norms:  # a second panel: the gradients over time
        fig, (ax, grad_ax) = plt.subplots(2, 1, figsize=(8, 8), constrained_layout=True)
        _gradient_panel(grad_ax, norms)
    else:
        fig, ax = plt.subplots(figsize=(8, 4.5))
    ax.plot(steps, keras_err, color="tab:blue", lw=1.4, label="Keras vs reference")
    ax.plot(
        steps,
        low_err,
        color="tab:gray",
        lw=1.0,
        ls="--",
        label=f"correct NumPy {three['low_dtype']} vs float64 (rounding alone)",
    )
    tol = report["time_tolerance"]
    ax.axhline(tol["atol"], color="tab:red", lw=1.0, label=f"atol {tol['atol']:.3g} ({report['tolerance']['mode']})")
    if tol["rtol"] > 0:
        loosest = tol["atol"] + tol["rtol"] * tol["reference_scale"]
        ax.axhline(loosest, color="tab:red", lw=0.8, ls=":", label=f"atol + rtol·max|ref| = {loosest:.3g}")
    first = report["first_divergence"]
    if first is not None:
        ax.axvline(first, color="tab:orange", lw=1.2, label=f"first divergence t={first}")
    ax.set_yscale("log")
    ax.set_xlabel("timestep (processing order)")
    ax.set_ylabel("max |Keras − NumPy| over batch and units")
    verdict = "PASS" if report["passed"] else "FAIL"
    sizes = " ".join(f"{k}={cfg[k]}" for k in ("N", "T", "D", "M", "K"))
    ax.set_title(
        f"layer {report['time_layer']}, {sizes}: {verdict}, {report['diagnosis']} "
        f"(roundoff ratio {report['roundoff_ratio']:.2g})",
        fontsize=10,
    )
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    _save(fig, path)
    plt.close(fig)


def _gradient_panel(ax, norms: dict) -> None:
    """‖dL/dh_t‖ against the processing step (log y): vanishing or exploding gradients at a glance."""
    reference, _ = _positive(norms["reference"])
    steps = list(range(len(reference)))
    ax.plot(steps, reference, color="tab:green", lw=1.6, label="NumPy BPTT (float64)")
    if norms.get("keras") is not None:
        keras, _ = _positive(norms["keras"])
        ax.plot(steps, keras, color="tab:blue", lw=1.0, ls="--", label="Keras autodiff")
    ax.set_yscale("log")
    ax.set_xlabel("timestep (processing order)")
    ax.set_ylabel("‖dL/dh_t‖")
    ax.set_title(f"gradient reaching the hidden state of {norms['layer']} at each step", fontsize=10)
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)


def sweep_plot(cases: list[dict], path, x_key: str = "T") -> None:
    """Max error against a swept key, one point per finished case, coloured by verdict.

    A numeric key gets a numeric axis; any other (``cell``, a stacked ``M``) a categorical one.
    """
    plt = require_matplotlib()
    colours = {"pass": "tab:green", "fail": "tab:red"}

    def x_of(case):
        value = case["config"][x_key]
        return ",".join(map(str, value)) if isinstance(value, list) else value

    finished = [c for c in cases if c.get("status") in colours and isinstance(c.get("max_abs_diff"), (int, float))]
    numeric = all(isinstance(x_of(c), (int, float)) and not isinstance(x_of(c), bool) for c in finished)
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for status, colour in colours.items():
        points = [(x_of(c) if numeric else str(x_of(c)), c["max_abs_diff"]) for c in finished if c["status"] == status]
        if points:
            xs, ys = zip(*points)
            ax.scatter(xs, _positive(list(ys))[0], color=colour, label=f"{status} ({len(points)})", s=28, alpha=0.8)
    errors = sum(c.get("status") == "error" for c in cases)
    if not finished:
        ax.text(0.5, 0.5, "no finished case to plot", ha="center", va="center", transform=ax.transAxes)
    else:
        ax.set_yscale("log")
        ax.legend(fontsize=8, title=f"{errors} errored, not shown" if errors else None)
    ax.set_xlabel(x_key)
    ax.set_ylabel("max |Keras − NumPy| (model output)")
    ax.set_title(f"parity across the sweep, by {x_key}", fontsize=10)
    ax.grid(True, which="both", alpha=0.25)
    _save(fig, path)
    plt.close(fig)
