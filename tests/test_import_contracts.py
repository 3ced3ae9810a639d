"""The import contracts in pyproject.toml (``lint-imports``) hold, and each one catches its own violation.

A copy of the package gets one forbidden import per contract; ``lint-imports`` must then call that
contract broken and name the import. A new contract needs a violation here (the ids are compared).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

import rnn_parity

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: import-linter depends on tomli there
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")

#: contract id → (module file, the line appended to it, the import lint-imports must report)
VIOLATIONS = {
    "keras-side": ("sweep.py", "import keras", "rnn_parity.sweep -> keras"),
    "numpy-side": ("model_file.py", "from . import keras_model", "rnn_parity.model_file -> rnn_parity.keras_model"),
    "numpy-only-runtime": ("runtime.py", "import yaml", "rnn_parity.runtime -> yaml"),
    "cli-on-top": ("graph.py", "from . import cli", "rnn_parity.graph -> rnn_parity.cli"),
    "layers": ("checker.py", "from . import sweep", "rnn_parity.checker -> rnn_parity.sweep"),
    "output-renders-only": ("markdown.py", "from . import checker", "rnn_parity.markdown -> rnn_parity.checker"),
}


def _contracts() -> dict[str, str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return {c["id"]: c["name"] for c in config["tool"]["importlinter"]["contracts"]}


def _lint(folder: Path, *contract_ids: str) -> subprocess.CompletedProcess:
    args = [arg for cid in contract_ids for arg in ("--contract", cid)]
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-logo", "--no-cache", *args],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "200"},
    )


@pytest.fixture
def copy(tmp_path) -> Path:
    """The package and pyproject.toml copied into a folder of their own (where lint-imports finds them)."""
    source = Path(rnn_parity.__file__).parent
    shutil.copytree(source, tmp_path / "rnn_parity", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_every_contract_has_a_violation_here():
    assert set(_contracts()) == set(VIOLATIONS)


def test_the_package_keeps_every_contract(copy):
    done = _lint(copy)
    assert done.returncode == 0, done.stdout + done.stderr
    for name in _contracts().values():
        assert f"{name} KEPT" in done.stdout


@pytest.mark.parametrize("contract", sorted(VIOLATIONS))
def test_a_forbidden_import_breaks_its_contract(copy, contract):
    module, line, reported = VIOLATIONS[contract]
    path = copy / "rnn_parity" / module
    path.write_text(path.read_text(encoding="utf-8") + f"\n{line}\n", encoding="utf-8")
    done = _lint(copy, contract)
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"{_contracts()[contract]} BROKEN" in done.stdout
    assert reported in done.stdout
