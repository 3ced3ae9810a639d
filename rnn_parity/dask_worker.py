"""What every Dask worker of a sweep does once: import Keras, so each case finds it loaded.

Imported only with ``--executor dask`` (it needs ``dask.distributed``); workers
import it by name when the plugin reaches them, so rnn-parity must be
installed on every worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import warnings

from distributed.diagnostics.plugin import WorkerPlugin

__all__ = ["KerasWorker", "installed_version"]


class KerasWorker(WorkerPlugin):
    """Import Keras once in each worker (and in each worker that joins later), off its event loop.

    The worker process then keeps Keras and the model cache of
    :mod:`rnn_parity.keras_runner` from case to case.

    Args:
        local: for the workers of a local cluster, which share the user's terminal, as the local
            pool's workers do: Ctrl-C is the sweep's to handle (it cancels the pending cases and closes
            the cluster), and NumPy's overflow warnings stay off stderr (the reports say what overflowed).
    """

    idempotent = True
    name = "rnn-parity-keras"

    def __init__(self, local: bool = False):
        self.local = local

    async def setup(self, worker) -> None:
        if self.local:
            with contextlib.suppress(ValueError):  # only the main thread may; a worker's loop runs there
                signal.signal(signal.SIGINT, signal.SIG_IGN)
            warnings.simplefilter("ignore", RuntimeWarning)
        from .keras_runner import import_keras

        # A minute of TensorFlow import on the event loop would stall the worker's heartbeats.
        await asyncio.get_running_loop().run_in_executor(None, import_keras)


def installed_version() -> str:
    """Runs on each worker: the rnn-parity version installed there."""
    from . import __version__

    return __version__
