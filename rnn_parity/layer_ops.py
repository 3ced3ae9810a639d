"""NumPy forward passes of the layers that real sequence models put around recurrent layers.

Each function computes one Keras 3 layer at inference, in Keras's layouts and
with its config keys as keyword arguments, and is written as the layer's
equations. Mask rules follow Keras 3's ``Layer.__call__``: a layer that does
not support masking drops the mask (Conv1D, the pooling layers); a layer that
supports it and does not override ``compute_mask`` passes its input's mask on
unchanged (LayerNormalization, BatchNormalization); Attention returns the
query's mask. Each function's docstring says which rule applies; the
``*_mask`` functions compute the output mask where a layer has a rule of its
own (Masking, Embedding, the merging layers). The registry
(:mod:`rnn_parity.layers`) holds each layer's rule.

Shapes: ``x`` is ``(batch, steps, channels)`` (``channels_last``); a mask is
bool ``(batch, steps)``, True at real steps. Computation happens in ``x``'s
dtype, weights cast to it. Sources: ``keras/src/layers/convolutional``,
``pooling``, ``normalization``, ``attention``, ``core``, ``merging`` and
``keras/src/ops/nn.py`` of the installed Keras; padding as TensorFlow defines
``VALID`` and ``SAME``.

Only NumPy and :mod:`rnn_parity.reference` are imported.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from .reference import get_activation

__all__ = [
    "attention",
    "average_pooling1d",
    "batch_normalization",
    "concatenate",
    "concatenate_mask",
    "conv1d",
    "depthwise_conv1d",
    "cropping1d",
    "dot",
    "elu",
    "embedding",
    "flatten",
    "global_average_pooling1d",
    "global_max_pooling1d",
    "layer_normalization",
    "leaky_relu",
    "masking",
    "masking_mask",
    "max_pooling1d",
    "merge",
    "merge_mask",
    "multi_head_attention",
    "padding_1d",
    "permute",
    "prelu",
    "relu",
    "repeat_vector",
    "rescaling",
    "separable_conv1d",
    "reshape",
    "softmax",
    "unit_normalization",
    "upsampling1d",
    "zero_padding1d",
]

PADDINGS = ("valid", "same", "causal")


def _scalar(value: float, like: np.ndarray) -> np.ndarray:
    return np.asarray(value, dtype=like.dtype)


def padding_1d(steps: int, size: int, stride: int, padding: str, dilation: int = 1) -> tuple[int, int, int]:
    """``(pad_left, pad_right, output_steps)`` of a 1-D window.

    Args:
        steps: input length T.
        size: window (kernel or pool) size k.
        stride: s.
        padding: ``"valid"`` (no padding), ``"same"`` (TensorFlow's SAME:
            ``ceil(T / s)`` outputs, the extra padding on the right) or
            ``"causal"`` (``dilation·(k−1)`` zeros on the left, then valid).
        dilation: d; the window spans ``d·(k−1) + 1`` steps.
    """
    span = dilation * (size - 1) + 1
    if padding == "causal":
        left, right = span - 1, 0
    elif padding == "same":
        total = max((math.ceil(steps / stride) - 1) * stride + span - steps, 0)
        left, right = total // 2, total - total // 2
    elif padding == "valid":
        left, right = 0, 0
    else:
        raise ValueError(f"padding must be one of {PADDINGS}, got {padding!r}")
    out_steps = max((steps + left + right - span) // stride + 1, 0)
    return left, right, out_steps


def _taps(x_padded: np.ndarray, size: int, stride: int, dilation: int, out_steps: int) -> list[np.ndarray]:
    """The window's k taps: tap j is ``x[:, t·s + j·d]`` for every output step t."""
    return [x_padded[:, j * dilation : j * dilation + (out_steps - 1) * stride + 1 : stride] for j in range(size)]


# --------------------------------------------------------------------------
# Conv1D
# --------------------------------------------------------------------------


