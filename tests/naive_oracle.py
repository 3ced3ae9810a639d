"""A deliberately plain oracle for Keras 3's recurrent layers, written from the equations.

One sample and one timestep at a time, 1-D vectors, gates cut with ``np.split`` in Keras's block order,
``np.flip`` for ``go_backwards``, an ``if`` for the mask. Slow and obvious on purpose, and sharing no code
with ``rnn_parity.reference`` (whose speed comes from batching, blocked projections and in-place
activations), so that ``tests/test_oracle.py`` can pin the reference's LSTM and GRU without Keras.

The facts it encodes (read off Keras's ``keras/src/layers/rnn/*.py``):

* SimpleRNN: ``h' = φ(x·W + b + h·U)``; the output is ``h'``.
* LSTM, blocks i, f, c, o: ``c' = σ(z_f)·c + σ(z_i)·φ(z_c)``, ``h' = σ(z_o)·φ(c')``, ``z = x·W + h·U + b``.
* GRU, blocks z, r, h; ``h' = z·h + (1 - z)·ĥ``. ``reset_after`` (bias rows: input, recurrent):
  ``ĥ = φ(x·W_h + b_x,h + r·(h·U_h + b_u,h))``; otherwise ``ĥ = φ(x·W_h + b_h + (r·h)·U_h)``.
* A masked step keeps the state and emits the previous emitted output (zeros before any, or always
  zeros with ``zero_output_for_mask``); the last output is the last emitted one.
* ``go_backwards`` reads the sequence from its end; a returned sequence stays in processing order.
* Bidirectional: forward and backward (``go_backwards``) copies, each with half the initial states;
  with ``return_sequences`` masked steps emit zeros and the backward sequence is flipped back to input
  order before the merge (concat, sum, mul, ave, or None for the pair).

Everything is computed in float64.
"""

from __future__ import annotations

import numpy as np

ACTIVATIONS = {
    "tanh": np.tanh,
    "sigmoid": lambda v: 1.0 / (1.0 + np.exp(-v)),
    "hard_sigmoid": lambda v: np.minimum(np.maximum(v + 3.0, 0.0), 6.0) / 6.0,  # Keras 3: relu6(x + 3) / 6
    "relu": lambda v: np.maximum(v, 0.0),
    "linear": lambda v: v,
    "softsign": lambda v: v / (1.0 + np.abs(v)),
}

#: How many states each cell carries.
N_STATES = {"simple_rnn": 1, "lstm": 2, "gru": 1}


def _simple_rnn_step(x_t, states, W, U, b, activation, **_):
    (h,) = states
    h_new = ACTIVATIONS[activation](x_t @ W + b + h @ U)
    return h_new, [h_new]


def _lstm_step(x_t, states, W, U, b, activation, recurrent_activation, **_):
    h, c = states
    act, rec = ACTIVATIONS[activation], ACTIVATIONS[recurrent_activation]
    z_i, z_f, z_c, z_o = np.split(x_t @ W + h @ U + b, 4)
    i, f, o = rec(z_i), rec(z_f), rec(z_o)
    c_new = f * c + i * act(z_c)
    h_new = o * act(c_new)
    return h_new, [h_new, c_new]


def _gru_step(x_t, states, W, U, b, activation, recurrent_activation, reset_after, **_):
    (h,) = states
    act, rec = ACTIVATIONS[activation], ACTIVATIONS[recurrent_activation]
    W_z, W_r, W_h = np.split(W, 3, axis=1)
    U_z, U_r, U_h = np.split(U, 3, axis=1)
    if reset_after:
        bx_z, bx_r, bx_h = np.split(b[0], 3)
        bu_z, bu_r, bu_h = np.split(b[1], 3)
        z = rec(x_t @ W_z + bx_z + h @ U_z + bu_z)
        r = rec(x_t @ W_r + bx_r + h @ U_r + bu_r)
        h_hat = act(x_t @ W_h + bx_h + r * (h @ U_h + bu_h))
    else:
        b_z, b_r, b_h = np.split(b, 3)
        z = rec(x_t @ W_z + b_z + h @ U_z)
        r = rec(x_t @ W_r + b_r + h @ U_r)
        h_hat = act(x_t @ W_h + b_h + (r * h) @ U_h)
    h_new = z * h + (1.0 - z) * h_hat
    return h_new, [h_new]


