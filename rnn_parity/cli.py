"""The ``rnn-parity`` command line: parse, call the library, render, exit.

Importing this module (and ``rnn-parity --help``) does not import TensorFlow;
options are validated before it is imported.
"""

from __future__ import annotations

import sys
import traceback
import warnings
from collections.abc import Callable

import click

from . import __version__
from .errors import (
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_INVALID,
    EXIT_OK,
    EXIT_PARITY,
    InvalidInput,
    RnnParityError,
)
from .recurrent import CELL_KEYS, MERGE_MODES
from .spec import CheckSpec, build_spec, parse_size
from .tolerance import AUTO_FACTOR, DEFAULT_MODE, MODES

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def _err(message: str) -> None:
    """``Error: …`` on stderr, once per line (a config error lists one problem a line)."""
    for line in message.splitlines() or [""]:
        click.echo(f"Error: {line}", err=True)


class OneLineErrors(click.Group):
    """A group that turns usage errors into one line on stderr and exits with the command's code."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        try:
            code = super().main(args, prog_name or "rnn-parity", complete_var, standalone_mode=False, **extra)
        except click.exceptions.NoArgsIsHelpError as exc:
            click.echo(exc.ctx.get_help())
            code = 0
        except click.ClickException as exc:
            _err(exc.format_message().replace("\n", " "))
            code = EXIT_INVALID
        except (click.Abort, KeyboardInterrupt):
            _err("interrupted")
            code = EXIT_INTERRUPTED
        sys.exit(code or 0)


def run_guarded(debug: bool, body: Callable[[], int]) -> int:
    """Run a command body; our errors become one line and their exit code, anything else exit 3.

    SIGTERM and SIGHUP interrupt it as Ctrl-C does; it then exits 128 + the signal's number.
    """
    from .signals import terminate_as_interrupt

    with terminate_as_interrupt() as received:
        return received.exit_code(_guarded(debug, body))


def _guarded(debug: bool, body: Callable[[], int]) -> int:
    try:
        with warnings.catch_warnings():
            # NumPy's overflow warnings and library chatter are not results; the reports say what overflowed.
            warnings.simplefilter("ignore", RuntimeWarning)
            return body()
    except RnnParityError as exc:
        if debug:
            traceback.print_exc()
        _err(str(exc))
        return exc.exit_code
    except KeyboardInterrupt:
        _err("interrupted")
        return EXIT_INTERRUPTED
    except Exception as exc:  # noqa: BLE001 - the documented exit 3
        from .signals import reraise_interrupt

        try:
            reraise_interrupt(exc)
        except KeyboardInterrupt:
            _err("interrupted")
            return EXIT_INTERRUPTED
        if debug:
            from .keras_runner import import_log

            traceback.print_exc()
            if import_log():
                click.echo("TensorFlow's import log:\n" + import_log(), err=True)
            _err(f"internal error: {type(exc).__name__}: {exc}")
        else:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            _err(f"internal error: {type(exc).__name__}: {first} (rerun with --debug for the traceback)")
        return EXIT_INTERNAL


def _size(ctx, param, value):
    if value is None:
        return None
    try:
        return parse_size(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), ctx=ctx, param=param) from None


_FIELD = CheckSpec.model_fields
_TOLERANCE_HELP = (
    f"explicit: --atol/--rtol; dtype: per-dtype defaults; auto: within {AUTO_FACTOR:g}× the rounding of "
    f"a correct NumPy loop in Keras's dtype [default: {DEFAULT_MODE}]"
)


def _help(key: str) -> str:
    default = _FIELD[key].default
    shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
    return f"{_FIELD[key].description} [default: {shown}]"


def _options(*options):
    """One decorator applying ``options`` in the order given (as --help lists them)."""

    def apply(fn):
        for option in reversed(options):
            fn = option(fn)
        return fn

    return apply


#: The tolerance options, the same on every command that compares (None: not given, the defaults apply).
tolerance_options = _options(
    click.option("--atol", type=float, help=_help("atol")),
    click.option("--rtol", type=float, help=_help("rtol")),
    click.option("--reference-dtype", type=click.Choice(["float64", "float32"]), help=_help("reference_dtype")),
    click.option("--tolerance", type=click.Choice(MODES), help=_TOLERANCE_HELP),
    click.option("--max-mismatch-frac", type=float, help=_help("max_mismatch_frac")),
)
format_option = click.option(
    "--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True, help="report format"
)
debug_option = click.option("--debug", is_flag=True, help="show tracebacks and TensorFlow's import log")
#: How a report is written: ``--format``, ``--output``, ``--debug``.
report_options = _options(
    format_option,
    click.option("--output", "-o", type=click.Path(dir_okay=False), help="write the report to FILE instead of stdout"),
    debug_option,
)


def spec_options(fn):
    """The options that describe a case, shared by every command that runs one."""
    options = [
        click.option("--N", "--batch", "N", type=int, help=_help("N")),
        click.option("--T", "--timesteps", "T", type=int, help=_help("T")),
        click.option("--D", "--features", "D", type=int, help=_help("D")),
        click.option("--M", "--units", "M", help=_help("M") + "; e.g. 64,32"),
        click.option("--K", "--outputs", "K", type=int, help=_help("K")),
        click.option("--seed", type=int, help=_help("seed")),
        tolerance_options,
        click.option(
            "--keras-dtype",
            type=click.Choice(["float32", "float64", "float16", "mixed_float16"]),
            help=_help("keras_dtype"),
        ),
        click.option(
            "--max-memory", callback=_size, help="refuse cases whose arrays need more, e.g. 8GiB [default: 4GiB]"
        ),
        click.option("--cell", type=click.Choice(list(CELL_KEYS)), help=_help("cell")),
        click.option("--activation", help=_help("activation")),
        click.option("--recurrent-activation", help="gate activation of LSTM/GRU [default: sigmoid]"),
        click.option("--no-bias", "use_bias", flag_value=False, default=None, help="recurrent layers without bias"),
        click.option("--reset-after/--no-reset-after", default=None, help="GRU's reset_after [default: on]"),
        click.option(
            "--unit-forget-bias/--no-unit-forget-bias",
            default=None,
            help="LSTM's unit_forget_bias: forget-gate bias starts at 1 [default: on]",
        ),
        click.option("--return-sequences", is_flag=True, default=None, help="compare every timestep"),
        click.option("--return-state", is_flag=True, default=None, help="compare the final states too"),
        click.option("--go-backwards", is_flag=True, default=None, help="the layer reads the sequence from the end"),
        click.option("--initial-state", is_flag=True, default=None, help="seeded random initial states on both sides"),
        click.option(
            "--mask",
            type=click.Choice(["none", "post", "pre"]),
            help="random lengths through a Masking layer, padding after (post) or before (pre) [default: none]",
        ),
        click.option(
            "--stateful",
            is_flag=True,
            default=None,
            help="two batches through a stateful layer; the second is compared",
        ),
        click.option(
            "--bidirectional",
            type=click.Choice([mode or "none" for mode in MERGE_MODES]),
            help="wrap in Bidirectional with this merge mode",
        ),
        click.option("--unroll", is_flag=True, default=None, help="Keras unrolls the time loop"),
        click.option(
            "--backend",
            type=click.Choice(["tensorflow", "jax", "torch", "all"]),
            help="Keras backend; all: every installed one, each in its own process "
            "[default: KERAS_BACKEND, else tensorflow]",
        ),
        click.option(
            "--keras-call",
            type=click.Choice(["auto", "compiled", "eager", "predict"]),
            help="the Keras call compared: compiled (predict_on_batch's), eager (model(x)), predict "
            "[default: auto: compiled for long runs, eager for short ones]",
        ),
        click.option(
            "--time-profile/--no-time-profile",
            default=None,
            help="compare the last recurrent layer at every timestep [default: on]",
        ),
        click.option(
            "--gradients",
            is_flag=True,
            default=None,
            help="also compare gradients of a seeded linear loss: NumPy BPTT against Keras's autodiff",
        ),
        click.option(
            "--fd-check",
            is_flag=True,
            default=None,
            help="with --gradients: check the NumPy gradients by central finite differences (float64)",
        ),
    ]
    return _options(*options)(fn)


def spec_from_options(values: dict) -> CheckSpec:
    """The options the user gave (None means not given) as a validated spec."""
    given = {k: v for k, v in values.items() if v is not None and k in _FIELD}
    return build_spec("cli", **given)


@click.group(cls=OneLineErrors, context_settings=CONTEXT)
@click.version_option(__version__, "--version", prog_name="rnn-parity")
def main():
    """Prove a NumPy recurrent network equal to Keras's, with numbers.

    check: a generated model; verify: your saved model, layer by layer;
    export: your model as a NumPy-only .npz.

    Exit codes: 0 parity holds; 1 parity violated; 2 invalid input;
    3 internal error (sweep: a case errored); 4 unsupported; 130 interrupted
    (143 by SIGTERM, 129 by SIGHUP). See docs/guarantees.md.
    """


@main.command(context_settings=CONTEXT)
@spec_options
@report_options
@click.option("--plot", type=click.Path(dir_okay=False), help="draw error against timestep into FILE.png")
@click.option(
    "--impl",
    metavar="TARGET",
    help="check your own function(x, *weights) against Keras: FILE.py:FUNCTION or package.module:FUNCTION "
    "(docs/your-implementation.md)",
)
@click.option("--impl-dtype", type=click.Choice(["float32", "float64"]), help=_help("impl_dtype"))
@click.option("--timeout", type=float, metavar="SECONDS", help="stop --impl after this long, per case [default: none]")
def check(fmt, output, plot, debug, **options):
    """Build a random Input → recurrent → Dense Keras model, rerun it in NumPy, compare.

    With --impl, the verdict is your own implementation against Keras.
    Example: rnn-parity check --T 10 --M 5
    """

    def body():
        from .files import ensure_writable

        every = options.get("backend") == "all"
        spec = spec_from_options({**options, "backend": None} if every else options)
        if spec.impl is not None:  # a missing or unimportable TARGET is exit 2 before TensorFlow loads
            from .impl import check_callable, resolve_impl

            check_callable(resolve_impl(spec.impl).fn, spec, f"--impl {spec.impl}")
        if output is not None:
            ensure_writable(output, "--output")
        if every:
            if plot is not None:
                raise InvalidInput("--plot draws one backend's time profile; choose one with --backend")
            from .all_backends import all_exit_code, run_all

            report = run_all(spec)
            return _emit(report, fmt, output, table="all_backends_table") or all_exit_code(report)
        if plot is not None:
            if not spec.time_profile:
                raise InvalidInput("--plot draws the time profile, which --no-time-profile turns off")
            from .plots import require_matplotlib

            require_matplotlib("--plot")
            ensure_writable(plot, "--plot")
        from .checker import run_check
        from .report import check_report, exit_code

        result = run_check(spec)
        report = check_report(result)
        if plot:
            from .plots import check_plot

            check_plot(report, plot)
        return _emit(report, fmt, output) or exit_code(result)

    return run_guarded(debug, body)


@main.command(context_settings=CONTEXT)
@spec_options
@click.option(
    "--steps",
    type=click.IntRange(min=2),
    default=20,
    show_default=True,
    help="timesteps shown in the step table (the first and the last ones)",
)
@click.option(
    "--weights",
    "weights_only",
    is_flag=True,
    help="only list the weights your own function(x, *weights) receives for these options, and their layouts "
    "(runs nothing)",
)
@debug_option
def explain(steps, weights_only, debug, **options):
    """Walk through the computation layer by layer and step by step, NumPy beside Keras.

    Takes the same options as check; with --gradients it also walks through backpropagation
    through time. Example: rnn-parity explain --T 5 --M 3
    """

    def body():
        if options.get("backend") == "all":
            raise InvalidInput("--backend all: explain walks through one backend; choose tensorflow, jax or torch")
        spec = spec_from_options(options)
        from rich.console import Console

        if weights_only:
            from .convention import convention_report
            from .render import weights_view

            Console(soft_wrap=False).print(weights_view(convention_report(spec)))
            return 0

        from .checker import run_check
        from .explain import explain as tell
        from .render import explain_view
        from .report import check_report, exit_code

        result = run_check(spec, keep_sequences=True)
        console = Console(soft_wrap=False)
        console.print(explain_view(tell(result, steps), check_report(result)))
        if spec.gradients:
            from .explain import explain_gradients
            from .render import gradient_explain_view

            console.print(gradient_explain_view(explain_gradients(result, steps)))
        return exit_code(result)

    return run_guarded(debug, body)


def _emit(report: dict, fmt: str, output: str | None, table: str = "check_table", option: str = "--output") -> int:
    from . import render

    """Print the report, or write it to ``output``; returns 2 when it had to go to a fallback file, else 0."""
    from .files import write_or_fallback

    if fmt == "json":
        text = render.to_json(report)
    else:
        from rich.console import Console

        renderable = getattr(render, table)(report)
        if output is None:
            Console(soft_wrap=False).print(renderable)
            return 0
        import io

        buffer = io.StringIO()
        Console(file=buffer, width=120, color_system=None).print(renderable)
        text = buffer.getvalue()
    if output is None:
        click.echo(text, nl=False)
        return 0
    return _lost([write_or_fallback(output, text, option)])


def _lost(fallbacks) -> int:
    """Name each report written to a fallback file on stderr; 2 when there is one, else 0."""
    fallbacks = [f for f in fallbacks if f is not None]
    for fallback in fallbacks:
        _err(fallback.message())
    return EXIT_INVALID if fallbacks else 0


#: The options of commands that run a saved model: its inputs and the tolerances.
model_options = _options(
    click.option(
        "--input",
        metavar="FILE.npy|FILE.npz",
        help="run on these arrays (an .npz names them after the model's inputs) instead of seeded ones",
    ),
    click.option("--N", "--batch", "N", type=int, help="batch size, where the model leaves it open [default: 4]"),
    click.option("--T", "--timesteps", "T", type=int, help="timesteps, where the model leaves them open [default: 10]"),
    click.option("--seed", type=int, help="seed of the generated inputs and padding [default: 0]"),
    tolerance_options,
    click.option(
        "--backend",
        type=click.Choice(["tensorflow", "jax", "torch"]),
        help="Keras backend that loads and runs the model [default: KERAS_BACKEND, else tensorflow]",
    ),
    click.option(
        "--keras",
        type=click.Choice(["auto", "2", "3"]),
        help="the Keras a file written by Keras 2 is verified against: 2 (Keras 2 itself, the keras2 extra) or 3 "
        "(its translation); auto: 2 when installed [default: auto]",
    ),
)


def _verify_options(model: str, options: dict):
    from .verify import VerifyOptions

    return VerifyOptions.build("cli", model=model, **options)


@main.command(context_settings=CONTEXT)
@click.argument("model", metavar="MODEL")
@model_options
@report_options
def verify(model, fmt, output, debug, **options):
    """Verify a saved Keras model (.keras or .h5) layer by layer against the NumPy runtime.

    Example: rnn-parity verify model.keras --T 50
    """

    def body():
        from .files import ensure_writable

        opts = _verify_options(model, options)
        if output is not None:
            ensure_writable(output, "--output")
        from .report import exit_code, verify_report
        from .verify import run_verify

        result = run_verify(opts)
        return _emit(verify_report(result), fmt, output, table="verify_table") or exit_code(result)

    return run_guarded(debug, body)


@main.command(context_settings=CONTEXT)
@click.argument("model", metavar="MODEL")
@click.option("--N", "--batch", "N", type=int, help="batch size, where the model leaves it open [default: 4]")
@click.option("--T", "--timesteps", "T", type=int, help="timesteps, where the model leaves them open [default: 10]")
@click.option("--seed", type=int, default=0, show_default=True, help="seed of the generated inputs and padding")
@click.option("--atol", type=float, default=1e-5, show_default=True, help="absolute tolerance")
@click.option("--rtol", type=float, default=1.3e-6, show_default=True, help="relative tolerance")
@report_options
def upgrade(model, N, T, seed, atol, rtol, fmt, output, debug):
    """Does Keras 3 compute the same model as the Keras 2 that wrote MODEL (.h5 or .keras)? Layer by layer, and why.

    Needs Keras 2: pip install 'rnn-parity[keras2]'. Exit 0: the same; 1: Keras 3 changes the model.

    Example: rnn-parity upgrade old_model.h5
    """

    def body():
        from .files import ensure_writable

        for option, value in (("--N", N), ("--T", T)):
            if value is not None and value < 1:
                raise InvalidInput(f"{option} must be a positive integer, got {value}")
        for option, value in (("--atol", atol), ("--rtol", rtol)):
            if not value >= 0:
                raise InvalidInput(f"{option} must be a number ≥ 0, got {value}")
        if output is not None:
            ensure_writable(output, "--output")
        from .upgrade import run_upgrade

        result = run_upgrade(model, N=N, T=T, seed=seed, atol=atol, rtol=rtol)
        return _emit(result.to_dict(), fmt, output, table="upgrade_table") or (EXIT_OK if result.same else EXIT_PARITY)

    return run_guarded(debug, body)


def _workers(ctx, param, value):
    from .sweep import parse_workers

    try:
        return parse_workers(value)
    except InvalidInput as exc:
        raise click.BadParameter(str(exc).removeprefix("--workers "), ctx=ctx, param=param) from None


@main.command(context_settings=CONTEXT)
@click.argument("configs", nargs=-1, required=True, metavar="CONFIG.yaml...")
@click.option("--dry-run", is_flag=True, help="list the expanded cases and exit without running them")
@click.option(
    "--filter",
    "patterns",
    multiple=True,
    metavar="PATTERN",
    help="run only the cases whose name matches: * any characters, ? one, the rest literal; repeatable",
)
@click.option("--fail-fast", is_flag=True, help="stop after the first failure or error")
@click.option(
    "--workers",
    default="1",
    callback=_workers,
    metavar="N|auto",
    show_default=True,
    help="worker processes (each imports TensorFlow once); auto = one per usable CPU",
)
@click.option(
    "--executor",
    type=click.Choice(["local", "dask"]),
    default="local",
    show_default=True,
    help="local: this process or a process pool; dask: a Dask cluster (pip install 'rnn-parity[dask]')",
)
@click.option(
    "--scheduler",
    metavar="ADDRESS",
    help="with --executor dask: the scheduler of a running cluster, e.g. tcp://10.0.0.5:8786 "
    "[default: a local cluster of --workers processes]",
)
@click.option("--shard", metavar="I/N", help="run only shard I of N (a fixed split of the cases, e.g. for CI jobs)")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), metavar="PATH", help="write the JSON report")
@click.option("--junit-xml", "junit_path", type=click.Path(dir_okay=False), metavar="PATH", help="write JUnit XML")
@click.option(
    "--markdown",
    "markdown_path",
    type=click.Path(dir_okay=False),
    metavar="PATH",
    help="write a Markdown summary (e.g. for a GitHub step summary)",
)
@click.option(
    "--plot",
    "plot_path",
    type=click.Path(dir_okay=False),
    metavar="PATH",
    help="draw max error against a swept key into PATH.png",
)
@click.option("--plot-x", default="T", show_default=True, metavar="KEY", help="the config key on the plot's x axis")
@debug_option
def sweep(
    configs,
    dry_run,
    patterns,
    fail_fast,
    workers,
    executor,
    scheduler,
    shard,
    json_path,
    junit_path,
    markdown_path,
    plot_path,
    plot_x,
    debug,
):
    """Run every case of one or more YAML configs; report, and exit as a CI gate.

    Exit codes, first that applies: 130 interrupted (143 SIGTERM, 129 SIGHUP);
    2 config error (before anything runs) or a report written to a fallback
    file; 1 a case violated parity; 3 a case errored; 0 all passed.

    Example: rnn-parity sweep configs/smoke.yaml --junit-xml reports/smoke.xml
    """

    def body():
        from .config import load_cases, select
        from .files import ensure_distinct, ensure_writable

        cases = load_cases(list(configs))
        chosen = select(cases, list(patterns))
        if patterns and not chosen:
            shown = " ".join(f"--filter {p}" for p in patterns)
            raise InvalidInput(f"{shown}: matches none of the {len(cases)} cases (see --dry-run)")
        from .executors import Placement

        run = Placement(executor, scheduler, workers, shard).validated()
        mine = run.shard_of(chosen)
        if dry_run:
            _print_cases(mine, f"shard {run.shard}: {len(mine)} of {len(chosen)} cases" if run.shard else None)
            return 0
        _check_impls(mine)
        outputs = {"--json": json_path, "--junit-xml": junit_path, "--markdown": markdown_path, "--plot": plot_path}
        given = {option: path for option, path in outputs.items() if path is not None}
        if plot_path:
            from .plots import require_matplotlib

            if plot_x not in CheckSpec.model_fields:
                raise InvalidInput(f"--plot-x {plot_x}: not a config key (e.g. T, M, N, cell, seed)")
            require_matplotlib("--plot")
        ensure_distinct(given)
        for option, path in given.items():
            ensure_writable(path, option)
        return _run_sweep(mine, workers, fail_fast, given, plot_x, run=run, sweep_cases=chosen)

    return run_guarded(debug, body)


@main.command(context_settings=CONTEXT)
@click.argument("model", metavar="MODEL")
@click.option(
    "-o", "--output", required=True, type=click.Path(dir_okay=False), help="the .npz to write (only when parity holds)"
)
@model_options
@click.option(
    "--dtype",
    "export_dtype",
    type=click.Choice(["float32", "float64"]),
    help="dtype the exported model runs in (and the round trip checks) [default: the model's compute dtype]",
)
@format_option
@click.option(
    "--report", "report_path", type=click.Path(dir_okay=False), help="write the report to FILE instead of stdout"
)
@debug_option
def export(model, output, export_dtype, fmt, report_path, debug, **options):
    """Verify a saved Keras model, then write it as one .npz that runs with NumPy alone.

    Load it with rnn_parity.runtime.load(path).predict(x). Example:
    rnn-parity export model.keras -o model.npz
    """

    def body():
        from .files import check_writable

        opts = _verify_options(model, options)
        check_writable(output, "-o")
        if report_path is not None:
            check_writable(report_path, "--report")
        from .export import run_export
        from .report import exit_code, export_report

        result = run_export(opts, output, dtype=export_dtype)
        return _emit(export_report(result), fmt, report_path, table="verify_table", option="--report") or exit_code(
            result
        )

    return run_guarded(debug, body)


def _check_impls(cases) -> None:
    """Every case's ``impl`` imports and takes that case's weights and keywords: exit 2 before any case runs."""
    from .impl import check_callable, resolve_impl

    for case in cases:
        if case.spec.impl is not None:
            label = f"{case.config}: {case.origin} ({case.name}): impl {case.spec.impl}"
            check_callable(resolve_impl(case.spec.impl, label).fn, case.spec, label)


def _print_cases(cases, footer: str | None = None) -> None:
    from .render import cases_table
    from .report import case_list

    _console().print(cases_table(case_list(cases)))
    click.echo(footer or f"{len(cases)} cases")


def _console():
    from rich.console import Console

    console = Console(soft_wrap=False)
    if not console.is_terminal:
        console = Console(soft_wrap=False, width=160)
    return console


def _run_sweep(cases, workers, fail_fast, outputs: dict, plot_x: str = "T", *, run=None, sweep_cases=None) -> int:
    from .executors import Placement
    from .progress import SweepProgress
    from .report import sweep_exit_code, sweep_report
    from .signals import active
    from .sweep import run_sweep

    run = run or Placement()
    with SweepProgress(len(cases)) as progress:
        result = run_sweep(
            cases,
            workers=workers,
            fail_fast=fail_fast,
            on_done=progress.advance,
            executor=run.executor,
            scheduler=run.scheduler,
        )
    shard = None
    if run.shard is not None:
        from .shards import shard_block

        shard = shard_block(sweep_cases, run.shard)
    report = sweep_report(result, shard)
    received = active()
    if result.interrupted and received is not None and received.signum is not None:
        report["summary"]["exit_code"] = received.exit_code(report["summary"]["exit_code"])  # 143 after SIGTERM
    fallbacks = _write_reports(report, outputs, plot_x)
    _print_summary(report)
    lost = _lost(fallbacks)
    return sweep_exit_code(result) if result.interrupted else (lost or sweep_exit_code(result))


def _write_reports(report: dict, outputs: dict, plot_x: str = "T") -> list:
    """Write each report asked for; one that cannot be written where asked goes to a fallback file
    (returned, for :func:`_lost`), and the others still come."""
    from pathlib import Path

    from .files import Fallback, write_or_fallback
    from .junit import junit_xml
    from .markdown import markdown_summary
    from .render import to_json

    renderers = {"--json": to_json, "--junit-xml": junit_xml, "--markdown": markdown_summary}
    fallbacks = []
    for option, path in outputs.items():
        if option == "--plot":
            from .plots import sweep_plot

            try:
                sweep_plot(report["cases"], path, plot_x)
            except OSError as exc:
                fallbacks.append(Fallback(option, Path(path), exc.strerror or str(exc), None))
        else:
            fallbacks.append(write_or_fallback(path, renderers[option](report), option))
    return fallbacks


def _print_summary(report: dict, notes: list[str] = ()) -> None:
    """The sweep table, then a line per errored case, the notes, why cases did not run, and the counts."""
    from .render import summary_lines, sweep_table

    _console().print(sweep_table(report))
    lines = summary_lines(report)
    for line in lines[:-1] + list(notes) + lines[-1:]:
        click.echo(line)


@main.command("merge-reports", context_settings=CONTEXT)
@click.argument("reports", nargs=-1, required=True, metavar="REPORT.json...")
@click.option(
    "--json", "json_path", type=click.Path(dir_okay=False), metavar="PATH", help="write the merged JSON report"
)
@click.option("--junit-xml", "junit_path", type=click.Path(dir_okay=False), metavar="PATH", help="write JUnit XML")
@click.option(
    "--markdown", "markdown_path", type=click.Path(dir_okay=False), metavar="PATH", help="write a Markdown summary"
)
@click.option("--debug", is_flag=True, help="show tracebacks")
def merge_reports(reports, json_path, junit_path, markdown_path, debug):
    """Merge the JSON reports of a sharded sweep (sweep --shard I/N --json) into one.

    Exit codes: 2 the reports are not shards of one sweep of one tool stack, or
    hold a case twice (nothing is written); otherwise the whole sweep's: 130 a
    shard was interrupted; 1 a case violated parity; 3 a case errored or a
    shard's report is missing; 0 all passed.

    Example: rnn-parity merge-reports shard-*.json --junit-xml reports/ci.xml
    """

    def body():
        from .files import ensure_distinct, ensure_writable

        outputs = {"--json": json_path, "--junit-xml": junit_path, "--markdown": markdown_path}
        given = {option: path for option, path in outputs.items() if path is not None}
        ensure_distinct(given)
        for option, path in given.items():
            ensure_writable(path, option)
        from .merge import merge_reports as merge

        merged = merge(list(reports))
        fallbacks = _write_reports(merged.report, given)
        _print_summary(merged.report, merged.notes())
        lost = _lost(fallbacks)
        return merged.exit_code if merged.report["summary"]["interrupted"] else (lost or merged.exit_code)

    return run_guarded(debug, body)


@main.command(context_settings=CONTEXT)
def schema():
    """Print the JSON Schema of sweep config files (for editors and CI linters)."""
    import json

    from .config import config_json_schema

    click.echo(json.dumps(config_json_schema(), indent=2))
    return 0


if __name__ == "__main__":  # pragma: no cover
    main()
