"""Render reports for people (rich tables) and machines (JSON).

Renderers take the plain report dicts of :mod:`rnn_parity.report`, so what a
table shows is exactly what the JSON says.
"""

from __future__ import annotations

import io
import json
import math

from rich import box
from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from .recurrent import is_bidirectional

__all__ = [
    "all_backends_table",
    "case_note",
    "cases_table",
    "check_table",
    "diagnosis_text",
    "explain_view",
    "fmt",
    "html",
    "impl_note",
    "plain_text",
    "review_order",
    "sizes_text",
    "sparkline",
    "gradients_table",
    "gradient_explain_view",
    "stop_line",
    "summary_line",
    "summary_lines",
    "sweep_table",
    "to_json",
    "tolerance_text",
    "verdict_diff",
    "verdict_text",
    "verify_table",
    "weights_view",
]

_BARS = "▁▂▃▄▅▆▇█"


def _kind(layer: dict) -> str:
    """A report layer's class, with the wrapped cell for Bidirectional: ``Bidirectional(LSTM)`` (``(RNN)``: cells)."""
    if not is_bidirectional(layer["class_name"]):
        return layer["class_name"]
    wrapped = layer.get("cell") or (layer.get("options") or {}).get("layer", {}).get("class_name")
    return f"{layer['class_name']}({wrapped})"


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
        vals = [max(vals[int(i * step) : max(int((i + 1) * step), int(i * step) + 1)]) for i in range(width)]
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
        long = report["config"]["T"] >= 20
        grows = ""
        if growth is not None and long:
            factor = 10 ** (growth * 100)
            trend = "stays flat" if 0.8 <= factor <= 1.25 else ("grows" if factor > 1 else "shrinks")
            grows = f"; over time it {trend} (×{factor:.3g} per 100 steps)"
        what = f"{low} rounding growth" if long else f"{low} rounding"
        return Text(
            f"{what}: Keras's error is {ratio:.2g}× that of a correct {low} NumPy implementation{grows}",
            style="green",
        )
    where = f" in {three['array']}" if three.get("array") else ""
    text = Text(
        f"a real discrepancy{where}: Keras's error is {ratio:.3g}× that of a correct {low} NumPy "
        f"implementation, far above rounding",
        style="bold red",
    )
    for known in report.get("known_differences") or []:
        text.append(f"\nknown backend difference {known['name']}: {known['summary']}", style="yellow")
    return text


def _backend_text(env: dict) -> str:
    """The backend's own facts: oneDNN for TensorFlow, the XLA device for JAX, threads for torch."""
    backend = env.get("keras_backend")
    if backend == "jax":
        x64 = "on" if env.get("jax_enable_x64") else "off"
        return f"JAX {env.get('jax')} · jaxlib {env.get('jaxlib')} · XLA {env.get('xla_device')} · x64 {x64}"
    if backend == "torch":
        mkldnn = {True: "on", False: "off", None: "n/a"}[env.get("torch_mkldnn")]
        return f"torch {env.get('torch')} · {env.get('torch_threads')} threads · oneDNN {mkldnn}"
    onednn = {True: "on", False: "off", None: "n/a"}[env.get("onednn")]
    return f"TensorFlow {env.get('tensorflow')} · oneDNN {onednn}"


def environment_text(env: dict) -> Text:
    blas = ", ".join(f"{b['api']} {b['version']} ({b['threads']} threads)" for b in env.get("blas", [])) or "unknown"
    return Text(
        f"Python {env['python']} · NumPy {env['numpy']} · Keras {env['keras']} ({env['keras_backend']}) · "
        f"{_backend_text(env)}\nBLAS {blas} · {env['cpu']} · {env['cpu_count']} CPUs\n"
        f"reproduce: {env['command']}",
        style="dim",
    )


def _shape(shape) -> str:
    return "×".join(str(d) for d in shape)