_STEPS = {"simple_rnn": _simple_rnn_step, "lstm": _lstm_step, "gru": _gru_step}


def layer(
    cell: str,
    x,
    kernel,
    recurrent_kernel,
    bias=None,
    *,
    activation="tanh",
    recurrent_activation="sigmoid",
    reset_after=True,
    return_sequences=False,
    return_state=False,
    go_backwards=False,
    mask=None,
    initial_state=None,
    zero_output_for_mask=False,
):
    """One recurrent layer (``cell``: simple_rnn, lstm or gru), with Keras's call options.

    Returns what ``rnn_parity.reference``'s function of the same cell returns: the output
    ``(batch, units)`` or ``(batch, timesteps, units)``, and with ``return_state`` a tuple
    ``(output, *states)``.
    """
    x = np.asarray(x, dtype=np.float64)
    W = np.asarray(kernel, dtype=np.float64)
    U = np.asarray(recurrent_kernel, dtype=np.float64)
    units = U.shape[0]
    if bias is None:  # use_bias=False: the same as a zero bias of Keras's shape
        shape = (2, 3 * units) if cell == "gru" and reset_after else (U.shape[1],)
        b = np.zeros(shape)
    else:
        b = np.asarray(bias, dtype=np.float64)
    step = _STEPS[cell]
    batch, timesteps, _ = x.shape
    outputs, finals = [], []
    for n in range(batch):
        if initial_state is None:
            states = [np.zeros(units) for _ in range(N_STATES[cell])]
        else:
            states = [np.asarray(s, dtype=np.float64)[n] for s in initial_state]
        xs = x[n]
        real = np.ones(timesteps, dtype=bool) if mask is None else np.asarray(mask, dtype=bool)[n]
        if go_backwards:
            xs, real = np.flip(xs, axis=0), np.flip(real)
        emitted = []
        for t in range(timesteps):
            output, new_states = step(
                xs[t],
                states,
                W,
                U,
                b,
                activation=activation,
                recurrent_activation=recurrent_activation,
                reset_after=reset_after,
            )
            if real[t]:
                states = new_states
                emitted.append(output)
            elif zero_output_for_mask or not emitted:
                emitted.append(np.zeros(units))
            else:
                emitted.append(emitted[-1])
        outputs.append(np.stack(emitted) if return_sequences else emitted[-1])
        finals.append(states)
    output = np.stack(outputs)
    if not return_state:
        return output
    return (output, *[np.stack([f[i] for f in finals]) for i in range(N_STATES[cell])])


def bidirectional(
    cell: str,
    x,
    forward_weights,
    backward_weights,
    *,
    merge_mode="concat",
    return_sequences=False,
    return_state=False,
    mask=None,
    initial_state=None,
    **cell_options,
):
    """Keras's ``Bidirectional(cell layer)``; returns what ``reference.bidirectional`` returns."""
    k = N_STATES[cell]
    forward_start = None if initial_state is None else list(initial_state[:k])
    backward_start = None if initial_state is None else list(initial_state[k:])
    y_forward, *forward_states = layer(
        cell,
        x,
        *forward_weights,
        return_sequences=return_sequences,
        return_state=True,
        mask=mask,
        initial_state=forward_start,
        zero_output_for_mask=return_sequences,
        **cell_options,
    )
    y_backward, *backward_states = layer(
        cell,
        x,
        *backward_weights,
        return_sequences=return_sequences,
        return_state=True,
        go_backwards=True,
        mask=mask,
        initial_state=backward_start,
        zero_output_for_mask=return_sequences,
        **cell_options,
    )
    if return_sequences:
        y_backward = np.flip(y_backward, axis=1)  # back to input order
    if merge_mode == "concat":
        output = np.concatenate([y_forward, y_backward], axis=-1)
    elif merge_mode == "sum":
        output = y_forward + y_backward
    elif merge_mode == "mul":
        output = y_forward * y_backward
    elif merge_mode == "ave":
        output = (y_forward + y_backward) / 2.0
    elif merge_mode is None:
        output = [y_forward, y_backward]
    else:
        raise ValueError(f"unknown merge_mode {merge_mode!r}")
    if return_state:
        return (output, *forward_states, *backward_states)
    return output
