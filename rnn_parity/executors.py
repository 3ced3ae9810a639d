"""Where a sweep's cases run and which of them: ``--executor``, ``--scheduler``, ``--workers``, ``--shard``.

:class:`Placement` validates the combination before anything runs (a missing
Dask is exit 2 with the pip command) and picks the shard's cases.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import InvalidInput
from .shards import Shard, parse_shard, take_shard

__all__ = ["EXECUTORS", "Placement"]

#: ``local``: this process, or a process pool (:mod:`rnn_parity.sweep`); ``dask``: :mod:`rnn_parity.dask_executor`.
EXECUTORS = ("local", "dask")


@dataclass
class Placement:
    """The executor options of a sweep, as given; :meth:`validated` checks them and parses ``shard_text``.

    Attributes:
        executor: one of :data:`EXECUTORS`.
        scheduler: a Dask scheduler's address (``tcp://host:8786``), or None for a local cluster.
        workers: ``--workers`` (the size of the pool or of the local cluster).
        shard_text: ``--shard`` as given (``"2/3"``), or None.
        shard: the parsed shard, after :meth:`validated`.
    """

    executor: str = "local"
    scheduler: str | None = None
    workers: int | str = 1
    shard_text: str | None = None
    shard: Shard | None = field(default=None, init=False)

    def validated(self) -> Placement:
        """Raise :class:`InvalidInput` for a combination that cannot run; return self."""
        if self.executor not in EXECUTORS:
            raise InvalidInput(f"--executor must be one of {', '.join(EXECUTORS)}, got {self.executor!r}")
        if self.scheduler and self.executor != "dask":
            raise InvalidInput("--scheduler needs --executor dask")
        if self.scheduler and self.workers != 1:
            raise InvalidInput(
                "--workers sizes a local cluster; with --scheduler the cluster's own workers run the cases"
            )
        if self.executor == "dask":
            from .dask_executor import require_dask

            require_dask()
        if self.shard_text is not None:
            self.shard = parse_shard(self.shard_text)
        return self

    def shard_of(self, cases: list) -> list:
        """The cases this run takes: all of them, or those of its shard (config order)."""
        return cases if self.shard is None else take_shard(cases, self.shard)
