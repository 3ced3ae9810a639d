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

__all__ = ["check_table", "fmt", "to_json", "verdict_text", "verify_table"]


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


def _output_table(report: dict, states: dict, title: str = "Model output: Keras vs NumPy") -> Table:
    """The model output's statistics, each state's verdict and the overall verdict."""
    result = Table(box=box.SIMPLE_HEAVY, show_header=False, title=title,
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
    for name, state in states.items():
        result.add_row(f"state {name}", Text.assemble(f"max abs diff {fmt(state['max_abs_diff'])}  ",
                                                      verdict_text(state["passed"])))
    result.add_row("verdict", verdict_text(report["passed"]))
    return result


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

    result = _output_table(report, report["states"])
    return Group(title, _config_lines(report["config"]), layers, result)


def _mask_text(masks: list[dict]) -> Text:
    if not any(m["keras"] or m["reference"] for m in masks):
        return Text("-", style="dim")
    if all(m["passed"] for m in masks):
        return Text("same", style="green")
    bad = next(m for m in masks if not m["passed"])
    if bad["keras"] != bad["reference"]:
        return Text("Keras only" if bad["keras"] else "NumPy only", style="bold red")
    return Text(f"{bad['mismatches']} differ", style="bold red")


def verify_table(report: dict):
    """The ``verify`` (and ``export``) report as a rich renderable."""
    title = Text.assemble((f"rnn-parity {report.get('command', 'verify')}  ", "bold"), verdict_text(report["passed"]))
    model, cfg = report["model"], report["config"]
    inputs = ("seeded " + ", ".join(f"{name} {_shape(shape)}" for name, shape in report["inputs"]["shapes"].items())
              + f"  seed={cfg['seed']}") if cfg["input"] is None else f"from {cfg['input']}"
    header = Text("\n".join([
        model["path"],
        f"{model['class_name']} '{model['name']}'  ·  .{model['format']} file"
        + (f" saved by Keras {model['keras_version']}" if model["keras_version"] else ""),
        f"inputs: {inputs}",
        f"NumPy {cfg['reference_dtype']} vs Keras",
    ]))

    first = (report["first_failure"] or {}).get("layer")
    layers = Table(box=box.SIMPLE_HEAVY, title="Layers, in execution order", title_justify="left", pad_edge=False)
    layers.add_column("layer", no_wrap=True)
    layers.add_column("reads")
    layers.add_column("output", justify="right")
    layers.add_column("params", justify="right")
    layers.add_column("max |Δ|", justify="right")
    layers.add_column("mask")
    layers.add_column("")
    for layer in report["layers"]:
        kind = layer["class_name"] + (f"({layer['cell']})" if layer["class_name"] == "Bidirectional" else "")
        verdict = verdict_text(layer["passed"])
        if layer["name"] == first:
            verdict = Text.assemble(verdict, (" ←", "bold red"))
        worst = max([layer["max_abs_diff"], *(s["max_abs_diff"] for s in layer["states"].values())])
        reads = "\n".join([*layer["inputs"], *(f"{n} (state)" for n in layer["initial_state"])])
        layers.add_row(Text.assemble(layer["name"] + "\n", (kind, "dim")), reads,
                       _shape(layer["shape"]), str(layer["params"]), fmt(worst, 2), _mask_text(layer["masks"]),
                       verdict)
    layers.add_row("total", "", "", str(report["param_counts"]["total"]), "", "", "")

    parts = [title, header, layers]
    failure = report["first_failure"]
    if failure:
        where = f", from step {failure['step']}" if failure["step"] is not None else ""
        parts.append(Text(f"first failure: layer {failure['layer']} ({failure['class_name']}), "
                          f"{failure['reason']}{where}", style="bold red"))
    notes = [f"{layer['name']}: {note}" for layer in report["layers"] for note in layer["notes"]]
    if notes:
        parts.append(Text("\n".join(notes), style="yellow"))
    parts.append(_output_table(report, report["states"], title=f"Model output {model['outputs'][0]}: Keras vs NumPy"))
    export = report.get("export")
    if export:
        parts.append(Text(f"wrote {export['path']} ({export['bytes']} bytes, format {export['format_version']})"
                          if export["written"] else f"nothing written to {export['path']}: parity does not hold",
                          style="bold green" if export["written"] else "bold red"))
    return Group(*parts)
