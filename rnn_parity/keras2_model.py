"""Keras 2 itself (tf_keras, the ``keras2`` extra) on the Keras side: load a Keras 2 file, run every layer marked.

A Keras-side module (allowed to import ``tf_keras``, lazily): ``verify`` and
``export`` use it for a file written by Keras 2 (``--keras 2``, or ``auto`` when
tf_keras is installed), ``upgrade`` for its Keras 2 column.

tf_keras lays out its functional internals differently from Keras 3, so
:func:`layer_outputs` reads every layer's output tensors the way both versions
share: a second model over the same layers whose outputs are all of them
(Polygraphy's "mark all outputs"), called eagerly once; the masks are the ones
each layer attached to its eager output (``_keras_mask``).
"""

from __future__ import annotations

import tempfile
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from .errors import InvalidInput, Unsupported, one_line
from .keras2 import KERAS2_EXTRA, Translation, translated_name, write_translated
from .keras_model import KerasRun, LoadedModel
from .model_checks import require_finite_weights
from .model_file import ModelFile
from .signals import reraise_interrupt

__all__ = ["import_tf_keras", "layer_outputs", "load", "run_marked", "version"]


def import_tf_keras():
    """``tf_keras``, imported quietly; Unsupported (exit 4) with the pip command when it is not installed."""
    from .keras_runner import _stderr_parked, import_keras

    import_keras()  # sets the log levels TensorFlow reads at import
    with _stderr_parked():
        try:
            import tf_keras
        except ImportError:
            raise Unsupported(f"Keras 2 itself is not installed: {KERAS2_EXTRA} (installs tf-keras)") from None
    return tf_keras


def version() -> str:
    """The version of Keras 2 that runs (tf_keras's)."""
    return str(import_tf_keras().__version__)


def load(model_file: ModelFile, translation: Translation | None = None) -> LoadedModel:
    """Load the ``.h5`` file or ``.keras`` archive with Keras 2; any failure is an InvalidInput naming the file.

    ``translation``: :func:`rnn_parity.keras2.translate_for_keras2`'s; when it rewrote
    anything, Keras 2 loads a temporary copy holding it, and converts the weights
    of cuDNN layers itself as it loads them into the LSTM/GRU.
    """
    tf_keras = import_tf_keras()
    from .keras_runner import _stderr_parked

    where = model_file.path
    with tempfile.TemporaryDirectory(prefix="rnn-parity-keras2-") as folder:
        path = model_file.path
        if translation is not None and translation.rewrites:
            path = Path(folder) / translated_name(model_file.path)
            write_translated(model_file.path, path, translation, convert_cudnn=False)
        try:
            with warnings.catch_warnings(), _stderr_parked():
                warnings.simplefilter("ignore")
                model = tf_keras.models.load_model(str(path), compile=False, safe_mode=True)
        except Exception as exc:  # noqa: BLE001 - Keras raises many kinds for a bad file
            reraise_interrupt(exc)
            raise InvalidInput(f"{where}: Keras 2 cannot load it: {one_line(exc)}") from None
    if not isinstance(model, tf_keras.Model) or not model.inputs:
        raise InvalidInput(f"{where}: holds no Keras model with defined inputs")
    class_name = "Sequential" if isinstance(model, tf_keras.Sequential) else "Functional"
    return LoadedModel(model, class_name, model.get_config())


def _as_list(value) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def layer_outputs(
    framework, model, names: Sequence[str], arrays: Sequence[np.ndarray], mask_of: Callable | None = None
) -> tuple[dict[str, list[np.ndarray]], dict[str, list[np.ndarray | None]]]:
    """Every named layer's output tensors (outputs, then states) on ``arrays``, and their masks.

    Args:
        framework: ``tf_keras`` or ``keras`` (whose ``Model`` builds the marked copy).
        model: a model of that framework; each named layer is called once in it.
        arrays: the model's inputs, in order.
        mask_of: reads the mask off an eager output tensor (default: ``_keras_mask``).

    Returns:
        ``(tensors, masks)``, both by layer name, one entry per output tensor.
    """
    mask_of = mask_of or (lambda tensor: getattr(tensor, "_keras_mask", None))
    flat, counts = [], []
    for name in names:
        outs = _as_list(model.get_layer(name).output)
        flat.extend(outs)
        counts.append(len(outs))
    marked = framework.Model(model.inputs, flat)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            raw = _as_list(marked(list(arrays) if len(arrays) > 1 else arrays[0], training=False))
        except Exception as exc:  # noqa: BLE001 - report Keras's own complaint in one line
            reraise_interrupt(exc)
            raise InvalidInput(f"Keras could not run the model on these inputs: {one_line(exc)}") from None
    tensors, masks, position = {}, {}, 0
    for name, count in zip(names, counts, strict=True):
        chunk = raw[position : position + count]
        position += count
        tensors[name] = [np.asarray(t) for t in chunk]
        masks[name] = [None if (m := mask_of(t)) is None else np.asarray(m) for t in chunk]
    return tensors, masks


def run_marked(loaded: LoadedModel, graph: dict, feeds: dict[str, np.ndarray]) -> KerasRun:
    """Run the Keras 2 model once on ``feeds`` and return every layer's tensors, masks and weights.

    Stateful layers are reset first, as the NumPy runtime starts from zero states.

    Raises:
        NonFiniteWeights: a layer holds a NaN or infinite weight (exit 1).
    """
    from .keras_runner import _stderr_parked

    model = loaded.model
    names = [layer["name"] for layer in graph["layers"]]
    weights, weight_names, param_counts = {}, {}, {}
    for name in names:
        layer = model.get_layer(name)
        weights[name] = [np.asarray(w) for w in layer.get_weights()]
        weight_names[name] = [str(v.name).removesuffix(":0") for v in layer.weights]
        require_finite_weights(name, weight_names[name], weights[name])
        param_counts[name] = int(layer.count_params())
        if getattr(layer, "stateful", False) and hasattr(layer, "reset_states"):
            layer.reset_states()
    with _stderr_parked():
        tensors, masks = layer_outputs(import_tf_keras(), model, names, [feeds[s["name"]] for s in graph["inputs"]])
    return KerasRun(tensors, masks, weights, weight_names, param_counts, int(model.count_params()))
