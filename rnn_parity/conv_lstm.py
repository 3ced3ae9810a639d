"""Keras's ``ConvLSTM1D``, ``ConvLSTM2D`` and ``ConvLSTM3D`` in NumPy, at inference.

A ConvLSTM is an LSTM whose two matrix products are convolutions: the input is a
sequence of ``rank``-dimensional grids (a line, an image, a volume) with channels,
and the states ``h`` and ``c`` are grids of ``filters`` channels. With ``∗`` for a
convolution (Keras's ``ConvLSTMCell.call``, ``keras/src/layers/rnn/conv_lstm.py``)::

    z  = x_t ∗ W + b + h_{t-1} ⊛ U,   split on the channel axis into z_i, z_f, z_c, z_o
    i  = σ(z_i);  f = σ(z_f);  o = σ(z_o)
    c_t = f * c_{t-1} + i * φ(z_c)
    h_t = o * φ(c_t)

``x_t ∗ W`` is the layer's convolution (its ``strides``, ``padding`` and
``dilation_rate``); ``h ⊛ U`` is always ``"same"``-padded with stride 1 and no
dilation, so ``h`` keeps the grid size of ``x_t ∗ W``. Layouts are Keras's
(``channels_last``):

* ``x``: ``(batch, timesteps, *spatial, channels)``;
* ``kernel``: ``(*kernel_size, channels, 4 * filters)``;
* ``recurrent_kernel``: ``(*kernel_size, filters, 4 * filters)``;
* ``bias``: ``(4 * filters,)``; the last axis of all three holds the gate blocks
  i, f, c, o in that order;
* ``h``, ``c`` and each step's output: ``(batch, *out_spatial, filters)``.

The sequence semantics (masks, ``go_backwards``, ``initial_state``, the return
options) are those of every other recurrent layer: this module supplies the step and
the input projection and runs them in :func:`rnn_parity.reference.recurrent`. What
Keras does that this reproduces, and what it refuses, is in docs/reference-semantics.md,
"ConvLSTM1D, ConvLSTM2D and ConvLSTM3D".

Computation happens in the dtype of ``x`` (weights are cast to it). NumPy only, with
:mod:`rnn_parity.reference` for the activations and the sequence loop, and
:mod:`rnn_parity.errors` for the exceptions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .errors import InvalidInput, Unsupported
from .reference import UnsupportedActivation, get_activation, recurrent

__all__ = ["DATA_FORMATS", "PADDINGS", "conv_lstm", "conv_output_shape", "convolution"]

PADDINGS = ("valid", "same")
DATA_FORMATS = ("channels_last", "channels_first")


# --------------------------------------------------------------------------
# The convolution, for any number of spatial dimensions.
# --------------------------------------------------------------------------


def _tuple(value, rank: int, name: str) -> tuple[int, ...]:
    """An int or ``rank`` ints, each ≥ 1, as a tuple (Keras's ``standardize_tuple``)."""
    values = (value,) * rank if isinstance(value, (int, np.integer)) else tuple(value)
    if len(values) != rank or any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) for v in values):
        raise InvalidInput(f"{name} must be an integer or {rank} integers. Received: {name}={value!r}")
    if min(values) < 1:
        raise InvalidInput(f"{name} must be positive. Received: {name}={value!r}")
    return tuple(int(v) for v in values)


def _same_or_valid(padding) -> str:
    mode = padding.lower() if isinstance(padding, str) else padding
    if mode not in PADDINGS:
        raise InvalidInput(f"padding must be one of {PADDINGS}. Received: padding={padding!r}")
    return mode


