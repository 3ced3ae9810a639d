"""rnn-parity: prove a NumPy recurrent network equal to Keras's, with numbers.

``rnn_parity.check(impl=None, **options)`` runs one check from Python (your own
implementation against Keras when ``impl`` is given) and returns its result;
``rnn_parity.testing.assert_matches_keras`` is the same as a test assertion.
``rnn_parity.reference`` is the pure-NumPy reference; ``rnn_parity.checker.run_check``
runs one check from a spec; ``rnn_parity.verify.run_verify`` verifies a saved model
layer by layer; ``rnn_parity.runtime.load`` runs an exported model with NumPy alone.
Importing the package does not import TensorFlow.
"""

import importlib

__version__ = "0.1.0"


def check(impl=None, **options):
    """Run one check from Python; see :func:`rnn_parity.api.check` (imports Keras only when called)."""
    from .api import check as run

    return run(impl, **options)


def __getattr__(name: str):
    # rnn_parity.testing loads on first use (it imports pytest-friendly helpers, not TensorFlow).
    if name == "testing":
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
