"""``sweep --shard I/N`` and ``merge-reports``: a fixed partition of the cases, and shard reports merged
back into the report of the whole sweep (JSON and JUnit), with missing shards, refusals and exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from junitparser import JUnitXml

from rnn_parity.config import load_cases
from rnn_parity.shards import Shard, parse_shard, take_shard

from conftest import invoke

GRID = """
defaults: {N: 2, D: 2, M: 3, K: 2}
grid:
  cell: [simple_rnn, lstm, gru]
  T: [1, 2, 3, 4]
cases:
  - {name: masked, mask: post, T: 5}
  - {name: stack, M: [3, 2], T: 3}
  - {name: states, return_state: true, T: 2}
"""

#: Two configs, one case of which violates parity (exact equality with a float64 reference).
FIRST = """
defaults: {N: 2, D: 2, M: 3, K: 2}
grid:
  cell: [simple_rnn, gru]
  T: [2, 3]
"""
SECOND = """
defaults: {N: 2, D: 2, M: 3, K: 2}
cases:
  - {name: lstm, cell: lstm, T: 3}
  - {name: exact, T: 6, atol: 0, rtol: 0}
  - {name: masked, T: 4, mask: pre}
"""


# ----- the partition -----
def test_shards_cover_every_case_once_in_config_order_with_sizes_one_apart(cfg):
    cases = load_cases([cfg(GRID)])
    for count in range(1, 7):
        shards = [take_shard(cases, Shard(i, count)) for i in range(1, count + 1)]
        names = [c.name for shard in shards for c in shard]
        assert sorted(names) == sorted(c.name for c in cases) and len(set(names)) == len(cases)
        sizes = [len(s) for s in shards]
        assert max(sizes) - min(sizes) <= 1, (count, sizes)
        for shard in shards:
            assert shard == [c for c in cases if c in shard]  # config order


def test_the_partition_is_fixed_across_runs_machines_and_python_versions(cfg):
    # A SHA-256 of "<config file name>/<case name>": these lists may change only with the partition's rule.
    cases = load_cases([cfg(GRID, "grid.yaml")])
    assert [[c.name for c in take_shard(cases, Shard(i, 3))] for i in (1, 2, 3)] == [
        ["masked", "states", "T=4,cell=simple_rnn", "T=3,cell=lstm", "T=1,cell=gru"],
        ["stack", "T=1,cell=simple_rnn", "T=1,cell=lstm", "T=2,cell=lstm", "T=3,cell=gru"],
        ["T=2,cell=simple_rnn", "T=3,cell=simple_rnn", "T=4,cell=lstm", "T=2,cell=gru", "T=4,cell=gru"],
    ]


def test_dry_run_lists_a_shards_cases(cfg):
    name = cfg(GRID)
    out = invoke(["sweep", name, "--dry-run", "--shard", "2/3"], 0).stdout.splitlines()
    assert out[-1] == "shard 2/3: 5 of 15 cases"
    expected = [c.name for c in take_shard(load_cases([name]), Shard(2, 3))]
    assert [line.split()[1] for line in out if line.split()[:1] in (["1"], ["2"], ["3"], ["4"], ["5"])] == expected


@pytest.mark.parametrize("text", ["0/3", "4/3", "1/0", "2", "a/b", "-1/2", "1/2/3"])
def test_a_bad_shard_is_exit_2(cfg, text):
    result = invoke(["sweep", cfg(GRID), "--dry-run", "--shard", text], 2)
    assert result.stderr == f"Error: --shard must be I/N with 1 <= I <= N, e.g. 2/3, got {text!r}\n"


def test_parse_shard_accepts_spaces():
    assert parse_shard(" 2 / 3 ") == Shard(2, 3) and str(Shard(2, 3)) == "2/3"


# ----- merging -----
def load(path) -> dict:
    return json.loads(Path(path).read_text())


def comparable(report: dict) -> dict:
    """What must agree between a merged report and the full run: all but wall times, the processes
    that ran the cases and where the merge came from."""
    cases = [{k: v for k, v in c.items() if k not in ("seconds", "check_seconds")} for c in report["cases"]]
    summary = {k: v for k, v in report["summary"].items() if k not in ("seconds", "workers")}
    rest = {k: v for k, v in report.items() if k != "merged_from"}
    return {**rest, "cases": cases, "summary": summary}


def junit_cases(path) -> list:
    """Every testcase: suite, name, class, file, and each result's kind, message and text."""
    rows = []
    for suite in JUnitXml.fromfile(str(path)):
        for case in suite:
            results = [(type(r).__name__, r.message, r.text) for r in case.result]
            rows.append((suite.name, case.name, case.classname, case._elem.get("file"), results, case.system_out))
    return rows


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    """The full sweep of two configs and its three shards, each with JSON and JUnit reports."""
    import os

    folder = tmp_path_factory.mktemp("shards")
    (folder / "first.yaml").write_text(FIRST)
    (folder / "second.yaml").write_text(SECOND)
    here = os.getcwd()
    os.chdir(folder)
    try:
        configs = ["first.yaml", "second.yaml"]
        invoke(["sweep", *configs, "--json", "full.json", "--junit-xml", "full.xml"], 1)
        for i in (1, 2, 3):
            shard = [f"--shard={i}/3", "--json", f"shard{i}.json", "--junit-xml", f"shard{i}.xml"]
            invoke(["sweep", *configs, *shard], _shard_exit(configs, i))
    finally:
        os.chdir(here)
    return folder


