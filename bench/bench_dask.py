"""Dask benchmark: configs/ci.yaml on the local pool and on a local Dask cluster, and Dask's cost per case.

    make bench        # or: .venv/bin/python bench/bench_dask.py [--repeats 3] [--noop 400]

For each way of running (the local pool with 1 and 2 processes, a local Dask
cluster with 1 and 2 workers) the sweep path (``run_sweep``, what
``rnn-parity sweep`` runs) goes through every case of configs/ci.yaml, cold
each time (new processes that import TensorFlow and build every model again):

- ``start``: seconds until the first case is back (processes started, TensorFlow imported,
  the first model built);
- ``rate``: cases/s from the first case back to the last, i.e. once the workers are up;
- ``wall``: the whole run, start included.

Dask's scheduling cost per case is measured twice: with ``--noop`` cases that do
no work (on one worker each case waits for the one before it: worker → scheduler →
worker; on two, the figure is wall time per case), and on the real sweep as a
worker's time between two cases once the workers are up:
``(workers × span − Σ case seconds) / cases``, where the span runs from the first
case back to the last (shown for the local pool too). Figures are medians of
``--repeats`` runs; the machine's load average is printed before and after. Nothing
is asserted (these are not tests).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from rnn_parity import keras_runner  # noqa: E402
from rnn_parity.config import load_cases  # noqa: E402
from rnn_parity.dask_executor import run_dask  # noqa: E402
from rnn_parity.sweep import CaseOutcome, run_sweep  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
CI = ROOT / "configs" / "ci.yaml"
TARGET_MS = 5.0


def noop(index, spec) -> CaseOutcome:
    """A case that does nothing: what is left is Dask's cost of sending it out and getting it back."""
    return CaseOutcome(index, "pass", None, None, 0.0)


def timed_sweep(cases, **how) -> dict:
    """One cold run: when each case came back, and the seconds each case reported."""
    keras_runner.clear_models()  # a serial run builds its models in this process: start it cold too
    done: list[tuple[float, float]] = []
    started = time.perf_counter()
    on_done = lambda c, o: done.append((time.perf_counter() - started, o.seconds))
    result = run_sweep(cases, on_done=on_done, **how)
    wall = time.perf_counter() - started
    w = result.workers
    span = done[-1][0] - done[0][0]
    # Once the workers are up, a worker's time is cases plus what lies between them. The first case
    # back from each worker started before the span did, so it is left out of both sides.
    later = sorted(done)[w:]
    return {
        "start": done[0][0],
        "rate": (len(done) - 1) / span,
        "wall": wall,
        "passed": result.count("pass"),
        "between_ms": (w * span - sum(s for _, s in later)) / len(later) * 1000,
    }


def noop_ms(n: int, workers: int) -> float:
    """Milliseconds per no-op case on a local cluster, from the first case back to the last."""
    done: list[float] = []
    cases = load_cases([str(CI)])
    cases = (cases * (n // len(cases) + 1))[:n]
    run_dask(cases, {}, workers=workers, scheduler=None, fail_fast=False,
             on_done=lambda c, o: done.append(time.perf_counter()), run=noop)  # fmt: skip
    return (done[-1] - done[0]) / (len(done) - 1) * 1000


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="cold runs of each way [3]")
    parser.add_argument("--noop", type=int, default=400, help="no-op cases for the scheduling cost [400]")
    args = parser.parse_args()

    cases = load_cases([str(CI)])
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"rnn-parity Dask benchmark: configs/ci.yaml, {len(cases)} cases, {cpus} CPUs; load average {load()}")
    ways = [
        ("local pool, 1 process ", {"executor": "local", "workers": 1}),
        ("local pool, 2 processes", {"executor": "local", "workers": 2}),
        ("Dask, 1 worker         ", {"executor": "dask", "workers": 1}),
        ("Dask, 2 workers        ", {"executor": "dask", "workers": 2}),
    ]
    rates = {}
    for label, how in ways:
        runs = [timed_sweep(cases, **how) for _ in range(args.repeats)]
        med = {key: statistics.median(r[key] for r in runs) for key in ("start", "rate", "wall", "between_ms")}
        rates[label.strip()] = med["rate"]
        extra = f"; between cases {med['between_ms']:.1f} ms" if how["workers"] > 1 or how["executor"] == "dask" else ""
        print(
            f"  {label}: {med['rate']:5.2f} cases/s once up, start {med['start']:5.1f} s, "
            f"wall {med['wall']:6.1f} s ({min(r['passed'] for r in runs)}/{len(cases)} passed){extra}"
        )
    for kind, one, two in (("local pool", "local pool, 1 process", "local pool, 2 processes"),
                           ("Dask", "Dask, 1 worker", "Dask, 2 workers")):  # fmt: skip
        print(f"  1 -> 2 workers, {kind}: x{rates[two] / rates[one]:.2f}")
    for workers in (1, 2):
        cost = statistics.median(noop_ms(args.noop, workers) for _ in range(args.repeats))
        verdict = "meets" if cost < TARGET_MS else "misses"
        print(f"  Dask scheduling cost, {workers} worker{'s' * (workers > 1)}: {cost:.2f} ms per case (median of "
              f"{args.repeats} x {args.noop} no-op cases; target < {TARGET_MS:g} ms: {verdict})")  # fmt: skip
    print(f"load average after: {load()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
