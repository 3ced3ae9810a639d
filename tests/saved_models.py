"""Small Keras models, trained for a few steps and saved, shared by the verify and export tests.

Each builder returns the saved files. :func:`saved` builds a model once per
test session (the machine is small: every model is tiny and trains for one or
two epochs on random data, just enough that no weight keeps its initial value).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

_CACHE: dict[str, dict[str, Path]] = {}


def _keras():
    from rnn_parity.keras_runner import import_keras

    keras = import_keras()
    keras.utils.set_random_seed(0)
    return keras


def _ids(rng, n, t, vocab, *, pad=True):
    x = rng.integers(1, vocab, size=(n, t))
    if pad:
        lengths = rng.integers(2, t + 1, size=n)
        x[np.arange(t)[None, :] >= lengths[:, None]] = 0
    return x.astype("int32")


def _padded_floats(rng, n, t, d):
    x = rng.standard_normal((n, t, d)).astype("float32")
    lengths = rng.integers(2, t + 1, size=n)
    x[np.arange(t)[None, :] >= lengths[:, None]] = 0.0
    return x


def _fit(model, x, y, loss="mse", epochs=2, batch_size=8):
    model.compile(optimizer="adam", loss=loss)
    model.fit(x, y, epochs=epochs, batch_size=batch_size, verbose=0)
    return model


def _save(model, folder: Path, name: str, formats=("keras", "h5")) -> dict[str, Path]:
    import warnings

    paths = {}
    for fmt in formats:
        path = folder / f"{name}.{fmt}"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.save(path)
        paths[fmt] = path
    return paths


def sequential(folder: Path) -> dict[str, Path]:
    """The issue's model: Embedding(mask_zero) → Bidirectional(LSTM, sequences) → GRU → Dense(softmax)."""
    keras = _keras()
    layers = keras.layers
    model = keras.Sequential(
        [
            keras.Input(shape=(None,), dtype="int32", name="ids"),
            layers.Embedding(30, 8, mask_zero=True, name="embedding"),
            layers.Bidirectional(layers.LSTM(6, return_sequences=True), name="bidirectional"),
            layers.GRU(5, name="gru"),
            layers.Dense(3, activation="softmax", name="dense"),
        ],
        name="tagger",
    )
    rng = np.random.default_rng(1)
    x = _ids(rng, 32, 9, 30)
    _fit(model, x, rng.integers(0, 3, 32), loss="sparse_categorical_crossentropy")
    return _save(model, folder, "sequential")


def two_branches(folder: Path) -> dict[str, Path]:
    """Functional: token ids → Embedding(mask_zero) → LSTM and features → Masking → GRU, concatenated,
    then a TimeDistributed(Dense) head."""
    keras = _keras()
    layers = keras.layers
    tokens = keras.Input(shape=(None,), dtype="int32", name="tokens")
    features = keras.Input(shape=(None, 3), name="features")
    a = layers.LSTM(5, return_sequences=True, name="words")(
        layers.Embedding(20, 4, mask_zero=True, name="lookup")(tokens)
    )
    b = layers.GRU(4, return_sequences=True, reset_after=False, name="signal")(layers.Masking(name="pad")(features))
    merged = layers.Concatenate(name="both")([a, b])
    out = layers.TimeDistributed(layers.Dense(2), name="head")(merged)
    model = keras.Model([tokens, features], out, name="two_branches")
    rng = np.random.default_rng(2)
    x = [_ids(rng, 32, 7, 20), _padded_floats(rng, 32, 7, 3)]
    _fit(model, x, rng.standard_normal((32, 7, 2)).astype("float32"))
    return _save(model, folder, "two_branches", formats=("keras",))


def two_branches_unmasked(folder: Path) -> dict[str, Path]:
    """Functional without masks (so Keras can reload it from .h5): SimpleRNN and a backwards LSTM,
    concatenated, then TimeDistributed(Dense)."""
    keras = _keras()
    layers = keras.layers
    x_in = keras.Input(shape=(6, 3), name="x")
    a = layers.SimpleRNN(4, return_sequences=True, activation="relu")(x_in)
    b = layers.LSTM(3, return_sequences=True, go_backwards=True, recurrent_activation="hard_sigmoid")(x_in)
    out = layers.TimeDistributed(layers.Dense(2, activation="tanh"))(layers.Concatenate()([a, b]))
    model = keras.Model(x_in, out)
    rng = np.random.default_rng(3)
    _fit(model, rng.standard_normal((32, 6, 3)).astype("float32"), rng.standard_normal((32, 6, 2)))
    return _save(model, folder, "two_branches_unmasked")


