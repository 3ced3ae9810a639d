"""The exceptions rnn-parity raises, and the exit codes the CLI maps them to.

Library code raises these and never prints or exits; ``cli.py`` turns them
into one-line messages.
"""

from __future__ import annotations

import re

EXIT_OK = 0
EXIT_PARITY = 1
EXIT_INVALID = 2
EXIT_INTERNAL = 3
EXIT_UNSUPPORTED = 4
EXIT_INTERRUPTED = 130


class RnnParityError(Exception):
    """Base class: every error this package raises on purpose."""

    exit_code = EXIT_INTERNAL


class InvalidInput(RnnParityError):
    """A bad option, config, file or value (exit 2)."""

    exit_code = EXIT_INVALID


class Unsupported(RnnParityError):
    """Something valid in Keras that the reference does not implement (exit 4)."""

    exit_code = EXIT_UNSUPPORTED


class NonFiniteWeights(RnnParityError):
    """A model holds a NaN or infinite weight (exit 1: parity cannot hold, whatever the inputs reach)."""

    exit_code = EXIT_PARITY


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_KERAS_WRAPPER = re.compile(r"^Exception encountered when calling (\S+)\.$")


def one_line(exc: BaseException) -> str:
    """``exc`` as one line for a message: its first line, or Keras's own reason under Keras's wrapper.

    Keras 3 wraps an error raised inside a layer's call as "Exception encountered
    when calling LSTM.call()." followed by the original message on a later line;
    the reason is that later line, so it is kept ("LSTM.call(): <reason>").
    """
    lines = [line.strip() for line in _ANSI.sub("", str(exc)).splitlines() if line.strip()]
    if not lines:
        return type(exc).__name__
    wrapper = _KERAS_WRAPPER.match(lines[0])
    if wrapper and len(lines) > 1:
        return f"{wrapper.group(1)}: {lines[1]}"
    return lines[0]
