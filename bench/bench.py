"""Benchmark: the NumPy reference against Keras's ``model.predict`` and the GEMM floor.

For each cell and each size (N, T, D, M, K), in one process, on the same
weights and inputs: the median wall time of

* ``predict``: Keras's ``model.predict`` (float32, after a warm-up call);
* ``reference``: the forward pass in ``rnn_parity.reference`` (in float64, check's
  default, then in float32);
* ``gemm``: the matrix products alone in the reference's dtype: ``x·W`` for all steps
  (one 2-D product per block of steps, as the reference does), ``h·U`` for every
  step, and the Dense. A lower bound for any loop that does the same arithmetic.

Targets (issue: foundation and recurrent layers): on the two larger sizes the
reference takes ≤ 0.8× predict's time and ≤ 1.5× the GEMM floor.

Usage: python bench/bench.py [--cells simple_rnn,lstm,gru] [--repeats 5] [--dtype both] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

from rnn_parity import keras_runner  # noqa: E402
from rnn_parity.architecture import layers_for  # noqa: E402
from rnn_parity.case import make_case  # noqa: E402
from rnn_parity.runtime import SequentialRuntime  # noqa: E402
from rnn_parity.spec import GATES, build_spec  # noqa: E402

SIZES = [(1, 10, 3, 5, 2), (256, 100, 32, 128, 10), (1024, 200, 64, 256, 10)]
TARGET_PREDICT, TARGET_GEMM = 0.8, 1.5


def interleaved_medians(fns: dict, repeats: int) -> dict:
    """Median wall time of each function, measured round-robin so that load changes hit all alike."""
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(ts) for name, ts in times.items()}


def gemm_floor(x, weights, dtype):
    """The same matrix products as the reference, nothing else: x·W for every step (as 2-D
    products over blocks of steps, as the reference does), h·U for every step, and the Dense."""
    from rnn_parity.reference import _BLOCK_BYTES

    kernel, recurrent_kernel = (np.asarray(w, dtype) for w in weights["rnn"][:2])
    wo = np.asarray(weights["dense"][0], dtype)
    x_tm = np.ascontiguousarray(np.asarray(x, dtype).transpose(1, 0, 2))
    t, n, d = x_tm.shape
    m = recurrent_kernel.shape[0]
    rows = max(1, _BLOCK_BYTES // (n * kernel.shape[1] * np.dtype(dtype).itemsize))
    h = np.zeros((n, m), dtype)
    out = np.empty((n, recurrent_kernel.shape[1]), dtype)

    def run():
        for start in range(0, t, rows):
            x_tm[start : start + rows].reshape(-1, d) @ kernel
        for _ in range(t):
            np.matmul(h, recurrent_kernel, out=out)
        return h @ wo

    return run


def bench_one(cell: str, size: tuple[int, ...], repeats: int, dtype: str) -> dict:
    n, t, d, m, k = size
    spec = build_spec(N=n, T=t, D=d, M=m, K=k, cell=cell, reference_dtype=dtype, max_memory=16 * 1024**3)
    layers = layers_for(spec)
    case = make_case(spec, layers)
    model, _ = keras_runner.build_model(layers, batch=n, timesteps=t, features=d, stateful=False, initial_state=False)
    for desc in layers:
        model.get_layer(desc.name).set_weights(case.weights[desc.name])
    weights = {desc.name: model.get_layer(desc.name).get_weights() for desc in layers}
    x = case.batches[0]
    predict = lambda: model.predict(x, batch_size=n, verbose=0)
    runtime = SequentialRuntime(layers, weights, dtype=dtype)
    reference = lambda: runtime.run(x)
    predict()  # trace and warm up
    reference()
    rnn_name = layers[0].name
    floor = gemm_floor(x, {"rnn": weights[rnn_name], "dense": weights["dense"]}, dtype)
    floor()
    medians = interleaved_medians({"predict_s": predict, "reference_s": reference, "gemm_s": floor}, repeats)
    row = {"cell": cell, "size": list(size), **medians}
    row["ref_over_predict"] = row["reference_s"] / row["predict_s"]
    row["ref_over_gemm"] = row["reference_s"] / row["gemm_s"]
    row["gates"] = GATES[cell]
    return row


def machine() -> dict:
    from threadpoolctl import threadpool_info

    blas = [f"{i.get('internal_api')} {i.get('version')} ({i.get('num_threads')} threads)" for i in threadpool_info()]
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next(line.split(":", 1)[1].strip() for line in fh if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "blas": blas, "python": platform.python_version()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", default="simple_rnn,lstm,gru")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--dtype",
        default="both",
        choices=["float64", "float32", "both"],
        help="the reference's dtype; both: float64 (check's default), then float32",
    )
    parser.add_argument("--json", help="also write the rows to this file")
    args = parser.parse_args(argv)

    keras_runner.import_keras()
    info = {**machine(), **keras_runner.versions()}
    print(f"machine: {info['cpu']}, {info['cores']} cores; BLAS: {'; '.join(info['blas'])}")
    print(f"numpy {info['numpy']}, keras {info['keras']}, tensorflow {info['tensorflow']}")
    header = (
        f"{'cell':<11}{'N,T,D,M,K':<22}{'predict':>10}{'reference':>11}{'gemm':>10}{'ref/pred':>10}{'ref/gemm':>10}"
    )
    rows = []
    for dtype in ("float64", "float32") if args.dtype == "both" else (args.dtype,):
        print(f"\nreference in {dtype}; medians of {args.repeats}, measured round-robin")
        print(header)
        met = {"predict": True, "gemm": True}
        for cell in args.cells.split(","):
            for i, size in enumerate(SIZES):
                row = {**bench_one(cell, size, args.repeats, dtype), "dtype": dtype}
                rows.append(row)
                verdict = ""
                if i > 0:  # the targets apply to the two larger sizes
                    ok_predict = row["ref_over_predict"] <= TARGET_PREDICT
                    ok_gemm = row["ref_over_gemm"] <= TARGET_GEMM
                    met["predict"] &= ok_predict
                    met["gemm"] &= ok_gemm
                    verdict = (
                        f"  {'meets' if ok_predict else 'misses'} ≤{TARGET_PREDICT}× predict,"
                        f" {'meets' if ok_gemm else 'misses'} ≤{TARGET_GEMM}× GEMM"
                    )
                print(
                    f"{cell:<11}{','.join(map(str, size)):<22}{row['predict_s'] * 1e3:>8.1f}ms"
                    f"{row['reference_s'] * 1e3:>9.1f}ms{row['gemm_s'] * 1e3:>8.1f}ms"
                    f"{row['ref_over_predict']:>9.2f}×{row['ref_over_gemm']:>9.2f}×{verdict}"
                )
                sys.stdout.flush()
        print(
            f"{dtype} reference, two larger sizes: ≤ {TARGET_PREDICT}× predict "
            f"{'all met' if met['predict'] else 'NOT all met'}; ≤ {TARGET_GEMM}× the GEMM floor "
            f"{'all met' if met['gemm'] else 'NOT all met'}"
        )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"machine": info, "rows": rows}, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
