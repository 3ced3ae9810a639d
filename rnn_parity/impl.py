"""A user's own implementation of the check model: find it, call it, validate what it returns.

The calling convention is the course notebook's::

    output = function(x, *weights)

``x`` is the ``(N, T, D)`` input (float32, or float64 with ``impl_dtype``) and
``weights`` the model's ``get_weights()`` in order: for the default model
``Wx, Wh, bh, Wo, bo``; :mod:`rnn_parity.convention` lists them for any options.
The function returns the model's output as an array, or a
dict ``{"output": ..., "hidden": ..., "states": ...}`` (only ``output`` is
required):

* ``output``: ``(N, K)``, or ``(N, T, K)`` with ``return_sequences``; with
  ``bidirectional="none"`` a list of two such arrays (forward, backward);
* ``hidden``: the last recurrent layer's output at every step ``(N, T, M)``
  (``2M`` for a concatenating Bidirectional), in Keras's order: processing order
  with ``go_backwards``. Optional; it localises the first wrong timestep;
* ``states``: the final states, laid out as ``initial_state`` below. Required
  with ``return_state`` and ``stateful``.

What a plain function cannot be told positionally comes as the keyword
``initial_state``: with the ``initial_state`` option, the start states in
Keras's layout (``[h]``, ``[h, c]`` for LSTM; Bidirectional: forward's then
backward's), or with a stack of layers a list of such lists, one per layer;
with ``stateful`` the function is called once per batch and ``initial_state``
is the ``states`` it returned for the previous batch (None for the first: start
from zeros). A function that cannot take the keyword is refused before the check
runs (:class:`~rnn_parity.errors.InvalidInput`, exit 2), as is one that cannot
take the weights.

The function runs in this process. Each call gets fresh copies of the arrays,
runs under its own NumPy error state and warning filters, and its prints go to
stderr (stdout holds the report). ``timeout`` stops it with a ``SIGALRM`` timer
(POSIX, main thread): a Python loop that hangs is interrupted at its next
bytecode; a single NumPy call that never returns cannot be. A thread with a
deadline could report a hang but not stop it, and a subprocess would have to
copy the function's whole world; a timer signal stops the loop where it is.

NumPy and the standard library only (plus this package's pure-Python modules).
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import inspect
import os
import signal
import sys
import sysconfig
import threading
import time
import traceback
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .architecture import LayerDesc, layers_for
from .convention import (
    ImplShapes,
    calling_convention,
    expected_shapes,
    impl_keywords,
    shape_text,
    state_names_text,
)
from .errors import InvalidInput
from .signals import reraise_interrupt
from .spec import CheckSpec

__all__ = [
    "IMPL_DTYPES",
    "ImplFailure",
    "ImplReturn",
    "Implementation",
    "call_impl",
    "check_callable",
    "load_target",
    "resolve_impl",
]

IMPL_DTYPES = ("float32", "float64")


# --------------------------------------------------------------------------
# Finding the function: FILE.py:NAME or package.module:NAME, imported once.
# --------------------------------------------------------------------------

_LOADED: dict[str, Callable] = {}


def _is_file_target(module_part: str) -> bool:
    return module_part.endswith(".py") or "/" in module_part or os.sep in module_part


@dataclass(frozen=True)
class Implementation:
    """A user's function and how messages name it (``--impl rnn.py:my_rnn``, ``impl=my_rnn``)."""

    fn: Callable
    name: str
    label: str


def resolve_impl(target: str | Callable, label: str | None = None) -> Implementation:
    """An :class:`Implementation` from a TARGET string or a function (the Python API's ``impl=``)."""
    if callable(target):
        name = getattr(target, "__qualname__", None) or type(target).__name__
        return Implementation(target, name, label or f"impl={name}")
    label = label or f"--impl {target}"
    return Implementation(load_target(target, label), str(target), label)


