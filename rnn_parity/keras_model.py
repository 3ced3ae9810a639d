"""A user's saved model on the Keras side: load it safely, read its weights, run it with every layer marked.

This is the second module allowed to import Keras (through
:func:`rnn_parity.keras_runner.import_keras`, so TensorFlow stays quiet);
``keras_runner`` builds the ``check`` command's own models, this one opens
someone else's file. It is imported only when ``verify`` or ``export`` runs.

The model is loaded with ``keras.saving.load_model(path, compile=False,
safe_mode=True)``: nothing in the file executes. Like Polygraphy's "mark all
outputs", :func:`run_marked` builds a second ``keras.Model`` over the same
layers whose outputs are every layer's output tensors and the masks Keras
attached to them, and runs it once.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from .errors import InvalidInput, one_line
from .keras_runner import get_mask, import_keras, tensorflow_kept_out, to_numpy
from .model_checks import require_finite_weights
from .model_file import ModelFile
from .signals import reraise_interrupt

__all__ = ["KerasRun", "LoadedModel", "load", "run_marked"]


@dataclass
class LoadedModel:
    """The loaded model and what the graph builder and the runtime need from it.

    Attributes:
        model: the ``keras.Model``.
        class_name: ``"Sequential"`` or ``"Functional"``.
        config: ``model.get_config()``.
    """

    model: object
    class_name: str
    config: dict


@dataclass(frozen=True)
class KerasRun:
    """What Keras computed: per layer its tensors (outputs, then states) and the masks on them."""

    tensors: dict[str, list[np.ndarray]]
    masks: dict[str, list[np.ndarray | None]]
    weights: dict[str, list[np.ndarray]]
    weight_names: dict[str, list[str]]
    param_counts: dict[str, int]
    total_params: int


def load_translated(keras, path, translation):
    """Keras 3's model of a copy of a Keras 2 file (``.h5`` or ``.keras``) holding ``translation``.

    ``translation`` is a :class:`~rnn_parity.keras2.Translation`.

    The copy holds the translated configuration and, for cuDNN layers, their weights
    converted as Keras 2 converts them (Keras 3 does not).
    """
    import tempfile
    from pathlib import Path

    from .keras2 import translated_name, write_translated

    with tempfile.TemporaryDirectory(prefix="rnn-parity-translated-") as folder:
        copy = Path(folder) / translated_name(path)
        write_translated(path, copy, translation, convert_cudnn=True)
        return keras.saving.load_model(str(copy), compile=False, safe_mode=True)


def load(model_file: ModelFile, translation=None) -> LoadedModel:
    """Load the file with Keras in safe mode; any failure is an InvalidInput naming the file.

    TensorFlow is not imported unless it is the backend: neither format needs it to load.

    ``translation``: for an ``.h5`` file written by Keras 2, the
    :class:`~rnn_parity.keras2.Translation` :func:`rnn_parity.keras2.translate` made for
    Keras 3; Keras 3 loads a copy of the file holding it (weights as Keras 3 reads them
    from the file, cuDNN weights converted).
    """
    with tensorflow_kept_out():
        return _load(model_file, translation)


def _load(model_file: ModelFile, translation=None) -> LoadedModel:
    keras = import_keras()
    where = model_file.path
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if translation is not None:
                model = load_translated(keras, model_file.path, translation)
            else:
                model = keras.saving.load_model(str(model_file.path), compile=False, safe_mode=True)
    except Exception as exc:  # noqa: BLE001 - Keras raises many kinds for a bad file
        reraise_interrupt(exc)
        message = one_line(exc)
        hint = ""
        if model_file.format == "h5" and "Unknown layer" in message:
            hint = " (Keras 3 cannot reload the mask operations of a Functional model from .h5; save it as .keras)"
        raise InvalidInput(f"{where}: Keras cannot load it: {message}{hint}") from None
    if not isinstance(model, keras.Model):
        raise InvalidInput(f"{where}: holds a {type(model).__name__}, not a Keras model")
    class_name = "Sequential" if isinstance(model, keras.Sequential) else "Functional"
    try:
        inputs = model.inputs
    except (AttributeError, ValueError):
        inputs = None
    if not inputs:
        raise InvalidInput(f"{where}: the model has no defined inputs (a Sequential model never built?)")
    return LoadedModel(model, class_name, model.get_config())


def _as_list(value) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _model_nodes(model):
    """The model's own graph and, per layer, the one call (node) of it that the model runs.

    A loaded Sequential model calls each layer several times while it builds
    itself; ``layer.output`` may belong to a call outside the graph the model
    runs, and marking it would run a layer twice (visible with stateful
    layers). The graph's nodes are read from Keras's Functional internals
    (``_nodes_by_depth``), the only place they are recorded.
    """
    graph_model = getattr(model, "_functional", None) or model
    by_depth = getattr(graph_model, "_nodes_by_depth", None) or {}
    nodes = {}
    for depth_nodes in by_depth.values():
        for node in depth_nodes:
            operation = getattr(node, "operation", None)
            if operation is not None and not getattr(node, "is_input", False):
                nodes[operation.name] = node
    return graph_model, nodes


def _known_failure(keras, message: str) -> str:
    """A hint naming the backend behaviour behind Keras's complaint, where one is known (docs/backends.md)."""
    if keras.backend.backend() == "jax" and "ConvLSTM" in message and "Incompatible shapes for broadcasting" in message:
        return (
            " (Keras's JAX backend cannot run a ConvLSTM behind a Masking layer, a mask per grid position:"
            " jax-convlstm-position-mask in docs/backends.md; verify it with --backend tensorflow or torch)"
        )
    return ""


