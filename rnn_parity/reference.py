"""A pure-NumPy reference for Keras 3's recurrent layers.

Every function takes arrays in Keras's own layouts and reproduces the
semantics of the TensorFlow backend of Keras 3 exactly (see
docs/reference-semantics.md, "Keras semantics the reference reproduces"):

* ``x``: ``(batch, timesteps, features)``;
* ``kernel``: ``(features, G * units)``; ``recurrent_kernel``: ``(units, G * units)``;
  ``bias``: ``(G * units,)`` (GRU with ``reset_after``: ``(2, 3 * units)``), where
  ``G`` is 1 for SimpleRNN, 4 for LSTM (gate blocks i, f, c, o) and 3 for GRU
  (gate blocks z, r, h);
* ``mask``: bool ``(batch, timesteps)``, True marks a real step. At a masked step
  the state is carried unchanged and the emitted output repeats the previous
  output (zeros when ``zero_output_for_mask``, as inside ``Bidirectional``);
* ``go_backwards``: the input (and mask) are read from the end and a returned
  sequence is in *processing* order: ``out[:, k]`` belongs to input step ``T-1-k``;
* ``initial_state``: a list, ``[h]`` or ``[h, c]`` for LSTM, each ``(batch, units)``.

Computation happens in the dtype of ``x`` (weights are cast to it), vectorised over
the batch. The module imports nothing but NumPy so that it can be copied into a
TensorFlow-free deployment on its own.

Each cell is written as two parts, the way Keras splits ``SimpleRNNCell`` from
``RNN``: a *step* that holds the equations of one timestep, and the shared
:func:`recurrent` loop that handles direction, masking, initial state and the
return options.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

__all__ = [
    "ACTIVATIONS",
    "KERAS2_ACTIVATIONS",
    "ACTIVATION_GRADIENTS",
    "BACKWARD",
    "bidirectional_backward",
    "dense_backward",
    "get_activation_gradient",
    "gru_backward",
    "lstm_backward",
    "recurrent_backward",
    "simple_rnn_backward",
    "bidirectional_vjp",
    "vjp",
    "UnsupportedActivation",
    "get_activation",
    "bidirectional",
    "dense",
    "gru",
    "lstm",
    "recurrent",
    "simple_rnn",
    "MERGE_MODES",
]


class UnsupportedActivation(ValueError):
    """An activation name the reference does not implement."""


# --------------------------------------------------------------------------
# Activations: Keras 3's built-in activations by name, elementwise except the
# softmax family (which Keras applies over the last axis).
# --------------------------------------------------------------------------


def _c(value: float, like: np.ndarray) -> np.ndarray:
    """A scalar in ``like``'s dtype, so float32 stays float32."""
    return np.asarray(value, dtype=like.dtype)


def _sigmoid(x, out=None):
    # 1 / (1 + e^-x): exp overflows to inf for x < -709 and the result is then exactly 0,
    # which is the correctly rounded answer, so the warning is silenced, not the maths.
    with np.errstate(over="ignore"):
        return _sigmoid_unguarded(x, out)


def _sigmoid_unguarded(x, out=None):
    """:func:`_sigmoid` without entering ``np.errstate``, for loops that enter it once (see :func:`recurrent`)."""
    # Not np.negative: NumPy 2.4's float32 negative, written in place into an (n, 1) column
    # view (an LSTM gate block with one unit), reads the wrong elements.
    out = np.multiply(x, -1, out=out)
    np.exp(out, out=out)
    out += 1
    return np.reciprocal(out, out=out)


def _softplus(x):
    return np.logaddexp(x, _c(0.0, x))


def _hard_sigmoid(x):  # Keras 3: relu6(x + 3) / 6, not Keras 2's clip(0.2x + 0.5)
    return np.clip(x / _c(6.0, x) + _c(0.5, x), 0, 1).astype(x.dtype, copy=False)


def _elu(x, alpha=1.0):
    return np.where(x >= 0, x, _c(alpha, x) * np.expm1(np.minimum(x, 0)))


_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946
_erf = np.frompyfunc(math.erf, 1, 1)


def _gelu(x):  # Keras's default is the exact form, x * Phi(x)
    return (x * _c(0.5, x) * (1 + _erf(x / _c(math.sqrt(2.0), x)).astype(x.dtype))).astype(x.dtype)


def _softmax(x):
    e = np.exp(x - np.max(x, axis=-1, keepdims=True))
    return e / np.sum(e, axis=-1, keepdims=True)


def _log_softmax(x):
    shifted = x - np.max(x, axis=-1, keepdims=True)
    return shifted - np.log(np.sum(np.exp(shifted), axis=-1, keepdims=True))


ACTIVATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "linear": lambda x: x,
    "tanh": np.tanh,
    "sigmoid": _sigmoid,
    "hard_sigmoid": _hard_sigmoid,
    "relu": lambda x: np.maximum(x, _c(0.0, x)),
    "relu6": lambda x: np.clip(x, 0, 6).astype(x.dtype, copy=False),
    "leaky_relu": lambda x: np.maximum(x, _c(0.2, x) * x),
    "elu": _elu,
    "selu": lambda x: _c(_SELU_SCALE, x) * _elu(x, _SELU_ALPHA),
    "celu": lambda x: np.maximum(x, 0) + np.expm1(np.minimum(x, 0)),
    "softplus": _softplus,
    "softsign": lambda x: x / (1 + np.abs(x)),
    "squareplus": lambda x: (x + np.sqrt(x * x + _c(4.0, x))) / 2,
    "sparse_plus": lambda x: np.where(x <= -1, 0, np.where(x < 1, (x + 1) ** 2 / 4, x)).astype(x.dtype),
    "sparse_sigmoid": lambda x: np.clip((x + 1) / 2, 0, 1).astype(x.dtype, copy=False),
    "silu": lambda x: x * _sigmoid(x),
    "swish": lambda x: x * _sigmoid(x),
    "hard_silu": lambda x: x * _hard_sigmoid(x),
    "hard_swish": lambda x: x * _hard_sigmoid(x),
    "hard_tanh": lambda x: np.clip(x, -1, 1).astype(x.dtype, copy=False),
    "tanh_shrink": lambda x: x - np.tanh(x),
    "soft_shrink": lambda x: np.where(x > 0.5, x - 0.5, np.where(x < -0.5, x + 0.5, 0)).astype(x.dtype),
    "hard_shrink": lambda x: np.where(np.abs(x) > 0.5, x, 0).astype(x.dtype),
    "log_sigmoid": lambda x: -_softplus(-x),
    "mish": lambda x: x * np.tanh(_softplus(x)),
    "gelu": _gelu,
    "exponential": np.exp,
    "softmax": _softmax,
    "log_softmax": _log_softmax,
}


def _hard_sigmoid_keras2(x):  # Keras 2 / tf.keras: clip(0.2x + 0.5, 0, 1)
    return np.clip(_c(0.2, x) * x + _c(0.5, x), 0, 1).astype(x.dtype, copy=False)


#: Keras 2's definitions where Keras 3 gives the name another meaning, under the names the
#: graph of a file written by Keras 2 uses (never accepted from a Keras 3 configuration).
KERAS2_ACTIVATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {"keras2:hard_sigmoid": _hard_sigmoid_keras2}


def get_activation(name: str | None) -> Callable[[np.ndarray], np.ndarray]:
    """Return the NumPy function for a Keras activation name.

    ``None`` means linear, as in Keras. ``"keras2:hard_sigmoid"`` is Keras 2's
    ``hard_sigmoid`` (see :data:`KERAS2_ACTIVATIONS`). Raises
    :class:`UnsupportedActivation` for any other name (custom or not built in),
    never a silent substitute.
    """
    if name is None:
        return ACTIVATIONS["linear"]
    try:
        return ACTIVATIONS[name] if name in ACTIVATIONS else KERAS2_ACTIVATIONS[name]
    except (KeyError, TypeError):
        raise UnsupportedActivation(
            f"activation {name!r} is not supported; supported: {', '.join(sorted(ACTIVATIONS))}"
        ) from None


