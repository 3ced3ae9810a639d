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

__all__ = [
    "case_note",
    "cases_table",
    "check_table",
    "fmt",
    "review_order",
    "sizes_text",
    "stop_line",
    "summary_line",
    "summary_lines",
    "sweep_table",
    "to_json",
    "tolerance_text",
    "verdict_text",
]


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


# ----- sweeps -----
_STATUS_ORDER = {"fail": 0, "error": 1, "pass": 2}
_VERDICT = {"pass": "PASS", "fail": "FAIL", "error": "ERROR"}
_VERDICT_STYLE = {"pass": "bold green", "fail": "bold red", "error": "bold yellow"}


def review_order(entries: list[dict]) -> list[dict]:
    """Failures first, then errors, then passes; config order within each."""
    return sorted(entries, key=lambda e: _STATUS_ORDER[e["status"]])


def sizes_text(config: dict) -> str:
    """``N=4 T=10 D=3 M=16,8 K=2``."""
    return " ".join(
        f"{k}={','.join(map(str, v)) if isinstance(v, list) else v}"
        for k in ("N", "T", "D", "M", "K")
        for v in [config[k]]
    )


def tolerance_text(entry: dict) -> str:
    cfg = entry.get("config", {})
    atol, rtol = entry.get("atol", cfg.get("atol")), entry.get("rtol", cfg.get("rtol"))
    return f"atol {atol:g}, rtol {rtol:g}"


def failing_parts(entry: dict) -> list[str]:
    """The comparisons of a case that fail: layer names, then ``state h`` and the like."""
    parts = [layer["name"] for layer in entry.get("layers", []) if not layer["passed"]]
    parts += [f"state {name}" for name, state in entry.get("states", {}).items() if not state["passed"]]
    return parts


def first_line(text: str | None) -> str:
    return (text or "").strip().splitlines()[0] if (text or "").strip() else ""


def case_note(entry: dict) -> str:
    """Why a case did not pass, in one line ("" for a pass)."""
    if entry["status"] == "error":
        return first_line(entry["error"])
    if entry["status"] == "fail":
        return "fails: " + ", ".join(failing_parts(entry))
    return ""


def summary_line(report: dict) -> str:
    """``N passed, N failed, N errors``: the last line a sweep prints."""
    s = report["summary"]
    return f"{s['passed']} passed, {s['failed']} failed, {s['errors']} errors"


def stop_line(report: dict) -> str | None:
    """Why some cases did not run, or None."""
    s = report["summary"]
    if s["interrupted"]:
        return f"interrupted: {s['not_run']} of {s['total']} cases did not run"
    if s["stopped_early"]:
        return f"stopped at the first failure or error (--fail-fast): {s['not_run']} of {s['total']} cases did not run"
    return None


def summary_lines(report: dict) -> list[str]:
    """What a sweep prints under its table: a line per errored case, why cases did not run, the counts."""
    lines = [f"error in {e['name']}: {case_note(e)}" for e in report["cases"] if e["status"] == "error"]
    stop = stop_line(report)
    return lines + ([stop] if stop else []) + [summary_line(report)]


def sweep_table(report: dict) -> Table:
    """The sweep's summary table, failures first."""
    several = len(report["configs"]) > 1
    table = Table(box=box.SIMPLE_HEAVY, title="rnn-parity sweep", title_justify="left", pad_edge=False)
    table.add_column("case")
    if several:
        table.add_column("config")
    table.add_column("sizes")
    table.add_column("max |Δ|", justify="right")
    table.add_column("tolerance")
    table.add_column("verdict")
    table.add_column("seconds", justify="right")
    for entry in review_order(report["cases"]):
        cfg = entry["config"]
        status = entry["status"]
        verdict = Text(_VERDICT[status], style=_VERDICT_STYLE[status])
        row = [entry["name"]] + ([entry["config_file"]] if several else [])
        row += [
            sizes_text(cfg),
            fmt(entry.get("max_abs_diff"), 2),
            tolerance_text(entry),
            verdict,
            f"{entry['seconds']:.2f}",
        ]
        table.add_row(*row)
    return table


def cases_table(cases: list[dict]) -> Table:
    """The cases a sweep would run (``--dry-run``): name, config, sizes, the options that are not defaults."""
    table = Table(box=box.SIMPLE_HEAVY, pad_edge=False)
    for column in ("#", "case", "config", "sizes", "options"):
        table.add_column(column, justify="right" if column == "#" else "left")
    for i, case in enumerate(cases, 1):
        table.add_row(str(i), case["name"], case["config_file"], sizes_text(case["config"]), case["options"])
    return table