def load_target(target: str, label: str | None = None) -> Callable:
    """The function named by ``target``, imported once per process.

    ``target`` is ``path/to/file.py:function`` or ``package.module:function``
    (the current folder comes first on ``sys.path``, as with ``python -m``);
    ``function`` may be dotted (``Class.method``). Raises
    :class:`~rnn_parity.errors.InvalidInput` naming the target when the file or
    module does not exist or fails to import, or the name is missing or not callable.
    """
    label = label or f"--impl {target}"
    if not isinstance(target, str) or ":" not in target:
        raise InvalidInput(f"{label}: must be FILE.py:FUNCTION or package.module:FUNCTION")
    module_part, _, attr = target.rpartition(":")
    if not module_part or not attr:
        raise InvalidInput(f"{label}: must be FILE.py:FUNCTION or package.module:FUNCTION")
    key = (
        f"{Path(module_part).resolve()}:{attr}"
        if _is_file_target(module_part)
        else f"{os.getcwd()}|{module_part}:{attr}"
    )
    if key in _LOADED:
        return _LOADED[key]
    module = _import_file(label, module_part) if _is_file_target(module_part) else _import_module(label, module_part)
    fn = module
    for part in attr.split("."):
        try:
            fn = getattr(fn, part)
        except AttributeError:
            where = module_part if _is_file_target(module_part) else f"module {module_part}"
            raise InvalidInput(f"{label}: {where} has no {attr!r}") from None
    if not callable(fn):
        raise InvalidInput(f"{label}: {attr!r} is a {type(fn).__name__}, not a function")
    _LOADED[key] = fn
    return fn


def _import_failure(label: str, exc: BaseException) -> InvalidInput:
    where = ""
    frames = traceback.extract_tb(exc.__traceback__)
    if isinstance(exc, SyntaxError) and exc.filename:
        where = f" ({_short(exc.filename)}, line {exc.lineno})"
    elif frames:
        frame = _their_frame(frames)
        where = f" ({_short(frame.filename)}, line {frame.lineno})"
    text = exc.msg if isinstance(exc, SyntaxError) and exc.msg else str(exc).strip()
    message = text.splitlines()[0] if text else ""
    return InvalidInput(f"{label}: importing it raised {type(exc).__name__}: {message}{where}")


def _import_file(label: str, module_part: str):
    path = Path(module_part)
    if not path.is_file():
        raise InvalidInput(f"{label}: no such file {module_part}")
    resolved = path.resolve()
    # A name of its own per file, so two files called impl.py do not collide in sys.modules.
    name = f"rnn_parity_impl_{abs(hash(str(resolved))):x}_{resolved.stem}"
    spec = importlib.util.spec_from_file_location(name, resolved)
    if spec is None or spec.loader is None:
        raise InvalidInput(f"{label}: {module_part} cannot be imported as Python")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    folder = str(resolved.parent)
    added = folder not in sys.path
    if added:  # its sibling modules import as they would when it runs as a script
        sys.path.insert(0, folder)
    try:
        with _quiet_stdout():
            spec.loader.exec_module(module)
    except BaseException as exc:  # noqa: BLE001 - their import raised: one line, exit 2
        sys.modules.pop(name, None)
        if isinstance(exc, KeyboardInterrupt):
            raise
        raise _import_failure(label, exc) from None
    return module


def _import_module(label: str, module_part: str):
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        with _quiet_stdout():
            return importlib.import_module(module_part)
    except ModuleNotFoundError as exc:
        if exc.name and module_part.startswith(exc.name):
            raise InvalidInput(f"{label}: no module named {exc.name!r}") from None
        raise _import_failure(label, exc) from None
    except BaseException as exc:  # noqa: BLE001 - their import raised: one line, exit 2
        if isinstance(exc, KeyboardInterrupt):
            raise
        raise _import_failure(label, exc) from None


@contextlib.contextmanager
def _quiet_stdout():
    """The user's prints go to stderr: stdout carries the report (JSON must stay parseable)."""
    with contextlib.redirect_stdout(sys.stderr):
        yield