#: In-place forms, for the scratch arrays of a step; they run inside :func:`recurrent`'s
#: ``np.errstate(over="ignore")``, so the sigmoid here does not enter it at every call.
_IN_PLACE = {
    "tanh": lambda x: np.tanh(x, out=x),
    "sigmoid": lambda x: _sigmoid_unguarded(x, out=x),
    "relu": lambda x: np.maximum(x, 0, out=x),
    "linear": lambda x: x,
}


def _in_place(name: str | None) -> Callable[[np.ndarray], np.ndarray]:
    """The activation, computed into its argument where that is cheap (for scratch arrays only)."""
    act = get_activation(name)
    return _IN_PLACE.get(name, act)


# --------------------------------------------------------------------------
# The sequence machinery shared by every cell.
# --------------------------------------------------------------------------

Step = Callable[[np.ndarray, list[np.ndarray]], tuple[np.ndarray, list[np.ndarray]]]


#: Input projections are computed for blocks of timesteps of about this many bytes: big
#: enough for efficient GEMMs, small enough to stay in cache instead of allocating N·T·G·M.
_BLOCK_BYTES = 8 * 1024 * 1024


def recurrent(
    step: Step,
    x_tm: np.ndarray,
    project: Callable[[np.ndarray], np.ndarray],
    initial_state: Sequence[np.ndarray],
    *,
    return_sequences: bool = False,
    go_backwards: bool = False,
    mask: np.ndarray | None = None,
    zero_output_for_mask: bool = False,
):
    """Run ``step`` over time as Keras's ``RNN`` layer does.

    Args:
        step: ``step(x_proj_t, states) -> (output, new_states)`` for one timestep;
            ``x_proj_t`` is this step's part of the projection, ``(batch, G * units)``
            (or the gates apart, ``(G, batch, units)``, as :func:`_gate_projector` lays
            it out), which the step may overwrite. The arrays it returns must not be
            overwritten later.
        x_tm: ``(timesteps, batch, features)``, the input in time-major order.
        project: ``project(x_block) -> x_block · kernel + input bias``, applied to
            blocks of consecutive timesteps ``(k, batch, features)``: one GEMM per
            block instead of one per step; ``project(x_block)[j]`` is step j's part.
        initial_state: list of ``(batch, units)`` states.
        return_sequences, go_backwards, mask, zero_output_for_mask: as in Keras.
            ``mask`` is ``(batch, timesteps)``; for outputs with more axes than
            ``(batch, units)`` (a ConvLSTM's grids) it may go on with their leading
            axes, and is broadcast as TensorFlow does (trailing axes of size 1).

    Returns:
        ``(outputs, final_states)``: ``outputs`` is ``(batch, timesteps, units)``
        in processing order when ``return_sequences``, else the last output
        ``(batch, units)``.
    """
    timesteps, batch = x_tm.shape[:2]
    states = [np.array(s, dtype=x_tm.dtype, copy=True) for s in initial_state]
    outputs = None
    prev_output = zeros = None
    if mask is not None:
        # (timesteps, batch, ...): a (batch, timesteps) mask, or a ConvLSTM's per-position one
        # (batch, timesteps, *grid), is broadcast over the output's trailing axes as TensorFlow does.
        keep_tm = np.ascontiguousarray(np.moveaxis(mask, 1, 0))
        # steps where every sample (and position) is real: the mask changes nothing there
        every = mask.all(axis=tuple(a for a in range(mask.ndim) if a != 1)).tolist()
    k = 0  # position in processing order
    # The in-place sigmoid's exp overflows to inf for very negative inputs, and 1 / (1 + inf) = 0 is
    # the right answer: the warning is silenced once here rather than at every call. Any other
    # overflow shows as inf or NaN in the result, which every comparison reports.
    with np.errstate(over="ignore"):
        for t, x_proj_t in _projected_steps(x_tm, project, go_backwards):
            output, new_states = step(x_proj_t, states)
            if mask is not None:
                if prev_output is None or zero_output_for_mask:
                    if zeros is None:
                        zeros = np.zeros_like(output)
                    prev_output = zeros
                if not every[t]:
                    keep = keep_tm[t]
                    keep = keep.reshape(keep.shape + (1,) * (output.ndim - keep.ndim))
                    output = np.where(keep, output, prev_output)
                    new_states = [np.where(keep, new, old) for new, old in zip(new_states, states)]
            if return_sequences:
                if outputs is None:  # batch-major, written step by step: no transposed copy at the end
                    outputs = np.empty((batch, timesteps) + output.shape[1:], dtype=output.dtype)
                outputs[:, k] = output
            prev_output = output
            states = new_states
            k += 1
    if return_sequences:
        if outputs is None:  # timesteps == 0
            outputs = np.empty((batch, 0) + states[0].shape[1:], dtype=x_tm.dtype)
        return outputs, states
    return prev_output, states


def _projected_steps(x_tm, project, go_backwards):
    """Yield ``(t, x_t·W + b)`` in processing order, projecting a block of steps at a time.

    The first block is one step; its size in bytes sets how many steps the next blocks take.
    """
    timesteps = x_tm.shape[0]
    t, rows = (timesteps - 1 if go_backwards else 0), 1
    while 0 <= t < timesteps:
        lo, hi = (max(0, t - rows + 1), t + 1) if go_backwards else (t, min(timesteps, t + rows))
        block = project(x_tm[lo:hi])
        rows = max(1, _BLOCK_BYTES // max(1, block[0].nbytes))
        for u in range(hi - 1, lo - 1, -1) if go_backwards else range(lo, hi):
            yield u, block[u - lo]
        t = lo - 1 if go_backwards else hi


def _prepare(x, kernel, recurrent_kernel, bias, mask, initial_state, n_states):
    """Cast to ``x``'s dtype, lay the input out time-major, check shapes, build the zero state."""
    x = np.asarray(x)
    if x.ndim != 3:
        raise ValueError(f"x must be (batch, timesteps, features), got shape {x.shape}")
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float64)
    dtype = x.dtype
    # C order: a Fortran-ordered kernel (an orthogonal initialiser's) made every step ~30x slower
    kernel = np.ascontiguousarray(kernel, dtype=dtype)
    recurrent_kernel = np.ascontiguousarray(recurrent_kernel, dtype=dtype)
    units = recurrent_kernel.shape[0]
    if kernel.shape[0] != x.shape[2]:
        raise ValueError(f"kernel has {kernel.shape[0]} rows but x has {x.shape[2]} features")
    x_tm = np.ascontiguousarray(x.transpose(1, 0, 2))  # time-major: each step's rows are contiguous
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != x.shape[:2]:
            raise ValueError(f"mask must be (batch, timesteps) = {x.shape[:2]}, got {mask.shape}")
    if initial_state is None:
        states = [np.zeros((x.shape[0], units), dtype=dtype) for _ in range(n_states)]
    else:
        states = [np.asarray(s, dtype=dtype) for s in initial_state]
        if len(states) != n_states:
            raise ValueError(f"initial_state needs {n_states} array(s), got {len(states)}")
    bias = None if bias is None else np.asarray(bias, dtype=dtype)
    return x_tm, kernel, recurrent_kernel, bias, mask, states


def _projector(kernel, input_bias):
    """``x_block -> x_block · kernel + input_bias`` (a fresh array the steps may overwrite)."""

    def project(x_block):
        # One 2-D GEMM for the whole block: (k·batch, features) · kernel. A 3-D matmul would
        # run k separate small products instead.
        steps, batch, features = x_block.shape
        out = (x_block.reshape(steps * batch, features) @ kernel).reshape(steps, batch, -1)
        if input_bias is not None:
            out += input_bias
        return out

    return project


def _by_gate(w: np.ndarray, gates: int, order: Sequence[int]) -> np.ndarray:
    """Keras's gate blocks side by side, ``(rows, G * units)`` or ``(G * units,)``, as ``(G, rows, units)``
    (``(G, 1, units)`` for a bias), the gates in ``order`` (a C-contiguous copy)."""
    rows = 1 if w.ndim == 1 else w.shape[0]
    return np.ascontiguousarray(w.reshape(rows, gates, -1).transpose(1, 0, 2)[list(order)])


