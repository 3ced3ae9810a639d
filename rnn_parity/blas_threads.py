"""How many BLAS threads the NumPy runtime's matrix products run on.

A recurrent layer multiplies its ``(batch, units)`` state by the recurrent kernel at every
step: products of a few million multiply-adds at most, one after the other. On products that
small a BLAS thread pool costs more than it saves, because the threads are handed work and
synchronised at every step; on a busy 2-core machine OpenBLAS's default pool made a
bidirectional GRU stack over 30 times slower than one thread. Large products, such as the
input projection of a block of steps (``x·W`` for many steps at once) or a ``Dense`` layer over
a whole sequence, do gain from more threads on a quiet machine. docs/performance.md
("Exported models") has the measurements.

So the runtime's forward pass runs in :func:`limited` (one thread by default), and the
reference gives the products of at least :data:`LARGE_PRODUCT` multiply-adds the caller's
thread count back for their duration (:func:`large_product`). Outside :func:`limited`,
:func:`large_product` changes nothing: the reference called on its own keeps the caller's
BLAS setting throughout.

The limit acts on the whole process, as OpenBLAS's own setting does: another Python thread
calling BLAS meanwhile is held too, and leaving :func:`limited` (also on an exception) gives
every BLAS library its thread count back as the caller had it.

This module imports only the standard library; it reads `threadpoolctl` (a dependency of the
package) the first time a limit is set. Where threadpoolctl is not installed, as in a
deployment that copied the runtime's files alone, nothing is limited and :func:`available`
says so.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager, nullcontext

__all__ = ["LARGE_PRODUCT", "STEP_THREADS", "available", "check_threads", "large_product", "limited"]

#: The BLAS threads of a forward pass: what its per-step products run on.
STEP_THREADS = 1
#: Multiply-adds from which a product gets the caller's BLAS threads back inside a forward pass
#: (below it, two threads were no faster than one, measured on a quiet 2-core machine).
LARGE_PRODUCT = 4_000_000

_lock = threading.Lock()
_controller = None  # threadpoolctl's controller of the loaded BLAS libraries (False: not installed)
_held: tuple[int, int] | None = None  # inside limited(): (its limit, the caller's BLAS thread count)


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


@contextmanager
def limited(threads: int | None):
    """Run the block with BLAS held to at most ``threads`` threads; None leaves BLAS as it is.

    Products of at least :data:`LARGE_PRODUCT` multiply-adds inside it may use the caller's
    thread count (:func:`large_product`). Leaving the block restores every BLAS library's
    thread count as the caller had it.
    """
    global _held
    check_threads(threads)
    controller = None if threads is None else _blas()
    if controller is None:
        yield
        return
    with controller.limit(limits=threads) as limit:
        callers = limit.get_original_num_threads().get("blas")
        outer, _held = _held, (None if callers is None else (threads, callers))
        try:
            yield
        finally:
            _held = outer


def large_product(multiply_adds: int):
    """A context manager for one product: inside :func:`limited`, the caller's BLAS threads when it is large.

    Elsewhere, or for a product under :data:`LARGE_PRODUCT` multiply-adds, it changes nothing.
    """
    held = _held
    if held is None or held[1] <= held[0] or multiply_adds < LARGE_PRODUCT:
        return nullcontext()
    return _blas().limit(limits=held[1])
