"""The sweep report as a Markdown table, e.g. for a GitHub step summary (``$GITHUB_STEP_SUMMARY``)."""

from __future__ import annotations

from .render import (
    case_note,
    fmt,
    review_order,
    sizes_text,
    stop_line,
    summary_line,
    tolerance_text,
    verdict_diff,
)

__all__ = ["markdown_summary"]

_VERDICT = {"pass": "✅ PASS", "fail": "❌ FAIL", "error": "⚠️ ERROR"}
_HEADLINE = {0: "✅ parity holds", 1: "❌ parity violated", 3: "⚠️ cases could not run", 130: "⏹ interrupted"}


def _cell(value) -> str:
    """Text safe inside a table cell: one line, pipes escaped, no HTML."""
    text = " ".join(str(value).split())
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def markdown_summary(report: dict) -> str:
    """A heading, the summary line and one table row per case, failures first."""
    s = report["summary"]
    several = len(report["configs"]) > 1
    headline = _HEADLINE[130] if s["interrupted"] else _HEADLINE.get(s["exit_code"], f"exit {s['exit_code']}")
    lines = [f"### rnn-parity sweep: {headline}", ""]
    lines += [f"**{summary_line(report)}** in {s['seconds']:.1f} s", ""]
    stop = stop_line(report)
    if stop:
        lines += [f"**{_cell(stop)}**", ""]
    versions = report["versions"]
    stack = ", ".join(
        f"{k} {versions[k]}" for k in ("keras", "tensorflow", "jax", "torch", "numpy", "python") if versions.get(k)
    )
    configs = ", ".join(f"`{_cell(c)}`" for c in report["configs"])
    lines += [f"{_cell(stack)}; configs: {configs}", ""]
    header = (
        ["case"] + (["config"] if several else []) + ["sizes", "max \\|Δ\\|", "tolerance", "verdict", "seconds", "note"]
    )
    align = ["---"] + (["---"] if several else []) + ["---", "---:", "---", "---", "---:", "---"]
    lines += ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    for entry in review_order(report["cases"]):
        row = [f"`{_cell(entry['name'])}`"] + ([_cell(entry["config_file"])] if several else [])
        row += [
            _cell(sizes_text(entry["config"])),
            fmt(verdict_diff(entry), 2),
            _cell(tolerance_text(entry)),
            _VERDICT[entry["status"]],
            f"{entry['seconds']:.2f}",
            _cell(case_note(entry)),
        ]
        lines.append("| " + " | ".join(row) + " |")
    if report["not_run"]:
        names = ", ".join(f"`{_cell(c['name'])}`" for c in report["not_run"])
        lines += [
            "",
            f"<details><summary>{len(report['not_run'])} cases not run</summary>",
            "",
            names,
            "",
            "</details>",
        ]
    return "\n".join(lines) + "\n"