def _gate_projector(kernel_by_gate, bias_by_gate):
    """:func:`_projector` for gates kept apart: step j's part of a block is ``(G, batch, units)``.

    With the gates on the leading axis, every gate block a step reads or writes is one
    contiguous ``(batch, units)`` array: NumPy's elementwise calls run faster on them than on
    column blocks of a ``(batch, G * units)`` row.
    """

    def project(x_block):
        steps, batch, features = x_block.shape
        # One GEMM per gate over the whole block: (G, k·batch, units).
        out = np.matmul(x_block.reshape(steps * batch, features), kernel_by_gate)
        if bias_by_gate is not None:
            out += bias_by_gate
        return out.reshape(out.shape[0], steps, batch, -1).transpose(1, 0, 2, 3)  # (k, G, batch, units) view

    return project


def _finish(outputs, states, return_state):
    return (outputs, *states) if return_state else outputs


# --------------------------------------------------------------------------
# SimpleRNN
# --------------------------------------------------------------------------


def simple_rnn(
    x,
    kernel,
    recurrent_kernel,
    bias=None,
    *,
    activation="tanh",
    return_sequences=False,
    return_state=False,
    go_backwards=False,
    mask=None,
    initial_state=None,
    zero_output_for_mask=False,
):
    """Keras's ``SimpleRNN``: ``h_t = φ(x_t·W + b + h_{t-1}·U)``; the output is ``h_t``.

    Args:
        x: ``(batch, timesteps, features)``.
        kernel: ``W``, ``(features, units)``.
        recurrent_kernel: ``U``, ``(units, units)``.
        bias: ``b``, ``(units,)``, or None for ``use_bias=False``.
        activation: a Keras activation name (default ``"tanh"``).
        return_sequences, return_state, go_backwards, mask, initial_state,
        zero_output_for_mask: as in Keras (see the module docstring).

    Returns:
        ``(batch, units)``, or ``(batch, timesteps, units)`` with ``return_sequences``;
        with ``return_state`` a tuple ``(output, h)``.
    """
    phi = _in_place(activation)
    x_tm, W, U, b, mask, states = _prepare(x, kernel, recurrent_kernel, bias, mask, initial_state, 1)
    hU = np.empty((x_tm.shape[1], U.shape[1]), dtype=x_tm.dtype)  # scratch for h·U

    def step(xw_t, states):  # xw_t = x_t·W + b, this step's row of the precomputed projection
        (h,) = states
        z = xw_t
        z += np.matmul(h, U, out=hU)
        h_new = phi(z)  # computed in place: this step's projection is not needed again
        return h_new, [h_new]

    outputs, states = recurrent(
        step,
        x_tm,
        _projector(W, b),
        states,
        return_sequences=return_sequences,
        go_backwards=go_backwards,
        mask=mask,
        zero_output_for_mask=zero_output_for_mask,
    )
    return _finish(outputs, states, return_state)


# --------------------------------------------------------------------------
# LSTM
# --------------------------------------------------------------------------


def lstm(
    x,
    kernel,
    recurrent_kernel,
    bias=None,
    *,
    activation="tanh",
    recurrent_activation="sigmoid",
    return_sequences=False,
    return_state=False,
    go_backwards=False,
    mask=None,
    initial_state=None,
    zero_output_for_mask=False,
):
    """Keras's ``LSTM`` (gate blocks i, f, c, o)::

        z  = x_t·W + h_{t-1}·U + b,   split into z_i, z_f, z_c, z_o
        i  = σ(z_i);  f = σ(z_f);  o = σ(z_o)
        c_t = f * c_{t-1} + i * φ(z_c)
        h_t = o * φ(c_t)

    Args:
        x: ``(batch, timesteps, features)``.
        kernel: ``(features, 4 * units)``.
        recurrent_kernel: ``(units, 4 * units)``.
        bias: ``(4 * units,)`` or None.
        activation: φ (default ``"tanh"``); recurrent_activation: σ (default ``"sigmoid"``).
        initial_state: ``[h, c]``, each ``(batch, units)``.

    Returns:
        the output as for :func:`simple_rnn`; with ``return_state`` ``(output, h, c)``.
    """
    phi, phi_ = get_activation(activation), _in_place(activation)
    sigma_ = _in_place(recurrent_activation)
    x_tm, W, U, b, mask, states = _prepare(x, kernel, recurrent_kernel, bias, mask, initial_state, 2)
    # The gates apart, (4, rows, units), reordered i, f, o, c (Keras's blocks are i, f, c, o): the
    # three gates that share σ are adjacent, so one call computes them.
    order = (0, 1, 3, 2)
    W, U = _by_gate(W, 4, order), _by_gate(U, 4, order)
    b = None if b is None else _by_gate(b, 4, order)
    hU = np.empty((4, x_tm.shape[1], U.shape[2]), dtype=x_tm.dtype)

    def step(xw_t, states):  # xw_t = x_t·W + b, (4, batch, units); the gates are computed in place in it
        h, c = states
        z = xw_t
        z += np.matmul(h, U, out=hU)
        i, f, o = sigma_(z[:3])
        g = phi_(z[3])
        c_new = f * c
        c_new += i * g
        h_new = o * phi(c_new)
        return h_new, [h_new, c_new]

    outputs, states = recurrent(
        step,
        x_tm,
        _gate_projector(W, b),
        states,
        return_sequences=return_sequences,
        go_backwards=go_backwards,
        mask=mask,
        zero_output_for_mask=zero_output_for_mask,
    )
    return _finish(outputs, states, return_state)


# --------------------------------------------------------------------------
# GRU
# --------------------------------------------------------------------------