def conv1d(
    x,
    kernel,
    bias=None,
    *,
    strides: int = 1,
    padding: str = "valid",
    dilation_rate: int = 1,
    groups: int = 1,
    activation: str | None = None,
):
    """Keras's ``Conv1D`` (``channels_last``).

    ``y[:, t] = act(b + Σ_j x_pad[:, t·s + j·d] · W[j])``, where with ``groups``
    the channels split into ``groups`` equal blocks and block g of the output
    reads only block g of the input.

    Args:
        x: ``(batch, steps, in_channels)``.
        kernel: ``(kernel_size, in_channels // groups, filters)``.
        bias: ``(filters,)`` or None.
    Returns:
        ``(batch, out_steps, filters)``. The mask stops here (Conv1D does not support masking).
    """
    x = np.asarray(x)
    kernel = np.asarray(kernel, dtype=x.dtype)
    size, group_in, filters = kernel.shape
    group_out = filters // groups
    left, right, out_steps = padding_1d(x.shape[1], size, strides, padding, dilation_rate)
    x_padded = np.pad(x, ((0, 0), (left, right), (0, 0)))
    y = np.zeros((x.shape[0], out_steps, filters), dtype=x.dtype)
    for j, x_j in enumerate(_taps(x_padded, size, strides, dilation_rate, out_steps)):
        for g in range(groups):
            cols = slice(g * group_out, (g + 1) * group_out)
            y[..., cols] += x_j[..., g * group_in : (g + 1) * group_in] @ kernel[j, :, cols]
    if bias is not None:
        y += np.asarray(bias, dtype=x.dtype)
    return get_activation(activation)(y)


def depthwise_conv1d(
    x, kernel, bias=None, *, strides: int = 1, padding: str = "valid", dilation_rate: int = 1, activation=None
):
    """Keras's ``DepthwiseConv1D`` (``channels_last``): each channel convolved with its own filters.

    ``y[:, t, c·m_max + m] = act(b + Σ_j x_pad[:, t·s + j·d, c] · K[j, c, m])``.

    Args:
        x: ``(batch, steps, channels)``.
        kernel: ``(kernel_size, channels, depth_multiplier)``.
        bias: ``(channels · depth_multiplier,)`` or None.
    Returns:
        ``(batch, out_steps, channels · depth_multiplier)``; the mask stops here.
    """
    x = np.asarray(x)
    kernel = np.asarray(kernel, dtype=x.dtype)
    size, channels, multiplier = kernel.shape
    left, right, out_steps = padding_1d(x.shape[1], size, strides, padding, dilation_rate)
    x_padded = np.pad(x, ((0, 0), (left, right), (0, 0)))
    y = np.zeros((x.shape[0], out_steps, channels, multiplier), dtype=x.dtype)
    for j, x_j in enumerate(_taps(x_padded, size, strides, dilation_rate, out_steps)):
        y += x_j[..., None] * kernel[j]
    y = y.reshape(x.shape[0], out_steps, channels * multiplier)
    if bias is not None:
        y += np.asarray(bias, dtype=x.dtype)
    return get_activation(activation)(y)


def separable_conv1d(
    x,
    depthwise_kernel,
    pointwise_kernel,
    bias=None,
    *,
    strides: int = 1,
    padding: str = "valid",
    dilation_rate: int = 1,
    activation=None,
):
    """Keras's ``SeparableConv1D`` (``channels_last``): a depthwise convolution, then a 1×1 one.

    Args:
        depthwise_kernel: ``(kernel_size, channels, depth_multiplier)``.
        pointwise_kernel: ``(1, channels · depth_multiplier, filters)``.
        bias: ``(filters,)`` or None (added after the pointwise step).
    Returns:
        ``(batch, out_steps, filters)``; the mask stops here.
    """
    depthwise = depthwise_conv1d(x, depthwise_kernel, strides=strides, padding=padding, dilation_rate=dilation_rate)
    return conv1d(depthwise, pointwise_kernel, bias, activation=activation)


# --------------------------------------------------------------------------
# Pooling
# --------------------------------------------------------------------------


def _windows(x, pool_size: int, strides: int | None, padding: str, fill: float) -> np.ndarray:
    """``(pool_size, batch, out_steps, channels)``: each window's steps, padding set to ``fill``."""
    strides = pool_size if strides is None else strides
    left, right, out_steps = padding_1d(x.shape[1], pool_size, strides, padding)
    x_padded = np.pad(x, ((0, 0), (left, right), (0, 0)), constant_values=fill)
    return np.stack(_taps(x_padded, pool_size, strides, 1, out_steps), axis=0)


