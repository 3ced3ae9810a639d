"""rnn_parity.blas_threads: a forward pass holds BLAS to one thread, large products get the caller's back."""

from __future__ import annotations

import numpy as np
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

from rnn_parity import blas_threads, reference
from rnn_parity.blas_threads import LARGE_PRODUCT, large_product, limited


def _threads() -> int:
    return min(lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas")


@pytest.fixture
def two_threads():
    """BLAS set to two threads by the caller (the machine's default here)."""
    with threadpool_limits(2):
        if _threads() < 2:
            pytest.skip("this BLAS runs on one thread only")
        yield


def test_a_forward_pass_runs_on_one_thread_and_restores_the_callers(two_threads):
    with limited(1):
        assert _threads() == 1
        with large_product(LARGE_PRODUCT):  # e.g. the input projection of a block of steps
            assert _threads() == 2
        assert _threads() == 1
        with large_product(LARGE_PRODUCT - 1):  # a per-step product
            assert _threads() == 1
    assert _threads() == 2
    with pytest.raises(KeyError), limited(1):
        raise KeyError("predict failed")
    assert _threads() == 2


def test_outside_a_forward_pass_nothing_changes(two_threads):
    with large_product(10 * LARGE_PRODUCT):
        assert _threads() == 2
    with limited(None):  # blas_threads=None: as the caller set it
        assert _threads() == 2
        with large_product(10 * LARGE_PRODUCT):
            assert _threads() == 2
    with threadpool_limits(1), limited(1), large_product(10 * LARGE_PRODUCT):
        assert _threads() == 1  # the caller's own limit stands


def test_the_reference_gives_large_products_the_callers_threads(two_threads, monkeypatch):
    """dense and the input projection ask for threads by their size; the per-step loop does not."""
    seen = []
    real = large_product

    def spy(multiply_adds):
        seen.append(multiply_adds)
        return real(multiply_adds)

    monkeypatch.setattr(reference, "large_product", spy)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 6, 3)).astype(np.float32)
    with limited(1):
        reference.gru(x, rng.standard_normal((3, 6)), rng.standard_normal((2, 6)), np.zeros((2, 6)))
        reference.dense(x, rng.standard_normal((3, 5)))
    # the GRU's projection of its first block (1 step, then the other 5), then the Dense over every step
    assert seen == [4 * 3 * 6, 5 * 4 * 3 * 6, 4 * 6 * 3 * 5]


@pytest.mark.parametrize("bad", [0, -2, 1.5, True, "2"])
def test_bad_thread_counts_are_refused(bad):
    with pytest.raises(ValueError, match=rf"^blas_threads must be a positive integer or None, got {bad!r}$"):
        blas_threads.check_threads(bad)
    with pytest.raises(ValueError), limited(bad):
        pass
    assert blas_threads.available()
