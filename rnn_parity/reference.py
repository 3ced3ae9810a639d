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


_IN_PLACE = {
    "tanh": lambda x: np.tanh(x, out=x),
    "sigmoid": lambda x: _sigmoid(x, out=x),
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
            ``x_proj_t`` is ``(batch, G * units)``, which the step may overwrite.
            The arrays it returns must not be overwritten later.
        x_tm: ``(timesteps, batch, features)``, the input in time-major order.
        project: ``project(x_block) -> x_block · kernel + input bias``, applied to
            blocks of consecutive timesteps ``(k, batch, features)``: one GEMM per
            block instead of one per step.
        initial_state: list of ``(batch, units)`` states.
        return_sequences, go_backwards, mask, zero_output_for_mask: as in Keras.

    Returns:
        ``(outputs, final_states)``: ``outputs`` is ``(batch, timesteps, units)``
        in processing order when ``return_sequences``, else the last output
        ``(batch, units)``.
    """
    timesteps = x_tm.shape[0]
    states = [np.array(s, dtype=x_tm.dtype, copy=True) for s in initial_state]
    outputs = None
    prev_output = None
    k = 0  # position in processing order
    for t, x_proj_t in _projected_steps(x_tm, project, go_backwards):
        output, new_states = step(x_proj_t, states)
        if mask is not None:
            keep = mask[:, t][:, None]
            if prev_output is None or zero_output_for_mask:
                prev_output = np.zeros_like(output)
            output = np.where(keep, output, prev_output)
            new_states = [np.where(keep, new, old) for new, old in zip(new_states, states)]
        if return_sequences:
            if outputs is None:
                outputs = np.empty((timesteps,) + output.shape, dtype=output.dtype)
            outputs[k] = output
        prev_output = output
        states = new_states
        k += 1
    if return_sequences:
        if outputs is None:  # timesteps == 0
            outputs = np.empty((0,) + states[0].shape, dtype=x_tm.dtype)
        return np.ascontiguousarray(outputs.transpose(1, 0, 2)), states
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
    kernel = np.asarray(kernel, dtype=dtype)
    recurrent_kernel = np.asarray(recurrent_kernel, dtype=dtype)
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
    m = U.shape[0]
    hU = np.empty((x_tm.shape[1], U.shape[1]), dtype=x_tm.dtype)

    def step(xw_t, states):  # xw_t = x_t·W + b; the gate activations are computed in place in it
        h, c = states
        z = xw_t
        z += np.matmul(h, U, out=hU)
        i = sigma_(z[:, :m])
        f = sigma_(z[:, m : 2 * m])
        g = phi_(z[:, 2 * m : 3 * m])
        o = sigma_(z[:, 3 * m :])
        c_new = f * c
        c_new += i * g
        h_new = o * phi(c_new)
        return h_new, [h_new, c_new]

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
    phi_ = _in_place(activation)
    sigma_ = _in_place(recurrent_activation)
    x_tm, W, U, b, mask, states = _prepare(x, kernel, recurrent_kernel, bias, mask, initial_state, 1)
    m = U.shape[0]
    if b is not None:
        if reset_after and b.shape != (2, 3 * m):
            raise ValueError(f"GRU with reset_after needs bias (2, {3 * m}), got {b.shape}")
        if not reset_after and b.shape != (3 * m,):
            raise ValueError(f"GRU without reset_after needs bias ({3 * m},), got {b.shape}")
    b_x = None if b is None else (b[0] if reset_after else b)
    b_h = b[1] if (b is not None and reset_after) else None
    U_zr, U_h = U[:, : 2 * m], U[:, 2 * m :]

    n = x_tm.shape[1]
    hU = np.empty((n, 3 * m), dtype=x_tm.dtype)
    h_Uzr = np.empty((n, 2 * m), dtype=x_tm.dtype)
    rh_Uh = np.empty((n, m), dtype=x_tm.dtype)

    # mx = x_t·W + input bias for this step; the gates are computed in place in it.
    def step_reset_after(mx, states):
        (h,) = states
        mh = np.matmul(h, U, out=hU)
        if b_h is not None:
            mh += b_h
        zr = mx[:, : 2 * m]
        zr += mh[:, : 2 * m]
        zr = sigma_(zr)
        z, r = zr[:, :m], zr[:, m:]
        hh = mx[:, 2 * m :]
        hh += r * mh[:, 2 * m :]
        hh = phi_(hh)
        h_new = z * h + (1 - z) * hh
        return h_new, [h_new]

    def step_reset_before(mx, states):
        (h,) = states
        zr = mx[:, : 2 * m]
        zr += np.matmul(h, U_zr, out=h_Uzr)
        zr = sigma_(zr)
        z, r = zr[:, :m], zr[:, m:]
        hh = mx[:, 2 * m :]
        hh += np.matmul(r * h, U_h, out=rh_Uh)
        hh = phi_(hh)
        h_new = z * h + (1 - z) * hh
        return h_new, [h_new]

    outputs, states = recurrent(
        step_reset_after if reset_after else step_reset_before,
        x_tm,
        _projector(W, b_x),
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
    y = x @ np.asarray(kernel, dtype=x.dtype)
    if bias is not None:
        y += np.asarray(bias, dtype=x.dtype)
    return act(y)