def _shard_exit(configs, index) -> int:
    """1 for the shard that holds the failing case, else 0."""
    names = [c.name for c in take_shard(load_cases(configs), Shard(index, 3))]
    return 1 if "exact" in names else 0


@pytest.mark.keras
def test_three_shards_merge_into_the_full_report_json_and_junit(shards, monkeypatch):
    monkeypatch.chdir(shards)
    reports = ["shard3.json", "shard1.json", "shard2.json"]  # any order
    result = invoke(["merge-reports", *reports, "--json", "merged.json", "--junit-xml", "merged.xml"], 1)
    full, merged = load("full.json"), load("merged.json")
    assert [s["shard"]["index"] for s in map(load, reports)] == [3, 1, 2]
    assert comparable(merged) == comparable(full)
    sizes = [len(load(f"shard{i}.json")["cases"]) for i in (1, 2, 3)]
    assert merged["merged_from"] == {
        "shards": 3,
        "reports": [{"path": f"shard{i}.json", "shard": i, "cases": n} for i, n in zip((1, 2, 3), sizes)],
        "missing_shards": [],
    }
    assert junit_cases("merged.xml") == junit_cases("full.xml")
    assert result.stdout.splitlines()[-1] == "6 passed, 1 failed, 0 errors"


@pytest.mark.keras
def test_a_missing_shard_is_listed_and_fails_the_gate(shards, monkeypatch):
    monkeypatch.chdir(shards)
    given = [i for i in (1, 2, 3) if _shard_exit(["first.yaml", "second.yaml"], i) == 0]  # the failure is not given
    [missing] = {1, 2, 3} - set(given)
    lost = load(f"shard{missing}.json")["cases"]
    args = ["merge-reports", *[f"shard{i}.json" for i in given], "--json", "m.json", "--junit-xml", "m.xml"]
    result = invoke([*args, "--markdown", "m.md"], 3)
    out = result.stdout.splitlines()
    assert out[-2:] == [
        f"missing: shard {missing}/3, {len(lost)} cases: no report of it was given",
        "4 passed, 0 failed, 0 errors",
    ]
    merged = load("m.json")
    reason = f"the report of shard {missing}/3 was not given"
    assert merged["not_run"] == [{"name": c["name"], "config_file": c["config_file"], "reason": reason} for c in lost]
    assert merged["summary"]["not_run"] == len(lost) and merged["summary"]["exit_code"] == 3
    assert merged["merged_from"]["missing_shards"] == [missing]
    skipped = [(name, res) for _, name, _, _, res, _ in junit_cases("m.xml") if res and res[0][0] == "Skipped"]
    assert skipped == [(c["name"], [("Skipped", f"not run: {reason}", None)]) for c in lost]
    assert Path("m.md").read_text().startswith("### rnn-parity sweep: ⚠️ cases could not run")


