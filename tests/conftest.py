"""Shared test helpers."""

from __future__ import annotations

import json
import os

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