def max_pooling1d(x, *, pool_size: int = 2, strides: int | None = None, padding: str = "valid"):
    """Keras's ``MaxPooling1D`` (``channels_last``): ``y[:, t] = max_j x_pad[:, t·s + j]``.

    ``strides`` defaults to ``pool_size``; ``"same"`` padding is −∞, so it never
    wins the max. Returns ``(batch, out_steps, channels)``; the mask stops here.
    """
    x = np.asarray(x)
    return np.max(_windows(x, pool_size, strides, padding, -np.inf), axis=0)


def average_pooling1d(x, *, pool_size: int = 2, strides: int | None = None, padding: str = "valid"):
    """Keras's ``AveragePooling1D`` (``channels_last``): the mean of each window.

    With ``"same"`` padding a window at the edge averages only the real steps it
    covers (TensorFlow's ``avg_pool`` divides by that count). Returns
    ``(batch, out_steps, channels)``; the mask stops here.
    """
    x = np.asarray(x)
    total = np.sum(_windows(x, pool_size, strides, padding, 0.0), axis=0)
    real = np.sum(_windows(np.ones((1, x.shape[1], 1), dtype=x.dtype), pool_size, strides, padding, 0.0), axis=0)
    return total / real


# --------------------------------------------------------------------------
# Normalization
# --------------------------------------------------------------------------


def _axes(axis, ndim: int) -> list[int]:
    return sorted(a % ndim for a in ([axis] if isinstance(axis, int) else axis))


def _broadcastable(v, axes: Sequence[int], x: np.ndarray):
    shape = [1] * x.ndim
    for a in axes:
        shape[a] = x.shape[a]
    return np.asarray(v, dtype=x.dtype).reshape(shape)


def layer_normalization(x, gamma=None, beta=None, *, axis=-1, epsilon: float = 1e-3, rms_scaling: bool = False):
    """Keras's ``LayerNormalization``: ``y = (x − μ) / √(σ² + ε) · γ + β`` over ``axis``.

    μ and σ² are the mean and (population) variance over ``axis`` of each
    sample. With ``rms_scaling`` Keras 3 computes ``y = x / √(σ² + ε) · γ``
    (σ² is still the variance about the mean) and has no β.

    Args:
        x: any rank. gamma, beta: the shape of the normalised axes, or None
            (``scale=False`` / ``center=False``).
    Returns:
        the shape of ``x``. The mask passes through unchanged.
    """
    x = np.asarray(x)
    axes = _axes(axis, x.ndim)
    mean = np.mean(x, axis=tuple(axes), keepdims=True)
    variance = np.mean(np.square(x - mean), axis=tuple(axes), keepdims=True)
    inv = 1 / np.sqrt(variance + _scalar(epsilon, x))
    y = x * inv if rms_scaling else (x - mean) * inv
    if gamma is not None:
        y = y * _broadcastable(gamma, axes, x)
    if beta is not None and not rms_scaling:
        y = y + _broadcastable(beta, axes, x)
    return y


def batch_normalization(
    x, moving_mean, moving_variance, gamma=None, beta=None, *, axis: int = -1, epsilon: float = 1e-3
):
    """Keras's ``BatchNormalization`` at inference: ``y = (x − mean) / √(var + ε) · γ + β``.

    ``mean`` and ``var`` are the moving statistics; at inference the mask
    changes nothing and passes through unchanged.

    Args:
        x: any rank. moving_mean, moving_variance, gamma, beta: ``(x.shape[axis],)``;
            gamma/beta None for ``scale=False`` / ``center=False``.
    Returns:
        the shape of ``x``.
    """
    x = np.asarray(x)
    axes = _axes(axis, x.ndim)
    inv = 1 / np.sqrt(_broadcastable(moving_variance, axes, x) + _scalar(epsilon, x))
    y = (x - _broadcastable(moving_mean, axes, x)) * inv
    if gamma is not None:
        y = y * _broadcastable(gamma, axes, x)
    if beta is not None:
        y = y + _broadcastable(beta, axes, x)
    return y


# --------------------------------------------------------------------------
# Attention (Luong-style dot product, or Bahdanau-style "concat" scores)
# --------------------------------------------------------------------------


def _softmax_last(scores):
    shifted = scores - np.max(scores, axis=-1, keepdims=True)
    e = np.exp(shifted)
    return e / np.sum(e, axis=-1, keepdims=True)