@pytest.mark.keras
def test_an_interrupted_shard_makes_the_merge_exit_130(shards, tmp_path):
    report = load(shards / "shard1.json")
    report["summary"]["interrupted"] = True
    (tmp_path / "interrupted.json").write_text(json.dumps(report))
    result = invoke(
        ["merge-reports", tmp_path / "interrupted.json", shards / "shard2.json", shards / "shard3.json"], 130
    )
    assert result.stdout.splitlines()[-2].startswith("interrupted: ")


def _edited(shards, tmp_path, edit) -> Path:
    report = load(shards / "shard2.json")
    edit(report)
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(report))
    return path


@pytest.mark.keras
@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda r: r.update(configs=["other.yaml"]),
            "{e}: a sweep of other.yaml, not of first.yaml, second.yaml as {a}",
        ),
        (
            lambda r: r["shard"].update(sweep_digest="0" * 64),
            "{e}: the configs expanded to other cases than in {a} (a changed config or another --filter); "
            "merge shards of one sweep",
        ),
        (lambda r: r["shard"].update(count=4), "{e}: shard 2/4, but {a} is 1/3"),
        (
            lambda r: r["versions"].update(keras="2.0.0"),
            "{e}: another tool stack than {a} (keras 2.0.0 vs {keras}); merge reports of one stack",
        ),
        (lambda r: r.update(shard=None), "{e}: not the report of a shard (run the sweep with --shard I/N)"),
        (lambda r: r.pop("summary"), "{e}: not an rnn-parity sweep report (sweep --json)"),
        (lambda r: r.update(schema_version=99), "{e}: report schema_version 99, this rnn-parity reads 1"),
    ],
)
def test_reports_of_different_sweeps_or_stacks_are_refused(shards, tmp_path, monkeypatch, edit, message):
    monkeypatch.chdir(tmp_path)
    first = shards / "shard1.json"
    edited = _edited(shards, tmp_path, edit)
    keras = load(first)["versions"]["keras"]
    result = invoke(["merge-reports", first, edited, "--json", "m.json"], 2)
    assert result.stderr == "Error: " + message.format(e=edited, a=first, keras=keras) + "\n"
    assert not (tmp_path / "m.json").exists()


@pytest.mark.keras
def test_duplicated_cases_and_unreadable_files_are_refused(shards, tmp_path):
    one, two = shards / "shard1.json", shards / "shard2.json"
    result = invoke(["merge-reports", one, two, one], 2)
    assert result.stderr == f"Error: {one}: shard 1/3 again (also {one}); its cases would be duplicated\n"
    moved = _edited(shards, tmp_path, lambda r: r["shard"].update(index=1))  # shard 2's cases, labelled 1
    result = invoke(["merge-reports", moved, one], 2)
    assert result.stderr == f"Error: {one}: shard 1/3 again (also {moved}); its cases would be duplicated\n"
    three = _edited(shards, tmp_path, lambda r: r["shard"].update(index=3))
    case = load(two)["cases"][0]
    result = invoke(["merge-reports", two, three], 2)
    assert result.stderr == f"Error: case {case['name']} ({case['config_file']}) is in both {two} and {three}\n"
    (tmp_path / "bad.json").write_text("{")
    result = invoke(["merge-reports", one, tmp_path / "bad.json"], 2)
    assert result.stderr.startswith(f"Error: {tmp_path / 'bad.json'}: not a JSON file (")
    assert (
        invoke(["merge-reports", tmp_path / "none.json"], 2).stderr
        == f"Error: {tmp_path / 'none.json'}: no such file\n"
    )


@pytest.mark.keras
def test_merge_reports_runs_without_tensorflow_or_dask(shards):
    code = (
        "import sys\nfrom rnn_parity.cli import main\ntry:\n    main(sys.argv[1:])\nexcept SystemExit as exc:\n"
        "    loaded = [m for m in ('tensorflow', 'keras', 'distributed') if m in sys.modules]\n"
        "    print('exit', exc.code, 'loaded', loaded, file=sys.stderr)\n"
    )
    reports = [str(shards / f"shard{i}.json") for i in (1, 2, 3)]
    result = subprocess.run([sys.executable, "-c", code, "merge-reports", *reports], capture_output=True, text=True)
    assert result.stderr.splitlines()[-1] == "exit 1 loaded []"
