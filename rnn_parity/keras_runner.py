"""The only module that imports Keras and TensorFlow, and only when first asked.

:func:`import_keras` sets the backend (tensorflow unless ``KERAS_BACKEND`` is
set), quiets TensorFlow's C++ and Python logging and imports Keras with the
process's stderr parked, so oneDNN banners and absl lines never reach the user.
:func:`run_keras` builds the described model as a real ``keras.Model``, sets the
case's weights, reads them back with ``get_weights()`` and calls it.

The path parity is claimed for is the model's eager forward call,
``model(inputs, training=False)``: the real Keras layers, op by op, without
``model.predict``'s per-model ``tf.function`` tracing (about 0.2 s per new
model, most of a small check). Built models are kept and reused for every case
with the same architecture (batch size and sequence length are left open, so
they vary freely), their weights swapped with ``set_weights``. Keras's session
is cleared every :data:`BUILDS_PER_SESSION` builds: its global state and
TensorFlow's eager kernel cache otherwise grow with every model.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from .architecture import LayerDesc
from .case import CaseData
from .errors import InvalidInput
from .model_checks import require_finite_weights
from .recurrent import is_bidirectional, n_outputs, n_states

__all__ = [
    "KerasResult",
    "backend_facts",
    "build_model",
    "clear_models",
    "import_keras",
    "import_log",
    "run_keras",
    "versions",
]

_keras = None
_import_log = ""

#: The backends Keras 3 knows; the tool is built and tested on tensorflow.
KERAS_BACKENDS = ("tensorflow", "jax", "torch", "numpy", "openvino")

#: How many built models are kept for reuse (least recently used dropped first).
MODEL_CACHE_SIZE = 16
#: After this many builds the cache is dropped and Keras's session cleared.
BUILDS_PER_SESSION = 32

_models: OrderedDict[str, tuple] = OrderedDict()
_builds = 0


@contextlib.contextmanager
def _stderr_parked():
    """Send file descriptor 2 to a temporary file; keep what was written there."""
    global _import_log
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            _import_log += sink.read().decode("utf-8", "replace")


def _drop_never_used(record) -> bool:
    """Drop tf_should_use's "Object was never used" stack dump, logged when a run is interrupted mid-operation."""
    return not str(record.msg).startswith("Object was never used")


def import_keras():
    """Import and return ``keras`` with TensorFlow's log noise silenced."""
    global _keras
    if _keras is not None:
        return _keras
    backend = os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    if backend not in KERAS_BACKENDS:
        raise InvalidInput(f"KERAS_BACKEND={backend}: not a Keras backend (one of {', '.join(KERAS_BACKENDS)})")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("ABSL_MIN_LOG_LEVEL", "3")
    with _stderr_parked():
        try:
            import keras
        except ImportError as exc:  # e.g. KERAS_BACKEND=jax without jax installed
            raise InvalidInput(f"KERAS_BACKEND={backend}: Keras cannot load that backend ({exc})") from None

        if keras.backend.backend() == "tensorflow":
            import tensorflow as tf

            tf.get_logger().setLevel("ERROR")
            tf.get_logger().addFilter(_drop_never_used)
            tf.autograph.set_verbosity(0)
        with contextlib.suppress(ImportError):
            from absl import logging as absl_logging

            absl_logging.set_verbosity(absl_logging.ERROR)
    keras.utils.disable_interactive_logging()
    _keras = keras
    return keras


def import_log() -> str:
    """What TensorFlow wrote to stderr while importing (shown with ``--debug``)."""
    return _import_log


def versions() -> dict[str, str | None]:
    """Versions of the stack, importing Keras if needed."""
    import platform

    keras = import_keras()
    tf_version = None
    if "tensorflow" in sys.modules:
        tf_version = sys.modules["tensorflow"].__version__
    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "keras": keras.__version__,
        "tensorflow": tf_version,
        "backend": keras.backend.backend(),
    }


def backend_facts() -> dict:
    """What of Keras's backend changes rounding: oneDNN, thread pools."""
    keras = import_keras()
    facts = {
        "keras_backend": keras.backend.backend(),
        "onednn": None,
        "tf_intra_op_threads": None,
        "tf_inter_op_threads": None,
    }
    if facts["keras_backend"] == "tensorflow":
        import tensorflow as tf

        try:  # TensorFlow reports oneDNN at start-up; this is the switch it reads
            from tensorflow.python.util import _pywrap_util_port

            facts["onednn"] = bool(_pywrap_util_port.IsMklEnabled())
        except (ImportError, AttributeError):
            facts["onednn"] = os.environ.get("TF_ENABLE_ONEDNN_OPTS", "1") != "0"
        # 0 means "TensorFlow chooses" (one per core).
        facts["tf_intra_op_threads"] = tf.config.threading.get_intra_op_parallelism_threads()
        facts["tf_inter_op_threads"] = tf.config.threading.get_inter_op_parallelism_threads()
    return facts


