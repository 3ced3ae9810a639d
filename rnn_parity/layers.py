"""The layer registry: one :class:`~rnn_parity.layer_spec.LayerSpec` entry per Keras class the runtime implements.

Each entry holds everything the package needs to know about one layer, so that
adding a layer is adding an entry (:mod:`rnn_parity.layer_spec` says what an
entry holds):

* ``options``: the config keys it keeps (with Keras's defaults), checked, for the
  graph the runtime runs (options that change nothing at inference are dropped);
* ``weights``: the names and shapes of its ``get_weights()`` arrays, from its
  kept config and the size of its inputs' last axis (None: any size), which
  :mod:`rnn_parity.model_checks` checks at load;
* ``forward`` (or ``sequence`` for a recurrent layer): the NumPy computation
  (:mod:`rnn_parity.layer_ops`, :mod:`rnn_parity.reference`);
* ``mask``: what happens to its input's mask, and whether Keras hands it the masks;
* ``features`` and ``tensors``: the size of each output's last axis, how many tensors;
* ``summary``: one line for the supported-layers table in docs/models.md.

:data:`LAYERS` is the one lookup: :mod:`rnn_parity.runtime` (``apply_layer``,
``n_tensors``, ``expected_weights``), :mod:`rnn_parity.graph` (what is supported,
the kept config, how a layer is called), :mod:`rnn_parity.model_checks` and the
docs read it. The recurrent entries (SimpleRNN, LSTM, GRU, ``RNN`` around cells,
Bidirectional) are in :mod:`rnn_parity.recurrent_layers`, beside the facts of
:mod:`rnn_parity.recurrent`; the rest are here. NumPy and the standard library only.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from . import layer_ops as ops
from . import reference
from .errors import InvalidInput
from .layer_spec import (
    DROP,
    MAX_DIM,
    QUERY,
    LayerSpec,
    MaskRule,
    activation,
    boolean,
    channels_last,
    choice,
    integer,
    number,
    wrapped,
)
from .recurrent import TIME_DISTRIBUTED, unwrap
from .recurrent_layers import RECURRENT_LAYERS

__all__ = ["LAYERS", "LayerSpec", "lookup", "resolve", "supported_table"]


# --------------------------------------------------------------------------
# Config values of more than one key.
# --------------------------------------------------------------------------


def _pair(cfg, key, default, problems):
    value = cfg.get(key, default)
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value, value)
    if (
        not isinstance(value, (list, tuple))
        or len(value) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value)
    ):
        problems.append(f"{key}={value!r} is not a pair of integers ≥ 0")
        return [0, 0]
    return [int(v) for v in value]


def _axis(cfg, default, problems):
    value = cfg.get("axis", default)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if (
        isinstance(value, (list, tuple))
        and value
        and all(isinstance(a, int) and not isinstance(a, bool) for a in value)
    ):
        return list(value)
    problems.append(f"axis={value!r} is not an integer or a list of integers")
    return -1


def _ints(cfg, key, problems, *, allow=()):
    value = cfg.get(key)
    if not isinstance(value, (list, tuple)) or not all(
        isinstance(v, int) and not isinstance(v, bool) and (1 <= v <= MAX_DIM or v in allow) for v in value
    ):
        problems.append(f"{key}={value!r} is not a list of positive integers")
        return []
    return [int(v) for v in value]


def _same_size(sizes):
    known = {f for f in sizes if f is not None}
    if len(known) > 1:
        raise ValueError(f"merges inputs of different sizes {sorted(known)}")
    return [known.pop() if known else None]


def _first(sizes):
    return sizes[0] if sizes else None


def _entry(class_name, summary, options, forward, **more) -> LayerSpec:
    return LayerSpec(class_name, summary, options, forward, **more)


# --------------------------------------------------------------------------
# Masking, Embedding, Dense, Activation, the identity layers, RepeatVector, global pooling.
# --------------------------------------------------------------------------

#: Layers that are the identity at inference (noise, dropout, regularization) and pass the mask on.
IDENTITY = (
    "Dropout",
    "SpatialDropout1D",
    "GaussianNoise",
    "GaussianDropout",
    "AlphaDropout",
    "ActivityRegularization",
    "Identity",
)


def _embedding_ids(cfg, xs):
    ids = np.asarray(xs[0])
    ids = ids if np.issubdtype(ids.dtype, np.integer) else ids.astype(np.int64)  # Keras casts, truncating
    if ids.size and (ids.min() < 0 or ids.max() >= cfg["input_dim"]):
        return f"ids must lie in [0, {cfg['input_dim']}), got values from {ids.min()} to {ids.max()}"
    return None


def _dense(cfg, weights, xs, masks):
    kernel, bias = weights[0], (weights[1] if len(weights) > 1 else None)
    return reference.dense(xs[0], kernel, bias, activation=cfg.get("activation"))


def _dense_options(cfg, problems):
    return {
        "units": integer(cfg, "units", problems),
        "activation": activation(cfg, "activation", None, problems),
        "use_bias": boolean(cfg, "use_bias", True, problems),
    }


def _dense_weights(cfg, sizes):
    kernel = ("kernel", (_first(sizes), cfg["units"]))
    return [kernel, ("bias", (cfg["units"],))] if cfg.get("use_bias", True) else [kernel]


def _global_pool_options(cfg, problems):
    stored = {**cfg, "data_format": cfg.get("data_format") or "channels_last"}  # Keras may store null
    return {
        "data_format": choice(stored, "data_format", "channels_last", ("channels_last", "channels_first"), problems),
        "keepdims": boolean(cfg, "keepdims", False, problems),
    }


def _global_pool_features(cfg, sizes):
    return sizes[:1] if cfg.get("data_format", "channels_last") == "channels_last" else [None]


def _keras2_masks(cfg, problems) -> dict:
    """A merging layer of a file written by Keras 2 in a model that makes masks: ``keras2_masks`` (kept when true).

    Keras 2's merging layers compute without the masks and merge them with its own
    rules (:func:`rnn_parity.layer_ops.merge_mask`, :func:`~rnn_parity.layer_ops.concatenate_mask`);
    :func:`rnn_parity.keras2.keras2_graph` sets the key.
    """
    return {"keras2_masks": True} if boolean(cfg, "keras2_masks", False, problems) else {}


def _merge_entry(class_name, summary, *, inputs=(1, MAX_DIM)):
    op = class_name.lower()
    return _entry(
        class_name,
        summary,
        _keras2_masks,
        lambda cfg, weights, xs, masks: ops.merge(op, xs, None if cfg.get("keras2_masks") else masks),
        features=lambda cfg, sizes: _same_size(sizes),
        mask=MERGED,
        inputs=inputs,
        attached_masks=True,
        same_rank=True,
    )


def _concatenate_options(cfg, problems):
    axis = cfg.get("axis", -1)
    if isinstance(axis, bool) or not isinstance(axis, int):
        problems.append(f"axis must be an integer, got {axis!r}")
        axis = -1
    return {"axis": axis, **_keras2_masks(cfg, problems)}


def _concatenate_features(cfg, sizes):
    if cfg.get("axis", -1) != -1:
        return [None]  # the last axis keeps its size, but which axis is last is not known here
    return [None if any(f is None for f in sizes) else sum(sizes)]


MASKING = MaskRule(
    "masking",
    "any(x ≠ mask_value) over the last axis",
    lambda cfg, xs, masks: ops.masking_mask(xs[0], mask_value=cfg.get("mask_value", 0.0)),
)
IDS = MaskRule(
    "ids", "ids ≠ 0 with mask_zero", lambda cfg, xs, masks: (np.asarray(xs[0]) != 0) if cfg.get("mask_zero") else None
)
MERGED = MaskRule(
    "merged",
    "the OR of the masks when every input has one (Keras 2 files: the AND of the masks given)",
    lambda cfg, xs, masks: ops.merge_mask(masks, keras2=cfg.get("keras2_masks", False)),
)
CONCATENATED = MaskRule(
    "concatenated",
    "joined along the axis; an unmasked input counts as all real (Keras 2 files: reduced with AND, not OR)",
    lambda cfg, xs, masks: ops.concatenate_mask(
        xs, masks, axis=cfg.get("axis", -1), keras2=cfg.get("keras2_masks", False)
    ),
)


# --------------------------------------------------------------------------
# Convolution, pooling, normalization, attention and the elementwise layers.
# --------------------------------------------------------------------------


def _conv1d_options(cfg, problems):
    channels_last(cfg, problems)
    out = {
        "filters": integer(cfg, "filters", problems),
        "kernel_size": integer(cfg, "kernel_size", problems),
        "strides": integer(cfg, "strides", problems, 1),
        "padding": choice(cfg, "padding", "valid", ops.PADDINGS, problems),
        "dilation_rate": integer(cfg, "dilation_rate", problems, 1),
        "groups": integer(cfg, "groups", problems, 1),
        "activation": activation(cfg, "activation", None, problems),
        "use_bias": boolean(cfg, "use_bias", True, problems),
    }
    if out["strides"] > 1 and out["dilation_rate"] > 1:
        problems.append("strides > 1 together with dilation_rate > 1 (Keras refuses it)")
    if out["filters"] % out["groups"]:
        problems.append(f"filters={out['filters']} is not divisible by groups={out['groups']}")
    return out


def _conv1d_weights(cfg, sizes):
    features = _first(sizes)
    group_in = None if features is None else features // cfg["groups"]
    kernel = ("kernel", (cfg["kernel_size"], group_in, cfg["filters"]))
    return [kernel, ("bias", (cfg["filters"],))] if cfg["use_bias"] else [kernel]


def _conv1d(cfg, weights, xs, masks):
    return ops.conv1d(
        xs[0],
        weights[0],
        weights[1] if cfg["use_bias"] else None,
        strides=cfg["strides"],
        padding=cfg["padding"],
        dilation_rate=cfg["dilation_rate"],
        groups=cfg["groups"],
        activation=cfg["activation"],
    )


def _depthwise_options(cfg, problems, *, separable=False):
    channels_last(cfg, problems)
    out = {
        "kernel_size": integer(cfg, "kernel_size", problems),
        "strides": integer(cfg, "strides", problems, 1),
        "padding": choice(cfg, "padding", "valid", ("valid", "same"), problems),
        "dilation_rate": integer(cfg, "dilation_rate", problems, 1),
        "depth_multiplier": integer(cfg, "depth_multiplier", problems, 1),
        "activation": activation(cfg, "activation", None, problems),
        "use_bias": boolean(cfg, "use_bias", True, problems),
    }
    if separable:
        out["filters"] = integer(cfg, "filters", problems)
    if out["strides"] > 1 and out["dilation_rate"] > 1:
        problems.append("strides > 1 together with dilation_rate > 1 (Keras refuses it)")
    return out


def _depthwise_weights(cfg, sizes):
    features = _first(sizes)
    depthwise = (cfg["kernel_size"], features, cfg["depth_multiplier"])
    if "filters" not in cfg:  # DepthwiseConv1D
        bias = ("bias", (None if features is None else features * cfg["depth_multiplier"],))
        return [("kernel", depthwise), *([bias] if cfg["use_bias"] else [])]
    pointwise = (1, None if features is None else features * cfg["depth_multiplier"], cfg["filters"])
    bias = ("bias", (cfg["filters"],))
    return [("depthwise_kernel", depthwise), ("pointwise_kernel", pointwise), *([bias] if cfg["use_bias"] else [])]


def _depthwise(cfg, weights, xs, masks):
    options = {k: cfg[k] for k in ("strides", "padding", "dilation_rate", "activation")}
    if "filters" in cfg:
        bias = weights[2] if cfg["use_bias"] else None
        return ops.separable_conv1d(xs[0], weights[0], weights[1], bias, **options)
    return ops.depthwise_conv1d(xs[0], weights[0], weights[1] if cfg["use_bias"] else None, **options)


def _pool_options(cfg, problems):
    channels_last(cfg, problems)
    strides = cfg.get("strides")
    return {
        "pool_size": integer(cfg, "pool_size", problems, 2),
        "strides": None if strides is None else integer(cfg, "strides", problems),
        "padding": choice(cfg, "padding", "valid", ("valid", "same"), problems),
    }


def _pool(function):
    return lambda cfg, weights, xs, masks: function(
        xs[0], pool_size=cfg["pool_size"], strides=cfg["strides"], padding=cfg["padding"]
    )


def _center_scale(cfg, problems, *, rms=False):
    out = {
        "axis": _axis(cfg, -1, problems),
        "epsilon": number(cfg, "epsilon", 1e-3, problems),
        "center": boolean(cfg, "center", True, problems),
        "scale": boolean(cfg, "scale", True, problems),
    }
    if rms:
        out["rms_scaling"] = boolean(cfg, "rms_scaling", False, problems)
    return out


def _norm_weights(cfg, sizes, names):
    size = _first(sizes) if cfg["axis"] in (-1, [-1]) else None
    return [(name, (size,)) for name in names]


def _layer_norm_weights(cfg, sizes):
    names = [n for n, on in (("gamma", cfg["scale"]), ("beta", cfg["center"] and not cfg["rms_scaling"])) if on]
    return _norm_weights(cfg, sizes, names)


def _layer_norm(cfg, weights, xs, masks):
    it = iter(weights)
    gamma = next(it) if cfg["scale"] else None
    beta = next(it) if cfg["center"] and not cfg["rms_scaling"] else None
    return ops.layer_normalization(
        xs[0], gamma, beta, axis=cfg["axis"], epsilon=cfg["epsilon"], rms_scaling=cfg["rms_scaling"]
    )


def _batch_norm_options(cfg, problems):
    out = _center_scale(cfg, problems)
    if isinstance(out["axis"], list):
        problems.append(f"axis={out['axis']!r}: BatchNormalization takes one axis")
        out["axis"] = -1
    if cfg.get("renorm"):
        problems.append("renorm=True is not supported")
    return out


def _batch_norm_weights(cfg, sizes):
    names = [n for n, on in (("gamma", cfg["scale"]), ("beta", cfg["center"])) if on]
    return _norm_weights(cfg, sizes, [*names, "moving_mean", "moving_variance"])


def _batch_norm(cfg, weights, xs, masks):
    it = iter(weights)
    gamma = next(it) if cfg["scale"] else None
    beta = next(it) if cfg["center"] else None
    moving_mean, moving_variance = next(it), next(it)
    return ops.batch_normalization(
        xs[0], moving_mean, moving_variance, gamma, beta, axis=cfg["axis"], epsilon=cfg["epsilon"]
    )


def _attention_options(cfg, problems):
    return {
        "use_scale": boolean(cfg, "use_scale", False, problems),
        "score_mode": choice(cfg, "score_mode", "dot", ("dot", "concat"), problems),
    }


def _attention_weights(cfg, sizes):
    names = (["scale"] if cfg["use_scale"] else []) + (["concat_score_weight"] if cfg["score_mode"] == "concat" else [])
    return [(name, ()) for name in names]


def _attention(cfg, weights, xs, masks):
    it = iter(weights)
    scale = next(it) if cfg["use_scale"] else None
    concat_weight = next(it) if cfg["score_mode"] == "concat" else None
    masks = masks or [None, None]
    return ops.attention(
        xs[0],
        xs[1],
        xs[2] if len(xs) > 2 else None,
        query_mask=masks[0],
        value_mask=masks[1] if len(masks) > 1 else None,
        use_causal_mask=bool(cfg.get("use_causal_mask", False)),
        score_mode=cfg["score_mode"],
        scale=scale,
        concat_score_weight=concat_weight,
    )


def _additive_attention(cfg, weights, xs, masks):
    masks = masks or [None, None]
    return ops.attention(
        xs[0],
        xs[1],
        xs[2] if len(xs) > 2 else None,
        query_mask=masks[0],
        value_mask=masks[1] if len(masks) > 1 else None,
        use_causal_mask=bool(cfg.get("use_causal_mask", False)),
        score_mode="additive",
        scale=weights[0] if cfg["use_scale"] else None,
    )


def _relu_options(cfg, problems):
    max_value = cfg.get("max_value")
    return {
        "max_value": None if max_value is None else number(cfg, "max_value", None, problems),
        "negative_slope": number(cfg, "negative_slope", 0.0, problems),
        "threshold": number(cfg, "threshold", 0.0, problems),
    }


def _softmax(cfg, weights, xs, masks):
    mask = None if not masks or masks[0] is None else np.asarray(masks[0])
    if mask is not None and mask.ndim < xs[0].ndim:  # a (batch, steps) mask acts on every feature of a step
        mask = mask[..., None]
    return ops.softmax(xs[0], axis=cfg["axis"], mask=mask)


def _reshape_features(cfg, sizes):
    return [cfg["target_shape"][-1] if cfg["target_shape"] and cfg["target_shape"][-1] != -1 else None]


def _not_known(cfg, sizes):
    return [None]


# --------------------------------------------------------------------------
# Dot and MultiHeadAttention.
# --------------------------------------------------------------------------


def _dot_options(cfg, problems):
    axes = cfg.get("axes", -1)
    pair = [axes, axes] if isinstance(axes, int) and not isinstance(axes, bool) else axes
    if (
        not isinstance(pair, (list, tuple))
        or len(pair) != 2
        or not all(isinstance(a, int) and not isinstance(a, bool) for a in pair)
    ):
        problems.append(f"axes={axes!r} is not an integer or a pair of integers")
        axes = -1
    elif 0 in pair:
        problems.append(f"axes={axes!r}: the batch axis (0) cannot be contracted")
        axes = -1
    axes = list(axes) if isinstance(axes, (list, tuple)) else axes
    return {"axes": axes, "normalize": boolean(cfg, "normalize", False, problems)}


def _dot(cfg, weights, xs, masks):
    axes = cfg.get("axes", -1)
    return ops.dot(xs[0], xs[1], axes=tuple(axes) if isinstance(axes, list) else axes, normalize=cfg["normalize"])


#: MultiHeadAttention's attention_axes for (batch, steps, features) inputs: the steps axis (Keras stores [1]).
_STEPS_AXIS = (None, [1], [-2], 1, -2)


def _mha_options(cfg, problems):
    key_dim = integer(cfg, "key_dim", problems)
    out = {
        "num_heads": integer(cfg, "num_heads", problems),
        "key_dim": key_dim,
        "value_dim": key_dim if cfg.get("value_dim") is None else integer(cfg, "value_dim", problems),
        "use_bias": boolean(cfg, "use_bias", True, problems),
        "output_shape": None,
    }
    shape = cfg.get("output_shape")
    if shape is not None:
        out["output_shape"] = (
            [shape] if isinstance(shape, int) and not isinstance(shape, bool) else _ints(cfg, "output_shape", problems)
        )
    axes = cfg.get("attention_axes")
    if (list(axes) if isinstance(axes, tuple) else axes) not in _STEPS_AXIS:
        problems.append(f"attention_axes={axes!r} is not supported (the runtime attends over the steps axis)")
    if cfg.get("use_gate"):
        problems.append("use_gate=True is not supported")
    if cfg.get("sliding_window") is not None:
        problems.append(f"sliding_window={cfg['sliding_window']!r} is not supported")
    if cfg.get("flash_attention"):
        problems.append("flash_attention=True is not supported")
    # Dropout does nothing at inference, but a rate above 0 makes Keras attend through its Softmax layer
    # (a fully masked query row then gets zero weights) instead of the fused kernel (uniform weights).
    out["dropout"] = number(cfg, "dropout", 0.0, problems)
    return out


def _mha_weights(cfg, sizes):
    sizes = list(sizes) + [None] * (3 - len(sizes))
    query, value = sizes[0], sizes[1]
    key = sizes[2] if sizes[2] is not None else value
    heads, key_dim, value_dim = cfg["num_heads"], cfg["key_dim"], cfg["value_dim"]
    output = cfg["output_shape"] or [query]
    blocks = [
        ("query", (query, heads, key_dim), (heads, key_dim)),
        ("key", (key, heads, key_dim), (heads, key_dim)),
        ("value", (value, heads, value_dim), (heads, value_dim)),
        ("attention_output", (heads, value_dim, *output), tuple(output)),
    ]
    weights = []
    for name, kernel, bias in blocks:
        weights.append((f"{name}/kernel", kernel))
        if cfg["use_bias"]:
            weights.append((f"{name}/bias", bias))
    return weights


def _mha(cfg, weights, xs, masks):
    arrays = iter(weights)
    named = {}
    for block in ("query", "key", "value", "output"):
        named[f"{block}_kernel"] = next(arrays)
        named[f"{block}_bias"] = next(arrays) if cfg["use_bias"] else None
    masks = list(masks or []) + [None] * (3 - len(masks or []))
    return ops.multi_head_attention(
        xs[0],
        xs[1],
        xs[2] if len(xs) > 2 else None,
        query_mask=masks[0],
        value_mask=masks[1],
        key_mask=masks[2] if len(xs) > 2 else None,
        use_causal_mask=bool(cfg.get("use_causal_mask", False)),
        zero_masked=cfg.get("dropout", 0.0) > 0,
        **named,
    )


def _mha_features(cfg, sizes):
    return [cfg["output_shape"][-1] if cfg["output_shape"] else _first(sizes)]


# --------------------------------------------------------------------------
# TimeDistributed around any single-input layer of the registry.
# --------------------------------------------------------------------------


def _inner(cfg) -> tuple[str, Mapping, LayerSpec]:
    inner_class, inner_cfg = unwrap(TIME_DISTRIBUTED, cfg)
    return inner_class, inner_cfg, LAYERS[inner_class]


def _time_distributed_options(cfg, problems):
    inner_class, inner_cfg = resolve(*wrapped(cfg.get("layer"), "the wrapped layer", problems))
    spec = LAYERS.get(inner_class)
    if spec is None:
        problems.append(f"wraps {inner_class}, which the runtime does not implement")
        return {"layer": {"class_name": inner_class, "config": {}}}
    kept = spec.keep(inner_cfg, problems)
    if spec.inputs[0] > 1:
        problems.append(f"wraps {inner_class}, which takes several inputs")
    elif spec.in_time_distributed is not None and (why := spec.in_time_distributed(kept)):
        problems.append(f"wraps {inner_class} with {why}")
    return {"layer": {"class_name": inner_class, "config": kept}}


def _time_distributed(cfg, weights, xs, masks):
    """The wrapped layer on every timestep: ``(batch, steps, …) → (batch·steps, …)``, the layer, and back.

    Keras's ``TimeDistributed.call`` runs the layer's ``call`` on ``x[:, t]`` for each t
    (with ``mask[:, t]`` when the layer's call takes a mask); every layer here acts on
    each sample alone at inference, so one call on all the steps at once is the same.
    """
    inner_class, inner_cfg, spec = _inner(cfg)
    x = np.asarray(xs[0])
    batch, steps = x.shape[:2]
    inner_masks = None
    mask = masks[0] if masks else None
    if spec.call_mask and mask is not None:
        if np.ndim(mask) < 3:
            raise InvalidInput(
                f"a (batch, steps) mask gives the wrapped {inner_class} a (batch,) mask at each step, "
                "which Keras cannot run either"
            )
        inner_masks = [np.reshape(mask, (batch * steps, *np.shape(mask)[2:]))]
    outputs, _ = spec.run(inner_cfg, weights, [x.reshape(batch * steps, *x.shape[2:])], inner_masks)
    y = outputs[0]
    return y.reshape(batch, steps, *y.shape[1:])


def _time_distributed_check(cfg, xs):
    _, inner_cfg, spec = _inner(cfg)
    return spec.input_check(inner_cfg, xs) if spec.input_check else None


def _time_distributed_weights(cfg, sizes):
    _, inner_cfg, spec = _inner(cfg)
    return spec.weights(inner_cfg, sizes)


def _time_distributed_features(cfg, sizes):
    _, inner_cfg, spec = _inner(cfg)
    return spec.features(inner_cfg, sizes)


def _time_distributed_axes(cfg):
    """A wrapped layer that names its axes (a recurrent one) gets a ``frame`` axis after the sample's."""
    _, inner_cfg, spec = _inner(cfg)
    output, _ = spec.axis_names(inner_cfg)
    if output is None or output[0] != "sample":
        return None, None
    return ("sample", "frame", *output[1:]), None


# --------------------------------------------------------------------------
# The registry.
# --------------------------------------------------------------------------

_AROUND = (
    _entry(
        TIME_DISTRIBUTED,
        "any single-input layer of this table on every timestep, weights and all (not return_state or stateful "
        "recurrent layers)",
        _time_distributed_options,
        _time_distributed,
        weights=_time_distributed_weights,
        features=_time_distributed_features,
        axes=_time_distributed_axes,
        call_mask=True,
        input_check=_time_distributed_check,
    ),
    _entry(
        "Masking",
        "masked steps zeroed",
        lambda cfg, problems: {"mask_value": number(cfg, "mask_value", 0.0, problems)},
        lambda cfg, weights, xs, masks: ops.masking(xs[0], mask_value=cfg.get("mask_value", 0.0)),
        mask=MASKING,
    ),
    _entry(
        "Embedding",
        "row lookup; ids checked against input_dim",
        lambda cfg, problems: {
            "input_dim": integer(cfg, "input_dim", problems),
            "output_dim": integer(cfg, "output_dim", problems),
            "mask_zero": boolean(cfg, "mask_zero", False, problems),
        },
        lambda cfg, weights, xs, masks: ops.embedding(xs[0], weights[0]),
        weights=lambda cfg, sizes: [("embeddings", (cfg["input_dim"], cfg["output_dim"]))],
        features=lambda cfg, sizes: [cfg["output_dim"]],
        mask=IDS,
        input_check=_embedding_ids,
    ),
    _entry(
        "Dense",
        "reference.dense over the last axis, any rank",
        _dense_options,
        _dense,
        weights=_dense_weights,
        features=lambda cfg, sizes: [cfg["units"]],
    ),
    _entry(
        "Activation",
        "any built-in activation the reference implements",
        lambda cfg, problems: {"activation": activation(cfg, "activation", None, problems)},
        lambda cfg, weights, xs, masks: reference.get_activation(cfg.get("activation"))(xs[0]),
    ),
    _entry(
        "Concatenate",
        "np.concatenate on any axis",
        _concatenate_options,
        lambda cfg, weights, xs, masks: ops.concatenate(xs, axis=cfg.get("axis", -1)),
        features=_concatenate_features,
        mask=CONCATENATED,
        inputs=(1, MAX_DIM),
        same_rank=True,
    ),
    _merge_entry("Add", "sum"),
    _merge_entry("Subtract", "difference of two inputs", inputs=(2, 2)),
    _merge_entry("Multiply", "product; masked steps count as 1, as in Keras"),
    _merge_entry("Average", "mean of the inputs"),
    _merge_entry("Maximum", "elementwise max; a masked value gives way to the other inputs', as in Keras"),
    _merge_entry("Minimum", "elementwise min; a masked value gives way to the other inputs', as in Keras"),
    _entry(
        "Dot",
        "batched dot product over axes (any ranks), normalize: x / max(‖x‖₂, 1e-7) first",
        _dot_options,
        _dot,
        features=_not_known,
        mask=DROP,
        inputs=(2, 2),
    ),
    _entry(
        "RepeatVector",
        "repeat a vector n times",
        lambda cfg, problems: {"n": integer(cfg, "n", problems)},
        lambda cfg, weights, xs, masks: ops.repeat_vector(xs[0], n=cfg["n"]),
        mask=DROP,
    ),
    _entry(
        "GlobalAveragePooling1D",
        "mean over time, masked steps left out",
        _global_pool_options,
        lambda cfg, weights, xs, masks: ops.global_average_pooling1d(
            xs[0], masks[0] if masks else None, data_format=cfg["data_format"], keepdims=cfg["keepdims"]
        ),
        features=_global_pool_features,
        mask=DROP,
        call_mask=True,
    ),
    _entry(
        "GlobalMaxPooling1D",
        "max over time (Keras ignores the mask)",
        _global_pool_options,
        lambda cfg, weights, xs, masks: ops.global_max_pooling1d(
            xs[0], data_format=cfg["data_format"], keepdims=cfg["keepdims"]
        ),
        features=_global_pool_features,
        mask=DROP,
    ),
    *(
        _entry(name, "identity at inference", lambda cfg, problems: {}, lambda cfg, weights, xs, masks: xs[0])
        for name in IDENTITY
    ),
    _entry(
        "Conv1D",
        "valid, same and causal padding; strides, dilation, groups; channels_last",
        _conv1d_options,
        _conv1d,
        weights=_conv1d_weights,
        features=lambda cfg, sizes: [cfg["filters"]],
        mask=DROP,
    ),
    _entry(
        "DepthwiseConv1D",
        "valid and same padding; strides, dilation, depth_multiplier; channels_last",
        _depthwise_options,
        _depthwise,
        weights=_depthwise_weights,
        features=lambda cfg, sizes: [None if _first(sizes) is None else _first(sizes) * cfg["depth_multiplier"]],
        mask=DROP,
    ),
    _entry(
        "SeparableConv1D",
        "depthwise then pointwise; valid and same padding; strides, dilation; channels_last",
        lambda cfg, problems: _depthwise_options(cfg, problems, separable=True),
        _depthwise,
        weights=_depthwise_weights,
        features=lambda cfg, sizes: [cfg["filters"]],
        mask=DROP,
    ),
    _entry(
        "MaxPooling1D",
        "valid and same padding; channels_last",
        _pool_options,
        _pool(ops.max_pooling1d),
        mask=DROP,
    ),
    _entry(
        "AveragePooling1D",
        "valid and same padding (edge windows average their real steps); channels_last",
        _pool_options,
        _pool(ops.average_pooling1d),
        mask=DROP,
    ),
    _entry(
        "LayerNormalization",
        "any axes, center/scale, rms_scaling as Keras 3 computes it",
        lambda cfg, problems: _center_scale(cfg, problems, rms=True),
        _layer_norm,
        weights=_layer_norm_weights,
    ),
    _entry(
        "BatchNormalization",
        "inference: the moving mean and variance",
        _batch_norm_options,
        _batch_norm,
        weights=_batch_norm_weights,
    ),
    _entry(
        "UnitNormalization",
        "x / max(‖x‖₂, 1e-12) over the axes",
        lambda cfg, problems: {"axis": _axis(cfg, -1, problems)},
        lambda cfg, weights, xs, masks: ops.unit_normalization(xs[0], axis=cfg["axis"]),
    ),
    _entry(
        "Attention",
        "dot or concat scores, use_scale, use_causal_mask, query and value masks",
        _attention_options,
        _attention,
        weights=_attention_weights,
        mask=QUERY,
        inputs=(2, 3),
        call_options=("use_causal_mask",),
        call_mask=True,
    ),
    _entry(
        "AdditiveAttention",
        "scores Σ scale ⊙ tanh(q + k), use_scale, use_causal_mask, query and value masks",
        lambda cfg, problems: {"use_scale": boolean(cfg, "use_scale", True, problems)},
        _additive_attention,
        weights=lambda cfg, sizes: [("scale", (_first(sizes),))] if cfg["use_scale"] else [],
        mask=QUERY,
        inputs=(2, 3),
        call_options=("use_causal_mask",),
        call_mask=True,
    ),
    _entry(
        "MultiHeadAttention",
        "num_heads, key_dim, value_dim, use_bias, output_shape, use_causal_mask, query/value/key masks; "
        "(batch, steps, features) inputs",
        _mha_options,
        _mha,
        weights=_mha_weights,
        features=_mha_features,
        mask=QUERY,
        inputs=(2, 3),
        call_options=("use_causal_mask",),
        call_inputs=("query", "value", "key"),
        attached_masks=True,
        clears_masks=True,
        input_rank=3,
    ),
    _entry(
        "ReLU",
        "max_value, negative_slope, threshold",
        _relu_options,
        lambda cfg, weights, xs, masks: ops.relu(xs[0], **cfg),
    ),
    _entry(
        "LeakyReLU",
        "negative_slope",
        lambda cfg, problems: {"negative_slope": number(cfg, "negative_slope", 0.3, problems)},
        lambda cfg, weights, xs, masks: ops.leaky_relu(xs[0], **cfg),
    ),
    _entry(
        "ELU",
        "alpha",
        lambda cfg, problems: {"alpha": number(cfg, "alpha", 1.0, problems)},
        lambda cfg, weights, xs, masks: ops.elu(xs[0], **cfg),
    ),
    _entry(
        "PReLU",
        "the learned alpha, shared_axes",
        lambda cfg, problems: {},
        lambda cfg, weights, xs, masks: ops.prelu(xs[0], weights[0]),
        weights=lambda cfg, sizes: [("alpha", None)],
    ),
    _entry(
        "Softmax",
        "over any axes; masked positions get −1e9 first and 0 after (a fully masked axis is 0, Keras ≥ 3.10)",
        lambda cfg, problems: {"axis": _axis(cfg, -1, problems)},
        _softmax,
        call_mask=True,
    ),
    _entry(
        "Rescaling",
        "x · scale + offset (scalars)",
        lambda cfg, problems: {
            "scale": number(cfg, "scale", 1.0, problems),
            "offset": number(cfg, "offset", 0.0, problems),
        },
        lambda cfg, weights, xs, masks: ops.rescaling(xs[0], **cfg),
    ),
    _entry(
        "ZeroPadding1D",
        "zero steps before and after",
        lambda cfg, problems: {"padding": _pair(cfg, "padding", 1, problems)},
        lambda cfg, weights, xs, masks: ops.zero_padding1d(xs[0], padding=cfg["padding"]),
        mask=DROP,
    ),
    _entry(
        "Cropping1D",
        "steps dropped at the start and the end",
        lambda cfg, problems: {"cropping": _pair(cfg, "cropping", 1, problems)},
        lambda cfg, weights, xs, masks: ops.cropping1d(xs[0], cropping=cfg["cropping"]),
        mask=DROP,
    ),
    _entry(
        "UpSampling1D",
        "every step repeated size times",
        lambda cfg, problems: {"size": integer(cfg, "size", problems, 2)},
        lambda cfg, weights, xs, masks: ops.upsampling1d(xs[0], size=cfg["size"]),
        mask=DROP,
    ),
    _entry(
        "Flatten",
        "(batch, ...) → (batch, prod(...)); channels_last",
        lambda cfg, problems: channels_last(cfg, problems) or {},
        lambda cfg, weights, xs, masks: ops.flatten(xs[0]),
        features=_not_known,
        mask=DROP,
    ),
    _entry(
        "Reshape",
        "target_shape (one −1 allowed)",
        lambda cfg, problems: {"target_shape": _ints(cfg, "target_shape", problems, allow=(-1,))},
        lambda cfg, weights, xs, masks: ops.reshape(xs[0], target_shape=cfg["target_shape"]),
        features=_reshape_features,
        mask=DROP,
    ),
    _entry(
        "Permute",
        "the non-batch axes reordered",
        lambda cfg, problems: {"dims": _ints(cfg, "dims", problems)},
        lambda cfg, weights, xs, masks: ops.permute(xs[0], dims=cfg["dims"]),
        features=_not_known,
        mask=DROP,
    ),
)

#: Every layer the runtime implements, by Keras class: the one lookup.
LAYERS: dict[str, LayerSpec] = {**RECURRENT_LAYERS, **{spec.class_name: spec for spec in _AROUND}}


def lookup(class_name: str) -> LayerSpec | None:
    """The entry of a Keras class, or None when the runtime does not implement it."""
    return LAYERS.get(class_name)


def resolve(class_name: str, cfg: Mapping) -> tuple[str, Mapping]:
    """The class and config the graph writes for a stored layer (an ``RNN`` around one cell: that cell's layer)."""
    spec = LAYERS.get(class_name)
    if spec is not None and spec.written_as is not None:
        return spec.written_as(cfg)
    return class_name, cfg


def supported_table() -> str:
    """The Markdown table of the registry's layers, for docs/models.md."""
    rows = ["| layer | what the runtime computes | mask |", "|---|---|---|"]
    rows += [f"| `{s.class_name}` | {s.summary} | {s.mask.wording} |" for s in LAYERS.values()]
    return "\n".join(rows)


if __name__ == "__main__":  # prints the table docs/models.md carries: python -m rnn_parity.layers
    print(supported_table())
