"""A GRU (reset_after, Keras's default) written from the equations: gate blocks z, r, h."""

import numpy as np


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def hard_sigmoid(z):  # Keras 3: relu6(z + 3) / 6
    return np.clip(z + 3, 0, 6) / 6


def hard_sigmoid_keras2(z):
    return np.clip(0.2 * z + 0.5, 0, 1)


def _gru(x, W, U, b, Wo, bo, gate=sigmoid, reset_after=True):
    N, T, D = x.shape
    M = U.shape[0]
    h = np.zeros((N, M), dtype=x.dtype)
    for t in range(T):
        mx = x[:, t] @ W + b[0]
        mh = h @ U + b[1]
        z = gate(mx[:, :M] + mh[:, :M])
        r = gate(mx[:, M : 2 * M] + mh[:, M : 2 * M])
        if reset_after:
            candidate = np.tanh(mx[:, 2 * M :] + r * mh[:, 2 * M :])
        else:  # the reset gate applied to h before the product
            candidate = np.tanh(mx[:, 2 * M :] + (r * h) @ U[:, 2 * M :] + b[1, 2 * M :])
        h = z * h + (1 - z) * candidate
    return h @ Wo + bo


def gru(x, W, U, b, Wo, bo):
    return _gru(x, W, U, b, Wo, bo)


def reset_before(x, W, U, b, Wo, bo):
    return _gru(x, W, U, b, Wo, bo, reset_after=False)


def gru_hard_sigmoid(x, W, U, b, Wo, bo):
    return _gru(x, W, U, b, Wo, bo, gate=hard_sigmoid)


def gru_keras2_hard_sigmoid(x, W, U, b, Wo, bo):
    return _gru(x, W, U, b, Wo, bo, gate=hard_sigmoid_keras2)