@dataclass(frozen=True)
class KerasResult:
    """What Keras computed, keyed like :class:`rnn_parity.runtime.Trace`.

    Attributes:
        outputs: layer name → that layer's output on the last batch.
        states: recurrent layer name → its final states (when the model returns them).
        sequences: recurrent layer name → its output at every timestep, from its
            ``return_sequences`` twin (see :func:`build_model`).
        weights: layer name → ``get_weights()`` after the case's weights were set.
        param_counts: layer name → ``count_params()``.
        total_params: the model's ``count_params()``.
    """

    outputs: dict[str, object]
    states: dict[str, list[np.ndarray]]
    sequences: dict[str, object]
    weights: dict[str, list[np.ndarray]]
    param_counts: dict[str, int]
    total_params: int


def _make_layer(keras, desc: LayerDesc, dtype: str):
    cfg = dict(desc.config)
    if desc.is_bidirectional:
        inner = desc.config["layer"]
        rnn = getattr(keras.layers, inner["class_name"])(dtype=dtype, **inner["config"])
        return keras.layers.Bidirectional(rnn, merge_mode=cfg["merge_mode"], name=desc.name, dtype=dtype)
    return getattr(keras.layers, desc.class_name)(name=desc.name, dtype=dtype, **cfg)


def _input_dtype(dtype_policy: str) -> str:
    return {"float64": "float64", "float16": "float16"}.get(dtype_policy, "float32")


def build_model(
    layers: list[LayerDesc],
    *,
    batch: int,
    timesteps: int,
    features: int,
    stateful: bool,
    initial_state: bool,
    dtype: str = "float32",
    twin: LayerDesc | None = None,
):
    """The check model as a functional ``keras.Model``.

    Inputs are ``[x, *initial states]``; outputs are every layer's output in
    order (two for a ``merge_mode=None`` Bidirectional), the final states of the
    layers that return them, and, when ``twin`` is given, the sequence of a copy
    of the last recurrent layer that returns every timestep (fed the same input
    and initial state). Returns ``(model, output_keys)`` where each key is
    ``("output"|"state"|"sequence", layer name, index)``.
    """
    keras = import_keras()
    in_dtype = _input_dtype(dtype)
    x_in = (
        keras.Input(batch_shape=(batch, timesteps, features), name="x", dtype=in_dtype)
        if stateful
        else keras.Input(shape=(timesteps, features), name="x", dtype=in_dtype)
    )
    inputs, outputs, keys = [x_in], [], []
    h, mask = x_in, None
    for desc in layers:
        layer = _make_layer(keras, desc, dtype)
        if desc.class_name == "Masking":
            mask = layer.compute_mask(x_in)
        if desc.is_recurrent:
            kwargs = {}
            if initial_state:
                m = desc.cell_config["units"]
                states = [
                    keras.Input(shape=(m,), name=f"{desc.name}_state{i}", dtype=in_dtype)
                    for i in range(n_states(desc.class_name, desc.config))
                ]
                inputs += states
                kwargs["initial_state"] = states
                if mask is not None:
                    # Keras 3 fills in a layer's mask from its input only when the call has one
                    # tensor argument; with initial-state tensors the Masking layer's mask would
                    # be dropped silently, so it is passed explicitly.
                    kwargs["mask"] = mask
            if twin is not None and twin.name == f"{desc.name}_sequence":
                sequence = _make_layer(keras, twin, dtype)(h, **kwargs)
                for i, part in enumerate(sequence if isinstance(sequence, (list, tuple)) else [sequence]):
                    outputs.append(part)
                    keys.append(("sequence", desc.name, i))
            result = layer(h, **kwargs)
            returns_state = desc.cell_config.get("return_state", False)
            n_out = n_outputs(desc.class_name, desc.config)
            parts = list(result) if (returns_state or n_out > 1) else [result]
            h = parts[0] if n_out == 1 else parts[:2]
            for i, part in enumerate(parts[:n_out]):
                outputs.append(part)
                keys.append(("output", desc.name, i))
            for i, part in enumerate(parts[n_out:]):
                outputs.append(part)
                keys.append(("state", desc.name, i))
            continue
        h = [layer(part) for part in h] if isinstance(h, list) else layer(h)
        for i, part in enumerate(h if isinstance(h, list) else [h]):
            outputs.append(part)
            keys.append(("output", desc.name, i))
    return keras.Model(inputs, outputs), keys