def attention(
    query,
    value,
    key=None,
    *,
    query_mask=None,
    value_mask=None,
    use_causal_mask: bool = False,
    score_mode: str = "dot",
    scale=None,
    concat_score_weight=None,
    return_attention_scores: bool = False,
):
    """Keras's ``Attention`` layer at inference.

    Scores: ``s = q·kᵀ`` (times ``scale`` when ``use_scale``), or with
    ``score_mode="concat"`` ``s[i, j] = w · Σ tanh(scale·(q_i + k_j))``, or with
    ``score_mode="additive"`` (Keras's ``AdditiveAttention``) ``s[i, j] = Σ scale ⊙ tanh(q_i + k_j)``.
    Where the score mask is False (a padded value step, or ``j > i`` with
    ``use_causal_mask``) Keras subtracts 1e9 before ``a = softmax(s)``; the
    output is ``a·v``, set to 0 at padded query steps.

    Args:
        query: ``(batch, Tq, dim)``; value: ``(batch, Tv, dim)``; key: like
            value (default: value).
        query_mask, value_mask: bool ``(batch, Tq)`` / ``(batch, Tv)`` or None.
        scale, concat_score_weight: the layer's scalar weights, or None.
    Returns:
        ``(batch, Tq, dim)`` (and the ``(batch, Tq, Tv)`` scores after softmax
        with ``return_attention_scores``). The output's mask is the query's mask.
    """
    q = np.asarray(query)
    v = np.asarray(value, dtype=q.dtype)
    k = v if key is None else np.asarray(key, dtype=q.dtype)
    if score_mode == "dot":
        scores = q @ np.swapaxes(k, -2, -1)
        if scale is not None:
            scores = scores * np.asarray(scale, dtype=q.dtype)
    elif score_mode == "additive":  # AdditiveAttention: s[i, j] = Σ scale · tanh(q_i + k_j), scale a (dim,) vector
        pairs = np.tanh(q[..., :, None, :] + k[..., None, :, :])
        scores = np.sum(pairs if scale is None else np.asarray(scale, dtype=q.dtype) * pairs, axis=-1)
    elif score_mode == "concat":
        pairs = q[..., :, None, :] + k[..., None, :, :]
        if scale is not None:
            pairs = np.asarray(scale, dtype=q.dtype) * pairs
        scores = np.asarray(concat_score_weight, dtype=q.dtype) * np.sum(np.tanh(pairs), axis=-1)
    else:
        raise ValueError(f"score_mode must be 'dot', 'concat' or 'additive', got {score_mode!r}")
    keep = None if value_mask is None else np.asarray(value_mask, dtype=bool)[:, None, :]
    if use_causal_mask:
        tq, tv = scores.shape[-2:]
        causal = np.arange(tq)[:, None] >= np.arange(tv)[None, :]
        keep = causal[None] if keep is None else keep & causal[None]
    if keep is not None:
        scores = np.where(keep, scores, scores - _scalar(1e9, scores))
    weights = _softmax_last(scores)
    out = weights @ v
    if query_mask is not None:
        out = np.where(np.asarray(query_mask, dtype=bool)[..., None], out, _scalar(0.0, out))
    return (out, weights) if return_attention_scores else out


# --------------------------------------------------------------------------
# Elementwise layers and the layers that only move values around.
# --------------------------------------------------------------------------


def relu(x, *, negative_slope: float = 0.0, max_value: float | None = None, threshold: float = 0.0):
    """Keras's ``ReLU`` layer (``activations.relu``).

    ``y = min(x, max_value)`` where ``x > threshold`` (or ``x ≥ 0`` without a
    threshold), else ``0``; then ``negative_slope · max(threshold − x, 0)`` is
    subtracted. The mask passes through.
    """
    x = np.asarray(x)
    y = np.where(x > _scalar(threshold, x), x, _scalar(0.0, x)) if threshold != 0 else np.maximum(x, 0)
    if max_value is not None:
        y = np.minimum(y, _scalar(max_value, x))
    if negative_slope != 0:
        y = y - _scalar(negative_slope, x) * np.maximum(_scalar(threshold, x) - x, 0)
    return y


def leaky_relu(x, *, negative_slope: float = 0.3):
    """Keras's ``LeakyReLU``: ``y = x`` for ``x ≥ 0``, ``negative_slope · x`` below. The mask passes through."""
    x = np.asarray(x)
    return np.where(x >= 0, x, _scalar(negative_slope, x) * x)