# --------------------------------------------------------------------------
# Calling it.
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class ImplReturn:
    """What the function returned, validated: arrays in the dtype it returned.

    ``states``: per recurrent layer, its final states (None when not returned).
    """

    output: np.ndarray | list[np.ndarray]
    hidden: np.ndarray | list[np.ndarray] | None
    states: list[list[np.ndarray]] | None
    dtype: str
    seconds: float


@dataclass(frozen=True)
class ImplFailure:
    """The function raised, ran out of time, or returned something unusable.

    Attributes:
        kind: ``"raised"``, ``"timeout"`` or ``"output"``.
        message: one line: ``ValueError: shapes (3,) and (5,5) not aligned``.
        location: the line in the user's file, ``impl.py:12 in my_rnn: h = …`` (raised only).
    """

    kind: str
    message: str
    location: str | None
    seconds: float

    def text(self) -> str:
        return self.message + (f"\n  at {self.location}" if self.location else "")

    def to_dict(self) -> dict:
        return {"kind": self.kind, "message": self.message, "location": self.location}


class _Deadline(BaseException):
    """Raised inside the user's code by the timer (a BaseException: ``except Exception`` lets it through)."""


class _BadOutput(Exception):
    pass


@contextlib.contextmanager
def _deadline(seconds: float | None):
    if not seconds:
        yield
        return
    if not hasattr(signal, "setitimer") or threading.current_thread() is not threading.main_thread():
        raise InvalidInput("--timeout stops the function with a timer signal: it needs the main thread on POSIX")

    def on_alarm(signum, frame):
        raise _Deadline

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def check_callable(fn: Callable, spec: CheckSpec, label: str) -> None:
    """Refuse (exit 2) a function that cannot be called as ``fn(x, *weights, **keywords)`` for ``spec``."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):  # a builtin or C function: find out when it is called
        return
    params = sig.parameters.values()
    var_kw = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params)
    names = {p.name for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}
    for keyword in impl_keywords(spec):
        if keyword not in names and not var_kw:
            option = "--initial-state" if spec.initial_state else "--stateful"
            raise InvalidInput(
                f"{label}: does not accept the keyword argument {keyword}, which {option} passes; "
                f"add {keyword}=None to its parameters"
            )
    weights = calling_convention(spec)
    try:
        sig.bind(None, *([None] * len(weights)), **dict.fromkeys(impl_keywords(spec)))
    except TypeError as exc:
        raise InvalidInput(
            f"{label}: cannot be called as f(x, {', '.join(w.param for w in weights)}) "
            f"({len(weights)} weights for these options; see rnn-parity explain --weights): {exc}"
        ) from None


def _start_states(spec: CheckSpec, layers: Sequence[LayerDesc], initial_states: Mapping) -> list | None:
    """The ``initial_state`` keyword: one layer's list, or one list per layer of a stack."""
    per_layer = [
        [np.array(s, copy=True) for s in initial_states[layer.name]]
        for layer in layers
        if layer.is_recurrent and layer.name in initial_states
    ]
    if not per_layer:
        return None
    return per_layer[0] if len(spec.M) == 1 else per_layer