_DEFAULT_OPTIONS = {
    "cell": "simple_rnn",
    "activation": "tanh",
    "recurrent_activation": None,
    "use_bias": True,
    "reset_after": True,
    "unit_forget_bias": True,
    "return_sequences": False,
    "return_state": False,
    "go_backwards": False,
    "initial_state": False,
    "mask": "none",
    "stateful": False,
    "bidirectional": None,
    "unroll": False,
    "tolerance": "explicit",
    "max_mismatch_frac": 0.0,
    "time_profile": True,
}


def _config_lines(cfg: dict) -> Text:
    sizes = " ".join(
        f"{k}={cfg[k] if not isinstance(cfg[k], list) else ','.join(map(str, cfg[k]))}"
        for k in ("N", "T", "D", "M", "K")
    )
    text = "  ·  ".join([sizes, f"seed={cfg['seed']}", f"NumPy {cfg['reference_dtype']} vs Keras {cfg['keras_dtype']}"])
    options = [
        (k if cfg[k] else f"no {k}") if isinstance(cfg[k], bool) else f"{k}={cfg[k]}"
        for k, default in _DEFAULT_OPTIONS.items()
        if k in cfg and cfg[k] != default
    ]
    if options:
        text += "\noptions: " + ", ".join(options)
    return Text(text)


def _output_table(report: dict, states: dict, title: str = "Model output: Keras vs NumPy") -> Table:
    """The model output's statistics, the diagnostics a check adds, each state's verdict and the verdict."""
    result = Table(box=box.SIMPLE_HEAVY, show_header=False, title=title, title_justify="left", pad_edge=False)
    result.add_column("what", style="bold", no_wrap=True)
    result.add_column("value")
    result.add_row(
        "abs diff",
        f"max {fmt(report['max_abs_diff'])} · mean {fmt(report['mean_abs_diff'])} · p99 {fmt(report['p99_abs_diff'])}",
    )
    result.add_row(
        "rel diff",
        f"max {fmt(report['max_rel_diff'])} · mean {fmt(report['mean_rel_diff'])} · p99 {fmt(report['p99_rel_diff'])}",
    )
    axes = ", ".join(f"{a}={i}" for a, i in zip(report["worst_axes"], report["worst_index"]))
    result.add_row(
        "worst element", f"{axes}: Keras {report['keras_at_worst']:.9g}  NumPy {report['reference_at_worst']:.9g}"
    )
    tol = report.get("tolerance", {"mode": "explicit", "max_mismatch_frac": 0.0})
    rule = f"|Keras − NumPy| ≤ {report['atol']:.3g} + {report['rtol']:g}·|NumPy|  ({tol['mode']})"
    if tol["mode"] == "auto":
        rule += (
            f"\n= {tol['factor']:g}× the {report['three_way']['low_dtype']} reference's error + "
            f"{tol['floor_ulps']} ulps"
        )
    result.add_row("tolerance", rule)
    result.add_row(
        "smallest passing",
        f"atol {fmt(report['required_atol'])} (with rtol {report['rtol']:g}) · "
        f"rtol {fmt(report['required_rtol'])} (with atol {report['atol']:.3g})",
    )
    allowed = f", {tol['max_mismatch_frac']:g} allowed" if tol["max_mismatch_frac"] else ""
    result.add_row(
        "mismatches",
        f"{report['mismatches']} of {report['size']}"
        + (f" ({report['mismatch_fraction']:.3g}{allowed})" if report["mismatches"] or allowed else "")
        + (f"; {report['nonfinite']} not finite" if report["nonfinite"] else ""),
    )
    if "three_way" in report:
        three = report["three_way"]
        result.add_row(
            "vs float64 truth",
            f"Keras {fmt(three['keras_vs_truth'])} · NumPy {three['low_dtype']} "
            f"{fmt(three['low_vs_truth'])} · roundoff ratio {report['roundoff_ratio']:.3g}",
        )
        result.add_row("diagnosis", diagnosis_text(report))
    curve = report.get("timestep_max_abs_diff")
    if curve:
        first = report["first_divergence"]
        where = "no timestep over tolerance" if first is None else f"first over tolerance at t={first}"
        result.add_row(
            f"error over time ({report['time_layer']})",
            f"{sparkline(curve)}\nmax {fmt(max(curve))} at t={curve.index(max(curve))}; {where}",
        )
    for name, state in states.items():
        result.add_row(
            f"state {name}",
            Text.assemble(f"max abs diff {fmt(state['max_abs_diff'])}  ", verdict_text(state["passed"])),
        )
    # with --impl, report["passed"] is the implementation's verdict; this table is Keras's
    result.add_row("verdict", verdict_text(report.get("keras_passed", report["passed"])))
    return result


