"""Shared test helpers.

``RNN_PARITY_BLOCK_FRAMEWORKS=1`` makes importing TensorFlow, Keras, JAX or torch fail in the test
process (``make test`` runs ``pytest -m "not keras"`` that way first): a test that needs Keras
without the ``keras`` marker then fails instead of passing quietly.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner
from import_blocker import FRAMEWORKS, install

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

BLOCKING = bool(os.environ.get("RNN_PARITY_BLOCK_FRAMEWORKS"))
if BLOCKING:
    install(FRAMEWORKS)

TESTS = Path(__file__).resolve().parent


@pytest.hookimpl(trylast=True)  # after -m has deselected
def pytest_collection_modifyitems(config, items):
    unmarked = [item.nodeid for item in items if "keras" in item.fixturenames and not item.get_closest_marker("keras")]
    if unmarked:
        raise pytest.UsageError(f"these tests use the keras fixture: mark them @pytest.mark.keras: {unmarked[:5]}")
    if BLOCKING and any(item.get_closest_marker("keras") for item in items):
        raise pytest.UsageError("RNN_PARITY_BLOCK_FRAMEWORKS=1 blocks Keras: add -m 'not keras'")


def invoke(args: list[str], expected: int, *, input: str | None = None):
    """Run the CLI in-process; assert the exit code, showing the output when it differs."""
    from rnn_parity.cli import main

    result = CliRunner().invoke(main, [str(a) for a in args], input=input, catch_exceptions=False)
    assert result.exit_code == expected, (
        f"exit {result.exit_code}, expected {expected}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
    )
    return result


def invoke_json(args: list[str], expected: int = 0) -> dict:
    return json.loads(invoke([*args, "--format", "json"], expected).stdout)


@dataclass(frozen=True)
class Child:
    """A finished :func:`python_without` process.

    Attributes:
        attempted: the blocked modules something tried to import (each attempt raised ImportError).
        loaded: the top-level packages outside the standard library that ``code`` imported.
    """

    returncode: int
    stdout: str
    stderr: str
    attempted: list[str]
    loaded: list[str]


_PRELUDE = """\
import atexit as _atexit, json as _json, sys
_before = set(sys.modules)
sys.path.insert(0, {tests!r})
import import_blocker as _import_blocker
del sys.path[0]
_blocker = _import_blocker.install({blocked!r})
def _report():
    new = {{m.partition(".")[0] for m in set(sys.modules) - _before}} - set(sys.stdlib_module_names)
    with open({report!r}, "w", encoding="utf-8") as f:
        _json.dump({{"attempted": _blocker.attempted, "loaded": sorted(new - {{"import_blocker"}})}}, f)
_atexit.register(_report)
"""


def python_without(
    code: str,
    *argv: str,
    blocked: tuple[str, ...] = FRAMEWORKS,
    flags: tuple[str, ...] = (),
    cwd=None,
    env: dict | None = None,
    timeout: float = 120,
) -> Child:
    """Run ``code`` (``python -c``, with ``argv``) in a new process where importing ``blocked`` fails.

    The one helper for "this command never imports TensorFlow": assert ``attempted == []`` (an
    ImportError that the code caught still counts) and, where it matters, what ``loaded`` holds.
    ``flags`` go to the interpreter (e.g. ``-I``); ``env`` defaults to this process's environment.
    """
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        report = Path(folder) / "imports.json"
        prelude = _PRELUDE.format(tests=str(TESTS), blocked=tuple(blocked), report=str(report))
        done = subprocess.run(
            [sys.executable, *flags, "-c", prelude + textwrap.dedent(code), *map(str, argv)],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=cwd,
            env={**os.environ, **(env or {})},
        )
        assert report.exists(), f"the child did not finish (exit {done.returncode})\n{done.stderr}"
        seen = json.loads(report.read_text(encoding="utf-8"))
    return Child(done.returncode, done.stdout, done.stderr, seen["attempted"], seen["loaded"])


@pytest.fixture(scope="session")
def keras():
    """Keras, imported as the tool imports it; only for tests marked ``keras`` (checked at collection)."""
    from rnn_parity.keras_runner import import_keras

    return import_keras()


@pytest.fixture
def cfg(tmp_path, monkeypatch):
    """Write a sweep config in a fresh folder (made the current one) and return its name."""
    monkeypatch.chdir(tmp_path)

    def write(text: str, name: str = "c.yaml") -> str:
        (tmp_path / name).write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return name

    return write