def elu(x, *, alpha: float = 1.0):
    """Keras's ``ELU``: ``y = x`` for ``x > 0``, ``α (eˣ − 1)`` otherwise. The mask passes through."""
    x = np.asarray(x)
    return np.where(x > 0, x, _scalar(alpha, x) * np.expm1(np.minimum(x, 0)))


def prelu(x, alpha):
    """Keras's ``PReLU``: ``y = max(x, 0) − α · max(−x, 0)``, ``alpha`` broadcast over the shared axes.

    ``alpha``: the layer's weight, ``x.shape[1:]`` with 1 on ``shared_axes``. The mask passes through.
    """
    x = np.asarray(x)
    return np.maximum(x, 0) - np.asarray(alpha, dtype=x.dtype) * np.maximum(-x, 0)


def softmax(x, *, axis=-1, mask=None):
    """Keras's ``Softmax`` layer: ``y = exp(x) / Σ exp(x)`` over ``axis`` (an int or a tuple).

    Where ``mask`` (broadcastable to ``x``) is False the input is replaced by
    ``−1e9`` first, so masked positions get no weight, and the output is set to 0
    there: a fully masked axis gives zeros, not a uniform distribution (Keras 3.10
    and later; earlier Keras 3 versions leave that axis uniform). The mask passes through.
    """
    x = np.asarray(x)
    if mask is not None:
        x = np.where(np.asarray(mask, dtype=bool), x, _scalar(-1e9, x))
    axes = tuple(axis) if isinstance(axis, (list, tuple)) else (axis,)
    shifted = x - np.max(x, axis=axes, keepdims=True)
    e = np.exp(shifted)
    y = e / np.sum(e, axis=axes, keepdims=True)
    return y if mask is None else np.where(np.asarray(mask, dtype=bool), y, _scalar(0.0, y))


def unit_normalization(x, *, axis=-1):
    """Keras's ``UnitNormalization``: ``y = x / max(‖x‖₂, 1e-12)`` over ``axis``. The mask passes through."""
    x = np.asarray(x)
    axes = tuple(_axes(axis, x.ndim))
    norm = np.sqrt(np.sum(np.square(x), axis=axes, keepdims=True))
    return x / np.maximum(norm, _scalar(1e-12, x))


def rescaling(x, *, scale=1.0, offset=0.0):
    """Keras's ``Rescaling``: ``y = x · scale + offset``. The mask passes through."""
    x = np.asarray(x)
    return x * np.asarray(scale, dtype=x.dtype) + np.asarray(offset, dtype=x.dtype)


def zero_padding1d(x, *, padding=(1, 1)):
    """Keras's ``ZeroPadding1D``: ``padding = (left, right)`` zero steps (an int pads both sides). Mask stops."""
    left, right = (padding, padding) if isinstance(padding, int) else padding
    return np.pad(np.asarray(x), ((0, 0), (left, right), (0, 0)))


def cropping1d(x, *, cropping=(1, 1)):
    """Keras's ``Cropping1D``: drop ``cropping = (start, end)`` steps. The mask stops here."""
    start, end = (cropping, cropping) if isinstance(cropping, int) else cropping
    x = np.asarray(x)
    return x[:, start : x.shape[1] - end]


def upsampling1d(x, *, size: int = 2):
    """Keras's ``UpSampling1D``: every step repeated ``size`` times. The mask stops here."""
    return np.repeat(np.asarray(x), size, axis=1)


def flatten(x):
    """Keras's ``Flatten`` (``channels_last``): ``(batch, ...) → (batch, prod(...))``. The mask stops here."""
    x = np.asarray(x)
    return x.reshape(x.shape[0], -1)


def reshape(x, *, target_shape):
    """Keras's ``Reshape``: ``(batch, ...) → (batch, *target_shape)`` (one entry may be −1). Mask stops."""
    x = np.asarray(x)
    return x.reshape(x.shape[0], *target_shape)


def permute(x, *, dims):
    """Keras's ``Permute``: the non-batch axes reordered, ``dims`` counted from 1. The mask stops here."""
    return np.transpose(np.asarray(x), (0, *dims))


# --------------------------------------------------------------------------
# Masking, Embedding, RepeatVector, global pooling (keras/src/layers/core, pooling)
# --------------------------------------------------------------------------


def masking_mask(x, *, mask_value=0.0):
    """Keras's ``Masking`` mask: ``any(x != mask_value)`` over the last axis (True at real steps)."""
    x = np.asarray(x)
    return np.any(x != _scalar(mask_value, x), axis=-1)


