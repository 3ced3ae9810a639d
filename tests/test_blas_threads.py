"""rnn_parity.blas_threads: a forward pass holds BLAS to a thread count and gives the caller's back."""

from __future__ import annotations

import pytest
from threadpoolctl import threadpool_info, threadpool_limits

from rnn_parity import blas_threads
from rnn_parity.blas_threads import limited


def _threads() -> int:
    return min(lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas")


@pytest.fixture
def two_threads():
    """BLAS set to two threads by the caller (the machine's default here)."""
    with threadpool_limits(2):
        if _threads() < 2:
            pytest.skip("this BLAS runs on one thread only")
        yield


def test_the_limit_holds_inside_and_the_callers_setting_comes_back(two_threads):
    with limited(1):
        assert _threads() == 1
    assert _threads() == 2
    with pytest.raises(KeyError), limited(1):
        raise KeyError("predict failed")
    assert _threads() == 2
    with threadpool_limits(1), limited(2):
        assert _threads() == 2  # asked for explicitly
    assert _threads() == 2


def test_none_leaves_blas_as_it_is(two_threads):
    with limited(None):
        assert _threads() == 2
    with threadpool_limits(1), limited(None):
        assert _threads() == 1


@pytest.mark.parametrize("bad", [0, -2, 1.5, True, "2"])
def test_bad_thread_counts_are_refused(bad):
    with pytest.raises(ValueError, match=rf"^blas_threads must be a positive integer or None, got {bad!r}$"):
        blas_threads.check_threads(bad)
    with pytest.raises(ValueError), limited(bad):
        pass
    assert blas_threads.available()
