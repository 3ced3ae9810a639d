"""A fingerprint of what can change a float32 result: versions, oneDNN, BLAS, CPU, threads.

TensorFlow's oneDNN kernels and the BLAS NumPy uses round differently from
plain loops; a report that changed between two machines should say what
differed. Keras-side facts come from :mod:`rnn_parity.keras_runner`.
"""

from __future__ import annotations

import functools
import os
import platform

from . import keras_runner

__all__ = ["environment", "machine"]


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith(("model name", "Model", "Hardware")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _blas() -> list[dict]:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:  # pragma: no cover - a dependency, but the report should not die for it
        return []
    return [
        {
            "api": i.get("internal_api"),
            "version": i.get("version"),
            "threads": i.get("num_threads"),
            "architecture": i.get("architecture"),
        }
        for i in threadpool_info()
    ]


@functools.lru_cache(maxsize=1)
def machine() -> dict:
    """The facts that do not change during a process."""
    facts = {
        "python": platform.python_version(),
        **{k: v for k, v in keras_runner.versions().items() if k != "python"},
        **keras_runner.backend_facts(),
        "blas": _blas(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "platform": platform.platform(),
    }
    facts.pop("backend", None)
    return facts


def environment(command_line: str) -> dict:
    """The machine's fingerprint plus the command line that reproduces this run."""
    return {**machine(), "command": command_line}
