"""Running a sweep: every case isolated, in this process or in a pool of worker processes.

:func:`run_sweep` runs :class:`~rnn_parity.config.Case` objects and returns a
:class:`SweepResult` whose outcomes keep config order, whatever order the
cases finished in. An exception inside a case (a Keras error, a
``MemoryError``) becomes that case's ``error`` and the sweep goes on; a
worker process that dies is replaced and the case it was running is recorded
as an error. Ctrl-C, SIGTERM or SIGHUP (:mod:`rnn_parity.signals`) stops the
sweep, stops every worker and returns what finished, marked interrupted.
Nothing here prints: ``on_done`` is called with each outcome.
"""

from __future__ import annotations

import multiprocessing
import os
import re
import signal
import time
import warnings
from collections import deque
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, replace
from functools import partial

from .checker import run_check
from .config import Case
from .errors import InvalidInput
from .report import check_report
from .signals import reraise_interrupt, terminate_as_interrupt
from .spec import CheckSpec

__all__ = ["CaseOutcome", "SweepResult", "parse_workers", "run_case", "run_sweep"]

#: The message recorded for a case whose worker process died under it.
WORKER_DIED = (
    "WorkerDied: the worker process running this case died (killed by the system, "
    "e.g. out of memory, or crashed inside TensorFlow)"
)


@dataclass(frozen=True)
class CaseOutcome:
    """How one case ended.

    Attributes:
        index: the case's position in the sweep.
        status: ``"pass"``, ``"fail"`` (parity violated) or ``"error"`` (the check could not run).
        report: the ``check`` JSON of the case (None for an error).
        error: ``"ExceptionType: message"`` for an error, else None.
        seconds: wall time of the case.
    """

    index: int
    status: str
    report: dict | None
    error: str | None
    seconds: float


@dataclass(frozen=True)
class SweepResult:
    """The cases, the outcomes of those that finished (config order) and how the sweep ended."""

    cases: tuple[Case, ...]
    outcomes: tuple[CaseOutcome, ...]
    interrupted: bool
    stopped_early: bool
    seconds: float
    workers: int

    def count(self, status: str) -> int:
        return sum(1 for o in self.outcomes if o.status == status)

    @property
    def not_run(self) -> tuple[Case, ...]:
        done = {o.index for o in self.outcomes}
        return tuple(c for i, c in enumerate(self.cases) if i not in done)


def parse_workers(value: str | int) -> int | str:
    """``"auto"`` or a positive integer; raises :class:`InvalidInput`."""
    if isinstance(value, str) and value.strip().lower() == "auto":
        return "auto"
    try:
        n = int(value)
    except (TypeError, ValueError):
        n = 0
    if n < 1 or (isinstance(value, float) and not value.is_integer()):
        raise InvalidInput(f"--workers must be a positive integer or auto, got {value!r}")
    return n


def _usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def resolve_workers(workers: int | str, n_cases: int) -> int:
    """How many processes to use: ``auto`` is the number of usable CPUs; never more than the cases."""
    n = _usable_cpus() if workers == "auto" else int(workers)
    return max(1, min(n, n_cases))


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def _describe(exc: BaseException) -> str:
    """``"Type: message"``, without the terminal colour codes Keras puts in its messages."""
    message = _ANSI.sub("", str(exc)).strip()
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def run_case(index: int, spec: CheckSpec) -> CaseOutcome:
    """Run one check; any exception becomes the outcome's error (KeyboardInterrupt still stops)."""
    started = time.perf_counter()
    try:
        # The time profile costs a twin of the last recurrent layer: a gate needs it only to
        # explain a failure, so a case runs without it and reruns with it when it fails.
        result = run_check(spec, time_profile=False)
        if not result.passed and spec.time_profile:
            result = run_check(spec)
        report = check_report(result)
    except Exception as exc:  # noqa: BLE001 - isolation is the point: the sweep goes on
        reraise_interrupt(exc)  # a Ctrl-C or SIGTERM that arrived inside NumPy or Keras stops the sweep
        return CaseOutcome(index, "error", None, _describe(exc), time.perf_counter() - started)
    status = "pass" if result.passed else "fail"
    return CaseOutcome(index, status, report, None, time.perf_counter() - started)