def gru(
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
    """Keras's ``GRU`` (gate blocks z, r, h).

    With ``reset_after=True`` (Keras's default; bias ``(2, 3 * units)``)::

        mx = x_t·W + b[0];   mh = h_{t-1}·U + b[1]
        z = σ(mx_z + mh_z);  r = σ(mx_r + mh_r)
        ĥ = φ(mx_h + r * mh_h)
        h_t = z * h_{t-1} + (1 - z) * ĥ

    With ``reset_after=False`` (bias ``(3 * units,)``)::

        mx = x_t·W + b
        z = σ(mx_z + h_{t-1}·U_z);  r = σ(mx_r + h_{t-1}·U_r)
        ĥ = φ(mx_h + (r * h_{t-1})·U_h)
        h_t = z * h_{t-1} + (1 - z) * ĥ

    Args:
        x: ``(batch, timesteps, features)``.
        kernel: ``(features, 3 * units)``; recurrent_kernel: ``(units, 3 * units)``.
        bias: as above, or None.

    Returns:
        the output as for :func:`simple_rnn`; with ``return_state`` ``(output, h)``.
    """
    phi_, sigma_ = _in_place(activation), _in_place(recurrent_activation)
    x_tm, W, U, b, mask, states = _prepare(x, kernel, recurrent_kernel, bias, mask, initial_state, 1)
    m = U.shape[0]
    if b is not None:
        if reset_after and b.shape != (2, 3 * m):
            raise ValueError(f"GRU with reset_after needs bias (2, {3 * m}), got {b.shape}")
        if not reset_after and b.shape != (3 * m,):
            raise ValueError(f"GRU without reset_after needs bias ({3 * m},), got {b.shape}")
    b_x = None if b is None else (b[0] if reset_after else b)
    b_h = b[1] if (b is not None and reset_after) else None
    # The gates apart, (3, rows, units): z, r, h.
    gates = (0, 1, 2)
    W, U = _by_gate(W, 3, gates), _by_gate(U, 3, gates)
    b_x = None if b_x is None else _by_gate(b_x, 3, gates)
    b_h = None if b_h is None else _by_gate(b_h, 3, gates)
    U_zr, U_h = U[:2], U[2]

    n = x_tm.shape[1]
    hU = np.empty((3, n, m), dtype=x_tm.dtype)
    h_Uzr = np.empty((2, n, m), dtype=x_tm.dtype)
    rh_Uh = np.empty((n, m), dtype=x_tm.dtype)
    one_minus_z = np.empty((n, m), dtype=x_tm.dtype)

    def update(z, h, hh):
        """``h_t = z * h_{t-1} + (1 - z) * ĥ``, in Keras's order of operations, into a fresh array."""
        h_new = z * h
        h_new += np.multiply(np.subtract(1, z, out=one_minus_z), hh, out=one_minus_z)
        return h_new

    # mx = x_t·W + input bias for this step, (3, batch, units); the gates are computed in place in it.
    def step_reset_after(mx, states):
        (h,) = states
        mh = np.matmul(h, U, out=hU)
        if b_h is not None:
            mh += b_h
        zr = mx[:2]
        zr += mh[:2]
        z, r = sigma_(zr)
        r_mh = mh[2]
        r_mh *= r  # r * mh_h, in mh's own (scratch) block
        hh = mx[2]
        hh += r_mh
        hh = phi_(hh)
        h_new = update(z, h, hh)
        return h_new, [h_new]

    def step_reset_before(mx, states):
        (h,) = states
        zr = mx[:2]
        zr += np.matmul(h, U_zr, out=h_Uzr)
        z, r = sigma_(zr)
        hh = mx[2]
        hh += np.matmul(r * h, U_h, out=rh_Uh)
        hh = phi_(hh)
        h_new = update(z, h, hh)
        return h_new, [h_new]

    outputs, states = recurrent(
        step_reset_after if reset_after else step_reset_before,
        x_tm,
        _gate_projector(W, b_x),
        states,
        return_sequences=return_sequences,
        go_backwards=go_backwards,
        mask=mask,
        zero_output_for_mask=zero_output_for_mask,
    )
    return _finish(outputs, states, return_state)


# --------------------------------------------------------------------------
# Bidirectional and Dense
# --------------------------------------------------------------------------

MERGE_MODES = ("concat", "sum", "mul", "ave", None)


def bidirectional(
    layer: Callable,
    x,
    forward_weights: Sequence,
    backward_weights: Sequence,
    *,
    merge_mode: str | None = "concat",
    return_sequences: bool = False,
    return_state: bool = False,
    mask=None,
    initial_state=None,
    **layer_kwargs,
):
    """Keras's ``Bidirectional`` wrapper around one of the layer functions here.

    Args:
        layer: :func:`simple_rnn`, :func:`lstm` or :func:`gru`.
        x: ``(batch, timesteps, features)``.
        forward_weights, backward_weights: each ``[kernel, recurrent_kernel(, bias)]``
            (``get_weights()`` of the wrapper is forward's list then backward's).
        merge_mode: ``"concat"`` (forward first), ``"sum"``, ``"mul"``, ``"ave"`` or
            None (a list ``[forward, backward]``).
        initial_state: forward states followed by backward states, as in Keras.
        layer_kwargs: passed to both directions (activation, reset_after, ...).

    Keras 3 refuses a wrapped layer with ``go_backwards=True``. As Keras does,
    masked steps of a returned sequence are zeros in both directions, and the
    backward sequence is flipped back to input order before merging.

    Returns:
        the merged output; with ``return_state``, ``(output, *forward_states,
        *backward_states)`` (``output`` is a list of two with ``merge_mode=None``).
    """
    if merge_mode not in MERGE_MODES:
        raise ValueError(f"merge_mode must be one of {MERGE_MODES}, got {merge_mode!r}")
    if initial_state is not None:
        half = len(initial_state) // 2
        fwd_state, bwd_state = list(initial_state[:half]), list(initial_state[half:])
    else:
        fwd_state = bwd_state = None
    common = dict(
        layer_kwargs,
        return_sequences=return_sequences,
        return_state=True,
        mask=mask,
        zero_output_for_mask=return_sequences,
    )
    y, *fwd_states = layer(x, *forward_weights, initial_state=fwd_state, **common)
    y_rev, *bwd_states = layer(x, *backward_weights, initial_state=bwd_state, go_backwards=True, **common)
    if return_sequences:
        y_rev = y_rev[:, ::-1]
    if merge_mode == "concat":
        output = np.concatenate([y, y_rev], axis=-1)
    elif merge_mode == "sum":
        output = y + y_rev
    elif merge_mode == "ave":
        output = (y + y_rev) / 2
    elif merge_mode == "mul":
        output = y * y_rev
    else:
        output = [y, np.ascontiguousarray(y_rev)]
    if return_state:
        return (output, *fwd_states, *bwd_states)
    return output


def dense(x, kernel, bias=None, *, activation=None):
    """Keras's ``Dense``: ``y = act(x·W + b)`` over the last axis.

    Args:
        x: ``(..., M)``: a 3-D input ``(batch, timesteps, M)`` is handled per
            timestep, as Keras's Dense does.
        kernel: ``W``, ``(M, K)``.
        bias: ``b``, ``(K,)``, or None.
        activation: a Keras activation name, None for linear.

    Returns:
        ``(..., K)`` in ``x``'s dtype.
    """
    act = get_activation(activation)
    x = np.asarray(x)
    kernel = np.asarray(kernel, dtype=x.dtype)
    # one 2-D product over every leading axis, as Keras's tensordot does (a 3-D matmul runs one
    # small product per sample)
    y = (x.reshape(-1, x.shape[-1]) @ kernel).reshape(x.shape[:-1] + kernel.shape[-1:])
    if bias is not None:
        y += np.asarray(bias, dtype=x.dtype)
    return act(y)


# ==========================================================================
# Backward pass: backpropagation through time (BPTT)
# ==========================================================================
#
# Every ``*_backward`` function takes the forward function's arguments plus the
# upstream gradient of its output, and returns the gradient of every argument.
# It runs the forward pass again through the same :func:`recurrent` loop, with a
# step that records on a *tape* what its backward step needs, then
# :func:`recurrent_backward` walks the tape from the last processed step to the
# first. The input projection ``x_t·W + b`` is differentiated once for all steps
# at the end (three 2-D GEMMs), the way the forward computes it.
#
# Derivatives at the kinks of piecewise functions follow TensorFlow's gradient
# kernels, which Keras's TensorFlow backend uses (see ACTIVATION_GRADIENTS).


def _flag(condition: np.ndarray, like: np.ndarray) -> np.ndarray:
    """A boolean array as 0/1 in ``like``'s dtype."""
    return condition.astype(like.dtype)


def _choose(condition, a, b, like):
    """``np.where`` in ``like``'s dtype (Python scalars would promote float32 to float64)."""
    return np.where(condition, _c(a, like) if np.isscalar(a) else a, _c(b, like) if np.isscalar(b) else b)


def _hard_sigmoid_derivative(z):  # relu6(z + 3) / 6: TensorFlow's Relu6Grad passes 0 < z + 3 < 6
    return _flag((z > -3) & (z < 3), z) / _c(6.0, z)


def _gelu_derivative(z):  # d/dz z·Φ(z) = Φ(z) + z·φ(z), the exact form's derivative
    cdf = _c(0.5, z) * (1 + _erf(z / _c(math.sqrt(2.0), z)).astype(z.dtype))
    pdf = np.exp(-z * z / 2) / _c(math.sqrt(2.0 * math.pi), z)
    return cdf + z * pdf


def _silu_derivative(z):
    s = _sigmoid(z)
    return s * (1 + z * (1 - s))


def _mish_derivative(z):
    t = np.tanh(_softplus(z))
    return t + z * (1 - t * t) * _sigmoid(z)


#: Elementwise derivatives ``f'(z)`` given the pre-activation ``z`` and the output ``y = f(z)``.
#: At a kink the value is the one TensorFlow's gradient returns there:
#: relu 0 at 0 (ReluGrad passes z > 0); relu6 and hard_sigmoid 0 at both ends (open interval);
#: leaky_relu 0.2 at 0; elu and selu take the right-hand slope at 0; celu 2 at 0 (``maximum`` and
#: ``minimum`` both pass the gradient on ties); hard_tanh 1 at ±1 (``clip_by_value`` passes the
#: closed interval); sparse_sigmoid 0 at ±1; soft_shrink and hard_shrink 0 at ±0.5.
_DERIVATIVES: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "tanh": lambda z, y: 1 - y * y,
    "sigmoid": lambda z, y: y * (1 - y),
    "hard_sigmoid": lambda z, y: _hard_sigmoid_derivative(z),
    "relu": lambda z, y: _flag(z > 0, z),
    "relu6": lambda z, y: _flag((z > 0) & (z < 6), z),
    "leaky_relu": lambda z, y: _choose(z > 0, 1.0, 0.2, z),
    "elu": lambda z, y: _choose(z > 0, 1.0, y + 1, z),
    "selu": lambda z, y: _choose(z > 0, _SELU_SCALE, y + _c(_SELU_SCALE * _SELU_ALPHA, z), z),
    "celu": lambda z, y: _flag(z >= 0, z) + _flag(z <= 0, z) * np.exp(np.minimum(z, 0)),
    "softplus": lambda z, y: _sigmoid(z),
    "softsign": lambda z, y: 1 / np.square(1 + np.abs(z)),
    "squareplus": lambda z, y: (1 + z / np.sqrt(z * z + _c(4.0, z))) / 2,
    "sparse_plus": lambda z, y: _choose(z <= -1, 0.0, _choose(z < 1, (z + 1) / 2, 1.0, z), z),
    "sparse_sigmoid": lambda z, y: _flag((z > -1) & (z < 1), z) / _c(2.0, z),
    "silu": lambda z, y: _silu_derivative(z),
    "swish": lambda z, y: _silu_derivative(z),
    "hard_silu": lambda z, y: _hard_sigmoid(z) + z * _hard_sigmoid_derivative(z),
    "hard_swish": lambda z, y: _hard_sigmoid(z) + z * _hard_sigmoid_derivative(z),
    "hard_tanh": lambda z, y: _flag((z >= -1) & (z <= 1), z),
    "tanh_shrink": lambda z, y: np.square(np.tanh(z)),
    "soft_shrink": lambda z, y: _flag(np.abs(z) > 0.5, z),
    "hard_shrink": lambda z, y: _flag(np.abs(z) > 0.5, z),
    "log_sigmoid": lambda z, y: _sigmoid(-z),
    "mish": lambda z, y: _mish_derivative(z),
    "gelu": lambda z, y: _gelu_derivative(z),
    "exponential": lambda z, y: y,
}

