"""rnn-parity: prove a NumPy recurrent network equal to Keras's, with numbers.

``rnn_parity.reference`` is the pure-NumPy reference; ``rnn_parity.check.run_check``
runs one check; ``rnn_parity.verify.run_verify`` verifies a saved model layer by layer;
``rnn_parity.runtime.load`` runs an exported model with NumPy alone. Importing the
package does not import TensorFlow.
"""

__version__ = "0.1.0"