def call_impl(
    impl: Implementation,
    spec: CheckSpec,
    weights: Sequence[np.ndarray],
    batches: Sequence[np.ndarray],
    initial_states: Mapping[str, Sequence[np.ndarray]] | None = None,
    *,
    dtype: str = "float32",
    timeout: float | None = None,
) -> ImplReturn | ImplFailure:
    """Call the user's function on a check's data; the validated return of the last batch, or why there is none.

    Args:
        weights: the model's ``get_weights()``, flat, in order.
        batches: one ``(N, T, D)`` input per call (two for a stateful check).
        initial_states: recurrent layer name → start states (the ``initial_state`` option).
        dtype: ``float32`` or ``float64``: what ``x`` and the weights are given in.
        timeout: seconds for all calls of this check, or None.
    """
    if dtype not in IMPL_DTYPES:
        raise InvalidInput(f"--impl-dtype must be one of {', '.join(IMPL_DTYPES)}, got {dtype!r}")
    check_callable(impl.fn, spec, impl.label)
    fn = impl.fn
    shapes = expected_shapes(spec)
    layers = layers_for(spec)
    keywords = {}
    if spec.initial_state:
        keywords["initial_state"] = _start_states(spec, layers, initial_states or {})
    started = time.perf_counter()
    result = None
    try:
        with _deadline(timeout):
            carried = None
            for x in batches:
                if spec.stateful:
                    keywords["initial_state"] = carried
                args = [np.array(x, dtype=dtype, copy=True), *(np.array(w, dtype=dtype, copy=True) for w in weights)]
                kwargs = {k: _copy_nested(v, dtype) for k, v in keywords.items()}
                with _isolated():
                    value = fn(*args, **kwargs)
                result = _validate(value, spec, shapes)
                carried = result[2] if len(spec.M) > 1 or result[2] is None else result[2][0]
    except _Deadline:
        return ImplFailure(
            "timeout", f"stopped after the --timeout of {timeout:g} s", None, time.perf_counter() - started
        )
    except _BadOutput as exc:
        return ImplFailure("output", str(exc), None, time.perf_counter() - started)
    except InvalidInput:
        raise
    except KeyboardInterrupt:
        raise
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - their function raised: the check fails, not us
        reraise_interrupt(exc)
        return _raised(exc, time.perf_counter() - started)
    output, hidden, states, returned = result
    return ImplReturn(output, hidden, states, returned, time.perf_counter() - started)


def _copy_nested(value, dtype):
    if value is None:
        return None
    if isinstance(value, list):
        return [_copy_nested(v, dtype) for v in value]
    return np.array(value, dtype=dtype, copy=True)


@contextlib.contextmanager
def _isolated():
    """The user's code cannot leave NumPy's error state, warning filters or stdout changed."""
    with np.errstate(all="ignore"), warnings.catch_warnings(), _quiet_stdout():
        warnings.simplefilter("ignore")
        yield


# --------------------------------------------------------------------------
# Validating what it returned.
# --------------------------------------------------------------------------

_KEYS = ("output", "hidden", "states")


def _array(value, what: str, shape: tuple, axes: str) -> np.ndarray:
    if value is None:
        raise _BadOutput(f"{what} is None; expected an array of shape {shape_text(shape)} {axes}")
    try:
        arr = np.asarray(value)
    except Exception as exc:  # noqa: BLE001 - anything NumPy cannot read
        raise _BadOutput(f"{what} is a {type(value).__name__} NumPy cannot read as an array ({exc})") from None
    if arr.dtype.kind != "f":
        raise _BadOutput(
            f"{what} has dtype {arr.dtype}; expected floating point (float32 or float64) of shape "
            f"{shape_text(shape)} {axes}"
        )
    if arr.shape != tuple(shape):
        raise _BadOutput(f"{what} has shape {shape_text(arr.shape)}, but the model's is {shape_text(shape)} {axes}")
    return arr


def _arrays(value, what: str, shapes, axes: str):
    if isinstance(shapes, list):
        if not isinstance(value, (list, tuple)) or len(value) != len(shapes):
            raise _BadOutput(
                f"{what} must be a list of {len(shapes)} arrays (forward, backward) for bidirectional none, "
                f"got {type(value).__name__}"
            )
        return [_array(v, f"{what}[{i}]", s, axes) for i, (v, s) in enumerate(zip(value, shapes))]
    return _array(value, what, shapes, axes)


