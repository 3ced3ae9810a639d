"""An LSTM vectorised over the batch, written from the equations (gate blocks i, f, c, o)."""

import numpy as np


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def _lstm(x, W, U, b, Wo, bo, order="ifco"):
    N, T, D = x.shape
    M = U.shape[0]
    h = np.zeros((N, M), dtype=x.dtype)
    c = np.zeros((N, M), dtype=x.dtype)
    for t in range(T):
        z = x[:, t] @ W + h @ U + b
        blocks = dict(zip(order, np.split(z, 4, axis=1)))
        i, f, g, o = sigmoid(blocks["i"]), sigmoid(blocks["f"]), np.tanh(blocks["c"]), sigmoid(blocks["o"])
        c = f * c + i * g
        h = o * np.tanh(c)
    return h @ Wo + bo


def lstm(x, W, U, b, Wo, bo):
    return _lstm(x, W, U, b, Wo, bo)


def forget_cell_swapped(x, W, U, b, Wo, bo):
    return _lstm(x, W, U, b, Wo, bo, order="icfo")  # i, c, f, o = split(z, 4)


def output_cell_swapped(x, W, U, b, Wo, bo):
    return _lstm(x, W, U, b, Wo, bo, order="ifoc")  # blocks read as i, f, o, c
