"""Sweep benchmark: cases/s on configs/smoke.yaml beside a naive loop, and RSS over 1,000 small cases.

    make bench        # or: .venv/bin/python bench/bench_sweep.py [--cases 1000] [--repeats 3]

Everything runs in this one process, on one worker, after TensorFlow is imported:

1. the sweep path (``run_sweep``, what ``rnn-parity sweep`` runs) on smoke.yaml, its
   model cache emptied before each run, so every architecture is built again: the median
   of ``--repeats`` runs;
2. ``--cases`` small cases through the sweep path (about 300 distinct architectures,
   so models are built, evicted and Keras's session cleared), with the process's resident
   memory (RSS) before and after;
3. the naive loop on the same smoke cases: a new ``keras.Model`` and ``model.predict``
   per case, as the course notebook does, with the same reference and comparison (and,
   like the sweep path for passing cases, without the time profile's twin layer).

The figures are printed, with the targets; nothing is asserted (these are not tests).
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import psutil  # noqa: E402

from rnn_parity import checker, keras_runner  # noqa: E402
from rnn_parity.config import Case, load_cases  # noqa: E402
from rnn_parity.spec import build_spec  # noqa: E402
from rnn_parity.sweep import run_sweep  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SMOKE = ROOT / "configs" / "smoke.yaml"
REAL_RUN_KERAS = keras_runner.run_keras


def naive_run_keras(layers, case, **kwargs):
    """The notebook's way: a new functional model and ``model.predict`` for every case."""
    return REAL_RUN_KERAS(layers, case, **{**kwargs, "reuse": False, "mode": "predict"})


def rss_mb() -> float:
    gc.collect()
    return psutil.Process().memory_info().rss / 2**20


def sweep_rate(cases: list[Case]) -> tuple[float, int]:
    keras_runner.clear_models()  # a cold run: every architecture is built again
    started = time.perf_counter()
    result = run_sweep(cases, workers=1)
    seconds = time.perf_counter() - started
    passed = result.count("pass")
    return seconds, passed


def small_cases(n: int) -> list[Case]:
    cells = ("simple_rnn", "lstm", "gru")
    cases = []
    for i in range(n):
        spec = build_spec(N=1 + i % 4, T=1 + i % 12, D=3, M=1 + (i // 3) % 50, K=2, cell=cells[i % 3],
                          mask=("none", "post")[(i // 150) % 2], seed=i)  # fmt: skip
        cases.append(Case(f"case-{i}", spec, "generated", "bench"))
    return cases


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=1000, help="small cases for the memory run [1000]")
    parser.add_argument("--repeats", type=int, default=3, help="runs of smoke.yaml through the sweep path [3]")
    parser.add_argument("--builds-per-session", type=int, default=keras_runner.BUILDS_PER_SESSION,
                        help="models built before Keras's session is cleared; a huge number never clears, "
                             f"to see what clearing saves [{keras_runner.BUILDS_PER_SESSION}]")  # fmt: skip
    args = parser.parse_args()
    keras_runner.BUILDS_PER_SESSION = args.builds_per_session

    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    smoke = load_cases([str(SMOKE)])
    keras_runner.import_keras()
    checker.run_check(build_spec(T=2, M=2))  # warm-up: TensorFlow's first ops are slow
    print(f"rnn-parity sweep benchmark: 1 worker, TensorFlow loaded, {cpus} CPUs, "
          f"Keras session cleared every {args.builds_per_session} model builds")  # fmt: skip
    print(f"configs/smoke.yaml: {len(smoke)} cases")

    runs = [sweep_rate(smoke) for _ in range(args.repeats)]
    seconds = statistics.median(s for s, _ in runs)
    rate = len(smoke) / seconds
    passed = min(p for _, p in runs)
    print(f"  sweep path : {rate:6.1f} cases/s  (median of {args.repeats} cold runs: {seconds:.2f} s; "
          f"{passed}/{len(smoke)} passed)")  # fmt: skip

    many = small_cases(args.cases)
    keras_runner.clear_models()
    before = rss_mb()
    started = time.perf_counter()
    result = run_sweep(many, workers=1)
    many_seconds = time.perf_counter() - started
    growth = rss_mb() - before
    print(
        f"{args.cases} small cases in one process: {args.cases / many_seconds:.1f} cases/s, "
        f"RSS {before:.0f} -> {before + growth:.0f} MB (+{growth:.0f} MB); {result.count('pass')} passed"
    )

    keras_runner.run_keras = naive_run_keras
    try:
        before_naive = rss_mb()
        started = time.perf_counter()
        naive_passed = sum(checker.run_check(case.spec, time_profile=False).passed for case in smoke)
        naive_seconds = time.perf_counter() - started
        naive_growth = rss_mb() - before_naive
    finally:
        keras_runner.run_keras = REAL_RUN_KERAS
    naive_rate = len(smoke) / naive_seconds
    print(f"  naive loop : {naive_rate:6.1f} cases/s  (new keras.Model + model.predict per case: "
          f"{naive_seconds:.2f} s; {naive_passed}/{len(smoke)} passed; RSS +{naive_growth:.0f} MB "
          f"over {len(smoke)} cases)")  # fmt: skip
    ratio = rate / naive_rate
    print(f"  speed-up   : {ratio:.1f}x")
    targets = [
        (f"smoke.yaml >= 20 cases/s ({rate:.1f})", rate >= 20),
        (f">= 4x the naive loop ({ratio:.1f}x)", ratio >= 4),
        (f"RSS growth over {args.cases} cases < 200 MB (+{growth:.0f} MB)", growth < 200),
    ]
    for label, met in targets:
        print(f"target {label}: {'met' if met else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
