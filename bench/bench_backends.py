"""Backend benchmark: the compiled, cached Keras side against the naive loop, whole processes, side by side.

    make bench        # or: .venv/bin/python bench/bench_backends.py [--repeats 3] [--no-stress]

Every figure is the wall time of a whole process (Python start, Keras and its
backend imported, every case run), the median of ``--repeats`` runs measured
round-robin so that load changes hit every variant alike:

1. the long-sequence sweep: simple_rnn/lstm/gru × T = 100, 300, 1000 (N=16, D=8, M=32, K=4), as
   ``rnn-parity sweep`` (``keras_call: auto``: one cached model per architecture, compiled when the
   run is long enough to repay the trace, else called eagerly), the same sweep with every case
   compiled and with every case eager (the Keras side before the compiled one), and as the naive
   loop: a new ``keras.Model`` and ``model.predict`` for every case, with the same reference and
   comparison (``check`` without the time profile, like a passing sweep case). Target: ≥ 3× the
   naive loop.
2. small cases: 60 cases with T ≤ 40 (3 cells × T = 5, 10, 20, 40 × 5 seeds, N=4, D=3, M=8): the
   same four variants. Target: ≥ 4× the naive loop.
3. ``configs/stress.yaml``, as configured and all eager, once each (``--no-stress`` skips it: minutes).
4. ``configs/smoke.yaml`` on every installed backend: seconds of the whole process and cases/s.

Figures are printed (and written with ``--json``); nothing is asserted. Run it with nothing else
of yours running; it prints the machine's load (``os.getloadavg``) before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LONG = {
    "defaults": {"N": 16, "D": 8, "M": 32, "K": 4},
    "grid": {"cell": ["simple_rnn", "lstm", "gru"], "T": [100, 300, 1000]},
}
SMALL = {
    "defaults": {"N": 4, "D": 3, "M": 8, "K": 2},
    "grid": {"cell": ["simple_rnn", "lstm", "gru"], "T": [5, 10, 20, 40]},
    "seeds": [0, 1, 2, 3, 4],
}


def _run_in_process(variant: str, config: str) -> int:
    """The body of one timed process; prints how long Keras's import took (``IMPORT <seconds>``).

    ``sweep`` is ``rnn-parity sweep CONFIG`` itself (``keras_call: auto``: each architecture compiled
    or called eagerly, whichever the run's size favours); ``compiled`` and ``eager`` the same sweep
    with every case on that call (``keras_call`` set in the config's defaults); ``naive`` the
    notebook's loop: a plain ``import keras``, then a new model and ``model.predict`` per case, with
    the same reference and comparison (``check`` without the time profile). The sweeps import Keras
    through ``keras_runner.import_keras``, which keeps packages that TensorFlow and Keras import only
    because they are installed (JAX, matplotlib...) out of it.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from functools import partial

    from rnn_parity import checker, keras_runner

    started = time.perf_counter()
    if variant == "naive":
        import keras  # noqa: F401  (the notebook's plain import, with whatever it pulls in)
    keras_runner.import_keras()
    print(f"IMPORT {time.perf_counter() - started:.3f}", flush=True)
    if variant in ("sweep", "compiled", "eager"):
        from rnn_parity.cli import main

        if variant != "sweep":
            import yaml

            layout = yaml.safe_load(Path(config).read_text(encoding="utf-8"))
            layout.setdefault("defaults", {})["keras_call"] = variant
            config = _write(tempfile.mkdtemp(), Path(config).name, layout)
        try:
            main(["sweep", config])
        except SystemExit as exc:
            return int(exc.code or 0)
        return 0
    from rnn_parity.config import load_cases

    keras_runner.run_keras = partial(keras_runner.run_keras, reuse=False)
    cases = load_cases([config])
    specs = [case.spec.model_copy(update={"keras_call": "predict"}) for case in cases]
    passed = sum(checker.run_check(spec, time_profile=False).passed for spec in specs)
    return 0 if passed == len(cases) else 1


def _time(variant: str, config: str, env: dict, *, check: bool = True) -> tuple[float, float]:
    """Whole-process seconds and the part of them spent importing Keras and its backend."""
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, __file__, "--run", variant, config], capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - started
    if check and proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise SystemExit(f"{variant} on {config} exited {proc.returncode}: {' / '.join(tail)}")
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("IMPORT ")), "IMPORT nan")
    return seconds, float(line.split()[1])