_FAILURE_LABEL = {"raised": "your implementation raised ", "timeout": "", "output": ""}


def _impl_table(report: dict) -> Table:
    """The user's implementation against Keras (the verdict), the reference and the truth; its suspected mistake."""
    impl = report["impl"]
    table = Table(
        box=box.SIMPLE_HEAVY,
        show_header=False,
        title=f"Your implementation: {impl['target']}",
        title_justify="left",
        pad_edge=False,
    )
    table.add_column("what", style="bold", no_wrap=True)
    table.add_column("value")
    failure = impl["failure"]
    if failure is not None:
        text = _FAILURE_LABEL[failure["kind"]] + failure["message"]
        if failure["location"]:
            text += f"\nat {failure['location']}"
        table.add_row("failure", Text(text, style="red"))
    else:
        for label, mine in impl["vs_keras"].items():
            ref = impl["vs_reference"][label]
            stats = f"max |Δ| {fmt(mine['max_abs_diff'])} · smallest passing atol {fmt(mine['required_atol'])}"
            if mine["first_divergence"] is not None:
                stats += f" · first over tolerance at t={mine['first_divergence']}"
            table.add_row(f"{label}: yours vs Keras", Text.assemble(stats + "  ", verdict_text(mine["passed"])))
            table.add_row(
                f"{label}: yours vs reference",
                Text.assemble(f"max |Δ| {fmt(ref['max_abs_diff'])}  ", verdict_text(ref["passed"])),
            )
        table.add_row(
            "Keras vs reference",
            Text.assemble(f"max |Δ| {fmt(report['max_abs_diff'])}  ", verdict_text(report["keras_passed"])),
        )
        three = impl["three_way"]
        table.add_row(
            "vs float64 truth",
            f"yours {fmt(three['impl_vs_truth'])} · NumPy {three['low_dtype']} {fmt(three['low_vs_truth'])}: "
            f"{impl['roundoff_ratio']:.3g}× {three['low_dtype']} rounding",
        )
        table.add_row("dtype", f"given {impl['dtype']} · returned {impl['returned_dtype']}")
        suspects = impl["suspected_mistakes"]
        if suspects:
            lines = [f"your output matches the reference with {suspects[0]['mistake']}"]
            lines += [f"also within tolerance: {s['mistake']}" for s in suspects[1:]]
            table.add_row("suspected mistake", Text("\n".join(lines), style="yellow"))
        elif not impl["passed"]:
            table.add_row(
                "suspected mistake",
                f"none of the {impl['mistakes_tried']} known mistakes that apply here reproduces your output",
            )
    table.add_row("verdict", verdict_text(impl["passed"]))
    return table


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
        kind = _kind(layer)
        layers.add_row(
            Text.assemble(layer["name"] + "\n", (kind, "dim")),
            weights,
            str(layer["params_formula"]),
            str(layer["params"]),
            fmt(layer["max_abs_diff"], 2),
            verdict_text(layer["passed"]),
        )
    layers.add_row(
        "total",
        "",
        str(sum(layer["params_formula"] for layer in report["layers"])),
        str(report["param_counts"]["total"]),
        "",
        "",
    )

    result = _output_table(report, report["states"])
    parts = [title, _config_lines(report["config"]), layers, result]
    if report.get("gradients"):
        parts.append(gradients_table(report["gradients"]))
    if report.get("impl") is not None:
        title.append("  your implementation vs Keras")
        parts.append(_impl_table(report))
    return Group(*parts, environment_text(report["environment"]))