def run_marked(loaded: LoadedModel, graph: dict, feeds: dict[str, np.ndarray]) -> KerasRun:
    """Run the model once on ``feeds`` (by input name) and return every layer's tensors and masks.

    Stateful layers are reset first, so every layer starts from zero states, as
    the NumPy runtime does.

    Raises:
        NonFiniteWeights: a layer holds a NaN or infinite weight (exit 1).
    """
    with tensorflow_kept_out():
        return _run_marked(loaded, graph, feeds)


def _run_marked(loaded: LoadedModel, graph: dict, feeds: dict[str, np.ndarray]) -> KerasRun:
    keras = import_keras()
    model = loaded.model
    graph_model, nodes = _model_nodes(model)
    outputs, counts = [], {}
    weights, weight_names, param_counts = {}, {}, {}
    for layer_desc in graph["layers"]:
        name = layer_desc["name"]
        layer = model.get_layer(name)
        tensors = list(nodes[name].outputs) if name in nodes else _as_list(layer.output)
        outputs.extend(tensors)
        counts[name] = len(tensors)
        weights[name] = [np.asarray(w) for w in layer.get_weights()]
        weight_names[name] = [str(getattr(v, "path", None) or v.name) for v in layer.weights]
        # Here, where both verify and export collect the weights: a NaN the seeded inputs never reach still fails.
        require_finite_weights(name, weight_names[name], weights[name])
        param_counts[name] = int(layer.count_params())
        if getattr(layer, "stateful", False) and hasattr(layer, "reset_state"):
            layer.reset_state()
    marked = keras.Model(graph_model.inputs, outputs)
    values = [feeds[spec["name"]] for spec in graph["inputs"]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            # An eager call, not predict(): eager tensors keep the mask each
            # layer attached (``_keras_mask``, what keras.src.backend.get_keras_mask reads).
            raw = _as_list(marked(values if len(values) > 1 else values[0], training=False))
        except Exception as exc:  # noqa: BLE001 - report Keras's own complaint in one line
            reraise_interrupt(exc)
            message = one_line(exc)
            hint = _known_failure(keras, message)
            raise InvalidInput(f"Keras could not run the model on these inputs: {message}{hint}") from None
    tensors: dict[str, list[np.ndarray]] = {}
    masks: dict[str, list[np.ndarray | None]] = {}
    position = 0
    for layer_desc in graph["layers"]:
        name = layer_desc["name"]
        chunk = raw[position : position + counts[name]]
        position += counts[name]
        tensors[name] = [to_numpy(t) for t in chunk]
        masks[name] = [None if (m := get_mask(t)) is None else to_numpy(m) for t in chunk]
    return KerasRun(tensors, masks, weights, weight_names, param_counts, int(model.count_params()))