def encoder_decoder(folder: Path) -> dict[str, Path]:
    """A bidirectional encoder's states, joined, start a decoder (initial_state) whose ids are masked: Keras
    then does not pass the decoder its mask."""
    keras = _keras()
    layers = keras.layers
    source = keras.Input(shape=(None, 3), name="source")
    target = keras.Input(shape=(None,), dtype="int32", name="target")
    _, fh, fc, bh, bc = layers.Bidirectional(layers.LSTM(5, return_state=True), name="encoder")(
        layers.Masking(name="pad")(source)
    )
    h = layers.Concatenate(name="h")([fh, bh])
    c = layers.Concatenate(name="c")([fc, bc])
    decoded = layers.LSTM(10, return_sequences=True, name="decoder")(
        layers.Embedding(12, 4, mask_zero=True, name="target_lookup")(target), initial_state=[h, c]
    )
    out = layers.Dense(12, activation="softmax", name="next_id")(decoded)
    model = keras.Model([source, target], out)
    rng = np.random.default_rng(4)
    x = [_padded_floats(rng, 32, 5, 3), _ids(rng, 32, 6, 12)]
    _fit(model, x, rng.integers(0, 12, (32, 6)), loss="sparse_categorical_crossentropy")
    return _save(model, folder, "encoder_decoder", formats=("keras",))


def assorted(folder: Path) -> dict[str, Path]:
    """Masking → SimpleRNN(go_backwards, relu) → Dropout → Bidirectional(GRU, ave) → SpatialDropout1D
    → GlobalAveragePooling1D → Dense → Activation."""
    keras = _keras()
    layers = keras.layers
    model = keras.Sequential(
        [
            keras.Input(shape=(8, 4)),
            layers.Masking(mask_value=0.0),
            layers.SimpleRNN(5, return_sequences=True, go_backwards=True, activation="relu"),
            layers.Dropout(0.3),
            layers.Bidirectional(layers.GRU(3, return_sequences=True, reset_after=False), merge_mode="ave"),
            layers.SpatialDropout1D(0.2),
            layers.GlobalAveragePooling1D(),
            layers.Dense(4),
            layers.Activation("softmax"),
        ]
    )
    rng = np.random.default_rng(5)
    _fit(model, _padded_floats(rng, 32, 8, 4), rng.integers(0, 4, 32), loss="sparse_categorical_crossentropy")
    return _save(model, folder, "assorted")


def merges(folder: Path) -> dict[str, Path]:
    """Masked branches combined by Add, Multiply, Maximum, Subtract and Concatenate with an unmasked branch;
    a Bidirectional with merge_mode=None; several outputs."""
    keras = _keras()
    layers = keras.layers
    x_in = keras.Input(shape=(None, 2), name="x")
    masked = layers.Masking()(x_in)
    a = layers.LSTM(4, return_sequences=True)(masked)
    b = layers.GRU(4, return_sequences=True)(masked)
    forward, backward = layers.Bidirectional(
        layers.SimpleRNN(4, return_sequences=True), merge_mode=None, name="both_ways"
    )(masked)
    unmasked = layers.Dense(4, name="unmasked")(x_in)
    total = layers.Add(name="total")([a, b, layers.Subtract(name="difference")([forward, backward])])
    product = layers.Multiply(name="product")([a, b])
    top = layers.Maximum(name="top")([a, unmasked])
    joined = layers.Concatenate(name="joined")([total, unmasked])
    pooled = layers.GlobalMaxPooling1D(name="pooled")(layers.Average(name="mean")([product, top]))
    model = keras.Model(x_in, [layers.Dense(1, name="score")(joined), pooled])
    rng = np.random.default_rng(6)
    _fit(
        model, _padded_floats(rng, 32, 6, 2), [rng.standard_normal((32, 6, 1)), rng.standard_normal((32, 4))], epochs=1
    )
    return _save(model, folder, "merges", formats=("keras",))


def stateful(folder: Path) -> dict[str, Path]:
    """A fixed batch of 2 through stateful LSTM and GRU layers (saved as .h5)."""
    keras = _keras()
    layers = keras.layers
    model = keras.Sequential(
        [
            keras.Input(batch_shape=(2, 5, 3)),
            layers.LSTM(4, stateful=True, return_sequences=True, use_bias=False),
            layers.GRU(3, stateful=True),
            layers.Dense(1),
        ]
    )
    rng = np.random.default_rng(7)
    _fit(model, rng.standard_normal((8, 5, 3)).astype("float32"), rng.standard_normal((8, 1)), epochs=1, batch_size=2)
    return _save(model, folder, "stateful", formats=("h5",))


def autoencoder(folder: Path) -> dict[str, Path]:
    """GRU → RepeatVector → LSTM → TimeDistributed(Dense) (saved as .h5)."""
    keras = _keras()
    layers = keras.layers
    model = keras.Sequential(
        [
            keras.Input(shape=(6, 2)),
            layers.GRU(4),
            layers.RepeatVector(6),
            layers.LSTM(3, return_sequences=True),
            layers.TimeDistributed(layers.Dense(2)),
        ]
    )
    rng = np.random.default_rng(8)
    x = rng.standard_normal((32, 6, 2)).astype("float32")
    _fit(model, x, x)
    return _save(model, folder, "autoencoder", formats=("h5",))