def _pads(size: int, kernel: int, stride: int, padding: str, dilation: int) -> tuple[int, int, int]:
    """``(before, after, out_size)`` on one axis, as TensorFlow pads ``VALID`` and ``SAME``.

    The window spans ``d·(k−1) + 1`` positions; ``"same"`` gives ``ceil(size / s)`` outputs
    and puts the odd padding position after.
    """
    span = dilation * (kernel - 1) + 1
    if padding == "same":
        total = max((math.ceil(size / stride) - 1) * stride + span - size, 0)
        before, after = total // 2, total - total // 2
    else:
        before, after = 0, 0
    return before, after, max((size + before + after - span) // stride + 1, 0)


def conv_output_shape(spatial, kernel_size, *, strides=1, padding="valid", dilation_rate=1) -> tuple[int, ...]:
    """The grid size of a convolution's output, axis by axis.

    ``ceil(n / s)`` with ``"same"``, ``⌊(n − d·(k−1) − 1) / s⌋ + 1`` with ``"valid"`` (0 when
    the window does not fit).

    Args:
        spatial: the input's grid size, ``rank`` ints.
        kernel_size, strides, dilation_rate: an int or ``rank`` ints each.
        padding: ``"valid"`` or ``"same"``.
    """
    rank = len(spatial)
    axes = zip(
        spatial,
        _tuple(kernel_size, rank, "kernel_size"),
        _tuple(strides, rank, "strides"),
        _tuple(dilation_rate, rank, "dilation_rate"),
        strict=True,
    )
    padding = _same_or_valid(padding)
    return tuple(_pads(n, k, s, padding, d)[2] for n, k, s, d in axes)


def _correlate(x_padded: np.ndarray, kernel: np.ndarray, strides, dilation_rate, out_spatial) -> np.ndarray:
    """``y[n, p, :] = Σ_j x_padded[n, p·s + j·d, :] · kernel[j]`` over the output positions p and kernel taps j.

    The "valid" convolution of an input that is already padded: ``x_padded``
    ``(batch, *spatial, channels)``, ``kernel`` ``(*kernel_size, channels, out)``; returns
    ``(batch, *out_spatial, out)``.
    """
    rank = kernel.ndim - 2
    spans = [d * (k - 1) + 1 for k, d in zip(kernel.shape[:rank], dilation_rate, strict=True)]
    # Every window of every position: (batch, *positions, channels, *spans), a view.
    windows = sliding_window_view(x_padded, spans, axis=tuple(range(1, rank + 1)))
    every_stride = tuple(slice(0, (o - 1) * s + 1, s) for o, s in zip(out_spatial, strides, strict=True))
    every_tap = tuple(slice(None, None, d) for d in dilation_rate)
    windows = windows[(slice(None), *every_stride, slice(None), *every_tap)]  # (batch, *out_spatial, channels, *k)
    windows = np.moveaxis(windows, rank + 1, -1)  # (batch, *out_spatial, *k, channels): the kernel's order
    return np.tensordot(windows, kernel, axes=rank + 1)  # Σ over the taps and the channels


def convolution(x, kernel, *, strides=1, padding="valid", dilation_rate=1) -> np.ndarray:
    """Keras's ``ops.conv`` (``channels_last``) for 1, 2 or 3 spatial dimensions, without bias.

    ``y[n, p, :] = Σ_j x_pad[n, p·s + j·d, :] · kernel[j]``, with ``j`` running over the
    kernel's taps and ``x_pad`` the input padded as TensorFlow pads ``VALID`` (not at all)
    or ``SAME`` (``ceil(n / s)`` outputs, the odd padding position at the end).

    Args:
        x: ``(batch, *spatial, channels)``.
        kernel: ``(*kernel_size, channels, out_channels)``.
        strides, dilation_rate: an int or ``rank`` ints (Keras refuses both above 1 at once).
        padding: ``"valid"`` or ``"same"``.

    Returns:
        ``(batch, *out_spatial, out_channels)``, in ``x``'s dtype when the kernel has it.
    """
    x, kernel = np.asarray(x), np.asarray(kernel)
    rank = kernel.ndim - 2
    if x.ndim != rank + 2 or x.shape[-1] != kernel.shape[-2]:
        raise InvalidInput(
            f"a {rank}-D convolution with kernel {kernel.shape} needs x (batch, *spatial, {kernel.shape[-2]}),"
            f" got {x.shape}"
        )
    strides, dilation_rate = _tuple(strides, rank, "strides"), _tuple(dilation_rate, rank, "dilation_rate")
    padding = _same_or_valid(padding)
    axes = zip(x.shape[1:-1], kernel.shape[:rank], strides, dilation_rate, strict=True)
    pads = [_pads(n, k, s, padding, d) for n, k, s, d in axes]
    out_spatial = tuple(out for _, _, out in pads)
    if 0 in out_spatial:
        raise InvalidInput(
            f"the convolution's output is empty: input grid {x.shape[1:-1]}, kernel {kernel.shape[:rank]},"
            f" strides {strides}, dilation_rate {dilation_rate}, padding {padding!r} (Keras refuses it too)"
        )
    x_padded = np.pad(x, [(0, 0), *((before, after) for before, after, _ in pads), (0, 0)])
    return _correlate(x_padded, kernel, strides, dilation_rate, out_spatial)


# --------------------------------------------------------------------------
# ConvLSTM
# --------------------------------------------------------------------------


def conv_lstm(
    x,
    kernel,
    recurrent_kernel,
    bias=None,
    *,
    rank: int | None = None,
    filters: int | None = None,
    kernel_size=None,
    strides=1,
    padding: str = "valid",
    data_format: str = "channels_last",
    dilation_rate=1,
    activation: str | None = "tanh",
    recurrent_activation: str | None = "sigmoid",
    use_bias: bool | None = None,
    return_sequences: bool = False,
    return_state: bool = False,
    go_backwards: bool = False,
    mask=None,
    initial_state: Sequence | None = None,
    zero_output_for_mask: bool = False,
):
    """Keras's ``ConvLSTM1D`` / ``ConvLSTM2D`` / ``ConvLSTM3D`` (the module docstring has the equations).

    The keyword arguments are the layers' ``get_config()`` keys and the weights are
    ``layer.get_weights()`` (``[kernel, recurrent_kernel, bias]``, or the first two with
    ``use_bias=False``), so a layer's saved description can be passed as it is. The keys
    that do not change the result at inference (initialisers, regularisers,
    constraints, ``unit_forget_bias``, ``dropout``, ``recurrent_dropout``, ``seed``,
    ``unroll``) are not arguments. ``stateful`` is the caller's: pass the previous
    call's final ``[h, c]`` as ``initial_state``.

    Args:
        x: ``(batch, timesteps, *spatial, channels)`` with ``channels_last``,
            ``(batch, timesteps, channels, *spatial)`` with ``channels_first``.
        kernel: ``W``, ``(*kernel_size, channels, 4 * filters)`` (either data format).
        recurrent_kernel: ``U``, ``(*kernel_size, filters, 4 * filters)``.
        bias: ``b``, ``(4 * filters,)``, or None for ``use_bias=False``.
        rank: 1, 2 or 3 (ConvLSTM1D/2D/3D); None: ``kernel.ndim - 2``. Checked when given,
            as are ``filters``, ``kernel_size`` and ``use_bias`` against the weights.
        strides: an int or ``rank`` ints (default 1), for ``x_t ∗ W`` only.
        padding: ``"valid"`` (default) or ``"same"``, for ``x_t ∗ W`` only.
        data_format: ``"channels_last"`` (default) or ``"channels_first"``.
        dilation_rate: an int or ``rank`` ints (default 1), for ``x_t ∗ W`` only; Keras
            refuses ``strides`` and ``dilation_rate`` both above 1, and so does this.
        activation: φ (default ``"tanh"``); recurrent_activation: σ (default ``"sigmoid"``);
            Keras activation names, None meaning linear.
        return_sequences, return_state, go_backwards, zero_output_for_mask: as in Keras
            (see :func:`rnn_parity.reference.recurrent`; a returned sequence is in
            processing order).
        mask: bool, True where a step is real: ``(batch, timesteps)`` masks whole steps (a
            mask passed to the layer by hand); ``(batch, timesteps, *out_spatial)`` masks
            grid positions (what a ``Masking`` layer gives a ``channels_last`` ConvLSTM with
            ``padding="same"`` and stride 1). Any leading part of ``(batch, timesteps,
            *out_spatial, filters)`` is accepted, as TensorFlow broadcasts it: a masked
            position keeps its state and repeats its previous output (zeros with
            ``zero_output_for_mask``).
        initial_state: ``[h, c]``, each ``(batch, *out_spatial, filters)``
            (``(batch, filters, *out_spatial)`` with ``channels_first``); None: zeros.

    Returns:
        ``(batch, *out_spatial, filters)``, the last output, or
        ``(batch, timesteps, *out_spatial, filters)`` with ``return_sequences``
        (``channels_first``: ``(batch, filters, *out_spatial)`` and
        ``(batch, timesteps, filters, *out_spatial)``); with ``return_state`` a tuple
        ``(output, h, c)``, ``h`` and ``c`` shaped as the last output. ``out_spatial`` is
        :func:`conv_output_shape` of the input grid.

    Raises:
        InvalidInput: shapes or options that do not fit together, or that Keras refuses.
        Unsupported: an activation the reference does not implement; a grid-position mask
            with ``channels_first``.
    """
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float64)
    dtype = x.dtype
    # C order: the recurrent kernel of an orthogonal initialiser can come Fortran-ordered.
    W = np.ascontiguousarray(kernel, dtype=dtype)
    U = np.ascontiguousarray(recurrent_kernel, dtype=dtype)
    b = None if bias is None else np.asarray(bias, dtype=dtype)

    rank = _check_rank(rank, W)
    if data_format not in DATA_FORMATS:
        raise InvalidInput(f"data_format must be one of {DATA_FORMATS}. Received: data_format={data_format!r}")
    channels_first = data_format == "channels_first"
    strides, dilation_rate = _tuple(strides, rank, "strides"), _tuple(dilation_rate, rank, "dilation_rate")
    if max(strides) > 1 and max(dilation_rate) > 1:
        raise InvalidInput(
            "Keras refuses strides > 1 with dilation_rate > 1."
            f" Received: strides={strides} and dilation_rate={dilation_rate}"
        )
    padding = _same_or_valid(padding)
    try:
        phi, sigma = get_activation(activation), get_activation(recurrent_activation)
    except UnsupportedActivation as exc:
        raise Unsupported(f"ConvLSTM: {exc}") from None

    if x.ndim != rank + 3:
        layout = "channels, *spatial" if channels_first else "*spatial, channels"
        raise InvalidInput(f"a rank-{rank} ConvLSTM takes x (batch, timesteps, {layout}), got shape {x.shape}")
    if channels_first:  # computed channels_last; converted back at the end
        x = np.moveaxis(x, 2, -1)
    batch, timesteps, *spatial, channels = x.shape
    m = _check_weights(W, U, b, channels, filters=filters, kernel_size=kernel_size, use_bias=use_bias)  # filters
    out_spatial = conv_output_shape(
        spatial, W.shape[:rank], strides=strides, padding=padding, dilation_rate=dilation_rate
    )
    if 0 in out_spatial:
        raise InvalidInput(
            f"the input convolution's output is empty: grid {tuple(spatial)}, kernel_size {W.shape[:rank]},"
            f" strides {strides}, dilation_rate {dilation_rate}, padding {padding!r} (Keras refuses it too)"
        )
    state_shape = (batch, *out_spatial, m)
    states = _initial_states(initial_state, state_shape, dtype, channels_first)
    mask = _check_mask(mask, (batch, timesteps, *out_spatial, m), channels_first)

    def project(x_block):  # x_t ∗ W + b for a block of steps (k, batch, *spatial, channels) at once
        steps = x_block.shape[0]
        xw = convolution(
            x_block.reshape(steps * batch, *spatial, channels),
            W,
            strides=strides,
            padding=padding,
            dilation_rate=dilation_rate,
        )
        if b is not None:
            xw += b
        return xw.reshape(steps, batch, *out_spatial, 4 * m)

    # h ⊛ U: "same" padding, stride 1, no dilation. Each step copies h into the middle of one
    # zero-padded buffer instead of padding it anew.
    pads = [_pads(n, k, 1, "same", 1)[:2] for n, k in zip(out_spatial, U.shape[:rank], strict=True)]
    h_padded = np.zeros((batch, *(n + sum(pad) for n, pad in zip(out_spatial, pads)), m), dtype)
    middle = (slice(None), *(slice(before, before + n) for n, (before, _) in zip(out_spatial, pads)), slice(None))
    ones = (1,) * rank

    def step(xw_t, states):  # xw_t = x_t ∗ W + b, (batch, *out_spatial, 4 * filters)
        h, c = states
        h_padded[middle] = h
        z = xw_t
        z += _correlate(h_padded, U, ones, ones, out_spatial)  # + h ⊛ U
        i = sigma(z[..., :m])
        f = sigma(z[..., m : 2 * m])
        g = phi(z[..., 2 * m : 3 * m])
        o = sigma(z[..., 3 * m :])
        c_new = f * c + i * g
        h_new = o * phi(c_new)
        return h_new, [h_new, c_new]

    x_tm = np.ascontiguousarray(np.swapaxes(x, 0, 1))  # time-major: each step's grids are contiguous
    outputs, (h, c) = recurrent(
        step,
        x_tm,
        project,
        states,
        return_sequences=return_sequences,
        go_backwards=go_backwards,
        mask=mask,
        zero_output_for_mask=zero_output_for_mask,
    )
    if channels_first:
        outputs = np.moveaxis(outputs, -1, 2 if return_sequences else 1)
        h, c = np.moveaxis(h, -1, 1), np.moveaxis(c, -1, 1)
    return (outputs, h, c) if return_state else outputs