def _states(value, spec: CheckSpec, shapes: ImplShapes) -> list[list[np.ndarray]]:
    stack = len(spec.M) > 1
    if not isinstance(value, (list, tuple)):
        raise _BadOutput(f"'states' must be a list of arrays, got {type(value).__name__}")
    if stack:
        if value and not isinstance(value[0], (list, tuple)):
            if spec.stateful:
                raise _BadOutput("'states' must hold one list per layer of the stack (stateful carries them all)")
            value = [None] * (len(spec.M) - 1) + [value]  # the last layer's, as Keras returns them
        if len(value) != len(spec.M):
            raise _BadOutput(f"'states' must hold one list per layer of the stack ({len(spec.M)}), got {len(value)}")
    else:
        value = [value]
    out = []
    for i, (layer_states, want) in enumerate(zip(value, shapes.states)):
        if layer_states is None:
            out.append(None)
            continue
        where = f"states[{i}]" if stack else "states"
        if not isinstance(layer_states, (list, tuple)) or len(layer_states) != len(want):
            n = len(layer_states) if isinstance(layer_states, (list, tuple)) else type(layer_states).__name__
            raise _BadOutput(f"'{where}' must hold {len(want)} arrays ({state_names_text(spec)}), got {n}")
        out.append([_array(s, f"'{where}[{j}]'", w, "(N, M)") for j, (s, w) in enumerate(zip(layer_states, want))])
    return out


def _validate(value, spec: CheckSpec, shapes: ImplShapes):
    hidden = states = None
    if isinstance(value, Mapping):
        unknown = [k for k in value if k not in _KEYS]
        if unknown:
            raise _BadOutput(f"the returned dict has unknown key(s) {', '.join(map(repr, unknown))}; known: {_KEYS}")
        if "output" not in value:
            raise _BadOutput("the returned dict has no 'output'")
        output = _arrays(value["output"], "'output'", shapes.output, shapes.output_axes)
        if value.get("hidden") is not None:
            hidden = _arrays(value["hidden"], "'hidden'", shapes.hidden, "(N, T, M)")
        if value.get("states") is not None:
            states = _states(value["states"], spec, shapes)
    else:
        output = _arrays(value, "the output", shapes.output, shapes.output_axes)
    if states is None and (spec.return_state or spec.stateful):
        option = "--return-state" if spec.return_state else "--stateful"
        wanted = f"{{'output': ..., 'states': [{state_names_text(spec)}]}}"
        raise _BadOutput(f"{option} needs the final states: return {wanted}")
    first = output[0] if isinstance(output, list) else output
    return output, hidden, states, str(first.dtype)


# --------------------------------------------------------------------------
# When it raised: the user's exception and the line in their file.
# --------------------------------------------------------------------------

_OURS = str(Path(__file__).resolve().parent)
_LIBRARY = {
    str(Path(p).resolve())
    for key in ("stdlib", "platstdlib", "purelib", "platlib")
    if (p := sysconfig.get_paths().get(key))
}


def _is_library(filename: str) -> bool:
    try:
        path = str(Path(filename).resolve())
    except (OSError, RuntimeError):
        return False
    return path.startswith(_OURS) or any(path.startswith(lib + os.sep) for lib in _LIBRARY) or filename.startswith("<")


def _their_frame(frames: traceback.StackSummary) -> traceback.FrameSummary:
    theirs = [f for f in frames if not _is_library(f.filename)]
    return theirs[-1] if theirs else frames[-1]


def _short(filename: str) -> str:
    try:
        rel = os.path.relpath(filename)
    except ValueError:
        return filename
    return filename if rel.startswith("..") else rel


def _raised(exc: Exception, seconds: float) -> ImplFailure:
    text = str(exc).strip()
    message = f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__
    frames = traceback.extract_tb(exc.__traceback__)
    frames = traceback.StackSummary.from_list([f for f in frames if not f.filename.startswith(_OURS)] or frames)
    location = None
    if frames:
        frame = _their_frame(frames)
        location = f"{_short(frame.filename)}:{frame.lineno} in {frame.name}"
        if frame.line:
            location += f": {frame.line.strip()}"
    return ImplFailure("raised", message, location, seconds)