# ----- models the tools must refuse -----


def lambda_model(folder: Path) -> dict[str, Path]:
    keras = _keras()
    x_in = keras.Input(shape=(5, 2))
    y = keras.layers.Lambda(lambda t: t * 2.0, name="double")(x_in)
    return _save(keras.Model(x_in, keras.layers.LSTM(3)(y)), folder, "lambda")


def groupnorm_model(folder: Path) -> dict[str, Path]:
    """A built-in Keras layer the runtime does not implement."""
    keras = _keras()
    x_in = keras.Input(shape=(8, 2))
    y = keras.layers.GroupNormalization(groups=2, name="groupnorm")(x_in)
    return _save(keras.Model(x_in, keras.layers.LSTM(3)(y)), folder, "groupnorm", formats=("keras",))


def custom_layer_model(folder: Path) -> dict[str, Path]:
    keras = _keras()

    @keras.saving.register_keras_serializable(package="parity_tests")
    class Scale(keras.layers.Layer):
        def call(self, x):
            return x * 3.0

    x_in = keras.Input(shape=(5, 2))
    y = Scale(name="scale")(x_in)
    return _save(keras.Model(x_in, keras.layers.GRU(3)(y)), folder, "custom", formats=("keras",))


def options_model(folder: Path) -> dict[str, Path]:
    """Valid Keras the reference does not implement: a custom activation and a float16 layer."""
    keras = _keras()

    @keras.saving.register_keras_serializable(package="parity_tests")
    def cube(x):
        return x * x * x

    x_in = keras.Input(shape=(5, 2))
    y = keras.layers.LSTM(3, return_sequences=True, name="half", dtype="float16")(x_in)
    y = keras.layers.Dense(2, activation=cube, name="cubed")(y)
    return _save(keras.Model(x_in, y), folder, "options", formats=("keras",))


def refused(folder: Path) -> dict[str, Path]:
    """Valid Keras models the runtime cannot reproduce, one refusal each (not trained: they never run)."""
    keras = _keras()
    layers = keras.layers
    x = keras.Input((5, 2), name="x")
    models = {"op": keras.Model(x, layers.LSTM(3, return_sequences=True, name="l")(x) * 2.0)}
    inner = keras.Sequential([keras.Input((5, 2)), layers.GRU(3)], name="inner")
    models["nested"] = keras.Model(x, inner(x))
    shared = layers.LSTM(3, name="shared")
    models["shared"] = keras.Model(x, layers.Add()([shared(x), shared(x)]))
    models["lora"] = keras.Sequential([keras.Input((5, 2)), layers.GRU(3), layers.Dense(2, lora_rank=2, name="d")])
    models["backward"] = keras.Sequential(
        [
            keras.Input((5, 2)),
            layers.Bidirectional(layers.LSTM(3), backward_layer=layers.GRU(3, go_backwards=True), name="bi"),
        ]
    )
    paths = {}
    for name, model in models.items():
        paths[name] = _save(model, folder, name, formats=("keras",))["keras"]
    return paths


def float64(folder: Path) -> dict[str, Path]:
    """A model computing in float64 (inputs and layers)."""
    keras = _keras()
    layers = keras.layers
    model = keras.Sequential(
        [
            keras.Input((6, 2), dtype="float64"),
            layers.GRU(3, return_sequences=True, dtype="float64"),
            layers.Dense(1, dtype="float64"),
        ]
    )
    rng = np.random.default_rng(11)
    _fit(model, rng.standard_normal((16, 6, 2)), rng.standard_normal((16, 6, 1)), epochs=1)
    return _save(model, folder, "float64", formats=("keras",))


def dense_only(folder: Path) -> dict[str, Path]:
    keras = _keras()
    model = keras.Sequential([keras.Input(shape=(4,)), keras.layers.Dense(2)])
    return _save(model, folder, "dense_only")


BUILDERS = {
    f.__name__: f
    for f in (
        sequential,
        two_branches,
        two_branches_unmasked,
        encoder_decoder,
        assorted,
        merges,
        stateful,
        autoencoder,
        lambda_model,
        groupnorm_model,
        custom_layer_model,
        options_model,
        dense_only,
        refused,
        float64,
    )
}


def saved(name: str, tmp_path_factory) -> dict[str, Path]:
    """The files of model ``name``, built on first use in this session."""
    if name not in _CACHE:
        _CACHE[name] = BUILDERS[name](tmp_path_factory.mktemp(name))
    return _CACHE[name]