def _worker_init(backend_name: str | None = None) -> None:
    """Each worker ignores Ctrl-C (the parent handles it) and NumPy's overflow warnings (the
    reports say what overflowed, as in the main process) and imports Keras on its backend once, up front."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    warnings.simplefilter("ignore", RuntimeWarning)
    from .backend import select
    from .keras_runner import import_keras

    select(backend_name)
    import_keras()


def backend_groups(cases: list[Case]) -> dict[str, list[int]]:
    """Case indices by the backend each runs on (its ``backend`` key, else the default), in config order.

    Raises InvalidInput (before anything runs) for a backend that is not installed.
    """
    from . import backend

    groups: dict[str, list[int]] = {}
    for i, case in enumerate(cases):
        groups.setdefault(case.spec.backend or backend.default(), []).append(i)
    for name in groups:
        backend.validate(name, "backend" if any(c.spec.backend == name for c in cases) else "KERAS_BACKEND")
    return groups


OnDone = Callable[[Case, CaseOutcome], None]


def run_sweep(
    cases: list[Case],
    *,
    workers: int | str = 1,
    fail_fast: bool = False,
    on_done: OnDone | None = None,
    executor: str = "local",
    scheduler: str | None = None,
) -> SweepResult:
    """Run every case; see the module docstring for isolation, ``fail_fast`` and interruption.

    Args:
        cases: in config order.
        workers: 1 runs in this process; N > 1 or ``"auto"`` uses a pool of
            worker processes that import TensorFlow once and stay alive.
        fail_fast: stop starting cases after the first failure or error.
        on_done: called in this process as each case finishes, in finishing order.
        executor: ``"local"`` (this process or a pool) or ``"dask"``
            (:mod:`~rnn_parity.dask_executor`: a local Dask cluster of ``workers``
            processes, or the cluster whose scheduler is at ``scheduler``).
    """
    from .backend import bound

    n = resolve_workers(workers, len(cases))
    started = time.perf_counter()
    outcomes: dict[int, CaseOutcome] = {}
    on_done = on_done or (lambda c, o: None)
    interrupted = stopped = False
    with terminate_as_interrupt():
        if executor == "dask":
            # Dask workers are bound to their own KERAS_BACKEND; a case asking for another is an error there.
            from .dask_executor import run_dask

            interrupted, stopped, n = run_dask(
                cases, outcomes, workers=workers, scheduler=scheduler, fail_fast=fail_fast, on_done=on_done
            )
        else:
            # Keras binds one backend per process: a backend this process is not bound to runs in workers.
            for name, indices in backend_groups(cases).items():
                group = [cases[i] for i in indices]
                here = n == 1 and bound() in (None, name)
                found: dict[int, CaseOutcome] = {}

                def done(case, outcome, indices=indices):
                    on_done(case, replace(outcome, index=indices[outcome.index]))

                if here:
                    interrupted, stopped = _run_serial(
                        group, found, n=1, fail_fast=fail_fast, on_done=done, backend=name
                    )
                else:
                    interrupted, stopped = _run_pool(
                        group,
                        found,
                        n=min(n, len(group)),
                        fail_fast=fail_fast,
                        on_done=done,
                        init=partial(_worker_init, name),
                    )
                for j, outcome in found.items():
                    outcomes[indices[j]] = replace(outcome, index=indices[j])
                if fail_fast and any(o.status != "pass" for o in found.values()):
                    stopped = len(outcomes) < len(cases)
                if interrupted or stopped:
                    break
    return SweepResult(
        cases=tuple(cases),
        outcomes=tuple(outcomes[i] for i in sorted(outcomes)),
        interrupted=interrupted,
        stopped_early=stopped,
        seconds=time.perf_counter() - started,
        workers=n,
    )


def _run_serial(cases, outcomes, *, n, fail_fast, on_done, backend=None) -> tuple[bool, bool]:
    from .backend import select
    from .keras_runner import import_keras

    try:
        select(backend)
        import_keras()  # before the first case, so its seconds are its own (workers do this on start)
        for i, case in enumerate(cases):
            outcome = run_case(i, case.spec)
            outcomes[i] = outcome
            on_done(case, outcome)
            if fail_fast and outcome.status != "pass" and i + 1 < len(cases):
                return False, True
    except KeyboardInterrupt:
        return True, False
    return False, False


def _new_pool(n: int, init: Callable[[], None]) -> ProcessPoolExecutor:
    # spawn, not fork: forking a process that has TensorFlow's threads running can deadlock.
    return ProcessPoolExecutor(n, mp_context=multiprocessing.get_context("spawn"), initializer=init)


def _terminate(pool: ProcessPoolExecutor) -> None:
    """Stop the workers now, whatever they are running."""
    terminate = getattr(pool, "terminate_workers", None)  # Python ≥ 3.14
    if terminate is not None:
        terminate()
        return
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        process.terminate()
    pool.shutdown(wait=True, cancel_futures=True)


def _run_pool(cases, outcomes, *, n, fail_fast, on_done, run=run_case, init=_worker_init) -> tuple[bool, bool]:
    """One case per worker at a time. After a worker dies, the cases that were running are retried
    one at a time ("suspects"), so only the case that kills a worker on its own is blamed.

    ``run(index, spec)`` and ``init()`` run in the workers (module-level functions, so they pickle)."""
    queue = deque(range(len(cases)))
    suspects: deque[int] = deque()
    running: dict[Future, tuple[int, bool]] = {}  # future → (case index, ran alone)
    stop = False
    pool = None
    try:
        pool = _new_pool(n, init)
        while running or (not stop and (queue or suspects)):
            while not stop and len(running) < n:
                if suspects:
                    if running:
                        break
                    i, alone = suspects.popleft(), True
                elif queue:
                    i, alone = queue.popleft(), False
                else:
                    break
                running[pool.submit(run, i, cases[i].spec)] = (i, alone)
                if alone:
                    break
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            broken = False
            for future in done:
                i, alone = running.pop(future)
                try:
                    outcome = future.result()
                except BrokenProcessPool:
                    broken = True
                    if not alone:
                        suspects.append(i)
                        continue
                    outcome = CaseOutcome(i, "error", None, WORKER_DIED, 0.0)
                outcomes[i] = outcome
                on_done(cases[i], outcome)
                if fail_fast and outcome.status != "pass":
                    stop = True
            if broken:
                for i, _ in running.values():  # the pool is gone: these will not finish either
                    suspects.append(i)
                running.clear()
                pool.shutdown(wait=True, cancel_futures=True)
                pool = _new_pool(n, init)
    except KeyboardInterrupt:
        if pool is not None:
            _terminate(pool)
        return True, False
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    return False, stop and len(outcomes) < len(cases)
