"""Exported-model benchmark: the NumPy runtime as a user loads it, onnxruntime, and Keras's predict_on_batch.

    make bench        # or: .venv/bin/python bench/bench_export.py [--repeats 9] [--json FILE] [--variants]
    .venv/bin/python bench/bench_export.py --anatomy    # one LSTM and one GRU step, call by call

Three models, built with Keras (TensorFlow backend) and random weights from a fixed seed:

* ``tagger``: ``Embedding(10000, 64, mask_zero=True) → LSTM(128, return_sequences=True) → LSTM(64)
  → Dense(10)``, a batch of 32 right-padded sequences of 100 ids (lengths 50 to 100);
* ``gru_stack``: ``Bidirectional(GRU(64, return_sequences=True)) ×2 → Dense(20)`` on 40 features per
  step (e.g. filterbank frames), a batch of 64 sequences of 200 steps;
* ``one_sample``: ``SimpleRNN(64) → Dense(1)`` on 16 features, one sequence of 50 steps.

Each is saved as ``.keras`` and exported with :func:`rnn_parity.export.run_export` (what ``rnn-parity
export`` runs: verification, round trip, atomic write), and saved by Keras itself as ONNX
(``model.export(path, format="onnx")``, which needs tf2onnx on the TensorFlow backend). Then, in this
one process, with nothing set in the environment (the machine's default BLAS threads, onnxruntime's
default session options), side by side:

* ``runtime``: ``rnn_parity.runtime.load(path).predict(x)``, the exported model as a user loads it
  (its recorded dtype, its own BLAS threading);
* ``onnxruntime``: ``InferenceSession(path).run(None, {name: x})``;
* ``predict_on_batch``: Keras's compiled ``model.predict_on_batch(x)``;
* ``GEMM floor``: the runtime's matrix products alone (each recurrent layer's input projection and
  its recurrent product at every step, the Dense), same shapes, dtype and BLAS threads: what the
  runtime would take with free elementwise work and no Python.

Every contender is warmed up, then timed ``--repeats`` times round-robin (the order rotates every
round, so no contender always follows another's thread pool); the figure is the median. Targets:
the runtime at most 2.0× onnxruntime and at most 1.0× predict_on_batch. ``--variants`` adds the
runtime in float64 (one more contender) and, after the contenders, the runtime as loaded against
the runtime with BLAS as the caller set it (``blas_threads=None``), round-robin with a pause before
each call (BLAS threads left spinning by the second would otherwise slow whatever ran next); they
take no part in the targets. Nothing is asserted; the machine's load average is printed before and
after, and final figures need a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

TARGET_ONNX = 2.0
TARGET_KERAS = 1.0
WARMUP = 3


def build_models():
    """``{name: (description, keras.Model, input array)}``, weights and data from fixed seeds."""
    import keras
    import numpy as np

    keras.utils.set_random_seed(0)
    layers = keras.layers
    models = {}

    ids = keras.Input((None,), dtype="int32", name="ids")
    h = layers.Embedding(10000, 64, mask_zero=True)(ids)
    h = layers.LSTM(128, return_sequences=True)(h)
    h = layers.LSTM(64)(h)
    tagger = keras.Model(ids, layers.Dense(10)(h), name="tagger")
    rng = np.random.default_rng(0)
    tokens = rng.integers(1, 10000, size=(32, 100)).astype(np.int32)
    lengths = rng.integers(50, 101, size=32)
    tokens[np.arange(100)[None, :] >= lengths[:, None]] = 0
    models["tagger"] = ("Embedding(10000,64,mask_zero) → LSTM(128) → LSTM(64) → Dense(10); N=32, T=100", tagger, tokens)

    frames = keras.Input((None, 40), name="frames")
    h = layers.Bidirectional(layers.GRU(64, return_sequences=True))(frames)
    h = layers.Bidirectional(layers.GRU(64, return_sequences=True))(h)
    stack = keras.Model(frames, layers.Dense(20)(h), name="gru_stack")
    x = rng.standard_normal((64, 200, 40)).astype(np.float32)
    models["gru_stack"] = ("Bidirectional(GRU(64)) ×2 → Dense(20), 40 features; N=64, T=200", stack, x)

    inputs = keras.Input((None, 16), name="x")
    one = keras.Model(inputs, layers.Dense(1)(layers.SimpleRNN(64)(inputs)), name="one_sample")
    x = rng.standard_normal((1, 50, 16)).astype(np.float32)
    models["one_sample"] = ("SimpleRNN(64) → Dense(1), 16 features; N=1, T=50", one, x)
    return models


def export_all(models, folder: Path) -> dict:
    """Export every model both ways; ``{name: (npz path, onnx path, seconds)}``."""
    from rnn_parity.export import run_export
    from rnn_parity.verify import VerifyOptions

    paths = {}
    for name, (_, model, x) in models.items():
        model.predict_on_batch(x)  # built and called, as Keras's ONNX export requires
        keras_file, npz, onnx = folder / f"{name}.keras", folder / f"{name}.npz", folder / f"{name}.onnx"
        model.save(keras_file)
        started = time.perf_counter()
        result = run_export(VerifyOptions.build(model=str(keras_file)), npz)
        if not result.passed:
            sys.exit(f"{name}: the export did not pass: {result.verify.first_failure}")
        exported = time.perf_counter() - started
        started = time.perf_counter()
        model.export(str(onnx), format="onnx", verbose=False)
        paths[name] = (npz, onnx, exported, time.perf_counter() - started)
    return paths


def contenders(name, model, x, npz, onnx, variants: bool) -> tuple[dict, dict]:
    """``({label: callable}, {label: callable})`` for one model: the contenders and the variants.

    Each callable returns the model's output for ``x`` (the GEMM floor returns nothing).
    """
    import onnxruntime

    from rnn_parity import runtime

    loaded = runtime.load(npz)
    floor = gemm_floor(products(loaded.graph, x), loaded.dtype)
    session = onnxruntime.InferenceSession(str(onnx), providers=["CPUExecutionProvider"])
    feed = {session.get_inputs()[0].name: x}
    calls = {
        "runtime": lambda: loaded.predict(x),
        "onnxruntime": lambda: session.run(None, feed)[0],
        "predict_on_batch": lambda: model.predict_on_batch(x),
        "GEMM floor": floor,
    }
    extra = {}
    if variants:
        as_f64 = runtime.load(npz, dtype="float64")
        callers = runtime.load(npz, blas_threads=None)
        calls["runtime float64"] = lambda: as_f64.predict(x)
        extra["runtime"] = calls["runtime"]
        extra["runtime, caller's BLAS threads"] = lambda: callers.predict(x)
    return calls, extra


def products(graph: dict, x) -> list[tuple[int, int, int, int, int]]:
    """The matrix products of one forward pass: ``[(gates, rows, inner, cols, how many times), …]``.

    As the reference computes them: per recurrent layer and direction, the input projection
    ``(T·N, D)·(D, M)`` once per gate and the recurrent product ``(N, M)·(M, M)`` once per gate
    at each of the T steps (SimpleRNN: one "gate"); per Dense, ``(rows, D)·(D, K)``.
    """
    from rnn_parity.recurrent import CELLS, is_bidirectional, unwrap

    n, t = x.shape[0], x.shape[1]
    features, found = (None if x.ndim == 2 else x.shape[2]), []
    rows = n * t  # the rows of the tensor flowing on: N·T while sequences flow, N after the last one
    for layer in graph["layers"]:
        class_name, cfg = layer["class_name"], layer["config"]
        if class_name == "Embedding":
            features = cfg["output_dim"]
        elif class_name in CELLS or is_bidirectional(class_name):
            inner, inner_cfg = unwrap(class_name, cfg) if is_bidirectional(class_name) else (class_name, cfg)
            units, gates = inner_cfg["units"], len(CELLS[inner].gates)
            directions = 2 if is_bidirectional(class_name) else 1
            found += [(gates, n * t, features, units, directions), (gates, n, units, units, directions * t)]
            features = units * (directions if cfg.get("merge_mode", "concat") == "concat" else 1)
            rows = n * t if inner_cfg.get("return_sequences") else n
        elif class_name == "Dense":
            found.append((1, rows, features, cfg["units"], 1))
            features = cfg["units"]
    return found


def gemm_floor(shapes, dtype) -> callable:
    """A callable doing the same products alone, on the runtime's BLAS threads (its floor)."""
    import numpy as np

    from rnn_parity.blas_threads import STEP_THREADS, limited

    rng = np.random.default_rng(0)
    operands = [
        (
            rng.standard_normal((rows, inner)).astype(dtype),
            rng.standard_normal((gates, inner, cols) if gates > 1 else (inner, cols)).astype(dtype),
            count,
        )
        for gates, rows, inner, cols, count in shapes
    ]

    def run():
        with limited(STEP_THREADS):
            for a, b, count in operands:
                for _ in range(count):
                    np.matmul(a, b)

    return run


