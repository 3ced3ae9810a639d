"""Assertions for your own test suite: your implementation against Keras.

::

    from rnn_parity.testing import assert_matches_keras

    def test_my_port_matches_keras():
        assert_matches_keras(my_rnn, cell="lstm", T=20, N=4)

The options are the sweep config keys; a failure raises ``AssertionError``
whose message is the check's report as text, suspected mistakes included.
"""

from __future__ import annotations

from collections.abc import Callable

from .api import check

__all__ = ["assert_matches_keras"]


def assert_matches_keras(fn: Callable | str, **options):
    """Raise ``AssertionError`` (the report's text) unless ``fn`` matches Keras under ``options``.

    Returns the :class:`~rnn_parity.checker.CheckResult` when it does.
    """
    __tracebackhide__ = True  # pytest shows the caller's line, not this one
    result = check(fn, **options)
    if not result.passed:
        raise AssertionError("\n" + result.text())
    return result
