"""SIGTERM and SIGHUP as interrupts: the way CI systems cancel a job, handled like Ctrl-C.

Inside :func:`terminate_as_interrupt` a SIGTERM or SIGHUP raises
:class:`Terminated` (a ``KeyboardInterrupt``), so every ``except
KeyboardInterrupt`` that cancels pending cases, reaps worker processes and
keeps partial results handles a cancelled CI job too. Further SIGTERM/SIGHUP
signals are ignored while that cleanup runs. The command then exits with
``128 + signal number`` (143 for SIGTERM, 129 for SIGHUP), as a shell
reports a process killed by that signal; Ctrl-C stays 130.

Handlers can only be installed in the main thread; elsewhere the context
manager does nothing. Nested blocks share the outermost block's handlers and
:class:`Received`, so the command line learns which signal stopped a sweep.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

__all__ = [
    "CANCEL_SIGNALS",
    "Received",
    "Terminated",
    "active",
    "exit_code_for",
    "reraise_interrupt",
    "terminate_as_interrupt",
]

#: The signals handled like SIGINT.
CANCEL_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


class Terminated(KeyboardInterrupt):
    """Raised in the main thread when the process receives SIGTERM or SIGHUP."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@dataclass
class Received:
    """The first cancelling signal received inside the block, if any."""

    signum: int | None = None

    def exit_code(self, code: int, interrupted_code: int = 130) -> int:
        """``code``, or ``128 + signum`` when the block was interrupted by SIGTERM/SIGHUP."""
        if self.signum is not None and code == interrupted_code:
            return exit_code_for(self.signum)
        return code


_active: Received | None = None


def active() -> Received | None:
    """The :class:`Received` of the enclosing :func:`terminate_as_interrupt` block, if any."""
    return _active


def reraise_interrupt(exc: BaseException) -> None:
    """Raise the interrupt behind ``exc``, if there is one; else return.

    A ``KeyboardInterrupt`` (Ctrl-C, or :class:`Terminated`) raised by a signal
    handler while C code runs (NumPy, TensorFlow) can come back as that code's error:
    a ``SystemError`` ("<built-in method __array__ …> returned a result with an
    exception set") whose ``__cause__`` is the interrupt. A broad ``except Exception``
    calls this first, so that it never records a cancelled job as a failed case.
    A cancelling signal already received in the enclosing block counts too.
    """
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, KeyboardInterrupt):
            raise cause
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    if _active is not None and _active.signum is not None:
        raise Terminated(_active.signum) from exc


def exit_code_for(signum: int) -> int:
    """The shell's exit status of a process stopped by ``signum``: 143 for SIGTERM."""
    return 128 + int(signum)


@contextmanager
def terminate_as_interrupt() -> Iterator[Received]:
    """Turn SIGTERM and SIGHUP into :class:`Terminated` inside the block; restore the handlers after."""
    global _active
    if _active is not None:
        yield _active
        return
    received = Received()
    if threading.current_thread() is not threading.main_thread():
        yield received
        return

    def handler(signum, frame):
        if received.signum is not None:
            return  # already cancelling: let the partial reports be written
        received.signum = signum
        raise Terminated(signum)

    previous = {}
    try:
        for signum in CANCEL_SIGNALS:
            previous[signum] = signal.signal(signum, handler)
        _active = received
        yield received
    finally:
        _active = None
        for signum, old in previous.items():
            signal.signal(signum, old)