def step_anatomy(cell: str, batch: int, units: int, repeats: int = 200) -> list[tuple[str, float]]:
    """``[(operation, µs per call), …]``: one step of the reference's LSTM or GRU, call by call.

    The NumPy calls of ``reference.lstm``'s and ``reference.gru``'s (reset_after) step, in their
    order, on arrays of the step's shapes and layout (the gates apart, ``(G, batch, units)``), in
    float32 on one BLAS thread; each timed over ``repeats`` calls (the median of 5 such runs).
    """
    import numpy as np

    from rnn_parity.blas_threads import limited

    rng = np.random.default_rng(0)
    m, gates = units, {"lstm": 4, "gru": 3}[cell]
    f32 = np.float32
    row = (rng.standard_normal((gates, batch, m)) * 0.5).astype(f32)  # this step's x·W + b, the gates apart
    h = (rng.standard_normal((batch, m)) * 0.5).astype(f32)
    U = (rng.standard_normal((gates, m, m)) * 0.1).astype(f32)
    hU = np.empty_like(row)
    scratch = np.empty((batch, m), f32)
    if cell == "lstm":  # gates i, f, o, c
        ops = [
            ("h·U (matmul, per gate)", lambda: np.matmul(h, U, out=hU)),
            ("z += h·U", lambda: np.add(row, hU, out=row)),
            ("σ(i, f, o): ×(−1)", lambda: np.multiply(row[:3], -1, out=row[:3])),
            ("σ(i, f, o): exp", lambda: np.exp(row[:3], out=row[:3])),
            ("σ(i, f, o): +1", lambda: np.add(row[:3], 1, out=row[:3])),
            ("σ(i, f, o): 1/x", lambda: np.reciprocal(row[:3], out=row[:3])),
            ("g = tanh(z_c)", lambda: np.tanh(row[3], out=row[3])),
            ("f·c", lambda: row[1] * h),
            ("i·g", lambda: row[0] * row[3]),
            ("c += i·g", lambda: np.add(scratch, h, out=scratch)),
            ("tanh(c)", lambda: np.tanh(h)),
            ("o·tanh(c)", lambda: row[2] * h),
        ]
    else:  # gates z, r, h; reset_after
        bias = np.zeros((gates, 1, m), f32)
        ops = [
            ("h·U (matmul, per gate)", lambda: np.matmul(h, U, out=hU)),
            ("mh += b_h", lambda: np.add(hU, bias, out=hU)),
            ("zr += mh_zr", lambda: np.add(row[:2], hU[:2], out=row[:2])),
            ("σ(z, r): ×(−1)", lambda: np.multiply(row[:2], -1, out=row[:2])),
            ("σ(z, r): exp", lambda: np.exp(row[:2], out=row[:2])),
            ("σ(z, r): +1", lambda: np.add(row[:2], 1, out=row[:2])),
            ("σ(z, r): 1/x", lambda: np.reciprocal(row[:2], out=row[:2])),
            ("r·mh_h", lambda: np.multiply(hU[2], row[1], out=hU[2])),
            ("ĥ += r·mh_h", lambda: np.add(row[2], hU[2], out=row[2])),
            ("tanh(ĥ)", lambda: np.tanh(row[2], out=row[2])),
            ("z·h", lambda: row[0] * h),
            ("1 − z", lambda: np.subtract(1, row[0], out=scratch)),
            ("(1 − z)·ĥ", lambda: np.multiply(scratch, row[2], out=scratch)),
            ("h_t = z·h + …", lambda: np.add(h, scratch, out=scratch)),
        ]
    ops.append(("store h_t in the output", lambda: None))
    out = np.empty((batch, 100, m), f32)
    ops[-1] = ("store h_t in the output", lambda: out.__setitem__((slice(None), 7), h))
    timings = []
    with limited(1), np.errstate(all="ignore"):
        for label, op in ops:
            runs = []
            for _ in range(5):
                started = time.perf_counter()
                for _ in range(repeats):
                    op()
                runs.append((time.perf_counter() - started) / repeats)
            timings.append((label, 1e6 * statistics.median(runs)))
            row[:] = rng.standard_normal(row.shape).astype(f32) * 0.5  # no overflowed values carried on
    return timings