def plain_text(renderable, width: int = 100) -> str:
    """A renderable as plain text (no colours), e.g. for an ``AssertionError``."""
    # force_jupyter=False: inside Jupyter rich would display the output instead of writing it to the file
    console = Console(file=io.StringIO(), width=width, color_system=None, soft_wrap=False, force_jupyter=False)
    console.print(renderable)
    return console.file.getvalue()


def html(renderable, width: int = 100) -> str:
    """A renderable as an HTML ``<pre>`` with inline styles (Jupyter's ``_repr_html_``)."""
    console = Console(file=io.StringIO(), record=True, width=width, color_system="truecolor", force_jupyter=False)
    console.print(renderable)
    return console.export_html(
        inline_styles=True, code_format='<pre style="font-family: monospace; line-height: 1.3">{code}</pre>'
    )


def all_backends_table(report: dict):
    """``check --backend all``: one row per backend, then the backend-vs-backend differences."""
    title = Text.assemble(("rnn-parity check --backend all  ", "bold"), verdict_text(report["passed"]))
    rows = Table(box=box.SIMPLE_HEAVY, title="Keras vs NumPy, per backend", title_justify="left", pad_edge=False)
    for column in ("backend", "max |Δ|", "diagnosis", "Keras s", "process s", ""):
        rows.add_column(column, justify="right" if column.endswith(("s", "|Δ|")) else "left")
    for name, entry in report["backends"].items():
        if entry.get("status") == "error":
            rows.add_row(name, "-", Text(first_line(entry["error"]), style="yellow"), "-", "-", verdict_text(None))
            continue
        rows.add_row(
            name,
            fmt(entry["max_abs_diff"], 2),
            entry.get("diagnosis") or "-",
            f"{entry['seconds']['keras']:.2f}",
            f"{entry.get('process_seconds', 0):.1f}",
            verdict_text(entry["passed"]),
        )
    for name, command in report["skipped"].items():
        rows.add_row(name, "-", Text(f"not installed: {command}", style="dim"), "-", "-", Text("SKIPPED", style="dim"))
    parts = [title, _config_lines(report["config"]), rows]
    if report["differences"]:
        pairs = Table(box=box.SIMPLE_HEAVY, title="Backend vs backend", title_justify="left", pad_edge=False)
        pairs.add_column("backends")
        pairs.add_column("max |Δ|", justify="right")
        pairs.add_column("where")
        for diff in report["differences"]:
            pairs.add_row(" vs ".join(diff["backends"]), fmt(diff["max_abs_diff"], 2), diff["array"] or "-")
        parts.append(pairs)
    return Group(*parts)


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
    inputs = (
        (
            "seeded "
            + ", ".join(f"{name} {_shape(shape)}" for name, shape in report["inputs"]["shapes"].items())
            + f"  seed={cfg['seed']}"
        )
        if cfg["input"] is None
        else f"from {cfg['input']}"
    )
    header = Text(
        "\n".join(
            [
                model["path"],
                f"{model['class_name']} '{model['name']}'  ·  .{model['format']} file"
                + (f" saved by Keras {model['keras_version']}" if model["keras_version"] else ""),
                f"inputs: {inputs}",
                f"NumPy {cfg['reference_dtype']} vs {report.get('keras_side', {}).get('label') or 'Keras'}",
            ]
        )
    )

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
        kind = _kind(layer)
        verdict = verdict_text(layer["passed"])
        if layer["name"] == first:
            verdict = Text.assemble(verdict, (" ←", "bold red"))
        worst = max([layer["max_abs_diff"], *(s["max_abs_diff"] for s in layer["states"].values())])
        reads = "\n".join([*layer["inputs"], *(f"{n} (state)" for n in layer["initial_state"])])
        layers.add_row(
            Text.assemble(layer["name"] + "\n", (kind, "dim")),
            reads,
            _shape(layer["shape"]),
            str(layer["params"]),
            fmt(worst, 2),
            _mask_text(layer["masks"]),
            verdict,
        )
    layers.add_row("total", "", "", str(report["param_counts"]["total"]), "", "", "")

    parts = [title, header, layers]
    if model.get("keras2_rewrites"):
        side = report.get("keras_side", {}).get("label") or "Keras"
        rewrites = "\n".join(f"  {r}" for r in model["keras2_rewrites"])
        parts.insert(2, Text(f"written by Keras 2, rewritten for {side}:\n{rewrites}", style="dim"))
    failure = report["first_failure"]
    if failure:
        where = f", from step {failure['step']}" if failure["step"] is not None else ""
        parts.append(
            Text(
                f"first failure: layer {failure['layer']} ({failure['class_name']}), {failure['reason']}{where}",
                style="bold red",
            )
        )
    notes = [f"{layer['name']}: {note}" for layer in report["layers"] for note in layer["notes"]]
    if notes:
        parts.append(Text("\n".join(notes), style="yellow"))
    parts.append(_output_table(report, report["states"], title=f"Model output {model['outputs'][0]}: Keras vs NumPy"))
    export = report.get("export")
    if export:
        parts.append(
            Text(
                f"wrote {export['path']} ({export['bytes']} bytes, format {export['format_version']}, "
                f"runs in {export['dtype']})"
                if export["written"]
                else f"nothing written to {export['path']}: parity does not hold",
                style="bold green" if export["written"] else "bold red",
            )
        )
    return Group(*parts)


