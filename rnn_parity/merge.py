"""``merge-reports``: the JSON reports of a sharded sweep (``sweep --shard I/N``) put back into one.

The merged report has the layout of ``sweep --json`` for the whole sweep: the
cases of every shard in config order, the ``not_run`` cases of every shard, and
a summary counted over all of them, whose ``exit_code`` follows the sweep's
rule. The cases of a shard whose report is not given are listed in ``not_run``
with a ``reason``, and make the exit code 3 unless a failure or an
interruption comes first: a gate must not pass on cases it never saw.
``merged_from`` says which reports went in.

Reports of different sweeps (other configs, cases or shard counts), of
another tool stack (``versions``), or holding the same case twice are refused
with :class:`~rnn_parity.errors.InvalidInput` (exit 2) before anything is written.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from .errors import InvalidInput
from .report import SCHEMA_VERSION, gate_exit_code
from .shards import shard_numbers

__all__ = ["MergeResult", "merge_reports", "read_shard_report"]

#: The top-level fields every sweep report has.
SWEEP_FIELDS = ("schema_version", "configs", "cases", "not_run", "summary", "versions")


@dataclass(frozen=True)
class MergeResult:
    """The merged ``sweep --json`` object and the shards no report was given for."""

    report: dict
    missing_shards: tuple[int, ...]

    @property
    def exit_code(self) -> int:
        return self.report["summary"]["exit_code"]

    def notes(self) -> list[str]:
        """One line per shard whose report is missing."""
        count = self.report["merged_from"]["shards"]
        reasons = [c.get("reason") for c in self.report["not_run"]]
        return [
            f"missing: shard {index}/{count}, {reasons.count(_missing(index, count))} cases: no report of it was given"
            for index in self.missing_shards
        ]


def _missing(index: int, count: int) -> str:
    """The ``reason`` of a case whose shard's report was not given."""
    return f"the report of shard {index}/{count} was not given"


def read_shard_report(path: str | Path) -> dict:
    """A ``sweep --shard I/N --json`` report; raises :class:`InvalidInput` naming the file."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InvalidInput(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InvalidInput(f"{path}: is a folder, not a report") from None
    except OSError as exc:
        raise InvalidInput(f"{path}: cannot read it ({exc.strerror or exc})") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidInput(f"{path}: not a JSON file ({exc})") from None
    if not isinstance(data, dict) or any(key not in data for key in SWEEP_FIELDS):
        raise InvalidInput(f"{path}: not an rnn-parity sweep report (sweep --json)")
    if data["schema_version"] != SCHEMA_VERSION:
        raise InvalidInput(
            f"{path}: report schema_version {data['schema_version']}, this rnn-parity reads {SCHEMA_VERSION}"
        )
    shard = data.get("shard")
    if not isinstance(shard, dict):
        raise InvalidInput(f"{path}: not the report of a shard (run the sweep with --shard I/N)")
    return data


def _stack(report: dict) -> dict:
    return {k: v for k, v in report["versions"].items() if v is not None}


def _same_sweep(first: tuple[str, dict], other: tuple[str, dict]) -> None:
    (path_a, a), (path_b, b) = first, other
    sa, sb = a["shard"], b["shard"]
    if a["configs"] != b["configs"]:
        raise InvalidInput(
            f"{path_b}: a sweep of {', '.join(b['configs'])}, not of {', '.join(a['configs'])} as {path_a}"
        )
    if sa["sweep_digest"] != sb["sweep_digest"]:
        raise InvalidInput(
            f"{path_b}: the configs expanded to other cases than in {path_a} "
            "(a changed config or another --filter); merge shards of one sweep"
        )
    if sa["count"] != sb["count"]:
        raise InvalidInput(f"{path_b}: shard {sb['index']}/{sb['count']}, but {path_a} is {sa['index']}/{sa['count']}")
    va, vb = _stack(a), _stack(b)
    differ = [k for k in dict.fromkeys([*va, *vb]) if va.get(k) != vb.get(k)]
    if differ and a["cases"] and b["cases"]:  # a report without cases carries no numbers to disagree with
        shown = ", ".join(f"{k} {vb.get(k)} vs {va.get(k)}" for k in differ)
        raise InvalidInput(f"{path_b}: another tool stack than {path_a} ({shown}); merge reports of one stack")


def merge_reports(paths: list[str]) -> MergeResult:
    """Merge shard reports of one sweep; see the module docstring."""
    if not paths:
        raise InvalidInput("merge-reports needs at least one report")
    reports = [(str(p), read_shard_report(p)) for p in paths]
    first = reports[0][1]
    for other in reports[1:]:
        _same_sweep(reports[0], other)
    shard = first["shard"]
    count = shard["count"]
    sweep = [(c["config_file"], c["name"]) for c in shard["sweep_cases"]]
    position = {key: i for i, key in enumerate(sweep)}
    given: dict[int, str] = {}
    where: dict[tuple[str, str], str] = {}
    for path, report in reports:
        index = report["shard"]["index"]
        if index in given:
            raise InvalidInput(
                f"{path}: shard {index}/{count} again (also {given[index]}); its cases would be duplicated"
            )
        given[index] = path
        for entry in [*report["cases"], *report["not_run"]]:
            key = (entry["config_file"], entry["name"])
            if key not in position:
                raise InvalidInput(f"{path}: case {entry['name']} ({entry['config_file']}) is not part of the sweep")
            if key in where:
                raise InvalidInput(f"case {entry['name']} ({entry['config_file']}) is in both {where[key]} and {path}")
            where[key] = path
    entries = sorted((e for _, r in reports for e in r["cases"]), key=lambda e: position[(e["config_file"], e["name"])])
    not_run = [c for _, r in reports for c in r["not_run"]]
    numbers = shard_numbers(sweep, count)
    for (config, name), number in zip(sweep, numbers):
        if (config, name) not in where:
            not_run.append({"name": name, "config_file": config, "reason": _missing(number, count)})
    not_run.sort(key=lambda c: position[(c["config_file"], c["name"])])
    missing_shards = tuple(sorted({n for key, n in zip(sweep, numbers) if key not in where}))
    counts = {status: sum(e["status"] == status for e in entries) for status in ("pass", "fail", "error")}
    summaries = [r["summary"] for _, r in reports]
    interrupted = any(s["interrupted"] for s in summaries)
    missing = sum("reason" in c for c in not_run)
    summary = {
        "total": shard["sweep_total"],
        "passed": counts["pass"],
        "failed": counts["fail"],
        "errors": counts["error"],
        "not_run": len(not_run),
        "interrupted": interrupted,
        "stopped_early": any(s["stopped_early"] for s in summaries),
        "workers": sum(s["workers"] for s in summaries),
        "seconds": max(s["seconds"] for s in summaries),
        "exit_code": gate_exit_code(interrupted=interrupted, failed=counts["fail"], errors=counts["error"] + missing),
    }
    versions = next((r["versions"] for _, r in reports if r["cases"]), first["versions"])
    merged = {
        "schema_version": SCHEMA_VERSION,
        "configs": first["configs"],
        "shard": None,
        "merged_from": {
            "shards": count,
            "reports": [
                {"path": path, "shard": r["shard"]["index"], "cases": len(r["cases"]) + len(r["not_run"])}
                for path, r in sorted(reports, key=lambda pr: pr[1]["shard"]["index"])
            ],
            "missing_shards": list(missing_shards),
        },
        "cases": entries,
        "not_run": not_run,
        "summary": summary,
        "versions": versions,
    }
    return MergeResult(merged, missing_shards)