def masking(x, *, mask_value=0.0):
    """Keras's ``Masking``: ``y = x`` at real steps, 0 at masked ones; the mask is :func:`masking_mask`."""
    x = np.asarray(x)
    return np.where(masking_mask(x, mask_value=mask_value)[..., None], x, _scalar(0.0, x))


def embedding(ids, embeddings):
    """Keras's ``Embedding``: ``y = embeddings[ids]``; float ids are truncated to integers, as Keras casts them.

    Args:
        ids: integers in ``[0, input_dim)``, any shape.
        embeddings: ``(input_dim, output_dim)``.
    Returns:
        ``(*ids.shape, output_dim)``. With ``mask_zero`` the mask is ``ids != 0``.
    """
    ids = np.asarray(ids)
    return np.asarray(embeddings)[ids if np.issubdtype(ids.dtype, np.integer) else ids.astype(np.int64)]


def repeat_vector(x, *, n: int):
    """Keras's ``RepeatVector``: ``(batch, features) → (batch, n, features)``. The mask stops here."""
    return np.repeat(np.asarray(x)[:, None, :], n, axis=1)


def global_average_pooling1d(x, mask=None, *, data_format="channels_last", keepdims=False):
    """Keras's ``GlobalAveragePooling1D``: the mean over the steps, masked steps left out.

    ``y = Σ_t m_t x_t / Σ_t m_t``; a sample with every step masked gives NaN, as in
    Keras. The mask stops here.
    """
    x = np.asarray(x)
    axis = 1 if data_format == "channels_last" else 2
    if mask is None:
        return np.mean(x, axis=axis, keepdims=keepdims)
    m = np.expand_dims(np.asarray(mask, dtype=bool), 2 if axis == 1 else 1)
    with np.errstate(invalid="ignore", divide="ignore"):  # an all-masked sample gives NaN, as in Keras
        total = np.sum(np.where(m, x, _scalar(0.0, x)), axis=axis, keepdims=keepdims)
        return total / np.sum(m.astype(x.dtype), axis=axis, keepdims=keepdims)


def global_max_pooling1d(x, *, data_format="channels_last", keepdims=False):
    """Keras's ``GlobalMaxPooling1D``: the max over the steps (Keras ignores the mask). The mask stops here."""
    axis = 1 if data_format == "channels_last" else 2
    return np.max(np.asarray(x), axis=axis, keepdims=keepdims)


# --------------------------------------------------------------------------
# Merging layers (keras/src/layers/merging): values and masks
# --------------------------------------------------------------------------


def _broadcast_mask(mask, x):
    return np.broadcast_to(np.asarray(mask, dtype=bool)[..., None], x.shape)


def merge_mask(masks, *, keras2: bool = False):
    """``Merge.compute_mask``: the OR of the masks when every input has one, else no mask.

    ``keras2``: Keras 2's rule, the AND of the masks given (an input without one
    is left out; none at all gives none).
    """
    if keras2:
        given = [np.asarray(m, dtype=bool) for m in masks if m is not None]
        return np.logical_and.reduce(given) if given else None
    return None if any(m is None for m in masks) else np.logical_or.reduce([np.asarray(m, dtype=bool) for m in masks])


def merge(op: str, xs, masks=None):
    """Keras's ``Add``, ``Subtract``, ``Multiply``, ``Average``, ``Maximum`` and ``Minimum`` (``op`` in lower case).

    ``add``: ``Σ xᵢ``; ``subtract``: ``x₀ − x₁``; ``average``: ``Σ xᵢ / n``.
    ``multiply``: ``Π xᵢ`` where each input's masked steps count as 1, and when
    every input has a mask the result is 0 outside their union. ``maximum`` /
    ``minimum`` (``Merge._apply_merge_op_and_or_mask``): a masked value is replaced
    by the running result, and the running result outside its mask by the value.

    Args:
        xs: the inputs, one shape.
        masks: the masks attached to them (bool ``(batch, steps)`` or None each).
    Returns:
        the merged tensor; its mask is :func:`merge_mask`.
    """
    masks = list(masks) if masks is not None else [None] * len(xs)
    if op in ("add", "average"):
        out = xs[0]
        for x in xs[1:]:
            out = out + x
        return out / len(xs) if op == "average" else out
    if op == "subtract":
        return xs[0] - xs[1]
    if op == "multiply":
        out, union, everyone = None, None, all(m is not None for m in masks)
        for x, m in zip(xs, masks, strict=True):
            if m is not None:
                m = _broadcast_mask(m, x)
                x = np.where(m, x, _scalar(1.0, x))
                if everyone:
                    union = m if union is None else union | m
            out = x if out is None else out * x
        return np.where(union, out, _scalar(0.0, out)) if everyone else out
    pick = {"maximum": np.maximum, "minimum": np.minimum}[op]
    out, out_mask = None, None
    for x, m in zip(xs, masks, strict=True):
        m = None if m is None else _broadcast_mask(m, x)
        if out is None:
            out, out_mask = x, m
            continue
        if m is not None:
            x = np.where(m, x, out)
        if out_mask is not None:
            out = np.where(out_mask, out, x)
        out_mask = (out_mask | m) if (m is not None and out_mask is not None) else None
        out = pick(out, x)
    return out


