"""The layers around recurrent layers (rnn_parity.layer_ops) against the real Keras layers, and by hand."""

from __future__ import annotations

import numpy as np
import pytest

from rnn_parity import layer_ops as ops
from rnn_parity.layers import LAYERS

ATOL, RTOL = 1e-5, 1.3e-6


def _seeded(shape, seed=0, scale=1.0):
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(np.float32)


def _keras_layer(keras, layer, x, *weights):
    """Build the layer on ``x``'s shape, give it ``weights`` (when any) and run it at inference."""
    layer.build(x.shape)
    if weights:
        layer.set_weights(list(weights))
    return keras.ops.convert_to_numpy(layer(x, training=False))


def _close(keras_out, reference_out):
    assert keras_out.shape == reference_out.shape
    np.testing.assert_allclose(keras_out, reference_out, atol=ATOL, rtol=RTOL)


# --------------------------------------------------------------------------
# By hand: values anyone can check.
# --------------------------------------------------------------------------


def test_padding_follows_tensorflow_same_and_causal():
    assert ops.padding_1d(7, 3, 1, "valid") == (0, 0, 5)
    assert ops.padding_1d(7, 3, 2, "same") == (1, 1, 4)
    assert ops.padding_1d(6, 2, 2, "same") == (0, 0, 3)
    assert ops.padding_1d(5, 4, 1, "same") == (1, 2, 5)  # the odd one out goes right
    assert ops.padding_1d(5, 3, 1, "causal", dilation=2) == (4, 0, 5)


def test_conv1d_by_hand():
    x = np.arange(5, dtype=np.float64).reshape(1, 5, 1)  # 0 1 2 3 4
    kernel = np.array([1.0, 10.0]).reshape(2, 1, 1)  # y_t = x_t + 10 x_{t+1}
    np.testing.assert_array_equal(ops.conv1d(x, kernel)[0, :, 0], [10, 21, 32, 43])
    causal = ops.conv1d(x, kernel, padding="causal")[0, :, 0]  # y_t = x_{t-1} + 10 x_t
    np.testing.assert_array_equal(causal, [0, 10, 21, 32, 43])


def test_pooling_same_padding_by_hand():
    x = np.array([1.0, -5.0, 3.0]).reshape(1, 3, 1)
    np.testing.assert_array_equal(ops.max_pooling1d(x, pool_size=2, padding="same")[0, :, 0], [1, 3])
    # The last window covers one real step: its average is that step, not half of it.
    np.testing.assert_array_equal(ops.average_pooling1d(x, pool_size=2, padding="same")[0, :, 0], [-2, 3])


def test_attention_masks_by_hand():
    q = np.zeros((1, 2, 1))
    v = np.array([1.0, 3.0, 100.0]).reshape(1, 3, 1)
    # Equal scores: the mean of the value steps the masks let through.
    out = ops.attention(q, v, value_mask=np.array([[True, True, False]]))
    np.testing.assert_allclose(out[0, :, 0], [2.0, 2.0])
    causal = ops.attention(q, v, use_causal_mask=True)
    np.testing.assert_allclose(causal[0, :, 0], [1.0, 2.0])
    hidden_query = ops.attention(q, v, query_mask=np.array([[True, False]]))
    np.testing.assert_allclose(hidden_query[0, :, 0], [104 / 3, 0.0])


# --------------------------------------------------------------------------
# Against Keras.
# --------------------------------------------------------------------------


