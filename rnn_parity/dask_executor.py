"""``sweep --executor dask``: the cases of a sweep as futures on a Dask distributed cluster.

Without an address a :class:`~distributed.LocalCluster` of ``--workers``
processes is started for the sweep and closed after it; with one
(``--scheduler tcp://host:8786``) the cases run on that cluster's workers.
Every case is one future (:func:`~rnn_parity.sweep.run_case` on its spec),
collected with :func:`~distributed.as_completed` as it finishes; the outcomes
are those of a local serial run, bit for bit, since a case is a pure function
of its spec.

A :class:`~rnn_parity.dask_worker.KerasWorker` plugin imports Keras once in every worker (and in any
worker that joins or is restarted later); the worker process then keeps
Keras's model cache from case to case. Each worker runs one case at a time:
workers must have one thread (Keras's model cache and session are global to a
process).

A worker that dies takes down only the case it was running: the scheduler
retries that case on another worker, and when a second worker dies under it
(Dask's ``KilledWorker``) it is recorded as an error. The local cluster is
configured for this (``distributed.scheduler.allowed-failures: 1``, and
``worker-saturation: 1.0`` so that a worker holds only the case it runs), and
its workers do not profile themselves; a cluster of your own should be started
with the same settings (docs/cluster.md). Dask's own logging is kept off the user's stderr.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Callable

from .errors import InvalidInput
from .sweep import CaseOutcome, resolve_workers, run_case
from .sweep import _describe as describe_error

__all__ = ["PIP_EXTRA", "WORKER_DIED_TWICE", "require_dask", "run_dask"]

#: How a user gets the optional dependency.
PIP_EXTRA = "pip install 'rnn-parity[dask]'"

#: The error of a case under which two workers died (the first attempt and its one retry).
WORKER_DIED_TWICE = (
    "WorkerDied: two worker processes died running this case (it was retried once on another worker); "
    "killed by the system (e.g. out of memory) or crashed inside TensorFlow"
)

#: Seconds to wait for a scheduler to answer and for its first worker to join.
CONNECT_TIMEOUT = 30.0

#: The settings of the local cluster (see the module docstring).
LOCAL_CLUSTER_CONFIG = {
    "distributed.scheduler.allowed-failures": 1,
    "distributed.scheduler.worker-saturation": 1.0,
    # The workers' statistical profiler samples every thread's stack every 10 ms: about 30% of a
    # ci.yaml case's time, Keras's stacks being deep (bench/bench_dask.py).
    "distributed.worker.profile.enabled": False,
}

#: Dask's nanny sets these to 1 in its workers by default; a serial run and the local pool keep the
#: machine's threading (it shows in each case's ``environment``), and so do the local cluster's workers.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def require_dask(option: str = "--executor dask") -> None:
    """Raise :class:`InvalidInput` (exit 2) with the pip command when ``dask.distributed`` is missing."""
    try:
        import distributed  # noqa: F401
    except ImportError:
        raise InvalidInput(f"{option} needs Dask's distributed scheduler: {PIP_EXTRA}") from None


#: The loggers whose records are kept from the user's stderr during a sweep (with their children).
NOISY_LOGGERS = ("distributed", "tornado", "asyncio", "bokeh")


@contextlib.contextmanager
def _quiet_dask():
    """Keep the logging of this process's Dask side (the client, a local scheduler and its nannies) and
    Dask's Python warnings away from the user's stderr; worker processes are quieted by their cluster."""
    import warnings

    known = logging.root.manager.loggerDict
    names = set(NOISY_LOGGERS) | {n for n in known if n.split(".")[0] in NOISY_LOGGERS}
    loggers = [logging.getLogger(name) for name in sorted(names)]  # e.g. distributed.client has its own level
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL + 1)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", module=r"(distributed|dask)(\..*)?")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


@contextlib.contextmanager
def _client(scheduler: str | None, workers: int):
    """A connected client and the cluster's worker count; the local cluster is closed on the way out."""
    import dask
    from distributed import Client, LocalCluster

    if scheduler is None:
        environ = {**dask.config.get("distributed.nanny.pre-spawn-environ"), **dict.fromkeys(THREAD_VARIABLES)}
        with dask.config.set({**LOCAL_CLUSTER_CONFIG, "distributed.nanny.pre-spawn-environ": environ}):
            cluster = LocalCluster(
                n_workers=workers,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
                scheduler_port=0,
                host="127.0.0.1",
                memory_limit=0,  # no nanny memory limit: the system decides, as for the local pool
                silence_logs=logging.CRITICAL + 1,
            )
        try:
            with Client(cluster, set_as_default=False) as client:
                yield client
        finally:
            cluster.close()
        return
    try:
        client = Client(scheduler, timeout=CONNECT_TIMEOUT, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as exc:
        raise InvalidInput(f"--scheduler {scheduler}: cannot connect ({describe_error(exc)})") from None
    with client:
        try:
            client.wait_for_workers(1, timeout=CONNECT_TIMEOUT)
        except (OSError, TimeoutError) as exc:
            raise InvalidInput(
                f"--scheduler {scheduler}: no worker joined within {CONNECT_TIMEOUT:g} s ({describe_error(exc)})"
            ) from None
        yield client


def _check_workers(client, scheduler: str | None) -> int:
    """Refuse workers with more than one thread or another rnn-parity; return how many there are."""
    from . import __version__
    from .dask_worker import installed_version

    nthreads = client.nthreads()
    threaded = sorted(address for address, n in nthreads.items() if n != 1)
    if threaded:
        raise InvalidInput(
            f"--scheduler {scheduler}: worker {threaded[0]} runs {nthreads[threaded[0]]} threads; start "
            "workers with --nthreads 1 (one case per process: Keras's state is global to a process)"
        )
    try:
        found = client.run(installed_version)
    except Exception as exc:  # noqa: BLE001 - e.g. rnn_parity not installed on a worker
        raise InvalidInput(
            f"--scheduler {scheduler}: the workers cannot run rnn-parity ({describe_error(exc)}); install "
            f"rnn-parity {__version__} with its dask extra on every worker"
        ) from None
    other = sorted((address, v) for address, v in found.items() if v != __version__)
    if other:
        address, version = other[0]
        raise InvalidInput(
            f"--scheduler {scheduler}: worker {address} has rnn-parity {version}, this is {__version__}; "
            "install the same version everywhere"
        )
    return len(nthreads)


OnDone = Callable[..., None]


def run_dask(
    cases,
    outcomes: dict[int, CaseOutcome],
    *,
    workers: int | str,
    scheduler: str | None,
    fail_fast: bool,
    on_done: OnDone,
    run: Callable[[int, object], CaseOutcome] = run_case,
) -> tuple[bool, bool, int]:
    """Run ``cases`` as futures; fill ``outcomes`` by case index and call ``on_done`` as each finishes.

    Args:
        workers: processes of the local cluster (ignored with ``scheduler``).
        scheduler: the address of an existing cluster's scheduler, or None for a local cluster.
        run: ``run(index, spec) -> CaseOutcome``, run on the workers (importable there by name).

    Returns:
        ``(interrupted, stopped_early, workers)``: Ctrl-C, ``fail_fast`` stopping the sweep, and how many
        worker processes the cluster had.
    """
    require_dask()
    from distributed import as_completed

    from .dask_worker import KerasWorker

    n = resolve_workers(workers, len(cases)) if scheduler is None else 0
    if not cases:
        return False, False, n
    try:
        with _quiet_dask(), _client(scheduler, n) as client:
            n = _check_workers(client, scheduler)
            client.register_plugin(KerasWorker(local=scheduler is None))
            batch = uuid.uuid4().hex[:8]
            futures = client.map(
                run,
                range(len(cases)),
                [case.spec for case in cases],
                key=[f"rnn-parity-case-{batch}-{i}" for i in range(len(cases))],
                pure=False,
            )
            index = {future.key: i for i, future in enumerate(futures)}
            try:
                for future in as_completed(futures, loop=client.loop):
                    i = index[future.key]
                    outcome = _outcome(i, future)
                    outcomes[i] = outcome
                    on_done(cases[i], outcome)
                    if fail_fast and outcome.status != "pass":
                        client.cancel([f for f in futures if not f.done()])
                        return False, len(outcomes) < len(cases), n
            except KeyboardInterrupt:
                client.cancel([f for f in futures if not f.done()])
                return True, False, n
    except KeyboardInterrupt:  # while the cluster starts or closes
        return True, False, n
    return False, False, n


def _outcome(i: int, future) -> CaseOutcome:
    """The case's outcome, or its error when the future itself failed (its workers died, the
    scheduler went away)."""
    from distributed import KilledWorker
    from distributed.client import FutureCancelledError

    try:
        return future.result()
    except KilledWorker:
        return CaseOutcome(i, "error", None, WORKER_DIED_TWICE, 0.0)
    except FutureCancelledError as exc:
        reason = exc.reason.replace("-", " ")
        return CaseOutcome(i, "error", None, f"CaseCancelled: Dask dropped this case ({reason})", 0.0)
    except Exception as exc:  # noqa: BLE001 - e.g. the spec could not be unpickled on a worker
        return CaseOutcome(i, "error", None, describe_error(exc), 0.0)