def _check_rank(rank, kernel: np.ndarray) -> int:
    inferred = kernel.ndim - 2
    if inferred not in (1, 2, 3):
        raise InvalidInput(
            f"a ConvLSTM kernel is (*kernel_size, channels, 4 * filters) of rank 1 to 3, got {kernel.shape}"
        )
    if rank is not None and rank != inferred:
        raise InvalidInput(f"a rank-{rank} ConvLSTM needs a {rank + 2}-D kernel, got shape {kernel.shape}")
    return inferred


def _check_weights(W, U, b, channels: int, *, filters, kernel_size, use_bias) -> int:
    """The number of filters, once the weights are checked against each other and the config."""
    rank = W.ndim - 2
    if W.shape[-1] % 4:
        raise InvalidInput(f"kernel's last axis holds 4 gate blocks (i, f, c, o); got {W.shape[-1]} columns")
    m = W.shape[-1] // 4
    if W.shape[-2] != channels:
        raise InvalidInput(f"kernel {W.shape} reads {W.shape[-2]} channels but x has {channels}")
    if U.shape != (*W.shape[:rank], m, 4 * m):
        raise InvalidInput(
            f"recurrent_kernel must be {(*W.shape[:rank], m, 4 * m)} to go with kernel {W.shape}, got {U.shape}"
        )
    if b is not None and b.shape != (4 * m,):
        raise InvalidInput(f"bias must be ({4 * m},), got {b.shape}")
    if filters is not None and filters != m:
        raise InvalidInput(f"filters={filters} but the kernel has {4 * m} = 4 × {m} columns")
    if kernel_size is not None and _tuple(kernel_size, rank, "kernel_size") != W.shape[:rank]:
        raise InvalidInput(f"kernel_size={kernel_size!r} but the kernel is {W.shape}")
    if use_bias is not None and use_bias != (b is not None):
        raise InvalidInput(f"use_bias={use_bias} but bias is {'missing' if b is None else 'given'}")
    return m