def concatenate(xs, *, axis: int = -1):
    """Keras's ``Concatenate``: the inputs joined along ``axis``; the mask is :func:`concatenate_mask`."""
    return np.concatenate(list(xs), axis=axis)


def concatenate_mask(xs, masks, *, axis: int = -1, keras2: bool = False):
    """``Concatenate.compute_mask``: an input without a mask counts as all real; none at all gives none.

    Each mask is broadcast over its input's features, the masks are concatenated
    along ``axis`` and reduced with ``any`` over the last axis. ``keras2``: Keras 2's
    rule, each mask given one trailing axis of size 1 (not broadcast) and the
    concatenation reduced with ``all``: joined on the last axis, a step is real only
    where every masked input's is; joined on another axis, the masks are joined.
    """
    if all(m is None for m in masks):
        return None
    if keras2:
        flags = [np.ones(x.shape, dtype=bool) if m is None else (m[..., None] if np.ndim(m) < x.ndim else m)
                 for x, m in zip(xs, masks, strict=True)]  # fmt: skip
        return np.all(np.concatenate(flags, axis=axis), axis=-1)
    full = [
        np.ones(x.shape, dtype=bool) if m is None else (_broadcast_mask(m, x) if np.ndim(m) < x.ndim else m)
        for x, m in zip(xs, masks, strict=True)
    ]
    return np.any(np.concatenate(full, axis=axis), axis=-1)


def dot(x1, x2, *, axes, normalize: bool = False, epsilon: float = 1e-7):
    """Keras's ``Dot``: the batched dot product of two inputs over one axis of each (``batch_dot``).

    ``y[b, i…, j…] = Σ_k x1[b, i…, k, …] · x2[b, j…, k, …]``, contracting axis
    ``axes[0]`` of ``x1`` with axis ``axes[1]`` of ``x2`` (an int: the same axis of
    both; a negative axis counts from the end of each input). The result's axes are
    ``x1``'s other axes, then ``x2``'s other non-batch axes; a result with only the
    batch axis gets a second axis of size 1. With ``normalize`` each input is first
    divided by its L2 norm over the contracted axis, ``x / max(‖x‖₂, ε)`` (Keras's
    ``backend.epsilon()``, 1e-7 unless changed).

    Returns:
        the product in ``x1``'s dtype. The mask stops here (``Dot.compute_mask`` is None).
    """
    x1 = np.asarray(x1)
    x2 = np.asarray(x2, dtype=x1.dtype)
    a1, a2 = (axes, axes) if isinstance(axes, int) else axes
    a1, a2 = a1 % x1.ndim, a2 % x2.ndim
    if normalize:
        x1 = x1 / np.maximum(np.sqrt(np.sum(np.square(x1), axis=a1, keepdims=True)), _scalar(epsilon, x1))
        x2 = x2 / np.maximum(np.sqrt(np.sum(np.square(x2), axis=a2, keepdims=True)), _scalar(epsilon, x2))
    letters = iter("cdefghijklmnopqrstuvwxyz")
    left = ["b"] + [next(letters) for _ in range(1, x1.ndim)]
    right = ["b"] + [next(letters) for _ in range(1, x2.ndim)]
    right[a2] = left[a1]  # the contracted axis
    kept = [c for i, c in enumerate(left) if i != a1] + [c for i, c in enumerate(right) if i not in (0, a2)]
    y = np.einsum(f"{''.join(left)},{''.join(right)}->{''.join(kept)}", x1, x2)
    return y[:, None] if y.ndim == 1 else y


