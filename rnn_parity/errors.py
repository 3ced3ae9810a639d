"""The exceptions rnn-parity raises, and the exit codes the CLI maps them to.

Library code raises these and never prints or exits; ``cli.py`` turns them
into one-line messages.
"""

from __future__ import annotations

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