def _medians(variants: list[str], config: str, repeats: int, env: dict) -> dict[str, dict[str, float]]:
    runs: dict[str, list[tuple[float, float]]] = {v: [] for v in variants}
    for _ in range(repeats):
        for v in variants:
            runs[v].append(_time(v, config, env))
    return {
        v: {
            "process": statistics.median(r[0] for r in times),
            "after_import": statistics.median(r[0] - r[1] for r in times),
            "import": statistics.median(r[1] for r in times),
        }
        for v, times in runs.items()
    }


def _write(folder: str, name: str, layout: dict) -> str:
    import yaml

    path = os.path.join(folder, name)
    with open(path, "w", encoding="utf-8") as fh:
        yaml.safe_dump(layout, fh)
    return path


def _cases(config: str) -> int:
    from rnn_parity.config import load_cases

    return len(load_cases([config]))


def _load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f}, {five:.2f}, {fifteen:.2f} on {os.cpu_count()} CPUs"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="runs of each variant; the median is shown [3]")
    parser.add_argument("--no-stress", action="store_true", help="skip configs/stress.yaml (minutes)")
    parser.add_argument("--backend", default="tensorflow", help="backend of sections 1-3 [tensorflow]")
    parser.add_argument("--json", dest="json_path", help="also write the figures to this file")
    parser.add_argument("--run", nargs=2, metavar=("VARIANT", "CONFIG"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run:
        return _run_in_process(*args.run)

    from rnn_parity.backend import installed_backends

    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "KERAS_BACKEND": args.backend}
    figures: dict = {"load_before": _load(), "backend": args.backend, "repeats": args.repeats}
    print(f"rnn-parity backend benchmark ({args.backend}; whole processes, median of {args.repeats}); {_load()}")
    with tempfile.TemporaryDirectory() as tmp:
        for label, layout, target in (("long", LONG, 3.0), ("small", SMALL, 4.0)):
            config = _write(tmp, f"{label}.yaml", layout)
            n = _cases(config)
            t = _medians(["sweep", "compiled", "eager", "naive"], config, args.repeats, env)
            whole = t["naive"]["process"] / t["sweep"]["process"]
            work = t["naive"]["after_import"] / t["sweep"]["after_import"]
            others = {v: t["naive"]["process"] / t[v]["process"] for v in ("compiled", "eager")}
            figures[label] = {"cases": n, "seconds": t, "speedup": whole, "speedup_after_import": work,
                              "compiled_speedup": others["compiled"], "eager_speedup": others["eager"]}  # fmt: skip
            print(f"{label} ({n} cases), whole process [after the import]: "
                  + " · ".join(f"{v} {t[v]['process']:.1f} s [{t[v]['after_import']:.1f} s]" for v in t)
                  + f"\n  → {whole:.1f}× the naive loop [{work:.1f}×] (all compiled: {others['compiled']:.1f}×, "
                  f"all eager: {others['eager']:.1f}×); "
                  f"target ≥ {target:g}× whole process: {'met' if whole >= target else 'MISSED'}")  # fmt: skip
    if not args.no_stress:
        stress = str(ROOT / "configs" / "stress.yaml")
        t = {v: _time(v, stress, env)[0] for v in ("sweep", "eager")}
        figures["stress"] = {"cases": _cases(stress), "seconds": t}
        print(
            f"stress.yaml ({_cases(stress)} cases, once each): as configured (every case compiled) "
            f"{t['sweep']:.1f} s · all eager (before) {t['eager']:.1f} s"
        )
    smoke = str(ROOT / "configs" / "smoke.yaml")
    n = _cases(smoke)
    figures["smoke"] = {}
    for name in installed_backends():
        runs = [_time("sweep", smoke, {**env, "KERAS_BACKEND": name}, check=False) for _ in range(args.repeats)]
        seconds = statistics.median(r[0] for r in runs)
        work = statistics.median(r[0] - r[1] for r in runs)
        figures["smoke"][name] = {"cases": n, "seconds": seconds, "after_import": work, "cases_per_second": n / work}
        print(f"smoke.yaml on {name:<10}: {seconds:5.1f} s whole process, {work:5.1f} s after the import: "
              f"{n / work:5.1f} cases/s")  # fmt: skip
    figures["load_after"] = _load()
    print(f"after: {figures['load_after']}")
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