def explain_view(explanation, report: dict):
    """``rnn-parity explain`` as a rich renderable."""
    parts = [
        Text.assemble(("rnn-parity explain  ", "bold"), verdict_text(report["passed"])),
        _config_lines(report["config"]),
    ]
    summary = Table(box=box.SIMPLE_HEAVY, title="Model", title_justify="left", pad_edge=False)
    for col, just in (
        ("layer", "left"),
        ("class", "left"),
        ("output shape", "left"),
        ("params by formula", "left"),
        ("Keras", "right"),
    ):
        summary.add_column(col, justify=just)
    for story, layer in zip(explanation.layers, report["layers"]):
        shape = "(None, " + ", ".join(map(str, layer["shape"][1:])) + ")" if layer["shape"] else "-"
        same = story.params_formula == story.params_keras
        summary.add_row(
            story.name,
            story.class_name,
            shape,
            story.formula,
            Text(str(story.params_keras), style="green" if same else "bold red"),
        )
    parts.append(summary)
    for story in explanation.layers:
        lines = [Text(f"{story.name} ({story.class_name})", style="bold")]
        if story.weights:
            lines.append(Text("weights: " + ";  ".join(story.weights), style="cyan"))
        lines += [Text("  " + eq) for eq in story.equations]
        parts.append(Group(*lines, Text("")))
    steps = Table(
        box=box.SIMPLE_HEAVY, title=f"Step by step ({explanation.step_note})", title_justify="left", pad_edge=False
    )
    for col, just in (
        ("t", "right"),
        ("x_t", "left"),
        ("h_t NumPy", "left"),
        ("h_t Keras", "left"),
        ("max |Δ|", "right"),
    ):
        steps.add_column(col, justify=just)
    for row in explanation.steps:
        if row is None:
            steps.add_row("…", "", "", "", "")
            continue
        steps.add_row(str(row["t"]), row["x_t"], row["numpy"], row["keras"], fmt(row["diff"], 2))
    parts.append(steps)
    parts.append(
        Text.assemble(
            "model output: max |Keras − NumPy| ", fmt(report["max_abs_diff"]), "  ", verdict_text(report["passed"])
        )
    )
    return Group(*parts)