ActivationGradient = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]


def _elementwise_gradient(derivative) -> ActivationGradient:
    return lambda z, y, dy: dy * derivative(z, y)


def _tanh_gradient(z, y, dy):  # dy·(1 - y²), with one temporary
    out = np.multiply(y, y)
    np.subtract(1, out, out=out)
    out *= dy
    return out


def _sigmoid_gradient(z, y, dy):  # dy·y·(1 - y), with one temporary
    out = np.subtract(1, y)
    out *= y
    out *= dy
    return out


def _softmax_gradient(z, y, dy):  # y = softmax(z) over the last axis: dz = y * (dy - <dy, y>)
    return y * (dy - np.sum(dy * y, axis=-1, keepdims=True))


def _log_softmax_gradient(z, y, dy):  # y = log softmax(z): dz = dy - softmax(z) * sum(dy)
    return dy - np.exp(y) * np.sum(dy, axis=-1, keepdims=True)


#: ``gradient(z, y, dy) -> dz`` for every activation of :data:`ACTIVATIONS`: the vector-Jacobian
#: product of ``y = f(z)`` (over the last axis for the softmax family, elementwise otherwise).
ACTIVATION_GRADIENTS: dict[str, ActivationGradient] = {
    "linear": lambda z, y, dy: dy,
    **{name: _elementwise_gradient(d) for name, d in _DERIVATIVES.items()},
    "tanh": _tanh_gradient,  # the defaults, the same values computed in fewer passes
    "sigmoid": _sigmoid_gradient,
    "softmax": _softmax_gradient,
    "log_softmax": _log_softmax_gradient,
}


def get_activation_gradient(name: str | None) -> ActivationGradient:
    """The :data:`ACTIVATION_GRADIENTS` entry for a Keras activation name (None is linear)."""
    get_activation(name)  # the same error for an unknown name
    return ACTIVATION_GRADIENTS["linear" if name is None else name]


# --------------------------------------------------------------------------
# The backward loop shared by every cell.
# --------------------------------------------------------------------------

StepBackward = Callable[[object, list[np.ndarray]], tuple[np.ndarray, list[np.ndarray]]]


def recurrent_backward(
    step_backward: StepBackward,
    tape: Sequence,
    d_output: np.ndarray,
    d_final_states: Sequence[np.ndarray],
    *,
    return_sequences: bool = False,
    go_backwards: bool = False,
    mask: np.ndarray | None = None,
    zero_output_for_mask: bool = False,
):
    """Run :func:`recurrent` backwards over a recorded forward pass.

    Every cell here emits its first new state as its output, so the gradient
    reaching a step's output is added to the gradient of that state.

    Args:
        step_backward: ``step_backward(cache, d_new_states) -> (d_xw_t, d_states)``
            for one step: from the gradients of the states the step returned to the
            gradient of its projected input ``x_t·W + b`` ``(batch, G * units)`` and
            of the states it received.
        tape: what the step recorded, one entry per processed step, in processing order.
        d_output: the gradient of :func:`recurrent`'s output (same shape, processing order).
        d_final_states: the gradients of the final states.
        return_sequences, go_backwards, mask, zero_output_for_mask: as in the forward pass.

    Returns:
        ``(d_xw, d_initial_states, d_hidden)``: ``d_xw`` is ``(timesteps, batch, G * units)``
        indexed by *input* step; ``d_initial_states`` a list like the initial state;
        ``d_hidden`` is ``(timesteps, batch, units)`` in processing order: ``dL/dh_t``, the
        gradient reaching the hidden state the cell computed at each step (zero where masked).
    """
    timesteps = len(tape)
    d_states = [np.array(d, copy=True) for d in d_final_states]
    zeros = np.zeros_like(d_states[0])
    # The gradient reaching a step's emitted output from after it: the final output is the
    # last step's, and at a masked step the emitted output repeats the previous one.
    d_later = zeros if return_sequences else np.asarray(d_output, dtype=zeros.dtype)
    d_xw = None
    d_hidden = np.empty((timesteps,) + zeros.shape, dtype=zeros.dtype)
    for k in range(timesteps - 1, -1, -1):  # processing order, last step first
        t = timesteps - 1 - k if go_backwards else k
        d_out = d_output[:, k] + d_later if return_sequences else d_later
        d_carried = None
        if mask is not None:
            keep = mask[:, t][:, None]
            # output_k = output of the cell where keep, else output_{k-1} (zeros at the first
            # step or with zero_output_for_mask); state_k = new state where keep, else state_{k-1}.
            d_later = zeros if (k == 0 or zero_output_for_mask) else np.where(keep, 0, d_out)
            d_out = np.where(keep, d_out, 0)
            d_carried = [np.where(keep, 0, d) for d in d_states]
            d_states = [np.where(keep, d, 0) for d in d_states]
        else:
            d_later = zeros
        d_states[0] += d_out  # a fresh array: copied above, or made by the step or np.where
        d_hidden[k] = d_states[0]
        d_xw_t, d_states = step_backward(tape[k], d_states)
        if d_carried is not None:
            d_states = [d + carried for d, carried in zip(d_states, d_carried)]
        if d_xw is None:
            d_xw = np.empty((timesteps,) + d_xw_t.shape, dtype=d_xw_t.dtype)
        d_xw[t] = d_xw_t
    return d_xw, d_states, d_hidden


def _upstream(d_output, d_states, *, x_tm, units, n_states, return_sequences, return_state):
    """Check and cast the upstream gradients; missing state gradients are zeros."""
    batch, timesteps = x_tm.shape[1], x_tm.shape[0]
    shape = (batch, timesteps, units) if return_sequences else (batch, units)
    d_output = np.asarray(d_output, dtype=x_tm.dtype)
    if d_output.shape != shape:
        raise ValueError(f"d_output must have the output's shape {shape}, got {d_output.shape}")
    if d_states is None:
        return d_output, [np.zeros((batch, units), dtype=x_tm.dtype) for _ in range(n_states)]
    if not return_state:
        raise ValueError("d_states needs return_state=True (only returned states have an upstream gradient)")
    if len(d_states) != n_states:
        raise ValueError(f"d_states needs {n_states} array(s), got {len(d_states)}")
    d_states = [np.asarray(d, dtype=x_tm.dtype) for d in d_states]
    for d in d_states:
        if d.shape != (batch, units):
            raise ValueError(f"each of d_states must be {(batch, units)}, got {d.shape}")
    return d_output, d_states


# --------------------------------------------------------------------------
# One step backward, per cell. ``step`` is the forward step, returning what the
# backward step needs as a third value; ``step_backward`` adds this step's share
# of the recurrent weights' gradients to ``self.d_recurrent_kernel``.
# --------------------------------------------------------------------------


