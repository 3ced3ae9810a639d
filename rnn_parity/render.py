"""Render reports for people (rich tables) and machines (JSON).

Renderers take the plain report dicts of :mod:`rnn_parity.report`, so what a
table shows is exactly what the JSON says.
"""

from __future__ import annotations

import json
import math

from rich import box
from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

__all__ = ["check_table", "fmt", "to_json", "verdict_text"]


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


def _shape(shape) -> str:
    return "×".join(str(d) for d in shape)


_DEFAULT_OPTIONS = {"cell": "simple_rnn", "activation": "tanh", "recurrent_activation": None, "use_bias": True,
                    "reset_after": True, "unit_forget_bias": True, "return_sequences": False,
                    "return_state": False, "go_backwards": False, "initial_state": False, "mask": "none",
                    "stateful": False, "bidirectional": None, "unroll": False}


def _config_lines(cfg: dict) -> Text:
    sizes = " ".join(f"{k}={cfg[k] if not isinstance(cfg[k], list) else ','.join(map(str, cfg[k]))}"
                     for k in ("N", "T", "D", "M", "K"))
    text = "  ·  ".join([sizes, f"seed={cfg['seed']}", f"NumPy {cfg['reference_dtype']} vs Keras float32"])
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
    worst = ", ".join(map(str, report["worst_index"]))
    result.add_row("max abs diff", fmt(report["max_abs_diff"]))
    result.add_row("max rel diff", fmt(report["max_rel_diff"]))
    result.add_row("mean abs diff", fmt(report["mean_abs_diff"]))
    result.add_row("worst element",
                   f"[{worst}]  Keras {report['keras_at_worst']:.9g}  NumPy {report['reference_at_worst']:.9g}")
    result.add_row("tolerance", f"|Keras − NumPy| ≤ {report['atol']:g} + {report['rtol']:g}·|NumPy|")
    result.add_row("smallest passing atol", f"{fmt(report['required_atol'])} (with rtol {report['rtol']:g})")
    result.add_row("mismatches", f"{report['mismatches']} of {report['size']}"
                   + (f" ({report['nonfinite']} not finite)" if report["nonfinite"] else ""))
    for name, state in report["states"].items():
        result.add_row(f"state {name}", Text.assemble(f"max abs diff {fmt(state['max_abs_diff'])}  ",
                                                      verdict_text(state["passed"])))
    result.add_row("verdict", verdict_text(report["passed"]))
    return Group(title, _config_lines(report["config"]), layers, result)