def weights_view(convention: dict):
    """``rnn-parity explain --weights``: what a user's ``function(x, *weights)`` receives."""
    table = Table(box=box.SIMPLE_HEAVY, title="Weights, in get_weights() order", title_justify="left", pad_edge=False)
    for col in ("#", "parameter", "Keras weight", "shape"):
        table.add_column(col, justify="right" if col == "#" else "left", no_wrap=True)
    table.add_column("layout", justify="left")
    for w in convention["weights"]:
        table.add_row(str(w["position"]), w["param"], w["name"], _shape(w["shape"]), w["layout"])
    lines = [Text(convention["signature"], style="bold"), Text("  " + convention["x"])]
    lines += [Text("  keyword " + k) for k in convention["keywords"]]
    returns = [Text("returns:", style="bold")] + [Text("  " + r) for r in convention["returns"]]
    return Group(*lines, table, *returns)


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


def impl_note(impl: dict) -> str:
    """Why the user's implementation failed, in one line: its failure, or its first suspected mistake."""
    if impl["failure"] is not None:
        return f"impl: {impl['failure']['message']}"
    suspects = impl["suspected_mistakes"]
    note = f"impl fails, max |Δ| vs Keras {fmt(impl['max_abs_diff'])}"
    return note + (f"; suspected: {suspects[0]['mistake']}" if suspects else "; no known mistake matches")


def verdict_diff(entry: dict):
    """The ``max |Δ|`` the case's verdict rests on: the user's implementation against Keras, if there is one."""
    impl = entry.get("impl")
    return impl["max_abs_diff"] if impl else entry.get("max_abs_diff")


def case_note(entry: dict) -> str:
    """Why a case did not pass, in one line ("" for a pass)."""
    if entry["status"] == "error":
        return first_line(entry["error"])
    if entry["status"] == "fail":
        if entry.get("impl"):
            return impl_note(entry["impl"])
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
            fmt(verdict_diff(entry), 2),
            tolerance_text(entry),
            verdict,
            f"{entry['seconds']:.2f}",
        ]
        table.add_row(*row)
    return table


def cases_table(cases: list[dict]) -> Table:
    """The cases a sweep would run (``--dry-run``): name, config, sizes, the Keras call compared, the options
    that are not defaults."""
    table = Table(box=box.SIMPLE_HEAVY, pad_edge=False)
    for column in ("#", "case", "config", "sizes", "call", "options"):
        table.add_column(column, justify="right" if column == "#" else "left")
    for i, case in enumerate(cases, 1):
        cfg = case["config"]
        table.add_row(str(i), case["name"], case["config_file"], sizes_text(cfg), cfg["keras_call"], case["options"])
    return table


def upgrade_table(report: dict):
    """The ``upgrade`` report (Keras 3 against the Keras 2 that wrote a file) as a rich renderable."""
    title = Text.assemble(
        ("rnn-parity upgrade  ", "bold"), verdict_text(report["same"], "SAME" if report["same"] else "CHANGED")
    )
    written = report["written_by"]
    header = Text(
        "\n".join(
            [
                report["file"],
                f"written by Keras 2 ({written['evidence']}); Keras 3 against Keras 2, "
                f"atol={report['tolerance']['atol']:g} rtol={report['tolerance']['rtol']:g}",
            ]
        )
    )
    layers = Table(box=box.SIMPLE_HEAVY, title="Layers, in execution order", title_justify="left", pad_edge=False)
    layers.add_column("layer", no_wrap=True)
    layers.add_column("Keras 3 vs 2", justify="right")
    layers.add_column("")
    layers.add_column("why")
    layers.add_column("NumPy vs 2", justify="right")
    for layer in report["layers"]:
        reference = layer["reference"]
        layers.add_row(
            Text.assemble(layer["name"] + "\n", (layer["class_name"], "dim")),
            fmt(layer["max_abs"], 2),
            verdict_text(layer["same"], "same" if layer["same"] else "changed"),
            layer["reason"],
            Text.assemble(fmt(reference["max_abs"], 2) + " ", verdict_text(reference["same"])),
        )
    parts = [title, header, layers]
    if report["rewrites"]:
        parts.append(Text("translated for Keras 3:\n" + "\n".join(f"  {r}" for r in report["rewrites"]), style="dim"))
    parts.append(Text(report["summary"], style="bold green" if report["same"] else "bold red"))
    return Group(*parts)