class _SimpleRNNStep:
    """``h_t = φ(z)``, ``z = xw_t + h_{t-1}·U``."""

    n_states = 1

    def __init__(self, U, b, *, activation="tanh"):
        self.U, self.input_bias = U, b
        self.phi, self.phi_grad = get_activation(activation), get_activation_gradient(activation)

    def step(self, xw_t, states):
        (h,) = states
        z = xw_t + h @ self.U
        h_new = self.phi(z)
        return h_new, [h_new], (h, z, h_new)

    def start_backward(self):
        self.d_recurrent_kernel = np.zeros_like(self.U)

    def step_backward(self, cache, d_states):
        h, z, h_new = cache
        (d_h_new,) = d_states
        dz = self.phi_grad(z, h_new, d_h_new)  # dL/dz = dL/dh_t · φ'(z)
        self.d_recurrent_kernel += h.T @ dz  # dL/dU += h_{t-1}ᵀ · dz
        return dz, [dz @ self.U.T]  # dL/dh_{t-1} = dz · Uᵀ

    def bias_gradient(self, d_input_bias):
        return d_input_bias


class _LSTMStep:
    """``z = xw_t + h_{t-1}·U``; ``i, f, o = σ(z_i, z_f, z_o)``; ``g = φ(z_c)``;
    ``c_t = f·c_{t-1} + i·g``; ``h_t = o·φ(c_t)``."""

    n_states = 2

    def __init__(self, U, b, *, activation="tanh", recurrent_activation="sigmoid"):
        self.U, self.input_bias, self.m = U, b, U.shape[0]
        self.phi, self.phi_grad = get_activation(activation), get_activation_gradient(activation)
        self.sigma = get_activation(recurrent_activation)
        self.sigma_grad = get_activation_gradient(recurrent_activation)

    def step(self, xw_t, states):
        h, c = states
        m = self.m
        z = xw_t + h @ self.U
        i, f = self.sigma(z[:, :m]), self.sigma(z[:, m : 2 * m])
        g, o = self.phi(z[:, 2 * m : 3 * m]), self.sigma(z[:, 3 * m :])
        c_new = f * c + i * g
        phi_c = self.phi(c_new)
        h_new = o * phi_c
        return h_new, [h_new, c_new], (h, c, z, i, f, g, o, c_new, phi_c)

    def start_backward(self):
        self.d_recurrent_kernel = np.zeros_like(self.U)

    def step_backward(self, cache, d_states):
        h, c, z, i, f, g, o, c_new, phi_c = cache
        d_h, d_c = d_states
        m = self.m
        d_o = d_h * phi_c  # h_t = o·φ(c_t)
        d_c = d_c + self.phi_grad(c_new, phi_c, d_h * o)  # c_t reaches L directly and through h_t
        dz = np.empty_like(z)
        dz[:, :m] = self.sigma_grad(z[:, :m], i, d_c * g)  # c_t = f·c_{t-1} + i·g
        dz[:, m : 2 * m] = self.sigma_grad(z[:, m : 2 * m], f, d_c * c)
        dz[:, 2 * m : 3 * m] = self.phi_grad(z[:, 2 * m : 3 * m], g, d_c * i)
        dz[:, 3 * m :] = self.sigma_grad(z[:, 3 * m :], o, d_o)
        self.d_recurrent_kernel += h.T @ dz
        return dz, [dz @ self.U.T, d_c * f]  # dL/dh_{t-1}, dL/dc_{t-1}

    def bias_gradient(self, d_input_bias):
        return d_input_bias


class _GRUStep:
    """Both GRU forms (see :func:`gru`); ``h_t = z·h_{t-1} + (1 - z)·ĥ``."""

    n_states = 1

    def __init__(self, U, b, *, activation="tanh", recurrent_activation="sigmoid", reset_after=True):
        m = U.shape[0]
        if b is not None:
            if reset_after and b.shape != (2, 3 * m):
                raise ValueError(f"GRU with reset_after needs bias (2, {3 * m}), got {b.shape}")
            if not reset_after and b.shape != (3 * m,):
                raise ValueError(f"GRU without reset_after needs bias ({3 * m},), got {b.shape}")
        self.U, self.m, self.reset_after, self.has_bias = U, m, reset_after, b is not None
        self.input_bias = None if b is None else (b[0] if reset_after else b)
        self.recurrent_bias = b[1] if (b is not None and reset_after) else None
        self.phi, self.phi_grad = get_activation(activation), get_activation_gradient(activation)
        self.sigma = get_activation(recurrent_activation)
        self.sigma_grad = get_activation_gradient(recurrent_activation)

    def step(self, xw_t, states):
        (h,) = states
        m = self.m
        if self.reset_after:  # mh = h·U + b[1]; ĥ = φ(mx_h + r·mh_h)
            mh = h @ self.U
            if self.recurrent_bias is not None:
                mh += self.recurrent_bias
            a_zr = xw_t[:, : 2 * m] + mh[:, : 2 * m]
            zr = self._gates(a_zr)
            a_h = xw_t[:, 2 * m :] + zr[:, m:] * mh[:, 2 * m :]
        else:  # ĥ = φ(mx_h + (r·h)·U_h)
            mh = None
            a_zr = xw_t[:, : 2 * m] + h @ self.U[:, : 2 * m]
            zr = self._gates(a_zr)
            a_h = xw_t[:, 2 * m :] + (zr[:, m:] * h) @ self.U[:, 2 * m :]
        z = zr[:, :m]
        hh = self.phi(a_h)
        h_new = z * h + (1 - z) * hh
        return h_new, [h_new], (h, mh, a_zr, zr, a_h, hh)

    def _gates(self, a_zr):
        """``[σ(a_z), σ(a_r)]``: the recurrent activation applied to each gate, as Keras calls it."""
        m = self.m
        return np.concatenate([self.sigma(a_zr[:, :m]), self.sigma(a_zr[:, m:])], axis=1)

    def _gates_gradient(self, a_zr, zr, d_zr):
        m = self.m
        return np.concatenate(
            [
                self.sigma_grad(a_zr[:, :m], zr[:, :m], d_zr[:, :m]),
                self.sigma_grad(a_zr[:, m:], zr[:, m:], d_zr[:, m:]),
            ],
            axis=1,
        )

    def start_backward(self):
        self.d_recurrent_kernel = np.zeros_like(self.U)
        self.d_recurrent_bias = np.zeros(self.U.shape[1], dtype=self.U.dtype)  # b[1] with reset_after

    def step_backward(self, cache, d_states):
        h, mh, a_zr, zr, a_h, hh = cache
        (d_h,) = d_states
        m, U = self.m, self.U
        z, r = zr[:, :m], zr[:, m:]
        d_a_h = self.phi_grad(a_h, hh, d_h * (1 - z))  # h_t = z·h + (1 - z)·ĥ
        d_zr = np.empty_like(zr)
        d_zr[:, :m] = d_h * (h - hh)
        d_h_prev = d_h * z
        d_xw = np.empty((h.shape[0], 3 * m), dtype=h.dtype)
        d_xw[:, 2 * m :] = d_a_h
        if self.reset_after:
            d_zr[:, m:] = d_a_h * mh[:, 2 * m :]  # a_h = mx_h + r·mh_h
            d_xw[:, : 2 * m] = self._gates_gradient(a_zr, zr, d_zr)
            d_mh = d_xw.copy()  # a_zr = mx_zr + mh_zr: both receive d_a_zr
            d_mh[:, 2 * m :] = d_a_h * r
            self.d_recurrent_kernel += h.T @ d_mh
            self.d_recurrent_bias += d_mh.sum(axis=0)
            d_h_prev += d_mh @ U.T
        else:
            U_zr, U_h = U[:, : 2 * m], U[:, 2 * m :]
            self.d_recurrent_kernel[:, 2 * m :] += (r * h).T @ d_a_h  # a_h = mx_h + (r·h)·U_h
            d_rh = d_a_h @ U_h.T
            d_zr[:, m:] = d_rh * h
            d_h_prev += d_rh * r
            d_a_zr = self._gates_gradient(a_zr, zr, d_zr)  # a_zr = mx_zr + h·U_zr
            self.d_recurrent_kernel[:, : 2 * m] += h.T @ d_a_zr
            d_h_prev += d_a_zr @ U_zr.T
            d_xw[:, : 2 * m] = d_a_zr
        return d_xw, [d_h_prev]

    def bias_gradient(self, d_input_bias):
        if not self.has_bias or not self.reset_after:
            return d_input_bias
        return np.stack([d_input_bias, self.d_recurrent_bias])  # the (2, 3M) layout