#: Seconds to wait before each timed call of the variants: OpenBLAS's idle workers spin for about
#: 0.1 s after a threaded product before they sleep, and would slow the next call.
PAUSE = 0.25


def measure(calls: dict, repeats: int, pause: float = 0.0) -> dict:
    """Median seconds per contender: warm-up, then ``repeats`` rounds in rotating order."""
    for call in calls.values():
        for _ in range(WARMUP):
            call()
    times = {label: [] for label in calls}
    labels = list(calls)
    for round_ in range(repeats):
        shift = round_ % len(labels)
        for label in labels[shift:] + labels[:shift]:
            time.sleep(pause)
            started = time.perf_counter()
            calls[label]()
            times[label].append(time.perf_counter() - started)
    return {label: statistics.median(values) for label, values in times.items()}


def machine() -> dict:
    import keras
    import numpy as np
    import onnxruntime
    import tensorflow as tf
    from threadpoolctl import threadpool_info

    model = platform.processor()
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            model = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")), model)
    except OSError:
        pass
    blas = [
        f"{lib.get('internal_api')} {lib.get('version')} ({lib.get('num_threads')} threads)"
        for lib in threadpool_info()
        if lib.get("user_api") == "blas"
    ]
    return {
        "cpu": model,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "blas": blas,
        "onnxruntime": onnxruntime.__version__,
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "environment": {k: os.environ[k] for k in sorted(os.environ) if k.endswith("_NUM_THREADS")},
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9, help="timed rounds per model (median; default 9)")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    parser.add_argument("--variants", action="store_true", help="also time the runtime in float64 and unlimited")
    parser.add_argument(
        "--anatomy", action="store_true", help="only time one LSTM and one GRU step call by call (no Keras)"
    )
    args = parser.parse_args(argv)
    if args.anatomy:
        for cell, batch, units, where in (("lstm", 32, 128, "tagger's first LSTM"), ("gru", 64, 64, "GRU stack")):
            timings = step_anatomy(cell, batch, units)
            print(f"one {cell.upper()} step, batch {batch}, {units} units ({where}): {len(timings) - 1} NumPy calls")
            for label, us in timings:
                print(f"  {label:28s} {us:7.1f} µs")
            print(f"  {'total':28s} {sum(us for _, us in timings):7.1f} µs\n")
        return 0
    if args.repeats < 7:
        parser.error("--repeats must be at least 7")
    load_before = os.getloadavg()
    import numpy as np

    models = build_models()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        paths = export_all(models, Path(tmp))
        info = machine()
        print(f"machine: {info['cpu']}, {info['cpus']} CPUs; NumPy {info['numpy']}, BLAS {', '.join(info['blas'])}")
        print(
            f"onnxruntime {info['onnxruntime']}, TensorFlow {info['tensorflow']}, Keras {info['keras']}; "
            f"thread variables set: {info['environment'] or 'none'}"
        )
        print(f"load average before: {' '.join(f'{v:.2f}' for v in load_before)}\n")
        for name, (description, model, x) in models.items():
            npz, onnx, export_s, onnx_s = paths[name]
            calls, variants = contenders(name, model, x, npz, onnx, args.variants)
            keras_out = np.asarray(calls["predict_on_batch"]())
            diffs = {
                label: float(np.max(np.abs(np.asarray(call(), dtype=np.float64) - keras_out)))
                for label, call in {**calls, **variants}.items()
                if label not in ("predict_on_batch", "GEMM floor")
            }
            medians = measure(calls, args.repeats)
            # After the contenders, the runtime against itself with the caller's BLAS threads, round
            # robin with a pause before each call (idle OpenBLAS workers spin, then sleep).
            extra = measure(variants, args.repeats, pause=PAUSE) if variants else {}
            rt = medians["runtime"]
            ratios = {"onnxruntime": rt / medians["onnxruntime"], "predict_on_batch": rt / medians["predict_on_batch"]}
            met = {
                "onnxruntime": ratios["onnxruntime"] <= TARGET_ONNX,
                "predict_on_batch": ratios["predict_on_batch"] <= TARGET_KERAS,
            }
            results[name] = {
                "model": description,
                "ms": {label: 1e3 * s for label, s in medians.items()},
                "ms_paused": {label: 1e3 * s for label, s in extra.items()},
                "ratios": ratios,
                "met": met,
                "max_abs_diff_vs_keras": diffs,
                "export_seconds": {"rnn-parity": export_s, "onnx": onnx_s},
            }
            print(f"{name}: {description}")
            for label, s in medians.items():
                shown = f"  {label:32s} {1e3 * s:9.2f} ms"
                if label in diffs:
                    shown += f"   max |Δ| vs Keras {diffs[label]:.1e}"
                print(shown)
            print(
                f"  runtime / onnxruntime      {ratios['onnxruntime']:6.2f}×  (target ≤ {TARGET_ONNX}×: "
                f"{'met' if met['onnxruntime'] else 'MISSED'})"
            )
            print(
                f"  runtime / predict_on_batch {ratios['predict_on_batch']:6.2f}×  (target ≤ {TARGET_KERAS}×: "
                f"{'met' if met['predict_on_batch'] else 'MISSED'})"
            )
            if extra:
                print(f"  after them, with a {PAUSE} s pause before each call:")
            for label, s in extra.items():
                print(f"    {label:30s} {1e3 * s:9.2f} ms")
            print()
    load_after = os.getloadavg()
    print(f"load average after: {' '.join(f'{v:.2f}' for v in load_after)} ({os.cpu_count()} CPUs)")
    if args.json:
        args.json.write_text(
            json.dumps(
                {"machine": info, "repeats": args.repeats, "load": [load_before, load_after], "models": results},
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
