"""Sweep configs: loading, validation messages (file, key path, line), expansion, names, filters, schema.

Nothing here runs a case or imports TensorFlow: ``no_run`` makes any attempt to run fail the test.
"""

from __future__ import annotations

import json

import pytest
import yaml

from rnn_parity import sweep as sweep_module
from rnn_parity.config import ConfigError, load_cases, name_filter, select
from rnn_parity.spec import CheckSpec

from conftest import invoke, python_without


@pytest.fixture
def no_run(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a case ran although the config is invalid")

    monkeypatch.setattr(sweep_module, "run_sweep", refuse)
    monkeypatch.setattr(sweep_module, "run_case", refuse)


def errors_of(cfg_name: str) -> list[str]:
    """Run ``sweep`` on a bad config: exit 2, and the problems, one ``Error:`` line each."""
    result = invoke(["sweep", cfg_name], 2)
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert all(line.startswith("Error: ") for line in lines), result.stderr
    return [line.removeprefix("Error: ") for line in lines]


ISSUE_EXAMPLE = """
defaults:          # optional: merged under every case
  N: 4
  atol: 1.0e-5
grid:              # optional: cartesian product; each key a list; every point is a case
  T: [1, 10, 100]
  M: [1, 5, 64]
cases:             # optional: explicit cases; any key `check` accepts may appear
  - name: seed-notebook
    N: 1
    T: 10
    D: 3
    M: 5
    K: 2
seeds: [0, 1, 2]   # optional: every case runs once per seed
"""


# ----- expansion and names -----
def test_issue_example_expands_cases_then_grid_each_per_seed(cfg):
    cases = load_cases([cfg(ISSUE_EXAMPLE)])
    assert len(cases) == (1 + 3 * 3) * 3
    assert [c.name for c in cases[:4]] == [
        "seed-notebook,seed=0",
        "seed-notebook,seed=1",
        "seed-notebook,seed=2",
        "T=1,M=1,seed=0",
    ]
    assert cases[-1].name == "T=100,M=64,seed=2"
    notebook = cases[0].spec
    assert (notebook.N, notebook.T, notebook.D, notebook.M, notebook.K) == (1, 10, 3, (5,), 2)
    assert notebook.atol == 1e-5  # from defaults
    grid_point = cases[3].spec
    assert (grid_point.N, grid_point.T, grid_point.M, grid_point.seed) == (4, 1, (1,), 0)
    assert grid_point.rtol == CheckSpec().rtol  # check's own default
    assert {c.config for c in cases} == {"c.yaml"} and cases[0].origin == "cases[0]"
    assert len({c.name for c in cases}) == len(cases)


def test_names_are_stable_and_use_only_the_values_that_vary(cfg):
    name = cfg(
        """
        defaults: {cell: lstm, N: 2}
        grid:
          M: [[16, 8], 4]
          return_sequences: [true, false]
        """
    )
    first = [c.name for c in load_cases([name])]
    assert first == [
        "M=[16,8],return_sequences=true",
        "M=[16,8],return_sequences=false",
        "M=4,return_sequences=true",
        "M=4,return_sequences=false",
    ]
    assert [c.name for c in load_cases([name])] == first


def test_a_single_unnamed_case_is_named_by_what_differs_from_the_defaults(cfg):
    assert [c.name for c in load_cases([cfg("cases:\n  - {T: 3, cell: gru}\n")])] == ["T=3,cell=gru"]
    assert [c.name for c in load_cases([cfg("cases:\n  - {}\n")])] == ["defaults"]


def test_keys_take_checks_spellings_and_values(cfg):
    case = load_cases([cfg("cases:\n  - {M: '16,8', max_memory: 8GiB, bidirectional: ave, atol: 1e-5}\n")])[0]
    assert case.spec.M == (16, 8)
    assert case.spec.max_memory == 8 * 1024**3
    assert case.spec.bidirectional == "ave"
    assert case.spec.atol == 1e-5  # YAML 1.1 reads 1e-5 as a string; the spec parses it as check does


def test_several_configs_keep_their_order_and_may_share_names(cfg):
    a = cfg("cases:\n  - {name: x, T: 2}\n", "a.yaml")
    b = cfg("cases:\n  - {name: x, T: 3}\n", "b.yaml")
    cases = load_cases([b, a])
    assert [(c.config, c.name, c.spec.T) for c in cases] == [("b.yaml", "x", 3), ("a.yaml", "x", 2)]


def test_merge_keys_and_anchors_are_plain_yaml(cfg):
    cases = load_cases(
        [
            cfg(
                """
                cases:
                  - &base {name: a, cell: gru, T: 4}
                  - <<: *base
                    name: b
                    T: 5
                """
            )
        ]
    )
    assert [(c.name, c.spec.cell, c.spec.T) for c in cases] == [("a", "gru", 4), ("b", "gru", 5)]


# ----- every bad config: exit 2, file, key path and line, nothing runs -----
def test_unknown_keys_are_named_with_a_suggestion(cfg, no_run):
    name = cfg(
        """
        defaults:
          timesteps: 5
        grid:
          celll: [lstm]
        cases:
          - T: 3
            refrence_dtype: float32
          - xyz: 1
        case: []
        """
    )
    assert errors_of(name) == [
        "c.yaml: defaults.timesteps (line 2): is not a known option; did you mean T?",
        "c.yaml: grid.celll (line 4): is not a known option; did you mean cell?",
        "c.yaml: cases[0].refrence_dtype (line 7): is not a known option; did you mean reference_dtype?",
        "c.yaml: cases[1].xyz (line 8): is not a known option",
        "c.yaml: case (line 9): is not a known top-level key; did you mean cases?",
    ]


def test_wrong_types_and_non_positive_sizes(cfg, no_run):
    name = cfg(
        """
        defaults:
          N: 0
          atol: -1
        cases:
          - name: a
            T: 1.5
          - M: [16, 0]
          - reference_dtype: float16
          - K: "2"
          - 12
        """
    )
    assert errors_of(name) == [
        "c.yaml: defaults.N (line 2): must be a positive integer, got 0",
        "c.yaml: defaults.atol (line 3): must be ≥ 0, got -1",
        "c.yaml: cases[0].T (line 6): must be a positive integer, got 1.5",
        "c.yaml: cases[1].M[1] (line 7): must be a positive integer, got 0",
        "c.yaml: cases[2].reference_dtype (line 8): must be one of float64 or float32, got 'float16'",
        "c.yaml: cases[3].K (line 9): must be a positive integer, got '2'",
        "c.yaml: cases[4] (line 10): must be a mapping of option: value, got 12",
    ]


def test_grid_lists_must_be_lists_of_valid_values(cfg, no_run):
    name = cfg(
        """
        grid:
          T: []
          M: 5
          D: [3, -3]
        seeds: []
        """
    )
    assert errors_of(name) == [
        "c.yaml: grid.T (line 2): must list at least one value",
        "c.yaml: grid.M (line 3): must be a list of values, e.g. [5]",
        "c.yaml: grid.D[1] (line 4): must be a positive integer, got -3",
        "c.yaml: seeds (line 5): must list at least one seed",
    ]


def test_duplicate_names_and_indistinguishable_cases(cfg, no_run):
    name = cfg(
        """
        cases:
          - name: a
            T: 2
          - name: a
            T: 3
          - T: 4
          - T: 4
        """
    )
    assert errors_of(name) == [
        "c.yaml: cases[1].name (line 4): duplicate case name 'a' (also cases[0], line 2)",
        "c.yaml: cases[3] (line 7): has the same values as cases[2], line 6, so both are named 'T=4'; "
        "give one of them a name",
    ]


def test_duplicate_yaml_keys_are_refused(cfg, no_run):
    assert errors_of(cfg("cases:\n  - T: 3\n    T: 4\n")) == [
        "c.yaml: cases[0].T (line 3): duplicate key (first on line 2)"
    ]


def test_combinations_are_judged_per_case_with_the_defaults_merged(cfg, no_run):
    name = cfg(
        """
        defaults: {N: 2, T: 3}
        grid:
          cell: [lstm, gru]
          unit_forget_bias: [false]
        cases:
          - {name: too-big, N: 100000, T: 100000}
        """
    )
    assert errors_of(name) == [
        "c.yaml: grid point cell=gru, unit_forget_bias=false (line 3): unit_forget_bias=false is an LSTM option, "
        "but cell=gru",
        "c.yaml: cases[0] (line 6): this case's arrays need about 2.6 TiB, over max_memory=4.0 GiB; "
        "raise it if the machine has room",
    ]


def test_seed_and_seeds_together_are_refused(cfg, no_run):
    assert errors_of(cfg("defaults: {seed: 1}\ncases:\n  - {T: 2}\nseeds: [0, 1]\n")) == [
        "c.yaml: defaults.seed (line 1): seeds (line 4) already sets every case's seed; use one or the other"
    ]


def test_yaml_syntax_error_names_the_line(cfg, no_run):
    assert errors_of(cfg("cases:\n  - T: 3\n    M: [1, 2\n")) == [
        "c.yaml: line 4, column 1: invalid YAML: expected ',' or ']', but got '<stream end>' "
        "(while parsing a flow sequence on line 3)"
    ]
    assert errors_of(cfg("cases:\n  - T: 3\n   M: 2\n")) == [
        "c.yaml: line 3, column 4: invalid YAML: expected <block end>, but found '<block mapping start>' "
        "(while parsing a block collection on line 2)"
    ]


def test_missing_empty_and_malformed_files(cfg, no_run):
    assert errors_of("nope.yaml") == ["nope.yaml: no such file"]
    assert errors_of(cfg("", "empty.yaml")) == ["empty.yaml: is empty: a config needs cases or a grid"]
    assert errors_of(cfg("- T: 3\n", "list.yaml")) == [
        "list.yaml: line 1: the top level must be a mapping with defaults, grid, cases or seeds, got a list"
    ]
    assert errors_of(cfg("defaults: {T: 3}\n", "none.yaml")) == [
        "none.yaml: line 1: defines no cases: add a cases list or a grid"
    ]
    assert errors_of(cfg("T: 3\ncases: [{}]\n", "top.yaml")) == [
        "top.yaml: T (line 1): is an option, not a top-level key: put it under defaults, grid or a case"
    ]


def test_every_file_is_checked_before_anything_runs(cfg, no_run):
    good = cfg("cases:\n  - {T: 2}\n", "good.yaml")
    bad = cfg("cases:\n  - {T: 0}\n", "bad.yaml")
    assert errors_of(bad) == ["bad.yaml: cases[0].T (line 2): must be a positive integer, got 0"]
    result = invoke(["sweep", good, bad, "missing.yaml"], 2)
    assert result.stderr.splitlines() == [
        "Error: bad.yaml: cases[0].T (line 2): must be a positive integer, got 0",
        "Error: missing.yaml: no such file",
    ]


@pytest.mark.parametrize(
    "tag",
    [
        '!!python/object/apply:os.system ["touch pwned"]',
        "!!python/object:rnn_parity.spec.CheckSpec {T: 3}",
        '!!python/name:os.system ""',
        "!custom 3",
    ],
)
def test_python_tags_never_construct_anything(cfg, no_run, tmp_path, tag):
    name = cfg(f"cases:\n  - T: {tag}\n")
    [message] = errors_of(name)
    shown = tag.split()[0].replace("!!", "!!")
    assert message == (
        f"c.yaml: cases[0].T (line 2): the tag {shown} is not allowed: a config holds plain values "
        "(numbers, strings, booleans, lists and mappings)"
    )
    assert not (tmp_path / "pwned").exists()
    with pytest.raises(ConfigError):
        load_cases([name])
    assert not (tmp_path / "pwned").exists()


def test_many_problems_are_counted_beyond_the_first_forty(cfg):
    text = "cases:\n" + "".join(f"  - {{T: 0, name: c{i}}}\n" for i in range(45))
    with pytest.raises(ConfigError) as info:
        load_cases([cfg(text)])
    assert len(info.value.problems) == 45
    assert str(info.value).splitlines()[-1] == "… and 5 more problems"


# ----- --dry-run, --filter -----
DRY = """
grid:
  cell: [lstm, gru]
  T: [2, 30]
cases:
  - {name: notebook, M: [16, 8]}
"""


def test_dry_run_lists_the_cases_and_runs_nothing(cfg, no_run):
    result = invoke(["sweep", cfg(DRY), "--dry-run"], 0)
    lines = result.stdout.splitlines()
    assert lines[-1] == "5 cases"
    rows = [line.split() for line in lines[:-1] if line.strip()[:1].isdigit()]
    assert [(r[0], r[1], r[2]) for r in rows] == [
        ("1", "notebook", "c.yaml"),
        ("2", "T=2,cell=lstm", "c.yaml"),
        ("3", "T=30,cell=lstm", "c.yaml"),
        ("4", "T=2,cell=gru", "c.yaml"),
        ("5", "T=30,cell=gru", "c.yaml"),
    ]
    assert rows[0][3:8] == ["N=1", "T=10", "D=3", "M=16,8", "K=2"]
    assert rows[3][-1] == "cell=gru"  # the options column shows what differs from check's defaults


def test_filter_is_a_glob_on_the_name(cfg, no_run):
    name = cfg(DRY)
    result = invoke(["sweep", name, "--dry-run", "--filter", "*cell=gru"], 0)
    assert result.stdout.splitlines()[-1] == "2 cases"
    result = invoke(["sweep", name, "--dry-run", "--filter", "T=2,*", "--filter", "note?ook"], 0)
    assert result.stdout.splitlines()[-1] == "3 cases"
    result = invoke(["sweep", name, "--filter", "lstm"], 2)
    assert result.stderr == "Error: --filter lstm: matches none of the 5 cases (see --dry-run)\n"


def test_name_filter_treats_brackets_and_dots_literally(cfg):
    """Derived names hold brackets (M=[16,8]) and dots (atol=1e-05): only * and ? are special."""
    assert name_filter("M=[16,8]*").fullmatch("M=[16,8],seed=1")
    assert not name_filter("M=[16,8]").fullmatch("M=1")
    assert not name_filter("T=1.").fullmatch("T=10")
    assert name_filter("T=1?").fullmatch("T=10")
    cases = load_cases([cfg(DRY)])
    assert [c.name for c in select(cases, [])] == [c.name for c in cases]


# ----- options of the command itself -----
def test_bad_workers_and_report_paths_exit_2_before_running(cfg, no_run, tmp_path):
    name = cfg("cases:\n  - {T: 2}\n")
    result = invoke(["sweep", name, "--workers", "0"], 2)
    assert result.stderr == ("Error: Invalid value for '--workers': must be a positive integer or auto, got '0'\n")
    (tmp_path / "folder").mkdir()
    result = invoke(["sweep", name, "--json", "folder"], 2)
    assert result.stderr == "Error: Invalid value for '--json': File 'folder' is a directory.\n"
    result = invoke(["sweep", name, "--json", "same.out", "--markdown", "same.out"], 2)
    assert result.stderr == "Error: --json and --markdown both write same.out\n"


def test_sweep_without_a_config_is_a_usage_error():
    result = invoke(["sweep"], 2)
    assert result.stderr.startswith("Error: Missing argument 'CONFIG.yaml...'")


# ----- rnn-parity schema -----
@pytest.mark.parametrize(
    "text",
    [
        "cases:\n  - {T: 0}\n",
        "cases:\n  - {cell: rnn}\n",
        "cases:\n  - {colour: red}\n",
        "grid:\n  cell: lstm\n",
        "grid:\n  T: []\n",
        "defaults: {N: 2.5}\n",
        "seeds: [1, x]\n",
        "cases:\n  - {name: '', T: 3}\n",
    ],
)
def test_the_schema_refuses_what_the_loader_refuses(cfg, no_run, text):
    from jsonschema import Draft202012Validator

    validator = Draft202012Validator(json.loads(invoke(["schema"], 0).stdout))
    assert errors_of(cfg(text))
    assert not validator.is_valid(yaml.safe_load(text))


def test_the_schema_accepts_what_the_loader_accepts_and_names_every_option(cfg):
    from pathlib import Path

    from jsonschema import Draft202012Validator

    schema = json.loads(invoke(["schema"], 0).stdout)
    Draft202012Validator.check_schema(schema)
    validator = Draft202012Validator(schema)
    root = Path(__file__).resolve().parent.parent / "configs"
    for text in [ISSUE_EXAMPLE, DRY, *(p.read_text() for p in sorted(root.glob("*.yaml")))]:
        assert load_cases([cfg(text)])
        assert [e.message for e in validator.iter_errors(yaml.safe_load(text))] == []
    options = schema["$defs"]["Options"]["properties"]
    assert set(options) == set(CheckSpec.model_fields)
    assert options["T"] == {"default": 10, "description": "timesteps", "minimum": 1, "type": "integer"}


def test_shipped_configs_are_valid():
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent / "configs"
    smoke = load_cases([str(root / "smoke.yaml")])
    assert 10 <= len(smoke) <= 30
    assert {c.spec.cell for c in smoke} == {"simple_rnn", "lstm", "gru"}
    assert any(c.spec.mask != "none" for c in smoke) and any(c.spec.bidirectional for c in smoke)
    assert any(len(c.spec.M) > 1 for c in smoke)
    for name in ("ci.yaml", "stress.yaml"):
        assert load_cases([str(root / name)])


def test_an_alias_bomb_is_refused_without_expanding_it(cfg, no_run):
    lines = ["a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]"]
    for prev, name in zip("abcdef", "bcdefg", strict=True):
        lines.append(f"{name}: &{name} [{', '.join([f'*{prev}'] * 10)}]")
    name = cfg("\n".join(lines) + "\ngrid:\n  M: *g\n")  # 10**7 values once expanded
    assert errors_of(name) == ["c.yaml: line 1: expands to more than 100000 values through aliases; refused"]


def test_a_name_that_collides_with_a_derived_one_is_a_duplicate(cfg, no_run):
    name = cfg("cases:\n  - {name: T=3, T: 5}\ngrid:\n  T: [2, 3]\n")
    assert errors_of(name) == ["c.yaml: grid point T=3 (line 4): duplicate case name 'T=3' (also cases[0], line 2)"]


def test_a_grid_too_large_to_expand_is_refused(cfg, no_run):
    values = "[" + ", ".join(str(i) for i in range(1, 101)) + "]"
    name = cfg(f"grid:\n  T: {values}\n  M: {values}\n  N: {values}\n")
    assert errors_of(name) == ["c.yaml: grid (line 2): the file expands to 1000000 cases; at most 100000 are allowed"]


def test_config_errors_dry_runs_and_the_schema_never_import_tensorflow(cfg):
    bad, good = cfg("cases:\n  - {T: 0}\n", "bad.yaml"), cfg(DRY, "good.yaml")
    code = f"""
        from click.testing import CliRunner
        from rnn_parity.cli import main
        args = (["sweep", {bad!r}], ["sweep", {good!r}, "--dry-run"], ["schema"])
        print([CliRunner().invoke(main, a).exit_code for a in args])
    """
    done = python_without(code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[2, 0, 0]"
    assert done.attempted == []