# --------------------------------------------------------------------------
# Forward once, backward on demand: the vector-Jacobian product of a layer.
# --------------------------------------------------------------------------


def vjp(
    layer: Callable,
    x,
    kernel,
    recurrent_kernel,
    bias=None,
    *,
    return_sequences=False,
    return_state=False,
    go_backwards=False,
    mask=None,
    initial_state=None,
    zero_output_for_mask=False,
    dtype=np.float64,
    **cell_options,
):
    """Run a recurrent layer forward once, keeping what its backward pass needs.

    Args:
        layer: :func:`simple_rnn`, :func:`lstm` or :func:`gru`.
        x, kernel, recurrent_kernel, bias and the keyword options: as for ``layer``
            (``cell_options``: activation, recurrent_activation, reset_after).
        dtype: the computation dtype, float64 unless float32 is asked for.

    Returns:
        ``(result, backward)``: ``result`` is what ``layer`` returns (in ``dtype``);
        ``backward(d_output, d_states=None)`` returns the gradients as
        :func:`simple_rnn_backward` describes. A stack or a Bidirectional wrapper
        uses this to run each layer forward only once.
    """
    try:
        step_class = _STEPS[layer]
    except (KeyError, TypeError):
        raise ValueError("layer must be simple_rnn, lstm or gru") from None
    dtype = np.dtype(dtype)
    if not np.issubdtype(dtype, np.floating):
        raise ValueError(f"dtype must be a floating type, got {dtype}")
    n_states = step_class.n_states
    x_tm, W, U, b, mask, states = _prepare(
        np.asarray(x, dtype=dtype), kernel, recurrent_kernel, bias, mask, initial_state, n_states
    )
    cell = step_class(U, b, **cell_options)
    tape = []

    def step(xw_t, states):
        output, new_states, cache = cell.step(xw_t, states)
        tape.append(cache)
        return output, new_states

    outputs, final_states = recurrent(
        step,
        x_tm,
        _projector(W, cell.input_bias),
        states,
        return_sequences=return_sequences,
        go_backwards=go_backwards,
        mask=mask,
        zero_output_for_mask=zero_output_for_mask,
    )

    def backward(d_output, d_states=None):
        d_output, d_states = _upstream(
            d_output,
            d_states,
            x_tm=x_tm,
            units=U.shape[0],
            n_states=n_states,
            return_sequences=return_sequences,
            return_state=return_state,
        )
        cell.start_backward()
        timesteps, batch, features = x_tm.shape
        if not tape:  # no timesteps: nothing reaches the weights
            d_xw, d_initial, d_hidden = (
                np.zeros((0, batch, W.shape[1]), dtype),
                d_states,
                np.zeros((0, batch, U.shape[0]), dtype),
            )
        else:
            d_xw, d_initial, d_hidden = recurrent_backward(
                cell.step_backward,
                tape,
                d_output,
                d_states,
                return_sequences=return_sequences,
                go_backwards=go_backwards,
                mask=mask,
                zero_output_for_mask=zero_output_for_mask,
            )
        # xw = x·W + b for every step at once: (T·N, D) and (T·N, G·M), as the forward projects.
        d_xw_2d = d_xw.reshape(timesteps * batch, W.shape[1])
        d_x = (d_xw_2d @ W.T).reshape(timesteps, batch, features).transpose(1, 0, 2)
        d_input_bias = None if cell.input_bias is None else d_xw_2d.sum(axis=0)
        return {
            "x": np.ascontiguousarray(d_x),
            "kernel": x_tm.reshape(timesteps * batch, features).T @ d_xw_2d,
            "recurrent_kernel": cell.d_recurrent_kernel,
            "bias": cell.bias_gradient(d_input_bias),
            "initial_state": d_initial,
            "dh": d_hidden.transpose(1, 0, 2),  # a batch-major view of the time-major array
        }

    return _finish(outputs, final_states, return_state), backward


_STEPS = {simple_rnn: _SimpleRNNStep, lstm: _LSTMStep, gru: _GRUStep}


# --------------------------------------------------------------------------
# The public backward functions.
# --------------------------------------------------------------------------


def simple_rnn_backward(
    x,
    kernel,
    recurrent_kernel,
    bias,
    d_output,
    *,
    activation="tanh",
    return_sequences=False,
    return_state=False,
    go_backwards=False,
    mask=None,
    initial_state=None,
    zero_output_for_mask=False,
    d_states=None,
    dtype=np.float64,
):
    """The gradients of :func:`simple_rnn` by backpropagation through time.

    Args:
        x, kernel, recurrent_kernel, bias and the keyword options: as for :func:`simple_rnn`.
        d_output: ``dL/d output``, the forward output's shape: ``(batch, units)``, or
            ``(batch, timesteps, units)`` with ``return_sequences`` (processing order).
        d_states: with ``return_state``, ``[dL/dh_final]``; None means zeros.
        dtype: the computation dtype, float64 unless float32 is asked for.

    Returns:
        a dict of ``dL/d…``: ``"x"`` ``(batch, timesteps, features)``, ``"kernel"``,
        ``"recurrent_kernel"``, ``"bias"`` (None without bias) and ``"initial_state"``
        (``[dL/dh_0]``, also when the initial state was the default zeros); and ``"dh"``,
        ``(batch, timesteps, units)`` in processing order: ``dL/dh_t``, the gradient reaching
        the hidden state the cell computed at step t (all of it, through every later step;
        zero at a masked step, whose computed state is discarded).

    Per step (processing order, last first), with ``dh`` the gradient reaching ``h_t``::

        dz = dh · φ'(z_t);   dU += h_{t-1}ᵀ·dz;   dh_{t-1} = dz·Uᵀ (+ step t-1's output gradient)
        then for all steps at once:   dW = Σ x_tᵀ·dz_t;   db = Σ dz_t;   dx_t = dz_t·Wᵀ
    """
    _, backward = vjp(
        simple_rnn,
        x,
        kernel,
        recurrent_kernel,
        bias,
        activation=activation,
        return_sequences=return_sequences,
        return_state=return_state,
        go_backwards=go_backwards,
        mask=mask,
        initial_state=initial_state,
        zero_output_for_mask=zero_output_for_mask,
        dtype=dtype,
    )
    return backward(d_output, d_states)


def lstm_backward(
    x,
    kernel,
    recurrent_kernel,
    bias,
    d_output,
    *,
    activation="tanh",
    recurrent_activation="sigmoid",
    return_sequences=False,
    return_state=False,
    go_backwards=False,
    mask=None,
    initial_state=None,
    zero_output_for_mask=False,
    d_states=None,
    dtype=np.float64,
):
    """The gradients of :func:`lstm` by backpropagation through time.

    Arguments and result as for :func:`simple_rnn_backward`; ``d_states`` is
    ``[dL/dh_final, dL/dc_final]`` and ``"initial_state"`` is ``[dL/dh_0, dL/dc_0]``.

    Per step, with ``dh``, ``dc`` the gradients reaching ``h_t``, ``c_t``::

        do = dh·φ(c_t);   dc += dh·o·φ'(c_t)
        di = dc·g;   df = dc·c_{t-1};   dg = dc·i;   dc_{t-1} = dc·f
        dz = [di·σ'(z_i), df·σ'(z_f), dg·φ'(z_c), do·σ'(z_o)]
        dU += h_{t-1}ᵀ·dz;   dh_{t-1} = dz·Uᵀ;   dW, db, dx as for SimpleRNN
    """
    _, backward = vjp(
        lstm,
        x,
        kernel,
        recurrent_kernel,
        bias,
        activation=activation,
        recurrent_activation=recurrent_activation,
        return_sequences=return_sequences,
        return_state=return_state,
        go_backwards=go_backwards,
        mask=mask,
        initial_state=initial_state,
        zero_output_for_mask=zero_output_for_mask,
        dtype=dtype,
    )
    return backward(d_output, d_states)