# --------------------------------------------------------------------------
# MultiHeadAttention (keras/src/layers/attention/multi_head_attention.py)
# --------------------------------------------------------------------------


def multi_head_attention(
    query,
    value,
    key=None,
    *,
    query_kernel,
    key_kernel,
    value_kernel,
    output_kernel,
    query_bias=None,
    key_bias=None,
    value_bias=None,
    output_bias=None,
    query_mask=None,
    value_mask=None,
    key_mask=None,
    use_causal_mask: bool = False,
    zero_masked: bool = False,
):
    """Keras's ``MultiHeadAttention`` at inference (dropout does nothing), attending over the steps axis.

    With N heads of size H (``key_dim``) and Hv (``value_dim``)::

        q = query·W_q + b_q               (batch, T, N, H)
        k = key·W_k + b_k                 (batch, S, N, H)
        v = value·W_v + b_v               (batch, S, N, Hv)
        s = (q / √H)·kᵀ                   (batch, N, T, S), per head
        a = softmax(s where allowed)      over S
        o = a·v                           (batch, T, N, Hv)
        y = Σ_{n,h} o·W_o + b_o           (batch, T, *output_shape)

    "Allowed" is the AND of the query mask (row t), the value mask and the key
    mask (column s) and, with ``use_causal_mask``, ``s ≤ t``; Keras replaces the
    other scores by a large negative number, so a row with nothing allowed (a
    padded query step) attends to every step equally. Keras does not zero the
    output at padded query steps. ``zero_masked``: the weights are also set to 0
    where not allowed after the softmax, so such a row attends to nothing (``o = 0``,
    ``y = b_o``): what Keras computes when the layer's ``dropout`` is above 0, which
    sends it through its ``Softmax`` layer instead of the fused attention kernel.

    Args:
        query: ``(batch, T, query_dim)``; value: ``(batch, S, value_dim_in)``;
            key: ``(batch, S, key_dim_in)``, default ``value``.
        query_kernel: ``(query_dim, N, H)``; key_kernel: ``(key_dim_in, N, H)``;
            value_kernel: ``(value_dim_in, N, Hv)``; output_kernel: ``(N, Hv, *output_shape)``.
        query_bias, key_bias: ``(N, H)``; value_bias: ``(N, Hv)``; output_bias:
            ``output_shape``; None each without ``use_bias``.
        query_mask: bool ``(batch, T)``; value_mask, key_mask: bool ``(batch, S)``; None: all real.
    Returns:
        ``(batch, T, *output_shape)``. Its mask is the query's.
    """
    query = np.asarray(query)
    value = np.asarray(value, dtype=query.dtype)
    key = value if key is None else np.asarray(key, dtype=query.dtype)

    def project(x, kernel, bias):
        y = np.einsum("btd,dnh->btnh", x, np.asarray(kernel, dtype=query.dtype))
        return y if bias is None else y + np.asarray(bias, dtype=query.dtype)

    q = project(query, query_kernel, query_bias)
    k = project(key, key_kernel, key_bias)
    v = project(value, value_kernel, value_bias)
    scores = np.einsum("btnh,bsnh->bnts", q / np.sqrt(_scalar(q.shape[-1], q)), k)
    allowed = np.ones(scores.shape[-2:], dtype=bool)[None, None]
    if query_mask is not None:
        allowed = allowed & np.asarray(query_mask, dtype=bool)[:, None, :, None]
    for mask in (value_mask, key_mask):
        if mask is not None:
            allowed = allowed & np.asarray(mask, dtype=bool)[:, None, None, :]
    if use_causal_mask:
        t, s = scores.shape[-2:]
        allowed = allowed & (np.arange(t)[:, None] >= np.arange(s)[None, :])[None, None]
    weights = _softmax_last(np.where(allowed, scores, _scalar(-1e9, scores)))
    if zero_masked:
        weights = np.where(allowed, weights, _scalar(0.0, weights))
    o = np.einsum("bnts,bsnh->btnh", weights, v)
    output_kernel = np.asarray(output_kernel, dtype=query.dtype)
    y = np.tensordot(o, output_kernel, axes=([2, 3], [0, 1]))
    return y if output_bias is None else y + np.asarray(output_bias, dtype=query.dtype)
