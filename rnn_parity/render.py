"""Render reports for people (rich tables) and machines (JSON).

Renderers take the plain report dicts of :mod:`rnn_parity.report`, so what a
table shows is exactly what the JSON says.
"""

from __future__ import annotations

import json
import math

from rich import box
from rich.console import Group
from rich.table import Table
from rich.text import Text

__all__ = ["check_table", "diagnosis_text", "fmt", "sparkline", "to_json", "verdict_text"]

_BARS = "▁▂▃▄▅▆▇█"


def _jsonable(value):
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def to_json(report: dict) -> str:
    """Strict JSON: non-finite floats become the strings ``"nan"``, ``"inf"``, ``"-inf"``."""
    return json.dumps(_jsonable(report), indent=2, allow_nan=False) + "\n"


def fmt(value, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    if value == 0:
        return "0"
    if not math.isfinite(value):
        return str(value)
    return f"{value:.{digits}e}"


def verdict_text(passed: bool | None, label: str | None = None) -> Text:
    if passed is None:
        return Text(label or "ERROR", style="bold yellow")
    return Text(label or ("PASS" if passed else "FAIL"), style="bold green" if passed else "bold red")


def sparkline(values, width: int = 40) -> str:
    """One line of bars for a curve on a log scale; at most ``width`` characters (max over bins)."""
    vals = [float(v) for v in values]
    if not vals:
        return ""
    if len(vals) > width:
        step = len(vals) / width
        vals = [max(vals[int(i * step): max(int((i + 1) * step), int(i * step) + 1)]) for i in range(width)]
    logs = [math.log10(v) for v in vals if v > 0 and math.isfinite(v)]
    if not logs:
        return _BARS[0] * len(vals)
    lo, hi = min(logs), max(logs)
    out = []
    for v in vals:
        if not math.isfinite(v):
            out.append("!")
        elif v <= 0:
            out.append(" ")
        else:
            level = 0 if hi == lo else round((math.log10(v) - lo) / (hi - lo) * (len(_BARS) - 1))
            out.append(_BARS[level])
    return "".join(out)


def diagnosis_text(report: dict) -> Text:
    """Whether the error is the rounding any correct implementation makes, or something else."""
    three, ratio = report["three_way"], report["roundoff_ratio"]
    low = three["low_dtype"]
    if report["diagnosis"] == "non-finite":
        return Text("non-finite values: an overflow or NaN, not a rounding question", style="bold red")
    if report["diagnosis"] == "rounding":
        growth = report.get("error_growth_per_step")
        grows = ""
        if growth is not None and report["config"]["T"] >= 20:
            factor = 10 ** (growth * 100)
            trend = "stays flat" if 0.8 <= factor <= 1.25 else ("grows" if factor > 1 else "shrinks")
            grows = f"; over time it {trend} (×{factor:.3g} per 100 steps)"
        return Text(f"{low} rounding growth: Keras's error is {ratio:.2g}× that of a correct {low} NumPy "
                    f"implementation{grows}", style="green")
    return Text(f"a real discrepancy: Keras's error is {ratio:.3g}× that of a correct {low} NumPy "
                f"implementation, far above rounding", style="bold red")


def environment_text(env: dict) -> Text:
    blas = ", ".join(f"{b['api']} {b['version']} ({b['threads']} threads)" for b in env.get("blas", [])) or "unknown"
    onednn = {True: "on", False: "off", None: "n/a"}[env.get("onednn")]
    return Text(
        f"Python {env['python']} · NumPy {env['numpy']} · Keras {env['keras']} ({env['keras_backend']}) · "
        f"TensorFlow {env['tensorflow']} · oneDNN {onednn}\nBLAS {blas} · {env['cpu']} · {env['cpu_count']} CPUs\n"
        f"reproduce: {env['command']}",
        style="dim",
    )


def _shape(shape) -> str:
    return "×".join(str(d) for d in shape)


_DEFAULT_OPTIONS = {"cell": "simple_rnn", "activation": "tanh", "recurrent_activation": None, "use_bias": True,
                    "reset_after": True, "unit_forget_bias": True, "return_sequences": False,
                    "return_state": False, "go_backwards": False, "initial_state": False, "mask": "none",
                    "stateful": False, "bidirectional": None, "unroll": False, "tolerance": "explicit",
                    "max_mismatch_frac": 0.0}


def _config_lines(cfg: dict) -> Text:
    sizes = " ".join(f"{k}={cfg[k] if not isinstance(cfg[k], list) else ','.join(map(str, cfg[k]))}"
                     for k in ("N", "T", "D", "M", "K"))
    text = "  ·  ".join([sizes, f"seed={cfg['seed']}", f"NumPy {cfg['reference_dtype']} vs Keras {cfg['keras_dtype']}"])
    options = [(k if cfg[k] else f"no {k}") if isinstance(cfg[k], bool) else f"{k}={cfg[k]}"
               for k, default in _DEFAULT_OPTIONS.items() if k in cfg and cfg[k] != default]
    if options:
        text += "\noptions: " + ", ".join(options)
    return Text(text)


def check_table(report: dict):
    """The ``check`` report as a rich renderable (fits 80 columns)."""
    title = Text.assemble(("rnn-parity check  ", "bold"), verdict_text(report["passed"]))

    layers = Table(box=box.SIMPLE_HEAVY, title="Layers", title_justify="left", pad_edge=False)
    layers.add_column("layer")
    layers.add_column("weights")
    layers.add_column("params", justify="right")
    layers.add_column("Keras", justify="right")
    layers.add_column("max |Δ|", justify="right")
    layers.add_column("")
    for layer in report["layers"]:
        weights = "\n".join(f"{w['symbol']:<2} {w['name']} {_shape(w['shape'])}" for w in layer["weights"]) or "-"
        kind = layer["class_name"] + (f"({layer['cell']})" if layer["class_name"] == "Bidirectional" else "")
        layers.add_row(Text.assemble(layer["name"] + "\n", (kind, "dim")), weights, str(layer["params_formula"]),
                       str(layer["params"]), fmt(layer["max_abs_diff"], 2), verdict_text(layer["passed"]))
    layers.add_row("total", "", str(sum(layer["params_formula"] for layer in report["layers"])),
                   str(report["param_counts"]["total"]), "", "")

    result = Table(box=box.SIMPLE_HEAVY, show_header=False, title="Model output: Keras vs NumPy",
                   title_justify="left", pad_edge=False)
    result.add_column("what", style="bold", no_wrap=True)
    result.add_column("value")
    result.add_row("abs diff", f"max {fmt(report['max_abs_diff'])} · mean {fmt(report['mean_abs_diff'])} · "
                   f"p99 {fmt(report['p99_abs_diff'])}")
    result.add_row("rel diff", f"max {fmt(report['max_rel_diff'])} · mean {fmt(report['mean_rel_diff'])} · "
                   f"p99 {fmt(report['p99_rel_diff'])}")
    axes = ", ".join(f"{a}={i}" for a, i in zip(report["worst_axes"], report["worst_index"]))
    result.add_row("worst element",
                   f"{axes}: Keras {report['keras_at_worst']:.9g}  NumPy {report['reference_at_worst']:.9g}")
    tol = report["tolerance"]
    rule = f"|Keras − NumPy| ≤ {report['atol']:.3g} + {report['rtol']:g}·|NumPy|  ({tol['mode']})"
    if tol["mode"] == "auto":
        rule += f"\n= {tol['factor']:g}× the {report['three_way']['low_dtype']} reference's error + {tol['floor_ulps']} ulps"
    result.add_row("tolerance", rule)
    result.add_row("smallest passing", f"atol {fmt(report['required_atol'])} (with rtol {report['rtol']:g}) · "
                   f"rtol {fmt(report['required_rtol'])} (with atol {report['atol']:.3g})")
    allowed = f", {tol['max_mismatch_frac']:g} allowed" if tol["max_mismatch_frac"] else ""
    result.add_row("mismatches", f"{report['mismatches']} of {report['size']} ({report['mismatch_fraction']:.3g}"
                   f"{allowed})" + (f"; {report['nonfinite']} not finite" if report["nonfinite"] else ""))
    three = report["three_way"]
    result.add_row("vs float64 truth", f"Keras {fmt(three['keras_vs_truth'])} · NumPy {three['low_dtype']} "
                   f"{fmt(three['low_vs_truth'])} · roundoff ratio {report['roundoff_ratio']:.3g}")
    result.add_row("diagnosis", diagnosis_text(report))
    curve = report["timestep_max_abs_diff"]
    if curve:
        first = report["first_divergence"]
        where = "no timestep over tolerance" if first is None else f"first over tolerance at t={first}"
        result.add_row(f"error over time ({report['time_layer']})",
                       f"{sparkline(curve)}\nmax {fmt(max(curve))} at t={curve.index(max(curve))}; {where}")
    for name, state in report["states"].items():
        result.add_row(f"state {name}", Text.assemble(f"max abs diff {fmt(state['max_abs_diff'])}  ",
                                                      verdict_text(state["passed"])))
    result.add_row("verdict", verdict_text(report["passed"]))
    return Group(title, _config_lines(report["config"]), layers, result, environment_text(report["environment"]))


def explain_view(explanation, report: dict):
    """``rnn-parity explain`` as a rich renderable."""
    parts = [Text.assemble(("rnn-parity explain  ", "bold"), verdict_text(report["passed"])),
             _config_lines(report["config"])]
    summary = Table(box=box.SIMPLE_HEAVY, title="Model", title_justify="left", pad_edge=False)
    for col, just in (("layer", "left"), ("class", "left"), ("output shape", "left"), ("params by formula", "left"),
                      ("Keras", "right")):
        summary.add_column(col, justify=just)
    for story, layer in zip(explanation.layers, report["layers"]):
        shape = "(None, " + ", ".join(map(str, layer["shape"][1:])) + ")" if layer["shape"] else "-"
        same = story.params_formula == story.params_keras
        summary.add_row(story.name, story.class_name, shape, story.formula,
                        Text(str(story.params_keras), style="green" if same else "bold red"))
    parts.append(summary)
    for story in explanation.layers:
        lines = [Text(f"{story.name} ({story.class_name})", style="bold")]
        if story.weights:
            lines.append(Text("weights: " + ";  ".join(story.weights), style="cyan"))
        lines += [Text("  " + eq) for eq in story.equations]
        parts.append(Group(*lines, Text("")))
    steps = Table(box=box.SIMPLE_HEAVY, title=f"Step by step ({explanation.step_note})", title_justify="left",
                  pad_edge=False)
    for col, just in (("t", "right"), ("x_t", "left"), ("h_t NumPy", "left"), ("h_t Keras", "left"),
                      ("max |Δ|", "right")):
        steps.add_column(col, justify=just)
    for row in explanation.steps:
        if row is None:
            steps.add_row("…", "", "", "", "")
            continue
        steps.add_row(str(row["t"]), row["x_t"], row["numpy"], row["keras"], fmt(row["diff"], 2))
    parts.append(steps)
    parts.append(Text.assemble("model output: max |Keras − NumPy| ", fmt(report["max_abs_diff"]), "  ",
                               verdict_text(report["passed"])))
    return Group(*parts)
