"""rnn-parity: prove a NumPy recurrent network equal to Keras's, with numbers.

``rnn_parity.reference`` is the pure-NumPy reference; ``rnn_parity.check.run_check``
runs one check. Importing the package does not import TensorFlow.
"""

__version__ = "0.1.0"
