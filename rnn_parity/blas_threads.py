"""How many BLAS threads the NumPy runtime's forward pass runs on.

A recurrent layer multiplies its ``(batch, units)`` state by the recurrent kernel at every
step: products of a few million multiply-adds at most, one after the other. On products that
small a BLAS thread pool costs more than it saves, because the threads are handed work and
synchronised at every step; on a busy 2-core machine OpenBLAS's default pool made a
bidirectional GRU stack many times slower than one thread. The few large products of a
forward pass (the input projection ``x·W`` of a block of steps, a Dense over a sequence)
would gain from threads on an idle machine, but after a threaded product OpenBLAS's workers
keep spinning for a while, and on a busy machine the per-step loop that follows ran slower for
it. So the whole forward pass runs on :data:`STEP_THREADS` (one) thread: docs/performance.md
("Exported models") has the measurements.

:func:`limited` runs a block of code with BLAS held to a number of threads and gives every
BLAS library its thread count back as the caller had it afterwards (also on an exception).
It acts on the whole process, as OpenBLAS's own setting does: another Python thread calling
BLAS meanwhile is held too.

This module imports only the standard library; it reads `threadpoolctl` (a dependency of the
package) the first time a limit is set. Where threadpoolctl is not installed, as in a
deployment that copied the runtime's files alone, nothing is limited and :func:`available`
says so.
"""

from __future__ import annotations

import threading
from contextlib import nullcontext

__all__ = ["STEP_THREADS", "available", "check_threads", "limited"]

#: The BLAS threads of a forward pass: the fastest for a recurrent layer's per-step products.
STEP_THREADS = 1

_lock = threading.Lock()
_controller = None  # threadpoolctl's controller of the loaded BLAS libraries (False: not installed)


def _blas():
    """threadpoolctl's controller of the BLAS libraries NumPy loaded, made once; None without threadpoolctl."""
    global _controller
    with _lock:
        if _controller is None:
            try:
                from threadpoolctl import ThreadpoolController
            except ImportError:
                _controller = False
            else:
                _controller = ThreadpoolController().select(user_api="blas")
    return _controller or None


def available() -> bool:
    """Whether BLAS threads can be limited here (threadpoolctl is installed)."""
    return _blas() is not None


def check_threads(threads, where: str = "blas_threads"):
    """``threads`` if it is None or a positive integer, else ValueError naming ``where``."""
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise ValueError(f"{where} must be a positive integer or None, got {threads!r}")
    return threads


def limited(threads: int | None):
    """A context manager in which BLAS uses at most ``threads`` threads; None leaves BLAS as it is.

    Leaving the block restores every BLAS library's thread count as the caller had it.
    """
    check_threads(threads)
    controller = None if threads is None else _blas()
    if controller is None:
        return nullcontext()
    return controller.limit(limits=threads)
