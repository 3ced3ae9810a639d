"""The Keras side of ``check`` and ``sweep``: import Keras on the chosen backend, build, run.

:func:`import_keras` imports Keras on the backend :mod:`rnn_parity.backend`
fixed (``--backend``, else ``KERAS_BACKEND``, else tensorflow), quiets
TensorFlow's C++ and Python logging when TensorFlow is the backend and imports
Keras with the process's stderr parked, so oneDNN banners and absl lines never
reach the user. :func:`run_keras` builds the described model as a real
``keras.Model``, sets the case's weights, reads them back with
``get_weights()`` and runs it.

The call parity is claimed for is ``model.predict_on_batch``: the backend's own
compiled forward pass, the one ``model.predict`` runs (a ``tf.function`` on
TensorFlow, ``jax.jit`` on JAX, the model under ``torch.no_grad`` on torch).
One model is built per *architecture*, with the batch size and sequence
length left open wherever the options allow (a stateful layer fixes the batch,
``unroll`` the length), so cases that differ only in N, T or seed reuse it with
their weights swapped in by ``set_weights``; its compiled function is built on
the first call and reused (TensorFlow's relaxes to open shapes after the
second shape instead of retracing; JAX compiles once per input shape).
Keras's session is cleared every :data:`BUILDS_PER_SESSION` builds: its global
state and the compiled functions otherwise grow with every model. The eager
call and ``model.predict`` stay available (``mode``) and a test keeps the
three in agreement for every option.
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
from .backend import select as select_backend
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
    "get_mask",
    "tensorflow_kept_out",
    "import_log",
    "run_keras",
    "to_numpy",
    "versions",
]

_keras = None
_import_log = ""

#: The calls :func:`run_keras` can compare: the compiled forward pass, the eager call, ``model.predict``.
CALL_MODES = ("compiled", "eager", "predict")

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


#: Packages that Keras and TensorFlow import at start-up only if they happen to be installed, for
#: features rnn-parity never uses: TensorFlow Lite's JAX converter imports ``jax`` (about 1.5 s),
#: Keras's image and plotting utilities import ``PIL`` and ``matplotlib``. The other backends are
#: among them unless they are the backend.
_OPPORTUNISTIC = ("jax", "jaxlib", "torch", "matplotlib", "PIL")


@contextlib.contextmanager
def _kept_out(backend: str):
    """While Keras is imported, make the packages of :data:`_OPPORTUNISTIC` look absent.

    A ``None`` in ``sys.modules`` makes ``import jax`` raise ImportError, which
    those imports are written to expect (they fall back to "not installed").
    Packages already imported, and the backend's own, are left alone; the
    entries are removed afterwards, so a later import (``--plot``) works.
    """
    own = {"jax": ("jax", "jaxlib"), "torch": ("torch",)}.get(backend, ())
    blocked = [name for name in _OPPORTUNISTIC if name not in own and name not in sys.modules]
    for name in blocked:
        sys.modules[name] = None
    try:
        yield
    finally:
        for name in blocked:
            if sys.modules.get(name, False) is None:
                del sys.modules[name]


def import_keras():
    """Import and return ``keras`` on the backend :func:`rnn_parity.backend.select` fixed, quietly.

    TensorFlow is imported only when it is the backend (Keras 3 itself does not
    import it for jax or torch), and packages Keras or TensorFlow would import
    only because they are installed (the other backends, matplotlib, PIL) are
    kept out of that import (:func:`_kept_out`): with every backend installed,
    this takes about a quarter off TensorFlow's import.
    """
    global _keras
    if _keras is not None:
        return _keras
    backend = select_backend(None)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("ABSL_MIN_LOG_LEVEL", "3")
    with _stderr_parked(), _kept_out(backend):
        try:
            import keras
        except ImportError as exc:  # the backend's package is installed but broken
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
    """Versions of the stack, importing Keras if needed.

    ``jax`` and ``torch`` are given when they are the backend; ``tensorflow``
    whenever it was imported (its backend, or a file format that needs it).
    """
    import platform

    keras = import_keras()
    name = keras.backend.backend()

    def loaded(module: str) -> str | None:
        return getattr(sys.modules[module], "__version__", None) if module in sys.modules else None

    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "keras": keras.__version__,
        "tensorflow": loaded("tensorflow"),
        "jax": loaded("jax") if name == "jax" else None,
        "torch": loaded("torch") if name == "torch" else None,
        "backend": name,
    }


def backend_facts() -> dict:
    """What of Keras's backend changes rounding: its library's kernels, devices and thread pools.

    TensorFlow: oneDNN and its thread pools; JAX: jaxlib, the XLA device and
    whether 64-bit types are enabled (without them float64 computes in float32);
    torch: its intra- and inter-op threads and whether oneDNN (mkldnn) is on.
    Keys of the other backends are None.
    """
    keras = import_keras()
    name = keras.backend.backend()
    facts = {
        "keras_backend": name,
        "onednn": None,
        "tf_intra_op_threads": None,
        "tf_inter_op_threads": None,
        "jaxlib": None,
        "xla_device": None,
        "jax_enable_x64": None,
        "torch_threads": None,
        "torch_interop_threads": None,
        "torch_mkldnn": None,
    }
    if name == "tensorflow":
        import tensorflow as tf

        try:  # TensorFlow reports oneDNN at start-up; this is the switch it reads
            from tensorflow.python.util import _pywrap_util_port

            facts["onednn"] = bool(_pywrap_util_port.IsMklEnabled())
        except (ImportError, AttributeError):
            facts["onednn"] = os.environ.get("TF_ENABLE_ONEDNN_OPTS", "1") != "0"
        # 0 means "TensorFlow chooses" (one per core).
        facts["tf_intra_op_threads"] = tf.config.threading.get_intra_op_parallelism_threads()
        facts["tf_inter_op_threads"] = tf.config.threading.get_inter_op_parallelism_threads()
    elif name == "jax":
        import jax
        import jaxlib

        device = jax.devices()[0]
        facts["jaxlib"] = getattr(jaxlib, "__version__", None)
        facts["xla_device"] = f"{device.platform} ({getattr(device, 'device_kind', '?')})"
        facts["jax_enable_x64"] = bool(jax.config.jax_enable_x64)
    elif name == "torch":
        import torch

        facts["torch_threads"] = torch.get_num_threads()
        facts["torch_interop_threads"] = torch.get_num_interop_threads()
        facts["torch_mkldnn"] = bool(torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled)
    return facts


@contextlib.contextmanager
def tensorflow_kept_out():
    """Keep Keras from importing TensorFlow just to ask whether a value is one of its types.

    Keras's serializers test ``isinstance(obj, tf.TensorShape)`` (``tf.DType``,
    ``tf.TypeSpec``) behind a lazy module that imports TensorFlow when it is
    installed: on jax or torch, ``model.get_config()`` would cost TensorFlow's
    import (3-6 s) and its log lines. When TensorFlow is neither the backend nor
    already imported, no value can be one of its types, so the lazy module is
    told it is unavailable for the duration.
    """
    lazy = None
    if import_keras().backend.backend() != "tensorflow" and "tensorflow" not in sys.modules:
        with contextlib.suppress(ImportError):
            from keras.src.utils import module_utils

            lazy = getattr(module_utils, "tensorflow", None)
    if lazy is None or not hasattr(lazy, "_available"):
        yield
        return
    saved = lazy._available
    lazy._available = False
    try:
        yield
    finally:
        lazy._available = saved


def get_mask(tensor):
    """The mask Keras attached to an eager tensor, or None.

    JAX arrays take no attributes, so Keras 3.6+ keeps masks beside the tensor
    (``keras.src.backend.common.masking``); older Keras only sets ``_keras_mask``.
    """
    try:
        from keras.src.backend.common.masking import get_keras_mask
    except ImportError:
        return getattr(tensor, "_keras_mask", None)
    return get_keras_mask(tensor)


def to_numpy(value) -> np.ndarray:
    """A backend tensor as a NumPy array (torch tensors that require grad are detached first)."""
    if isinstance(value, np.ndarray):
        return value
    return np.asarray(import_keras().ops.convert_to_numpy(value))


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


def _buildable(config: dict, dtype: str) -> dict:
    """A recurrent layer's config that builds in ``dtype`` on every backend.

    Keras's default recurrent initializer, ``orthogonal``, takes a QR
    decomposition in the layer's dtype, which JAX's and torch's CPU LAPACK do
    not have for float16 (``Unsupported dtype float16``, ``"geqrf_cpu" not
    implemented for 'Half'``). The case's weights replace the initial ones
    anyway, so a float16 layer starts from zeros instead.
    """
    if dtype == "float16" and "units" in config:
        return {**config, "recurrent_initializer": "zeros"}
    return config


def _make_layer(keras, desc: LayerDesc, dtype: str):
    cfg = dict(desc.config)
    if desc.is_bidirectional:
        inner = desc.config["layer"]
        rnn = getattr(keras.layers, inner["class_name"])(dtype=dtype, **_buildable(inner["config"], dtype))
        return keras.layers.Bidirectional(rnn, merge_mode=cfg["merge_mode"], name=desc.name, dtype=dtype)
    if desc.is_recurrent:
        cfg = _buildable(cfg, dtype)
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


def _compiled(model):
    """The model's compiled forward pass, built on first use and kept on the model.

    On TensorFlow: a ``tf.function`` of ``model(inputs, training=False)`` (what
    ``predict_on_batch`` traces) with the input signature of the model's
    ``Input`` layers, batch and time left open, so it is traced once per model
    and a new sequence length or batch size never retraces. Elsewhere:
    ``model.predict_on_batch``, the backend's own compiled predict step
    (``jax.jit``, which compiles once per input shape; torch runs it eagerly
    under ``torch.no_grad``).
    """
    fn = getattr(model, "_rnn_parity_compiled", None)
    if fn is not None:
        return fn
    if import_keras().backend.backend() == "tensorflow":
        import tensorflow as tf

        signature = [tf.TensorSpec(shape=tuple(t.shape), dtype=t.dtype) for t in model.inputs]
        traced = tf.function(lambda *xs: model(list(xs), training=False), input_signature=signature)

        def fn(feed):
            return traced(*[np.asarray(x, dtype=s.dtype.as_numpy_dtype) for x, s in zip(feed, signature, strict=True)])
    else:
        fn = model.predict_on_batch
    model._rnn_parity_compiled = fn
    return fn


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
    mode: str = "compiled",
) -> KerasResult:
    """Build (or reuse) the model, set and read back the weights, call it on every batch.

    The model is built with the batch size open (fixed only when ``stateful``)
    and the sequence length open (fixed only for ``unroll``, which needs it);
    a stateful model's states are reset first, so a reused model starts from
    zeros like a new one. ``reuse=False`` builds a new model.

    ``mode`` is the call whose numbers are compared (:data:`CALL_MODES`):
    ``"compiled"`` (the default) is ``model.predict_on_batch``, the backend's own
    compiled forward pass that ``model.predict`` runs too (a ``tf.function``
    that stops retracing for new shapes on TensorFlow, ``jax.jit`` on JAX, the
    eager graph under ``torch.no_grad`` on torch), built once per cached model;
    ``"eager"`` is ``model(inputs, training=False)``, op by op; ``"predict"``
    is ``model.predict`` (the notebook's way, the benchmark's baseline).
    """
    if mode not in CALL_MODES:
        raise ValueError(f"mode must be one of {', '.join(CALL_MODES)}, got {mode!r}")
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
        feed = [x, *states_in]
        if mode == "compiled":
            raw = _compiled(model)(feed)
        elif mode == "predict":
            raw = model.predict(feed, batch_size=len(x), verbose=0)
        else:
            raw = model(feed, training=False)
    raw = raw if isinstance(raw, (list, tuple)) else [raw]
    outputs: dict[str, object] = {}
    states: dict[str, list[np.ndarray]] = {}
    sequences: dict[str, object] = {}
    for (kind, name, _), value in zip(keys, raw, strict=True):
        value = to_numpy(value)
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
