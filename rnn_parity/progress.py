"""A sweep's progress on stderr: a rich bar on a terminal, plain lines in a CI log.

The bar shows cases done of all, how many failed (parity violated) and how
many errored (the check could not run), elapsed time and the estimated time left. When stderr is not a terminal each
finished case prints one line instead, with the same figures.
"""

from __future__ import annotations

import sys
import time

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

__all__ = ["SweepProgress"]


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class SweepProgress:
    """Use as a context manager; pass :meth:`advance` as ``run_sweep``'s ``on_done``."""

    def __init__(self, total: int, *, console: Console | None = None):
        self.total = total
        self.done = 0
        self.failed = 0
        self.errors = 0
        self.console = console or Console(stderr=True)
        self.live = self.console.is_terminal
        self._started = time.perf_counter()
        self._bar: Progress | None = None
        self._task = None

    def __enter__(self) -> SweepProgress:
        self._started = time.perf_counter()
        if self.live:
            self._bar = Progress(
                TextColumn("[bold]sweep"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("[red]{task.fields[failed]} failed"),
                TextColumn("[red]{task.fields[errors]} errors"),
                TextColumn("elapsed"),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                TextColumn("{task.description}", style="dim"),
                console=self.console,
                transient=True,
            )
            self._bar.start()
            self._task = self._bar.add_task("", total=self.total, failed=0, errors=0)
        return self

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.stop()

    def advance(self, case, outcome) -> None:
        self.done += 1
        self.failed += outcome.status == "fail"
        self.errors += outcome.status == "error"
        if self._bar is not None:
            self._bar.update(self._task, advance=1, failed=self.failed, errors=self.errors, description=case.name)
            return
        elapsed = time.perf_counter() - self._started
        left = elapsed / self.done * (self.total - self.done)
        width = len(str(self.total))
        print(
            f"[{self.done:>{width}}/{self.total}] {outcome.status.upper():<5} {case.name} ({outcome.seconds:.2f} s)"
            f"  · {self.failed} failed · {self.errors} errors · elapsed {_clock(elapsed)} · ETA {_clock(left)}",
            file=sys.stderr,
            flush=True,
        )
