"""Functions the Dask tests run on the workers: importable there by name (tests/ is on their path)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from rnn_parity.sweep import run_case


def is_deadly(spec) -> bool:
    return spec.cell == "gru" and spec.T == 5


def is_stalling(spec) -> bool:
    return spec.cell == "simple_rnn" and spec.T == 3


def die_on_deadly(index, spec):
    """The deadly case kills every worker process it runs on, as the kernel's OOM killer would."""
    if is_deadly(spec):
        os._exit(9)
    return run_case(index, spec)


def stall_once(folder, index, spec):
    """The stalling case, on its first attempt, writes its worker's pid into ``folder/stalled`` and
    waits there to be killed; on the second attempt (or any other case) it runs normally."""
    if is_stalling(spec):
        with open(Path(folder) / "attempts", "a") as fh:
            fh.write(f"{os.getpid()}\n")
        marker = Path(folder) / "stalled"
        if not marker.exists():
            marker.write_text(str(os.getpid()))
            time.sleep(600)
    return run_case(index, spec)
