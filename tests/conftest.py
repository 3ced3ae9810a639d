"""Shared test helpers."""

from __future__ import annotations

import json
import os
import textwrap

import pytest
from click.testing import CliRunner

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")


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


@pytest.fixture(scope="session")
def keras():
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