def gradients_table(gradients: dict):
    """The ``gradients`` object of a check report: every gradient, dL/dh_t over time, the FD check."""
    table = Table(
        box=box.SIMPLE_HEAVY,
        title="Gradients of L = Σ G·y  (NumPy BPTT vs Keras's autodiff)",
        title_justify="left",
        pad_edge=False,
    )
    table.add_column("gradient")
    table.add_column("shape")
    table.add_column("max |Δ|", justify="right")
    table.add_column("tolerance", justify="right")
    table.add_column("")
    for name, entry in gradients["arrays"].items():
        table.add_row(
            name,
            _shape(entry["shape"]),
            fmt(entry["max_abs_diff"], 2),
            f"{entry['atol']:.2g} + {entry['rtol']:.2g}·|g|",
            verdict_text(entry["passed"]),
        )
    lines = []
    steps = gradients.get("dh_norm")
    if steps:
        ref = steps["reference"]
        lines.append(f"‖dL/dh_t‖ over processing steps ({steps['layer']}), log scale, t = 0 … {len(ref) - 1}:")
        lines.append(f"  NumPy  {sparkline(ref)}  {fmt(ref[0], 2)} … {fmt(ref[-1], 2)}" if ref else "  NumPy  -")
        if steps["keras"] is not None:
            keras = steps["keras"]
            lines.append(f"  Keras  {sparkline(keras)}  {fmt(keras[0], 2)} … {fmt(keras[-1], 2)}" if keras else "")
        else:
            lines.append("  Keras  (a Bidirectional layer is not probed)")
    fd = gradients.get("fd_check")
    if fd:
        lines.append(
            f"finite differences (float64, step {fd['step']:g}): max relative error {fmt(fd['max_rel_error'], 2)}"
            f" (≤ {fd['tolerance']:g})"
        )
    verdict = Text.assemble("gradients: ", verdict_text(gradients["passed"]))
    if fd:
        verdict = Text.assemble(verdict, "   finite differences: ", verdict_text(fd["passed"]))
    return Group(table, Text("\n".join(lines)), verdict)


def gradient_explain_view(story):
    """``rnn-parity explain --gradients``: the BPTT equations, the gradients' shapes, dL/dh_t by step."""
    parts = [Text("Backpropagation through time", style="bold"), Text(story.loss)]
    for layer, lines in story.equations:
        parts.append(
            Group(
                Text(f"{layer}: one step backward, newest step first", style="bold"),
                *(Text("  " + line) for line in lines),
                Text(""),
            )
        )
    shapes = Table(box=box.SIMPLE_HEAVY, title="Gradients", title_justify="left", pad_edge=False)
    for col, just in (("dL/d…", "left"), ("shape", "left"), ("max |Δ| Keras vs NumPy", "right"), ("", "left")):
        shapes.add_column(col, justify=just)
    for entry in story.gradients:
        shapes.add_row(
            entry["name"], _shape(entry["shape"]), fmt(entry["max_abs_diff"], 2), verdict_text(entry["passed"])
        )
    parts.append(shapes)
    if story.steps:
        steps = Table(
            box=box.SIMPLE_HEAVY,
            title=f"dL/dh_t step by step ({story.step_note})",
            title_justify="left",
            pad_edge=False,
        )
        for col in ("t", "NumPy", "Keras", "÷ step t+1"):
            steps.add_column(col, justify="right")
        for row in story.steps:
            if row is None:
                steps.add_row("…", "", "", "")
                continue
            steps.add_row(
                str(row["t"]),
                fmt(row["numpy"], 3),
                "-" if row["keras"] is None else fmt(row["keras"], 3),
                "" if row["ratio"] is None else f"{row['ratio']:.3g}",
            )
        parts.append(steps)
    return Group(*parts)