def gru_backward(
    x,
    kernel,
    recurrent_kernel,
    bias,
    d_output,
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
    d_states=None,
    dtype=np.float64,
):
    """The gradients of :func:`gru` by backpropagation through time.

    Arguments and result as for :func:`simple_rnn_backward`; with ``reset_after``
    ``"bias"`` has the ``(2, 3 * units)`` layout (row 0 the input bias, row 1 the
    recurrent bias).

    Per step, with ``dh`` the gradient reaching ``h_t``::

        dz = dh·(h_{t-1} - ĥ);   dĥ = dh·(1 - z);   dh_{t-1} = dh·z + …
        da_h = dĥ·φ'(a_h)                                (a_h: ĥ's pre-activation)
        reset_after:  dr = da_h·mh_h;   dmh = [da_zr, da_h·r];   dU += h_{t-1}ᵀ·dmh;  db[1] += Σ dmh
        reset_before: dU_h += (r·h_{t-1})ᵀ·da_h;  dr = (da_h·U_hᵀ)·h_{t-1};  dU_zr += h_{t-1}ᵀ·da_zr
        da_zr = [dz, dr]·σ'(a_zr);   dx_t, dW, db[0] from [da_zr, da_h]
    """
    _, backward = vjp(
        gru,
        x,
        kernel,
        recurrent_kernel,
        bias,
        activation=activation,
        recurrent_activation=recurrent_activation,
        reset_after=reset_after,
        return_sequences=return_sequences,
        return_state=return_state,
        go_backwards=go_backwards,
        mask=mask,
        initial_state=initial_state,
        zero_output_for_mask=zero_output_for_mask,
        dtype=dtype,
    )
    return backward(d_output, d_states)


#: The backward function of each layer function.
BACKWARD = {simple_rnn: simple_rnn_backward, lstm: lstm_backward, gru: gru_backward}


def bidirectional_vjp(
    layer: Callable,
    x,
    forward_weights: Sequence,
    backward_weights: Sequence,
    *,
    merge_mode: str | None = "concat",
    return_sequences: bool = False,
    return_state: bool = False,
    mask=None,
    initial_state=None,
    dtype=np.float64,
    **layer_kwargs,
):
    """:func:`bidirectional` run once, with its backward pass: ``(result, backward)``.

    ``backward(d_output, d_states=None)`` returns the gradients as
    :func:`bidirectional_backward` describes.
    """
    if merge_mode not in MERGE_MODES:
        raise ValueError(f"merge_mode must be one of {MERGE_MODES}, got {merge_mode!r}")
    if initial_state is not None:
        half = len(initial_state) // 2
        fwd_state, bwd_state = list(initial_state[:half]), list(initial_state[half:])
    else:
        fwd_state = bwd_state = None
    common = dict(
        layer_kwargs,
        return_sequences=return_sequences,
        return_state=True,
        mask=mask,
        zero_output_for_mask=return_sequences,
        dtype=dtype,
    )
    (y, *fwd_states), fwd_backward = vjp(layer, x, *forward_weights, initial_state=fwd_state, **common)
    (y_rev, *bwd_states), bwd_backward = vjp(
        layer, x, *backward_weights, initial_state=bwd_state, go_backwards=True, **common
    )
    if return_sequences:
        y_rev = y_rev[:, ::-1]  # input order
    if merge_mode == "concat":
        output = np.concatenate([y, y_rev], axis=-1)
    elif merge_mode == "sum":
        output = y + y_rev
    elif merge_mode == "ave":
        output = (y + y_rev) / 2
    elif merge_mode == "mul":
        output = y * y_rev
    else:
        output = [y, np.ascontiguousarray(y_rev)]

    def backward(d_output, d_states=None):
        # The gradients of the two directions' outputs, both in input order.
        if merge_mode is None:
            d_y, d_y_rev = (np.asarray(d, dtype=dtype) for d in d_output)
        else:
            d_output = np.asarray(d_output, dtype=dtype)
            if merge_mode == "concat":
                d_y, d_y_rev = d_output[..., : y.shape[-1]], d_output[..., y.shape[-1] :]
            elif merge_mode == "sum":
                d_y = d_y_rev = d_output
            elif merge_mode == "ave":
                d_y = d_y_rev = d_output / 2
            else:  # mul: each direction's gradient is scaled by the other direction's output
                d_y, d_y_rev = d_output * y_rev, d_output * y
        if return_sequences:
            d_y_rev = d_y_rev[:, ::-1]  # the backward layer's processing order
        if d_states is None:
            fwd_d = [np.zeros_like(s) for s in fwd_states]
            bwd_d = [np.zeros_like(s) for s in bwd_states]
        elif not return_state:
            raise ValueError("d_states needs return_state=True (only returned states have an upstream gradient)")
        else:
            half = len(d_states) // 2
            fwd_d, bwd_d = list(d_states[:half]), list(d_states[half:])
        fwd = fwd_backward(d_y, fwd_d)
        bwd = bwd_backward(d_y_rev, bwd_d)
        return {
            "x": fwd["x"] + bwd["x"],
            "forward": fwd,
            "backward": bwd,
            "initial_state": [*fwd["initial_state"], *bwd["initial_state"]],
        }

    result = (output, *fwd_states, *bwd_states) if return_state else output
    return result, backward


def bidirectional_backward(
    layer: Callable,
    x,
    forward_weights: Sequence,
    backward_weights: Sequence,
    d_output,
    *,
    merge_mode: str | None = "concat",
    return_sequences: bool = False,
    return_state: bool = False,
    mask=None,
    initial_state=None,
    d_states=None,
    dtype=np.float64,
    **layer_kwargs,
):
    """The gradients of :func:`bidirectional`.

    Args:
        layer, x, forward_weights, backward_weights and the keyword options: as for
            :func:`bidirectional`.
        d_output: the merged output's gradient (a list of two with ``merge_mode=None``).
        d_states: with ``return_state``, the forward states' gradients then the backward's.
        dtype: float64 unless float32 is asked for.

    Returns:
        ``{"x": dL/dx, "forward": {...}, "backward": {...}, "initial_state": [...]}``:
        ``"forward"`` and ``"backward"`` are each direction's gradients as
        :func:`simple_rnn_backward` describes them; ``"initial_state"`` lists the
        forward states' gradients then the backward's. Merges: ``concat`` splits the
        gradient, ``sum`` passes it to both, ``ave`` halves it, ``mul`` scales each
        by the other direction's output.
    """
    _, backward = bidirectional_vjp(
        layer,
        x,
        forward_weights,
        backward_weights,
        merge_mode=merge_mode,
        return_sequences=return_sequences,
        return_state=return_state,
        mask=mask,
        initial_state=initial_state,
        dtype=dtype,
        **layer_kwargs,
    )
    return backward(d_output, d_states)


def dense_backward(x, kernel, bias, d_output, *, activation=None, dtype=np.float64):
    """The gradients of :func:`dense`.

    Args:
        x: ``(..., M)``; kernel: ``(M, K)``; bias: ``(K,)`` or None.
        d_output: ``dL/dy``, ``(..., K)``.
        activation: as for :func:`dense`; dtype: float64 unless float32 is asked for.

    Returns:
        ``{"x": (..., M), "kernel": (M, K), "bias": (K,) or None}``::

            dz = dy·act'(z);   dx = dz·Wᵀ;   dW = Σ xᵀ·dz;   db = Σ dz
    """
    x = np.asarray(x, dtype=dtype)
    W = np.asarray(kernel, dtype=dtype)
    z = x @ W
    if bias is not None:
        z += np.asarray(bias, dtype=dtype)
    y = get_activation(activation)(z)
    d_output = np.asarray(d_output, dtype=dtype)
    if d_output.shape != y.shape:
        raise ValueError(f"d_output must have the output's shape {y.shape}, got {d_output.shape}")
    dz = get_activation_gradient(activation)(z, y, d_output)
    dz_2d, x_2d = dz.reshape(-1, W.shape[1]), x.reshape(-1, W.shape[0])
    return {"x": dz @ W.T, "kernel": x_2d.T @ dz_2d, "bias": None if bias is None else dz_2d.sum(axis=0)}
