"""``sweep --shard I/N``: split the expanded cases of a sweep into N parts, one per CI job.

The partition depends only on the cases themselves: each case is keyed by the
SHA-256 of its config file's name and its case name (unique within that file),
the cases are put in the order of their keys, and shard ``I`` takes every
N-th case of that order starting at the I-th. The result is the same on every
machine and Python version (no ``hash()``, no randomness), whatever the number
of workers; the shards' sizes differ by at most one, and each shard gets a
fair mix of the config's cells and sizes. Within a shard the cases keep config
order. :func:`shard_block` describes the whole sweep in a shard's report, so
that ``merge-reports`` can put the shards back together.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import PurePath

from .errors import InvalidInput

__all__ = ["Shard", "case_key", "parse_shard", "shard_block", "shard_numbers", "sweep_digest", "take_shard"]

_SHARD = re.compile(r"\s*(\d+)\s*/\s*(\d+)\s*")


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` (from 1) of ``count``."""

    index: int
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(text: str) -> Shard:
    """``"2/3"`` → ``Shard(2, 3)``; raises :class:`InvalidInput` unless 1 ≤ I ≤ N."""
    match = _SHARD.fullmatch(str(text))
    if match:
        index, count = int(match[1]), int(match[2])
        if 1 <= index <= count:
            return Shard(index, count)
    raise InvalidInput(f"--shard must be I/N with 1 <= I <= N, e.g. 2/3, got {text!r}")


def case_key(config: str, name: str) -> str:
    """The hex SHA-256 of ``"<config file name>/<case name>"``: a case's place in the partition."""
    return hashlib.sha256(f"{PurePath(config).name}/{name}".encode()).hexdigest()


def shard_numbers(keys: list[tuple[str, str]], count: int) -> list[int]:
    """The shard (1 to ``count``) of each ``(config file, case name)``, in the order given."""
    order = sorted(range(len(keys)), key=lambda i: (case_key(*keys[i]), i))
    numbers = [0] * len(keys)
    for rank, i in enumerate(order):
        numbers[i] = rank % count + 1
    return numbers


def take_shard(cases: list, shard: Shard) -> list:
    """The cases of ``shard``, in config order."""
    numbers = shard_numbers([(case.config, case.name) for case in cases], shard.count)
    return [case for case, number in zip(cases, numbers) if number == shard.index]


def sweep_digest(cases: list) -> str:
    """A SHA-256 of every case's config file, name and options: equal for shards of the same sweep."""
    canonical = [[case.config, case.name, case.spec.public_config()] for case in cases]
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def shard_block(cases: list, shard: Shard) -> dict:
    """The ``shard`` object of a shard's sweep report: which shard, and the whole sweep it is part of."""
    return {
        "index": shard.index,
        "count": shard.count,
        "sweep_total": len(cases),
        "sweep_digest": sweep_digest(cases),
        "sweep_cases": [{"name": case.name, "config_file": case.config} for case in cases],
    }