def _initial_states(initial_state, state_shape, dtype, channels_first: bool) -> list[np.ndarray]:
    if initial_state is None:
        return [np.zeros(state_shape, dtype), np.zeros(state_shape, dtype)]
    if len(initial_state) != 2:
        raise InvalidInput(f"initial_state is [h, c], got {len(initial_state)} array(s)")
    states = [np.asarray(s, dtype=dtype) for s in initial_state]
    if channels_first:
        states = [np.moveaxis(s, 1, -1) if s.ndim > 1 else s for s in states]
    for name, s in zip("hc", states):
        if s.shape != state_shape:
            want = (state_shape[0], state_shape[-1], *state_shape[1:-1]) if channels_first else state_shape
            got = np.moveaxis(s, -1, 1).shape if channels_first and s.ndim > 1 else s.shape
            raise InvalidInput(f"initial_state {name} must be {want}, got {got}")
    return states


def _check_mask(mask, step_shape: tuple[int, ...], channels_first: bool):
    """A bool mask whose shape leads ``step_shape`` = ``(batch, timesteps, *out_spatial, filters)``."""
    if mask is None:
        return None
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim > 2 and channels_first:
        raise Unsupported(f"a mask of grid positions {mask.shape} with channels_first (only (batch, timesteps) is)")
    if not 2 <= mask.ndim <= len(step_shape) or mask.shape != step_shape[: mask.ndim]:
        raise InvalidInput(
            f"mask must be (batch, timesteps) = {step_shape[:2]}, or follow it with the output grid"
            f" {step_shape[2:-1]}; got {mask.shape}"
        )
    return mask
