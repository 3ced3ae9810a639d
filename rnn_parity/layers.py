"""The registry of the layers around recurrent layers: one :class:`LayerSpec` entry per Keras class.

Each entry holds everything the package needs to know about one layer, so that
adding a layer is adding an entry:

* ``options``: the config keys it keeps (with Keras's defaults), checked, for the
  graph the runtime runs (options that change nothing at inference are dropped);
* ``weights``: the names and shapes of its ``get_weights()`` arrays, from its
  kept config and the size of its input's last axis (None: any size), which
  :mod:`rnn_parity.model_checks` checks at load;
* ``forward``: the NumPy computation (:mod:`rnn_parity.layer_ops`);
* ``mask``: what happens to its input's mask (:data:`rnn_parity.layer_ops.MASK_RULES`);
* ``features``: the size of its output's last axis, for the next layer's check;
* ``summary``: one line for the supported-layers table in docs/models.md.

:mod:`rnn_parity.runtime`, :mod:`rnn_parity.graph`, :mod:`rnn_parity.model_checks`
and the docs read :data:`LAYERS`. The recurrent layers, Bidirectional,
TimeDistributed and the layers that were there before live in those modules
still (see docs/models.md, "What is left"). NumPy and the standard library only.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from . import layer_ops as ops
from .reference import ACTIVATIONS

__all__ = ["LAYERS", "LayerSpec", "supported_table"]

Problems = list[str]
Shape = tuple


@dataclass(frozen=True)
class LayerSpec:
    """One Keras layer class as the runtime implements it.

    Attributes:
        class_name: Keras's class.
        summary: what the runtime computes, one line.
        options: ``(stored config, problems) → kept config``; appends a line to
            ``problems`` for every value the runtime cannot reproduce.
        forward: ``(kept config, weights, inputs, masks) → output``; ``masks``
            is given only when Keras passes the masks to ``call``.
        weights: ``(kept config, input features) → [(name, shape)]``.
        features: ``(kept config, input features) → output features`` (None: unknown).
        mask: ``"keep"``, ``"drop"`` or ``"query"`` (see layer_ops.MASK_RULES).
        inputs: how many input tensors it reads: ``(least, most)``.
        call_options: keyword arguments of its call that the graph keeps in its config.
        call_mask: its ``call`` takes ``mask``, so Keras hands it the masks of its inputs
            (one tensor argument, or one list of them, is all it is called with).
    """

    class_name: str
    summary: str
    options: Callable[[Mapping, Problems], dict]
    forward: Callable[[Mapping, Sequence[np.ndarray], list, list | None], np.ndarray]
    weights: Callable[[Mapping, int | None], list[tuple[str, Shape]]] = lambda cfg, features: []
    features: Callable[[Mapping, int | None], int | None] = lambda cfg, features: features
    inputs: tuple[int, int] = (1, 1)
    call_options: tuple[str, ...] = ()
    call_mask: bool = False

    @property
    def mask(self) -> str:
        return ops.MASK_RULES[self.class_name]

    def output_mask(self, masks: Sequence[np.ndarray | None]) -> np.ndarray | None:
        """The mask Keras attaches to the output, from the masks of the inputs."""
        return None if self.mask == "drop" else masks[0]


# --------------------------------------------------------------------------
# Checking config values.
# --------------------------------------------------------------------------


def _int(cfg, key, default, problems, minimum=1):
    value = cfg.get(key, default)
    if isinstance(value, (list, tuple)) and len(value) == 1:  # Keras stores 1-D sizes as 1-tuples
        value = value[0]
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        problems.append(f"{key}={value!r} is not an integer ≥ {minimum}")
        return minimum
    return value


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


def _float(cfg, key, default, problems):
    value = cfg.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        problems.append(f"{key}={value!r} is not a finite number")
        return float(default if default is not None else 0.0)
    return float(value)


def _choice(cfg, key, default, allowed, problems):
    value = cfg.get(key, default)
    if value not in allowed:
        problems.append(f"{key}={value!r} is not supported (one of {', '.join(map(str, allowed))})")
        return default
    return value


def _channels_last(cfg, problems):
    if cfg.get("data_format", "channels_last") not in (None, "channels_last"):
        problems.append(f"data_format={cfg.get('data_format')!r} is not supported (channels_last only)")


def _activation(cfg, problems):
    value = cfg.get("activation")
    if isinstance(value, Mapping) and str(value.get("module", "")).startswith("keras"):
        value = value.get("config")
    if value is None:
        return "linear"
    if not isinstance(value, str) or value not in ACTIVATIONS:
        problems.append(f"activation={value!r} is not an activation the reference implements")
        return "linear"
    return value


def _axis(cfg, default, problems):
    value = cfg.get("axis", default)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, (list, tuple)) and value and all(isinstance(a, int) for a in value):
        return list(value)
    problems.append(f"axis={value!r} is not an integer or a list of integers")
    return -1


# --------------------------------------------------------------------------
# The entries.
# --------------------------------------------------------------------------


def _conv1d_options(cfg, problems):
    _channels_last(cfg, problems)
    if cfg.get("lora_rank"):
        problems.append(f"LoRA adapters (lora_rank={cfg['lora_rank']}) are not supported")
    out = {
        "filters": _int(cfg, "filters", None, problems),
        "kernel_size": _int(cfg, "kernel_size", None, problems),
        "strides": _int(cfg, "strides", 1, problems),
        "padding": _choice(cfg, "padding", "valid", ops.PADDINGS, problems),
        "dilation_rate": _int(cfg, "dilation_rate", 1, problems),
        "groups": _int(cfg, "groups", 1, problems),
        "activation": _activation(cfg, problems),
        "use_bias": bool(cfg.get("use_bias", True)),
    }
    if out["strides"] > 1 and out["dilation_rate"] > 1:
        problems.append("strides > 1 together with dilation_rate > 1 (Keras refuses it)")
    if out["filters"] % out["groups"]:
        problems.append(f"filters={out['filters']} is not divisible by groups={out['groups']}")
    return out


def _conv1d_weights(cfg, features):
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
    _channels_last(cfg, problems)
    out = {
        "kernel_size": _int(cfg, "kernel_size", None, problems),
        "strides": _int(cfg, "strides", 1, problems),
        "padding": _choice(cfg, "padding", "valid", ("valid", "same"), problems),
        "dilation_rate": _int(cfg, "dilation_rate", 1, problems),
        "depth_multiplier": _int(cfg, "depth_multiplier", 1, problems),
        "activation": _activation(cfg, problems),
        "use_bias": bool(cfg.get("use_bias", True)),
    }
    if separable:
        out["filters"] = _int(cfg, "filters", None, problems)
    if out["strides"] > 1 and out["dilation_rate"] > 1:
        problems.append("strides > 1 together with dilation_rate > 1 (Keras refuses it)")
    return out


def _depthwise_weights(cfg, features):
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
    _channels_last(cfg, problems)
    strides = cfg.get("strides")
    return {
        "pool_size": _int(cfg, "pool_size", 2, problems),
        "strides": None if strides is None else _int(cfg, "strides", None, problems),
        "padding": _choice(cfg, "padding", "valid", ("valid", "same"), problems),
    }


def _pool(function):
    return lambda cfg, weights, xs, masks: function(
        xs[0], pool_size=cfg["pool_size"], strides=cfg["strides"], padding=cfg["padding"]
    )


def _center_scale(cfg, problems, *, rms=False):
    out = {
        "axis": _axis(cfg, -1, problems),
        "epsilon": _float(cfg, "epsilon", 1e-3, problems),
        "center": bool(cfg.get("center", True)),
        "scale": bool(cfg.get("scale", True)),
    }
    if rms:
        out["rms_scaling"] = bool(cfg.get("rms_scaling", False))
    return out


def _last_axis_only(cfg):
    return cfg["axis"] in (-1, [-1])


def _norm_weights(cfg, features, names):
    size = features if _last_axis_only(cfg) else None
    return [(name, (size,)) for name in names]


def _layer_norm_weights(cfg, features):
    names = [n for n, on in (("gamma", cfg["scale"]), ("beta", cfg["center"] and not cfg["rms_scaling"])) if on]
    return _norm_weights(cfg, features, names)


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


def _batch_norm_weights(cfg, features):
    names = [n for n, on in (("gamma", cfg["scale"]), ("beta", cfg["center"])) if on]
    return _norm_weights(cfg, features, [*names, "moving_mean", "moving_variance"])


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
        "use_scale": bool(cfg.get("use_scale", False)),
        "score_mode": _choice(cfg, "score_mode", "dot", ("dot", "concat"), problems),
    }


def _attention_weights(cfg, features):
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
        "max_value": None if max_value is None else _float(cfg, "max_value", None, problems),
        "negative_slope": _float(cfg, "negative_slope", 0.0, problems),
        "threshold": _float(cfg, "threshold", 0.0, problems),
    }


def _softmax(cfg, weights, xs, masks):
    mask = None if not masks or masks[0] is None else np.asarray(masks[0])
    if mask is not None and mask.ndim < xs[0].ndim:  # a (batch, steps) mask acts on every feature of a step
        mask = mask[..., None]
    return ops.softmax(xs[0], axis=cfg["axis"], mask=mask)


def _reshape_features(cfg, features):
    return cfg["target_shape"][-1] if cfg["target_shape"][-1] != -1 else None


def _flat(cfg, features):
    return None


def _entry(class_name, summary, options, forward, **more) -> LayerSpec:
    return LayerSpec(class_name, summary, options, forward, **more)


LAYERS: dict[str, LayerSpec] = {
    spec.class_name: spec
    for spec in (
        _entry(
            "Conv1D",
            "valid, same and causal padding; strides, dilation, groups; channels_last",
            _conv1d_options,
            _conv1d,
            weights=_conv1d_weights,
            features=lambda cfg, features: cfg["filters"],
        ),
        _entry(
            "DepthwiseConv1D",
            "valid and same padding; strides, dilation, depth_multiplier; channels_last",
            _depthwise_options,
            _depthwise,
            weights=_depthwise_weights,
            features=lambda cfg, features: None if features is None else features * cfg["depth_multiplier"],
        ),
        _entry(
            "SeparableConv1D",
            "depthwise then pointwise; valid and same padding; strides, dilation; channels_last",
            lambda cfg, problems: _depthwise_options(cfg, problems, separable=True),
            _depthwise,
            weights=_depthwise_weights,
            features=lambda cfg, features: cfg["filters"],
        ),
        _entry("MaxPooling1D", "valid and same padding; channels_last", _pool_options, _pool(ops.max_pooling1d)),
        _entry(
            "AveragePooling1D",
            "valid and same padding (edge windows average their real steps); channels_last",
            _pool_options,
            _pool(ops.average_pooling1d),
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
            inputs=(2, 3),
            call_options=("use_causal_mask",),
            call_mask=True,
        ),
        _entry(
            "AdditiveAttention",
            "scores Σ scale ⊙ tanh(q + k), use_scale, use_causal_mask, query and value masks",
            lambda cfg, problems: {"use_scale": bool(cfg.get("use_scale", True))},
            _additive_attention,
            weights=lambda cfg, features: [("scale", (features,))] if cfg["use_scale"] else [],
            inputs=(2, 3),
            call_options=("use_causal_mask",),
            call_mask=True,
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
            lambda cfg, problems: {"negative_slope": _float(cfg, "negative_slope", 0.3, problems)},
            lambda cfg, weights, xs, masks: ops.leaky_relu(xs[0], **cfg),
        ),
        _entry(
            "ELU",
            "alpha",
            lambda cfg, problems: {"alpha": _float(cfg, "alpha", 1.0, problems)},
            lambda cfg, weights, xs, masks: ops.elu(xs[0], **cfg),
        ),
        _entry(
            "PReLU",
            "the learned alpha, shared_axes",
            lambda cfg, problems: {},
            lambda cfg, weights, xs, masks: ops.prelu(xs[0], weights[0]),
            weights=lambda cfg, features: [("alpha", None)],
        ),
        _entry(
            "Softmax",
            "over any axes; masked positions get −1e9 first",
            lambda cfg, problems: {"axis": _axis(cfg, -1, problems)},
            _softmax,
            call_mask=True,
        ),
        _entry(
            "Rescaling",
            "x · scale + offset (scalars)",
            lambda cfg, problems: {
                "scale": _float(cfg, "scale", 1.0, problems),
                "offset": _float(cfg, "offset", 0.0, problems),
            },
            lambda cfg, weights, xs, masks: ops.rescaling(xs[0], **cfg),
        ),
        _entry(
            "ZeroPadding1D",
            "zero steps before and after",
            lambda cfg, problems: {"padding": _pair(cfg, "padding", 1, problems)},
            lambda cfg, weights, xs, masks: ops.zero_padding1d(xs[0], padding=cfg["padding"]),
        ),
        _entry(
            "Cropping1D",
            "steps dropped at the start and the end",
            lambda cfg, problems: {"cropping": _pair(cfg, "cropping", 1, problems)},
            lambda cfg, weights, xs, masks: ops.cropping1d(xs[0], cropping=cfg["cropping"]),
        ),
        _entry(
            "UpSampling1D",
            "every step repeated size times",
            lambda cfg, problems: {"size": _int(cfg, "size", 2, problems)},
            lambda cfg, weights, xs, masks: ops.upsampling1d(xs[0], size=cfg["size"]),
        ),
        _entry(
            "Flatten",
            "(batch, ...) → (batch, prod(...)); channels_last",
            lambda cfg, problems: _channels_last(cfg, problems) or {},
            lambda cfg, weights, xs, masks: ops.flatten(xs[0]),
            features=_flat,
        ),
        _entry(
            "Reshape",
            "target_shape (one −1 allowed)",
            lambda cfg, problems: {"target_shape": [int(d) for d in cfg.get("target_shape") or []]},
            lambda cfg, weights, xs, masks: ops.reshape(xs[0], target_shape=cfg["target_shape"]),
            features=_reshape_features,
        ),
        _entry(
            "Permute",
            "the non-batch axes reordered",
            lambda cfg, problems: {"dims": [int(d) for d in cfg.get("dims") or []]},
            lambda cfg, weights, xs, masks: ops.permute(xs[0], dims=cfg["dims"]),
            features=_flat,
        ),
    )
}


def supported_table() -> str:
    """The Markdown table of the registry's layers, for docs/models.md."""
    rows = ["| layer | what the runtime computes | mask |", "|---|---|---|"]
    wording = {"keep": "passed on", "drop": "stops here", "query": "the query's"}
    rows += [f"| `{s.class_name}` | {s.summary} | {wording[s.mask]} |" for s in LAYERS.values()]
    return "\n".join(rows)


if __name__ == "__main__":  # prints the table docs/models.md carries: python -m rnn_parity.layers
    print(supported_table())