def clear_models() -> None:
    """Drop the cached models and clear Keras's session (its global state, TensorFlow's kernel cache)."""
    global _builds
    _models.clear()
    _builds = 0
    if _keras is not None:
        _keras.backend.clear_session()


def _cached_model(layers: list[LayerDesc], **dims):
    """``build_model(layers, **dims)``, reusing a model already built for the same arguments."""
    global _builds
    described = {k: [v.name, v.class_name, v.config] if isinstance(v, LayerDesc) else v for k, v in dims.items()}
    key = json.dumps([[[d.name, d.class_name, d.config] for d in layers], described], sort_keys=True)
    if key in _models:
        _models.move_to_end(key)
        return _models[key]
    if _builds >= BUILDS_PER_SESSION:
        clear_models()
    entry = build_model(layers, **dims)
    _builds += 1
    _models[key] = entry
    while len(_models) > MODEL_CACHE_SIZE:
        _models.popitem(last=False)
    return entry


def _reset_states(model) -> None:
    for layer in model.layers:
        if getattr(layer, "stateful", False) or is_bidirectional(type(layer).__name__):
            layer.reset_states()


def run_keras(
    layers: list[LayerDesc],
    case: CaseData,
    *,
    stateful: bool,
    dtype: str = "float32",
    twin: LayerDesc | None = None,
    reuse: bool = True,
    predict: bool = False,
) -> KerasResult:
    """Build (or reuse) the model, set and read back the weights, call it on every batch.

    The model is built with the batch size open (fixed only when ``stateful``)
    and the sequence length open (fixed only for ``unroll``, which needs it);
    a stateful model's states are reset first, so a reused model starts from
    zeros like a new one. ``reuse=False`` builds a new model; ``predict=True``
    runs ``model.predict`` instead of the eager call (the notebook's way, the
    sweep benchmark's baseline).
    """
    batch, timesteps, features = case.batches[0].shape
    unroll = any(desc.cell_config.get("unroll", False) for desc in layers if desc.is_recurrent)
    dims = {
        "batch": batch if stateful else None,
        "timesteps": timesteps if unroll else None,
        "features": features,
        "stateful": stateful,
        "initial_state": bool(case.initial_states),
        "dtype": dtype,
        "twin": twin,
    }
    model, keys = _cached_model(layers, **dims) if reuse else build_model(layers, **dims)
    if stateful:
        _reset_states(model)
    weights, param_counts = {}, {}
    for desc in layers:
        layer = model.get_layer(desc.name)
        if desc.name in case.weights:
            layer.set_weights(case.weights[desc.name])
            if twin is not None and twin.name == f"{desc.name}_sequence":
                model.get_layer(twin.name).set_weights(case.weights[desc.name])
        weights[desc.name] = [np.asarray(w) for w in layer.get_weights()]
        require_finite_weights(desc.name, [str(v.name) for v in layer.weights], weights[desc.name])
        param_counts[desc.name] = int(layer.count_params())
    states_in = [s for desc in layers for s in case.initial_states.get(desc.name, [])]
    for x in case.batches:
        if predict:
            raw = model.predict([x, *states_in], batch_size=len(x), verbose=0)
        else:
            raw = model([x, *states_in], training=False)
    raw = raw if isinstance(raw, (list, tuple)) else [raw]
    outputs: dict[str, object] = {}
    states: dict[str, list[np.ndarray]] = {}
    sequences: dict[str, object] = {}
    for (kind, name, _), value in zip(keys, raw, strict=True):
        value = np.asarray(value)
        if kind == "state":
            states.setdefault(name, []).append(value)
            continue
        target = outputs if kind == "output" else sequences
        if name in target:
            target[name] = [*target[name], value] if isinstance(target[name], list) else [target[name], value]
        else:
            target[name] = value
    total = int(model.count_params()) - (int(model.get_layer(twin.name).count_params()) if twin else 0)
    return KerasResult(
        outputs=outputs,
        states=states,
        sequences=sequences,
        weights=weights,
        param_counts=param_counts,
        total_params=total,
    )
