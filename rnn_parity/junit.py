"""The sweep report as JUnit XML, for the test views of GitHub, GitLab and Jenkins.

One ``<testsuite>`` per config file and one ``<testcase>`` per case: ``name`` is
the case's name, ``classname`` the config file's path without its suffix and
with dots for slashes (``configs/smoke.yaml`` → ``configs.smoke``), ``time`` the
case's seconds. A parity failure carries a ``<failure>``, a case that could not
run an ``<error>``, and a case that did not run (interrupted, ``--fail-fast``,
or a shard whose report ``merge-reports`` was not given: the entry's ``reason``)
a ``<skipped>``; each with the difference and the tolerance.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import datetime, timezone
from pathlib import Path

from .render import case_note, fmt, sizes_text

__all__ = ["classname_for", "junit_xml"]

_NOT_XML = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _text(value) -> str:
    """Text XML 1.0 can hold (control characters dropped)."""
    return _NOT_XML.sub("", str(value))


def classname_for(config: str) -> str:
    """``configs/smoke.yaml`` → ``configs.smoke`` (relative to the current folder when inside it)."""
    path = Path(config)
    try:
        path = path.resolve().relative_to(Path.cwd().resolve())
    except ValueError:
        path = Path(path.name)
    return ".".join(path.with_suffix("").parts) or path.stem


def _seconds(value: float) -> str:
    return f"{value:.3f}"


def _failure_details(entry: dict) -> str:
    lines = [f"{entry['name']}: {sizes_text(entry['config'])}"]
    comparisons = [(layer["name"], layer) for layer in entry.get("layers", [])]
    comparisons += [(f"state {name}", state) for name, state in entry.get("states", {}).items()]
    for label, c in comparisons:
        if c["passed"]:
            continue
        worst = ", ".join(map(str, c["worst_index"]))
        lines.append(
            f"{label}: max abs diff {fmt(c['max_abs_diff'])} over |keras - numpy| <= {c['atol']:g} + "
            f"{c['rtol']:g}*|numpy|; smallest passing atol {fmt(c['required_atol'])}; "
            f"{c['mismatches']} of {c['size']} elements fail; worst [{worst}]: "
            f"Keras {c['actual_at_worst']!r}, NumPy {c['expected_at_worst']!r}"
        )
    return "\n".join(lines)


def _testcase(parent: ET.Element, entry: dict, classname: str) -> str:
    case = ET.SubElement(
        parent,
        "testcase",
        name=_text(entry["name"]),
        classname=classname,
        time=_seconds(entry["seconds"]),
        file=_text(entry["config_file"]),
    )
    status = entry["status"]
    if status == "fail":
        message = (
            f"max abs diff {fmt(entry['max_abs_diff'])}, tolerance atol {entry['atol']:g} + "
            f"rtol {entry['rtol']:g}*|numpy|; {case_note(entry)}"
        )
        failure = ET.SubElement(case, "failure", message=_text(message), type="ParityFailure")
        failure.text = _text(_failure_details(entry))
    elif status == "error":
        kind = entry["error"].split(":", 1)[0] if entry["error"] else "Error"
        error = ET.SubElement(case, "error", message=_text(case_note(entry)), type=_text(kind))
        error.text = _text(entry["error"])
    if status != "error":
        out = ET.SubElement(case, "system-out")
        out.text = _text(
            f"max abs diff {fmt(entry['max_abs_diff'])} (tolerance atol {entry['atol']:g}, "
            f"rtol {entry['rtol']:g}); required atol {fmt(entry['required_atol'])}; "
            f"{sizes_text(entry['config'])}"
        )
    return status


def junit_xml(report: dict) -> str:
    """The ``sweep --junit-xml`` document for a :func:`~rnn_parity.report.sweep_report` object."""
    summary = report["summary"]
    stamp = datetime.now(timezone.utc).replace(microsecond=0, tzinfo=None).isoformat()
    root = ET.Element(
        "testsuites",
        name="rnn-parity sweep",
        tests=str(summary["total"]),
        failures=str(summary["failed"]),
        errors=str(summary["errors"]),
        skipped=str(summary["not_run"]),
        time=_seconds(summary["seconds"]),
    )
    why_not_run = "interrupted" if summary["interrupted"] else "--fail-fast stopped the sweep"
    for config in report["configs"]:
        entries = [e for e in report["cases"] if e["config_file"] == config]
        not_run = [c for c in report["not_run"] if c["config_file"] == config]
        suite = ET.SubElement(
            root,
            "testsuite",
            name=_text(config),
            tests=str(len(entries) + len(not_run)),
            failures=str(sum(e["status"] == "fail" for e in entries)),
            errors=str(sum(e["status"] == "error" for e in entries)),
            skipped=str(len(not_run)),
            time=_seconds(sum(e["seconds"] for e in entries)),
            timestamp=stamp,
        )
        properties = ET.SubElement(suite, "properties")
        for key, value in report["versions"].items():
            ET.SubElement(properties, "property", name=key, value=_text(value))
        classname = classname_for(config)
        for entry in entries:
            _testcase(suite, entry, classname)
        for case in not_run:
            skipped = ET.SubElement(
                ET.SubElement(
                    suite, "testcase", name=_text(case["name"]), classname=classname, time="0.000", file=_text(config)
                ),
                "skipped",
            )
            skipped.set("message", f"not run: {case.get('reason') or why_not_run}")
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