@pytest.mark.keras
@pytest.mark.parametrize(
    "padding, strides, dilation, groups",
    [
        ("valid", 1, 1, 1),
        ("same", 2, 1, 1),
        ("same", 1, 2, 1),
        ("causal", 1, 3, 1),
        ("valid", 3, 1, 2),
        ("causal", 1, 1, 4),
    ],
)
def test_conv1d_matches_keras(keras, padding, strides, dilation, groups):
    x = _seeded((2, 9, 4))
    kernel, bias = _seeded((3, 4 // groups, 8), 1, 0.5), _seeded((8,), 2)
    layer = keras.layers.Conv1D(
        8, 3, strides=strides, padding=padding, dilation_rate=dilation, groups=groups, activation="tanh"
    )
    reference = ops.conv1d(
        x.astype(np.float64),
        kernel,
        bias,
        strides=strides,
        padding=padding,
        dilation_rate=dilation,
        groups=groups,
        activation="tanh",
    )
    _close(_keras_layer(keras, layer, x, kernel, bias), reference)


@pytest.mark.keras
@pytest.mark.parametrize("kind", ["max", "average"])
@pytest.mark.parametrize("pool_size, strides, padding", [(2, None, "valid"), (3, 1, "same"), (2, None, "same")])
def test_pooling_matches_keras(keras, kind, pool_size, strides, padding):
    x = _seeded((2, 7, 3))
    cls = keras.layers.MaxPooling1D if kind == "max" else keras.layers.AveragePooling1D
    function = ops.max_pooling1d if kind == "max" else ops.average_pooling1d
    layer = cls(pool_size=pool_size, strides=strides, padding=padding)
    reference = function(x.astype(np.float64), pool_size=pool_size, strides=strides, padding=padding)
    _close(_keras_layer(keras, layer, x), reference)


@pytest.mark.keras
@pytest.mark.filterwarnings("ignore:You passed `rms_scaling=True`:UserWarning")
@pytest.mark.parametrize(
    "options",
    [{}, {"center": False}, {"scale": False, "epsilon": 1e-5}, {"rms_scaling": True}, {"axis": [1, 2]}],
    ids=["default", "no-center", "no-scale", "rms", "two-axes"],
)
def test_layer_normalization_matches_keras(keras, options):
    x = _seeded((2, 5, 4), scale=3.0) + 1.0
    layer = keras.layers.LayerNormalization(**options)
    layer.build(x.shape)
    weights = [_seeded(w.shape, 10 + i) for i, w in enumerate(layer.get_weights())]
    layer.set_weights(weights)
    named = dict(zip([w.path.split("/")[-1] for w in layer.weights], weights))
    reference = ops.layer_normalization(
        x.astype(np.float64),
        named.get("gamma"),
        named.get("beta"),
        axis=options.get("axis", -1),
        epsilon=options.get("epsilon", 1e-3),
        rms_scaling=options.get("rms_scaling", False),
    )
    _close(keras.ops.convert_to_numpy(layer(x)), reference)


@pytest.mark.keras
@pytest.mark.parametrize("options", [{}, {"center": False, "scale": False}, {"axis": 1, "epsilon": 0.1}])
def test_batch_normalization_inference_matches_keras(keras, options):
    x = _seeded((3, 4, 5), scale=2.0)
    layer = keras.layers.BatchNormalization(**options)
    layer.build(x.shape)
    weights = []
    for i, w in enumerate(layer.weights):
        value = _seeded(w.shape, 20 + i)
        weights.append(np.abs(value) + 0.1 if "variance" in w.path else value)
    layer.set_weights(weights)
    named = dict(zip([w.path.split("/")[-1] for w in layer.weights], weights))
    reference = ops.batch_normalization(
        x.astype(np.float64),
        named["moving_mean"],
        named["moving_variance"],
        named.get("gamma"),
        named.get("beta"),
        axis=options.get("axis", -1),
        epsilon=options.get("epsilon", 1e-3),
    )
    _close(keras.ops.convert_to_numpy(layer(x, training=False)), reference)


@pytest.mark.keras
@pytest.mark.parametrize(
    "score_mode, use_scale, causal, masked, with_key",
    [
        ("dot", False, False, False, False),
        ("dot", True, True, False, True),
        ("dot", False, False, True, False),
        ("concat", True, True, True, True),
        ("concat", False, False, False, False),
    ],
)
def test_attention_matches_keras(keras, score_mode, use_scale, causal, masked, with_key):
    q, v, k = _seeded((2, 4, 3), 1), _seeded((2, 5, 3), 2), _seeded((2, 5, 3), 3)
    inputs = [q, v, k] if with_key else [q, v]
    layer = keras.layers.Attention(use_scale=use_scale, score_mode=score_mode)
    layer.build([t.shape for t in inputs])
    weights = [np.float32(0.7), np.float32(1.3)][: len(layer.weights)]
    layer.set_weights(weights)
    named = dict(zip([w.path.split("/")[-1] for w in layer.weights], weights))
    masks = None
    if masked:
        masks = [np.array([[1, 1, 1, 0], [1, 1, 0, 0]], bool), np.array([[1, 1, 1, 0, 0], [1, 0, 1, 1, 0]], bool)]
    keras_out = layer(inputs, mask=masks, use_causal_mask=causal)
    reference = ops.attention(
        q.astype(np.float64),
        v,
        k if with_key else None,
        query_mask=None if masks is None else masks[0],
        value_mask=None if masks is None else masks[1],
        use_causal_mask=causal,
        score_mode=score_mode,
        scale=named.get("scale"),
        concat_score_weight=named.get("concat_score_weight"),
    )
    _close(keras.ops.convert_to_numpy(keras_out), reference)


def _keras_simple(keras, class_name):
    """The Keras layer and the reference function, with the same (non-default) options."""
    L = keras.layers
    cases = {
        "ReLU": (
            L.ReLU(max_value=1.5, negative_slope=0.2, threshold=0.3),
            lambda x, w: ops.relu(x, max_value=1.5, negative_slope=0.2, threshold=0.3),
        ),
        "LeakyReLU": (L.LeakyReLU(negative_slope=0.1), lambda x, w: ops.leaky_relu(x, negative_slope=0.1)),
        "ELU": (L.ELU(alpha=0.7), lambda x, w: ops.elu(x, alpha=0.7)),
        "PReLU": (L.PReLU(shared_axes=[1]), lambda x, w: ops.prelu(x, w[0])),
        "Softmax": (L.Softmax(axis=1), lambda x, w: ops.softmax(x, axis=1)),
        "UnitNormalization": (L.UnitNormalization(axis=[1, 2]), lambda x, w: ops.unit_normalization(x, axis=[1, 2])),
        "Rescaling": (L.Rescaling(0.5, offset=-1.0), lambda x, w: ops.rescaling(x, scale=0.5, offset=-1.0)),
        "ZeroPadding1D": (L.ZeroPadding1D((1, 2)), lambda x, w: ops.zero_padding1d(x, padding=(1, 2))),
        "Cropping1D": (L.Cropping1D((2, 1)), lambda x, w: ops.cropping1d(x, cropping=(2, 1))),
        "UpSampling1D": (L.UpSampling1D(3), lambda x, w: ops.upsampling1d(x, size=3)),
        "Flatten": (L.Flatten(), lambda x, w: ops.flatten(x)),
        "Reshape": (L.Reshape((-1, 2)), lambda x, w: ops.reshape(x, target_shape=(-1, 2))),
        "Permute": (L.Permute((2, 1)), lambda x, w: ops.permute(x, dims=(2, 1))),
    }
    return cases[class_name]


SIMPLE = [
    "ReLU",
    "LeakyReLU",
    "ELU",
    "PReLU",
    "Softmax",
    "UnitNormalization",
    "Rescaling",
    "ZeroPadding1D",
    "Cropping1D",
    "UpSampling1D",
    "Flatten",
    "Reshape",
    "Permute",
]


@pytest.mark.keras
@pytest.mark.parametrize("class_name", SIMPLE)
def test_simple_layers_match_keras(keras, class_name):
    layer, reference = _keras_simple(keras, class_name)
    x = _seeded((2, 6, 4), 7, 2.0)
    layer.build(x.shape)
    weights = [_seeded(w.shape, 8) for w in layer.get_weights()]
    if weights:
        layer.set_weights(weights)
    _close(keras.ops.convert_to_numpy(layer(x)), reference(x.astype(np.float64), weights))


@pytest.mark.keras
def test_softmax_layer_mask_matches_keras(keras):
    x = _seeded((2, 3, 5), 9)
    mask = np.array([[1, 1, 0, 1, 0], [0, 0, 0, 0, 0]], dtype=bool)[:, None, :]  # the second: fully masked
    got = keras.ops.convert_to_numpy(keras.layers.Softmax()(x, mask=mask))
    _close(got, ops.softmax(x.astype(np.float64), mask=mask))


#: The registry's layers whose rule is one of Keras's plain three (keep, drop, the query's); MultiHeadAttention
#: attaches its mask inside call (tested in test_model_zoo), the other rules are each layer's own.
PLAIN_RULES = sorted(
    name
    for name, spec in LAYERS.items()
    if spec.mask.name in ("keep", "drop", "query") and name != "MultiHeadAttention"
)


@pytest.mark.keras
@pytest.mark.parametrize("class_name", PLAIN_RULES)
def test_mask_rules_are_keras_rules(keras, class_name):
    """Each layer's declared mask rule is what Keras 3 does with a (batch, steps) mask."""
    L = keras.layers
    needs = {
        "Conv1D": (2, 2),
        "DepthwiseConv1D": (2,),
        "SeparableConv1D": (2, 2),
        "MaxPooling1D": (2,),
        "AveragePooling1D": (2,),
        "Reshape": ((12,),),
        "Permute": ((2, 1),),
        "Rescaling": (2.0,),
        "Dense": (2,),
        "Activation": ("tanh",),
        "Dropout": (0.5,),
        "SpatialDropout1D": (0.5,),
        "GaussianNoise": (0.1,),
        "GaussianDropout": (0.1,),
        "AlphaDropout": (0.1,),
        "Dot": (-1,),
        "RepeatVector": (2,),
        "TimeDistributed": (L.Dense(2),),
    }
    layer = getattr(L, class_name)(*needs.get(class_name, ()))
    x, mask = _seeded((2, 4, 3)), np.array([[1, 1, 0, 0], [1, 1, 1, 0]], dtype=bool)
    several = LAYERS[class_name].inputs[0] > 1
    inputs = [x, x] if several else (x[:, 0] if class_name == "RepeatVector" else x)
    masks = [mask, None] if several else mask
    layer(inputs)
    got = layer.compute_mask(inputs, masks) if layer.supports_masking else None
    rule = LAYERS[class_name].mask.name
    if rule == "drop":
        assert got is None
    else:  # "keep", or "query" (the first input's mask, given here)
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(got), mask)


def test_docs_carry_the_registry_table():
    """docs/models.md shows the table python -m rnn_parity.layers prints."""
    from pathlib import Path

    from rnn_parity.layers import supported_table

    docs = (Path(__file__).parent.parent / "docs" / "models.md").read_text(encoding="utf-8")
    assert supported_table() in docs


@pytest.mark.keras
@pytest.mark.parametrize("kind", ["depthwise", "separable"])
@pytest.mark.parametrize("padding, strides, dilation", [("valid", 1, 1), ("same", 2, 1), ("same", 1, 2)])
def test_depthwise_and_separable_conv1d_match_keras(keras, kind, padding, strides, dilation):
    x = _seeded((2, 9, 3))
    options = {"strides": strides, "padding": padding, "dilation_rate": dilation, "activation": "tanh"}
    if kind == "depthwise":
        layer = keras.layers.DepthwiseConv1D(3, depth_multiplier=2, **options)
        weights = [_seeded((3, 3, 2), 1), _seeded((6,), 2)]
        reference = ops.depthwise_conv1d(x.astype(np.float64), *weights, **options)
    else:
        layer = keras.layers.SeparableConv1D(4, 3, depth_multiplier=2, **options)
        weights = [_seeded((3, 3, 2), 1), _seeded((1, 6, 4), 2), _seeded((4,), 3)]
        reference = ops.separable_conv1d(x.astype(np.float64), *weights, **options)
    _close(_keras_layer(keras, layer, x, *weights), reference)


@pytest.mark.keras
@pytest.mark.parametrize("use_scale, causal, masked", [(True, False, False), (False, True, True), (True, True, True)])
def test_additive_attention_matches_keras(keras, use_scale, causal, masked):
    q, v = _seeded((2, 4, 3), 1), _seeded((2, 5, 3), 2)
    layer = keras.layers.AdditiveAttention(use_scale=use_scale)
    layer.build([q.shape, v.shape])
    weights = [_seeded((3,), 4)] if use_scale else []
    layer.set_weights(weights)
    masks = None
    if masked:
        masks = [np.array([[1, 1, 1, 0], [1, 1, 0, 0]], bool), np.array([[1, 1, 1, 0, 0], [1, 0, 1, 1, 0]], bool)]
    keras_out = layer([q, v], mask=masks, use_causal_mask=causal)
    reference = ops.attention(
        q.astype(np.float64),
        v,
        query_mask=None if masks is None else masks[0],
        value_mask=None if masks is None else masks[1],
        use_causal_mask=causal,
        score_mode="additive",
        scale=weights[0] if weights else None,
    )
    _close(keras.ops.convert_to_numpy(keras_out), reference)


# --------------------------------------------------------------------------
# Dot and MultiHeadAttention: by hand, then against Keras.
# --------------------------------------------------------------------------


def test_dot_by_hand():
    x1, x2 = np.array([[1.0, 2.0]]), np.array([[3.0, 4.0]])
    np.testing.assert_array_equal(ops.dot(x1, x2, axes=1), [[11.0]])  # only the batch axis left: (batch, 1)
    np.testing.assert_allclose(ops.dot(x1, x2, axes=-1, normalize=True), [[11 / (np.sqrt(5) * 5)]])
    a = np.arange(6.0).reshape(1, 3, 2)  # rows (0, 1), (2, 3), (4, 5)
    np.testing.assert_array_equal(ops.dot(a, a, axes=(2, 2))[0], a[0] @ a[0].T)  # (batch, 3, 3) scores
    np.testing.assert_array_equal(ops.dot(a, a, axes=1)[0], a[0].T @ a[0])  # over the steps: (batch, 2, 2)


def _uniform_heads(value_mask=None, query_mask=None, causal=False):
    """One head whose query and key kernels are zero: every allowed score is equal, so the output is the
    mean of the allowed value steps (value kernel and output kernel 1, no biases)."""
    q = np.zeros((1, 3, 1))
    v = np.array([1.0, 3.0, 8.0]).reshape(1, 3, 1)
    zero, one = np.zeros((1, 1, 1)), np.ones((1, 1, 1))
    out = ops.multi_head_attention(
        q,
        v,
        query_kernel=zero,
        key_kernel=zero,
        value_kernel=one,
        output_kernel=one,
        value_mask=value_mask,
        query_mask=query_mask,
        use_causal_mask=causal,
    )
    return out[0, :, 0]


def test_multi_head_attention_masks_by_hand():
    np.testing.assert_allclose(_uniform_heads(), [4.0, 4.0, 4.0])
    np.testing.assert_allclose(_uniform_heads(value_mask=np.array([[True, True, False]])), [2.0, 2.0, 2.0])
    np.testing.assert_allclose(_uniform_heads(causal=True), [1.0, 2.0, 4.0])
    # A padded query step has nothing allowed: Keras's large negative scores make it attend to every step
    # equally (no zeroing, unlike the Attention layer).
    padded = _uniform_heads(value_mask=np.array([[True, True, False]]), query_mask=np.array([[True, True, False]]))
    np.testing.assert_allclose(padded, [2.0, 2.0, 4.0])
    # With dropout > 0 Keras goes through its Softmax layer, which zeroes what is masked: that row attends to nothing.
    zeroed = ops.multi_head_attention(
        np.zeros((1, 3, 1)),
        np.array([1.0, 3.0, 8.0]).reshape(1, 3, 1),
        query_kernel=np.zeros((1, 1, 1)),
        key_kernel=np.zeros((1, 1, 1)),
        value_kernel=np.ones((1, 1, 1)),
        output_kernel=np.ones((1, 1, 1)),
        query_mask=np.array([[True, True, False]]),
        zero_masked=True,
    )
    np.testing.assert_allclose(zeroed[0, :, 0], [4.0, 4.0, 0.0])


def test_a_fully_masked_softmax_axis_is_zero():
    """Keras 3.10 and later zero the masked positions after the softmax (a fully masked axis is not uniform)."""
    x = np.array([[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]])
    out = ops.softmax(x, mask=np.array([[True, True, False], [False, False, False]]))
    np.testing.assert_allclose(out[0], [1 / (1 + np.e), np.e / (1 + np.e), 0.0])
    np.testing.assert_array_equal(out[1], [0.0, 0.0, 0.0])


@pytest.mark.keras
@pytest.mark.parametrize(
    "axes, normalize, shapes",
    [(-1, False, [(2, 4, 3), (2, 5, 3)]), ((1, 1), True, [(2, 4, 3), (2, 4, 5)]), (1, False, [(2, 3), (2, 3)])],
)
def test_dot_matches_keras(keras, axes, normalize, shapes):
    x1, x2 = _seeded(shapes[0], 1), _seeded(shapes[1], 2)
    layer = keras.layers.Dot(axes=axes, normalize=normalize)
    _close(
        keras.ops.convert_to_numpy(layer([x1, x2])), ops.dot(x1.astype(np.float64), x2, axes=axes, normalize=normalize)
    )


@pytest.mark.keras
@pytest.mark.parametrize(
    "options, with_key, masked, causal",
    [
        ({}, False, False, False),
        ({"value_dim": 2, "output_shape": 5}, True, True, False),
        ({"use_bias": False}, False, True, True),
        ({"dropout": 0.3, "output_shape": (2, 3)}, True, True, True),  # dropout > 0 takes Keras's einsum path
    ],
)
def test_multi_head_attention_matches_keras(keras, options, with_key, masked, causal):
    q, v, k = _seeded((2, 4, 3), 1), _seeded((2, 5, 2), 2), _seeded((2, 5, 4), 3)
    layer = keras.layers.MultiHeadAttention(num_heads=2, key_dim=3, **options)
    layer.build(q.shape, v.shape, k.shape if with_key else None)
    weights = [_seeded(w.shape, 10 + i, 0.5) for i, w in enumerate(layer.get_weights())]
    layer.set_weights(weights)
    masks = [None, None, None]
    if masked:
        masks = [
            np.array([[1, 1, 1, 0], [1, 1, 0, 0]], bool),
            np.array([[1, 1, 1, 0, 0], [1, 0, 1, 1, 0]], bool),
            np.array([[1, 1, 0, 1, 1], [1, 1, 1, 1, 0]], bool),
        ]
    query = q
    if masked:  # Keras reads the query's mask from the tensor itself (get_keras_mask), not from query_mask=
        q[~masks[0]] = 0.0
        query = keras.layers.Masking()(q)
    got = layer(
        query,
        v,
        k if with_key else None,
        value_mask=masks[1],
        key_mask=masks[2] if with_key else None,
        use_causal_mask=causal,
        training=False,
    )
    names = ["query_kernel", "query_bias", "key_kernel", "key_bias", "value_kernel", "value_bias"]
    names += ["output_kernel", "output_bias"]
    if options.get("use_bias") is False:
        names = [n for n in names if n.endswith("kernel")]
    reference = ops.multi_head_attention(
        q.astype(np.float64),
        v,
        k if with_key else None,
        query_mask=masks[0],
        value_mask=masks[1],
        key_mask=masks[2] if with_key else None,
        use_causal_mask=causal,
        zero_masked=options.get("dropout", 0) > 0,
        **dict(zip(names, weights, strict=True)),
    )
    _close(keras.ops.convert_to_numpy(got), reference)


def test_keras2_s_merge_masks_by_hand():
    """Keras 2 (tf_keras's _Merge and Concatenate.compute_mask): the AND of the masks given."""
    m1, m2 = np.array([[True, True, False]]), np.array([[True, False, False]])
    assert ops.merge_mask([m1, m2]).tolist() == [[True, True, False]]  # Keras 3: OR
    assert ops.merge_mask([m1, m2], keras2=True).tolist() == [[True, False, False]]
    assert ops.merge_mask([m1, None]) is None  # Keras 3: an input without a mask, no mask
    assert ops.merge_mask([m1, None], keras2=True).tolist() == m1.tolist()
    assert ops.merge_mask([None, None], keras2=True) is None
    x = np.zeros((1, 3, 2))
    assert ops.concatenate_mask([x, x], [m1, m2]).tolist() == [[True, True, False]]
    assert ops.concatenate_mask([x, x], [m1, m2], keras2=True).tolist() == [[True, False, False]]
    assert ops.concatenate_mask([x, x], [m1, None], keras2=True).tolist() == m1.tolist()
    joined = ops.concatenate_mask([x, x], [m1, m2], axis=1, keras2=True)  # on the time axis: the masks joined
    assert joined.tolist() == [[True, True, False, True, False, False]]
    assert joined.tolist() == ops.concatenate_mask([x, x], [m1, m2], axis=1).tolist()


def test_keras2_merges_compute_without_the_masks():
    x1, x2 = np.array([[[1.0], [2.0]]]), np.array([[[5.0], [-3.0]]])
    masks = [np.array([[True, False]]), np.array([[False, True]])]
    spec = LAYERS["Maximum"]
    assert spec.forward(spec.keep({"keras2_masks": True}, []), [], [x1, x2], masks).tolist() == [[[5.0], [2.0]]]
    assert spec.forward(spec.keep({}, []), [], [x1, x2], masks).tolist() == [[[1.0], [-3.0]]]  # Keras 3
