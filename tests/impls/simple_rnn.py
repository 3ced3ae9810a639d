"""SimpleRNN written the way the course notebook does it: one sample at a time, one step at a time."""

import numpy as np


def notebook_rnn(x, Wx, Wh, bh, Wo, bo):
    N, T, D = x.shape
    M = Wh.shape[0]
    outputs = []
    for n in range(N):
        h_last = np.zeros(M)
        for t in range(T):
            h = np.tanh(x[n, t].dot(Wx) + h_last.dot(Wh) + bh)
            h_last = h  # for the RNN, the first is 0, then I have values
        outputs.append(h_last.dot(Wo) + bo)
    return np.array(outputs)


def with_hidden(x, Wx, Wh, bh, Wo, bo):
    """Vectorised over the batch, returning every step's state too."""
    N, T, D = x.shape
    h = np.zeros((N, Wh.shape[0]), dtype=x.dtype)
    hidden = []
    for t in range(T):
        h = np.tanh(x[:, t] @ Wx + h @ Wh + bh)
        hidden.append(h)
    return {"output": h @ Wo + bo, "hidden": np.stack(hidden, axis=1)}


def transposed_recurrent(x, Wx, Wh, bh, Wo, bo):
    N, T, D = x.shape
    h = np.zeros((N, Wh.shape[0]), dtype=x.dtype)
    for t in range(T):
        h = np.tanh(x[:, t] @ Wx + h @ Wh.T + bh)
    return h @ Wo + bo


def no_bias(x, Wx, Wh, bh, Wo, bo):
    N, T, D = x.shape
    h = np.zeros((N, Wh.shape[0]), dtype=x.dtype)
    for t in range(T):
        h = np.tanh(x[:, t] @ Wx + h @ Wh)
    return h @ Wo + bo


def one_step_short(x, Wx, Wh, bh, Wo, bo):
    N, T, D = x.shape
    h = np.zeros((N, Wh.shape[0]), dtype=x.dtype)
    for t in range(T - 1):
        h = np.tanh(x[:, t] @ Wx + h @ Wh + bh)
    return h @ Wo + bo


def state_not_reset(x, Wx, Wh, bh, Wo, bo):
    N, T, D = x.shape
    h_last = np.zeros(Wh.shape[0])
    outputs = []
    for n in range(N):
        for t in range(T):
            h_last = np.tanh(x[n, t].dot(Wx) + h_last.dot(Wh) + bh)
        outputs.append(h_last.dot(Wo) + bo)
    return np.array(outputs)


def scrambled(x, Wx, Wh, bh, Wo, bo):
    """Wrong in a way no known mistake explains."""
    N, T, D = x.shape
    h = np.zeros((N, Wh.shape[0]), dtype=x.dtype)
    for t in range(T):
        h = np.tanh(x[:, t] @ Wx + 0.5 * h @ Wh + bh)
    return h @ Wo + bo


def last_sample_only(x, Wx, Wh, bh, Wo, bo):
    """Forgets the batch axis: the notebook's y_hats[-1]."""
    return notebook_rnn(x, Wx, Wh, bh, Wo, bo)[-1]


def raises(x, Wx, Wh, bh, Wo, bo):
    N, T, D = x.shape
    h = np.zeros((N, Wh.shape[0]))
    for t in range(T):
        h = np.tanh(x[:, t] @ Wh + h @ Wh + bh)  # Wh where Wx belongs: shapes do not fit
    return h @ Wo + bo


def hangs(x, Wx, Wh, bh, Wo, bo):
    t = 0
    while t < x.shape[1]:  # forgot t += 1
        h = np.tanh(x[:, t] @ Wx)
    return h


def integers(x, Wx, Wh, bh, Wo, bo):
    return np.zeros((x.shape[0], Wo.shape[1]), dtype=np.int64)


def with_state(x, Wx, Wh, bh, Wo, bo, *, initial_state=None):
    """Takes a start state and returns its final one: for initial_state, stateful and return_state."""
    h = np.zeros((x.shape[0], Wh.shape[0]), dtype=x.dtype) if initial_state is None else initial_state[0]
    for t in range(x.shape[1]):
        h = np.tanh(x[:, t] @ Wx + h @ Wh + bh)
    return {"output": h @ Wo + bo, "states": [h]}


def mutates_its_arguments(x, Wx, Wh, bh, Wo, bo):
    """Writes into the arrays it was given and NumPy's error state."""
    np.seterr(all="raise")
    out = with_hidden(x, Wx, Wh, bh, Wo, bo)["output"]
    x[...] = 0
    Wx *= 2
    bh += 1
    return out


not_a_function = 42
