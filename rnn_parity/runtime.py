"""Run a described Keras model with the NumPy reference alone.

Two drivers share one layer registry (:mod:`rnn_parity.layers`: every layer's
computation, masks, weights and tensors), applied by :func:`apply_layer`:

* :class:`GraphRuntime` executes a layer *graph* (a DAG): the JSON-ready
  description that ``rnn-parity export`` writes and :func:`load` reads back.
* :class:`SequentialRuntime` executes the chain of layers the ``check``
  command builds (:class:`~rnn_parity.architecture.LayerDesc` or dicts).

Layers use Keras's class names and config keys; weights are each layer's
``get_weights()`` list. This module imports only NumPy, the reference, the
registry and :mod:`rnn_parity.errors`, so an exported model runs where
TensorFlow, Keras (and this package's other dependencies) are not installed.

Masks follow Keras 3 exactly (``keras/src/layers/layer.py``, ``__call__``):
a layer's output mask is its ``compute_mask`` of the mask handed to its call,
else of the mask attached to its first input; a layer whose ``call`` takes
``mask`` receives it only when it is called with a single tensor argument, so a
recurrent layer called with ``initial_state`` tensors computes **without** the
mask (and still passes it on when it returns sequences). ``MultiHeadAttention``
removes the masks attached to its inputs; the graph driver keeps, per tensor,
the mask Keras computed when it built the model and the one attached when it
runs, which differ only after that.

The graph format (``format_version`` 1; 2 when a recurrent layer is Keras 2's ``time_major`` or a
merging layer has ``keras2_masks``)::

    {"format": "rnn-parity.model", "format_version": 1, "name": ...,
     "inputs":  [{"name": "tokens", "shape": [null, null], "dtype": "int32"}, ...],
     "outputs": [["dense", 0], ...],                 # [layer name, tensor index]
     "layers":  [{"name": "lstm", "class_name": "LSTM",
                  "config": {...Keras config keys the runtime reads...},
                  "inputs": [["embedding", 0]],      # data inputs, in order
                  "initial_state": [["enc", 1], ...],  # recurrent layers only, optional
                  "receives_mask": true,             # call() gets the input's mask
                  "weights": ["kernel", "recurrent_kernel", "bias"]}, ...]}

Layers are listed in an order where every reference points to an earlier
layer or an input. A layer's tensors are its outputs in Keras's order: for a
recurrent layer with ``return_state`` the output, then the states; for
``Bidirectional(merge_mode=None)`` the forward and backward outputs first.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from .blas_threads import STEP_THREADS, check_threads, limited
from .errors import InvalidInput
from .layer_spec import LayerSpec
from .layers import LAYERS
from .limits import MAX_JSON_BYTES, loads_bounded
from .model_checks import validate_model
from .recurrent import is_stateful, returns_state
from .recurrent_layers import RECURRENT_FUNCTIONS, cell_kwargs, split_bias

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "GraphRuntime",
    "LayerOutput",
    "RECURRENT_FUNCTIONS",
    "SUPPORTED_CLASSES",
    "SequentialRuntime",
    "Trace",
    "RECORDED_DTYPES",
    "apply_layer",
    "expected_weights",
    "load",
    "n_tensors",
    "pack",
    "recorded_dtype",
]

FORMAT = "rnn-parity.model"
FORMAT_VERSION = 1
#: The newest format this runtime reads: 2 is 1 plus a recurrent layer's ``time_major`` and a merging
#: layer's ``keras2_masks`` (Keras 2 files).
READS_FORMAT_VERSION = 2

#: The Keras classes the runtime implements: the registry's (rnn_parity.layers).
SUPPORTED_CLASSES = frozenset(LAYERS)
# The gradients (rnn_parity.gradients) read one recurrent layer's reference arguments the runtime's way.
_cell_kwargs = cell_kwargs
_split_bias = split_bias


@dataclass
class Trace:
    """What one forward pass produced.

    Attributes:
        outputs: every layer's output by layer name, in execution order (a list
            of two arrays for ``Bidirectional(merge_mode=None)``).
        states: each recurrent layer's final states by layer name.
        masks: each layer's output mask (bool ``(batch, timesteps)``, or None),
            one per output tensor, by layer name.
        notes: layer name → remarks on Keras semantics that applied (e.g. a mask
            Keras does not pass to a layer called with ``initial_state``).
        model_outputs: the model's outputs, in order (graph runs only).
    """

    outputs: dict[str, object] = field(default_factory=dict)
    states: dict[str, list[np.ndarray]] = field(default_factory=dict)
    masks: dict[str, list[np.ndarray | None]] = field(default_factory=dict)
    notes: dict[str, list[str]] = field(default_factory=dict)
    model_outputs: list[np.ndarray] = field(default_factory=list)

    @property
    def output(self):
        """The model's (first) output; for a chain, the last layer's."""
        if self.model_outputs:
            return self.model_outputs[0]
        return next(reversed(self.outputs.values()))


class LayerOutput(NamedTuple):
    """What :func:`apply_layer` gives for one layer.

    Attributes:
        tensors: in Keras's order: the outputs, then a recurrent layer's final
            states when it returns them.
        masks: one per tensor (None where there is none): the masks Keras attaches
            to them when the model runs.
        n_outputs: how many leading tensors are outputs.
        states: a recurrent layer's final states (kept whether Keras returns them or not), else [].
        notes: remarks on Keras semantics that applied.
        built_masks: one per tensor: the masks Keras gave them when it built the model,
            which it hands to the ``call`` of the layers that read them (default: ``masks``).
    """

    tensors: list
    masks: list
    n_outputs: int
    states: list
    notes: list[str]
    built_masks: list | None = None

    @property
    def output(self):
        """The layer's output: one array, or the list of two of ``Bidirectional(merge_mode=None)``."""
        return self.tensors[0] if self.n_outputs == 1 else self.tensors[: self.n_outputs]


# --------------------------------------------------------------------------
# One layer, through its registry entry (rnn_parity.layers): its computation,
# the masks Keras hands it, the masks it attaches to its outputs.
# --------------------------------------------------------------------------


def _spec(name: str, class_name: str) -> LayerSpec:
    spec = LAYERS.get(class_name)
    if spec is None:
        raise InvalidInput(f"layer {name!r}: {class_name} is not supported by the NumPy runtime")
    return spec


def apply_layer(
    name,
    class_name,
    cfg,
    weights,
    xs,
    masks,
    *,
    initial_state=None,
    receives_mask=True,
    dtype=np.float64,
    attached=None,
):
    """Run one layer. Returns a :class:`LayerOutput`.

    Args:
        xs: the input tensors (one, or several for a merging or attention layer).
        masks: the mask of each input as Keras computed it when it built the model
            (None where there is none): what Keras hands a ``call`` that takes ``mask``.
        initial_state: start states of a recurrent layer, or None.
        receives_mask: whether Keras passes the input's mask to ``call``.
        dtype: the dtype the runtime computes in (weights and float inputs are already in it).
        attached: the masks attached to the input tensors when the layer runs (default:
            ``masks``); they differ only after a ``MultiHeadAttention`` removed some.
    """
    spec = _spec(name, class_name)
    attached = list(masks) if attached is None else list(attached)
    problem = spec.input_check(cfg, xs) if spec.input_check is not None else None
    if problem:
        raise InvalidInput(f"layer {name!r} ({class_name}): {problem}")
    notes: list[str] = []
    if spec.attached_masks:
        given = attached
    else:
        given = list(masks) if receives_mask else None
    if spec.recurrent and masks[0] is not None and not receives_mask:
        notes.append("Keras does not pass the input mask to a layer called with initial_state: every step is computed")
    outputs, states = spec.run(cfg, weights, xs, given, initial_state)
    returned = states if spec.recurrent and returns_state(class_name, cfg) else []
    # Keras attaches compute_mask(inputs, previous_mask) to the outputs: previous_mask is the mask
    # handed to call when there is one, else the mask attached to the first input.
    previous = list(masks) if receives_mask and spec.call_mask else attached
    out_mask, built_mask = spec.mask.compute(cfg, xs, previous), spec.mask.compute(cfg, xs, list(masks))
    return LayerOutput(
        tensors=outputs + returned,
        masks=[out_mask] * len(outputs) + [None] * len(returned),
        n_outputs=len(outputs),
        states=states,
        notes=notes,
        built_masks=[built_mask] * len(outputs) + [None] * len(returned),
    )


def n_tensors(class_name: str, cfg: Mapping) -> int:
    """How many tensors a layer returns (outputs, then states with ``return_state``)."""
    return LAYERS[class_name].tensors(cfg)


def expected_weights(class_name: str, cfg: Mapping) -> int:
    """How many arrays ``get_weights()`` gives for a layer of this config."""
    return LAYERS[class_name].weight_count(cfg)


# --------------------------------------------------------------------------
# The chain driver behind `check`.
# --------------------------------------------------------------------------


def _layer_parts(layer) -> tuple[str, str, dict]:
    if isinstance(layer, Mapping):
        return layer["name"], layer["class_name"], layer["config"]
    return layer.name, layer.class_name, layer.config


def _record(trace: Trace, carried: dict, name, class_name, cfg, output, result: LayerOutput) -> None:
    """Keep one layer's results in ``trace``; a stateful layer's final states are carried to the next run."""
    trace.outputs[name] = output
    trace.masks[name] = result.masks[: result.n_outputs]
    if result.states:
        trace.states[name] = result.states
        if is_stateful(class_name, cfg):
            carried[name] = result.states
    if result.notes:
        trace.notes[name] = result.notes


class SequentialRuntime:
    """A chain of layers executed with :mod:`rnn_parity.reference`.

    Args:
        layers: the layers input to output, as dicts or :class:`~rnn_parity.architecture.LayerDesc`.
        weights: layer name → list of arrays in ``get_weights()`` order.
        dtype: the dtype to compute in (``"float64"`` or ``"float32"``).

    Layers with ``stateful`` in their config keep their final states between
    :meth:`run` calls, as Keras does; :meth:`reset_states` clears them. A
    layer after ``Bidirectional(merge_mode=None)`` applies to each of its two
    outputs, as the ``check`` model is built. ``explicit_masks``: every recurrent
    layer is handed its input's mask, as the ``check`` model does even where Keras
    would drop it (a call with ``initial_state`` tensors); otherwise Keras's rule.
    """

    def __init__(
        self, layers, weights: Mapping[str, Sequence[np.ndarray]], dtype="float64", *, explicit_masks: bool = False
    ):
        self.explicit_masks = explicit_masks
        self.layers = [_layer_parts(layer) for layer in layers]
        self.dtype = np.dtype(dtype)
        self.weights = {name: [np.asarray(w, dtype=self.dtype) for w in ws] for name, ws in weights.items()}
        self._carried: dict[str, list[np.ndarray]] = {}

    def reset_states(self) -> None:
        self._carried.clear()

    def predict(self, x):
        return self.run(x).output

    def run(self, x, *, initial_states: Mapping[str, Sequence[np.ndarray]] | None = None) -> Trace:
        """Forward pass; ``initial_states`` maps a recurrent layer's name to its start states."""
        h = np.asarray(x, dtype=self.dtype)
        mask = None
        trace = Trace()
        for name, class_name, cfg in self.layers:
            weights = self.weights.get(name, [])
            start = None
            if _spec(name, class_name).recurrent:
                start = (initial_states or {}).get(name)
                if start is None and is_stateful(class_name, cfg):
                    start = self._carried.get(name)
            # Keras passes the input's mask only to a call with one tensor argument (initial
            # states given as tensors make it two); the check's model passes it explicitly then.
            given_states = bool((initial_states or {}).get(name))
            receives_mask = self.explicit_masks or not given_states
            parts = h if isinstance(h, list) else [h]
            results = [
                apply_layer(
                    name,
                    class_name,
                    cfg,
                    weights,
                    [part],
                    [mask],
                    initial_state=start,
                    receives_mask=receives_mask,
                    dtype=self.dtype,
                )
                for part in parts
            ]
            # each branch of a merge_mode=None Bidirectional goes through the layer on its own
            h = [r.tensors[0] for r in results] if isinstance(h, list) else results[0].output
            mask = results[0].masks[0]
            _record(trace, self._carried, name, class_name, cfg, h, results[0])
        return trace


# --------------------------------------------------------------------------
# The graph driver behind `verify`, `export` and exported models.
# --------------------------------------------------------------------------


def _ref(value, where: str) -> tuple[str, int]:
    if (
        not isinstance(value, (list, tuple))
        or len(value) != 2
        or not isinstance(value[0], str)
        or not isinstance(value[1], int)
    ):
        raise InvalidInput(f"{where}: a tensor reference must be [layer name, index], got {value!r}")
    return value[0], value[1]


def _is_int_dtype(name: str) -> bool:
    return name.startswith(("int", "uint")) or name == "bool"


class GraphRuntime:
    """A Keras model's layer graph executed with :mod:`rnn_parity.reference`.

    Args:
        graph: the description (see the module docstring).
        weights: layer name → arrays in ``get_weights()`` order.
        dtype: the float dtype to compute in (``"float64"`` or ``"float32"``).
        blas_threads: the BLAS threads of a forward pass (process-wide while it runs, the
            caller's setting restored after it): one by default, which is fastest for the small
            per-step products of a recurrent layer (:mod:`rnn_parity.blas_threads`). None
            leaves BLAS as the caller set it. The attribute of the same name can be changed.

    Raises InvalidInput when the description is malformed or a layer's weights
    do not fit its config.
    """

    def __init__(
        self,
        graph: Mapping,
        weights: Mapping[str, Sequence[np.ndarray]],
        dtype="float64",
        *,
        blas_threads: int | None = STEP_THREADS,
    ):
        self.blas_threads = blas_threads
        self.graph = graph
        try:
            self.dtype = np.dtype(dtype)
        except TypeError:
            raise InvalidInput(f"dtype must be a float dtype, got {dtype!r}") from None
        if self.dtype.kind != "f":
            raise InvalidInput(f"dtype must be a float dtype, got {dtype!r}")
        try:
            self.inputs = [dict(spec) for spec in graph["inputs"]]
            self.layers = [dict(layer) for layer in graph["layers"]]
            self.outputs = [_ref(r, "outputs") for r in graph["outputs"]]
        except (KeyError, TypeError) as exc:
            raise InvalidInput(f"the model description lacks {exc}") from None
        known: dict[str, int] = {spec["name"]: 1 for spec in self.inputs}
        self.weights: dict[str, list[np.ndarray]] = {}
        for layer in self.layers:
            name, class_name = layer.get("name"), layer.get("class_name")
            spec, problems = _spec(name, class_name), []
            # The entry's kept config fills in Keras's defaults; call options (use_causal_mask) stay.
            layer["config"] = {**layer.get("config", {}), **spec.keep(layer.get("config", {}), problems)}
            if problems:
                raise InvalidInput(f"layer {name!r} ({class_name}): {problems[0]}")
            if name in known:
                raise InvalidInput(f"layer {name!r} appears twice in the model description")
            if not layer.get("inputs"):
                raise InvalidInput(f"layer {name!r} has no inputs")
            for ref in [*layer["inputs"], *layer.get("initial_state", [])]:
                source, index = _ref(ref, f"layer {name!r}")
                if source not in known:
                    raise InvalidInput(f"layer {name!r} reads {source!r}, which is not defined before it")
                if not 0 <= index < known[source]:
                    raise InvalidInput(f"layer {name!r} reads tensor {index} of {source!r}, which has {known[source]}")
            arrays = [np.asarray(w) for w in weights.get(name, [])]
            want = expected_weights(class_name, layer.get("config", {}))
            if len(arrays) != want:
                raise InvalidInput(f"layer {name!r} ({class_name}) needs {want} weight arrays, got {len(arrays)}")
            self.weights[name] = [w.astype(self.dtype) for w in arrays]
            known[name] = n_tensors(class_name, layer.get("config", {}))
        for source, index in self.outputs:
            if source not in known or not 0 <= index < known[source]:
                raise InvalidInput(f"model output {[source, index]} is not a tensor of the model")
        self._carried: dict[str, list[np.ndarray]] = {}

    @property
    def input_names(self) -> list[str]:
        return [spec["name"] for spec in self.inputs]

    @property
    def blas_threads(self) -> int | None:
        """The BLAS threads of a forward pass (None: as the caller set them); settable."""
        return self._blas_threads

    @blas_threads.setter
    def blas_threads(self, threads: int | None) -> None:
        try:
            self._blas_threads = check_threads(threads)
        except ValueError as exc:
            raise InvalidInput(str(exc)) from None

    def reset_states(self) -> None:
        """Forget the states stateful layers carried from the previous call."""
        self._carried.clear()

    def _feeds(self, inputs) -> dict[str, np.ndarray]:
        names = self.input_names
        if isinstance(inputs, Mapping):
            missing = [n for n in names if n not in inputs]
            extra = [k for k in inputs if k not in names]
            if missing or extra:
                raise InvalidInput(f"inputs must be named {names}; missing {missing}, unknown {extra}")
            values = [inputs[n] for n in names]
        elif isinstance(inputs, (list, tuple)) and (
            len(names) > 1 or (len(inputs) == 1 and isinstance(inputs[0], np.ndarray))
        ):
            values = list(inputs)
        else:
            values = [inputs]
        if len(values) != len(names):
            raise InvalidInput(f"the model takes {len(names)} input(s) {names}, got {len(values)}")
        feeds = {}
        for spec, value in zip(self.inputs, values, strict=True):
            arr = np.asarray(value)
            if 0 in arr.shape:
                raise InvalidInput(f"input {spec['name']!r}: shape {tuple(arr.shape)} has an empty axis")
            shape = spec.get("shape")
            if shape is not None:
                want = (
                    "("
                    + ", ".join(
                        "N" if i == 0 and d is None else ("?" if d is None else str(d)) for i, d in enumerate(shape)
                    )
                    + ")"
                )
                if arr.ndim != len(shape) or any(
                    d is not None and d != a for d, a in zip(shape, arr.shape, strict=True)
                ):
                    raise InvalidInput(f"input {spec['name']!r}: expected shape {want}, got {tuple(arr.shape)}")
            if _is_int_dtype(str(spec.get("dtype", "float32"))):
                if not np.issubdtype(arr.dtype, np.integer):
                    if not np.all(np.isfinite(arr)) or not np.all(arr == np.trunc(arr)):
                        raise InvalidInput(f"input {spec['name']!r} takes integer ids, got non-integer values")
                    arr = arr.astype(np.int64)
            elif arr.dtype.kind not in "fiub":
                raise InvalidInput(f"input {spec['name']!r}: expected numbers, got dtype {arr.dtype}")
            else:
                arr = arr.astype(self.dtype)
            feeds[spec["name"]] = arr
        return feeds

    def run(self, inputs, *, initial_states: Mapping[str, Sequence[np.ndarray]] | None = None) -> Trace:
        """Forward pass: every layer's tensors and masks, BLAS held to ``blas_threads`` meanwhile.

        Args:
            inputs: one array (a single-input model), a list in input order, or
                a dict by input name.
            initial_states: recurrent layer name → start states, overriding zeros
                (or a stateful layer's carried states).
        """
        with limited(self._blas_threads):
            return self._forward(inputs, initial_states)

    def _forward(self, inputs, initial_states) -> Trace:
        tensors: dict[str, list[np.ndarray]] = {}
        # Two masks per tensor, as Keras keeps them: the one it computed when it built the model (handed to
        # the call of a layer that takes a mask), and the one attached to the tensor when the model runs
        # (what merging layers and MultiHeadAttention read, and what a layer passes on when its call takes
        # no mask). They differ only after a MultiHeadAttention removed the masks attached to its inputs.
        built: dict[str, list[np.ndarray | None]] = {}
        attached: dict[str, list[np.ndarray | None]] = {}
        for name, arr in self._feeds(inputs).items():
            tensors[name], built[name], attached[name] = [arr], [None], [None]
        trace = Trace()
        for layer in self.layers:
            name, class_name, cfg = layer["name"], layer["class_name"], layer.get("config", {})
            refs = [_ref(r, name) for r in layer.get("inputs", [])]
            start = None
            if layer.get("initial_state"):
                start = [tensors[s][i].astype(self.dtype) for s, i in map(tuple, layer["initial_state"])]
            elif initial_states and initial_states.get(name) is not None:
                start = [np.asarray(s, dtype=self.dtype) for s in initial_states[name]]
            elif is_stateful(class_name, cfg):
                start = self._carried.get(name)
            result = apply_layer(
                name,
                class_name,
                cfg,
                self.weights[name],
                [tensors[s][i] for s, i in refs],
                [built[s][i] for s, i in refs],
                initial_state=start,
                receives_mask=bool(layer.get("receives_mask", True)),
                dtype=self.dtype,
                attached=[attached[s][i] for s, i in refs],
            )
            tensors[name], attached[name], built[name] = result.tensors, list(result.masks), list(result.built_masks)
            _record(trace, self._carried, name, class_name, cfg, result.output, result)
            if LAYERS[class_name].clears_masks:
                for source, index in refs:
                    attached[source][index] = None
                    if source in trace.masks and index < len(trace.masks[source]):
                        trace.masks[source][index] = None
        trace.model_outputs = [tensors[s][i] for s, i in self.outputs]
        return trace

    def predict(self, inputs):
        """The model's output (a list when it has several), computed with NumPy alone."""
        outs = self.run(inputs).model_outputs
        return outs[0] if len(outs) == 1 else outs


# --------------------------------------------------------------------------
# The exported file: one .npz, readable with allow_pickle=False.
# --------------------------------------------------------------------------


def weight_key(layer: str, index: int) -> str:
    return f"weights/{layer}/{index}"


def pack(graph: Mapping, weights: Mapping[str, Sequence[np.ndarray]]) -> bytes:
    """The ``.npz`` bytes of an exported model: ``graph`` (UTF-8 JSON as uint8) and each weight array."""
    arrays = {"graph": np.frombuffer(json.dumps(graph, sort_keys=True).encode("utf-8"), dtype=np.uint8)}
    for layer in graph["layers"]:
        layer_weights = weights.get(layer["name"], [])
        if len(layer_weights) != len(layer.get("weights", [])):
            raise ValueError(
                f"layer {layer['name']!r} names {len(layer.get('weights', []))} weights "
                f"but has {len(layer_weights)} arrays"
            )
        for i, w in enumerate(layer_weights):
            arrays[weight_key(layer["name"], i)] = np.asarray(w)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def read_graph(data, where: str) -> dict:
    if "graph" not in data:
        raise InvalidInput(f"{where}: not an rnn-parity model (no 'graph' entry)")
    try:
        size = data.zip.getinfo("graph.npy").file_size if hasattr(data, "zip") else 0
        if size > MAX_JSON_BYTES:
            raise InvalidInput(f"{where}: the 'graph' entry is {size} bytes, over the limit of {MAX_JSON_BYTES}")
        graph = loads_bounded(np.asarray(data["graph"], dtype=np.uint8).tobytes().decode("utf-8"), where)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"{where}: the 'graph' entry is not valid JSON ({exc})") from None
    if not isinstance(graph, dict) or graph.get("format") != FORMAT:
        raise InvalidInput(
            f"{where}: not an rnn-parity model (format {graph.get('format')!r})"
            if isinstance(graph, dict)
            else f"{where}: not an rnn-parity model"
        )
    version = graph.get("format_version")
    if not isinstance(version, int) or version < 1:
        raise InvalidInput(f"{where}: bad format_version {version!r}")
    if version > READS_FORMAT_VERSION:
        raise InvalidInput(
            f"{where}: written in format {version} by a newer rnn-parity; this runtime reads formats up to "
            f"{READS_FORMAT_VERSION}"
        )
    return graph


def load(
    path, *, dtype: str | None = None, where: str | None = None, blas_threads: int | None = STEP_THREADS
) -> GraphRuntime:
    """Load a model written by ``rnn-parity export``; it runs with NumPy alone.

    Args:
        path: the ``.npz`` file (a path or an open binary file).
        dtype: the float dtype to compute in; by default the one recorded in the
            file (``dtype``: the one the export verified the file in; for a file
            without it, ``verification.reference_dtype``, else float64).
        where: how to name the file in messages (default: ``path``).
        blas_threads: BLAS threads while ``predict`` runs (see :class:`GraphRuntime`):
            1 by default; None leaves BLAS as the caller set it.

    Returns:
        a :class:`GraphRuntime`: ``.predict(x)`` gives the model's output.

    Raises:
        InvalidInput: the file is missing, unreadable, not an export, from a
            newer format version, or its description or weights are wrong in any
            way :func:`rnn_parity.model_checks.validate_model` checks (shapes
            against configs, known activations, integer sizes, real floating
            finite weights, JSON size and nesting).
        Unsupported: it holds a Keras layer the runtime does not implement.
    """
    where = where or str(path)
    try:
        data = np.load(path, allow_pickle=False)
        if not isinstance(data, np.lib.npyio.NpzFile):
            raise InvalidInput(f"{where}: is a single .npy array, not an rnn-parity model (.npz)")
        with data:
            graph = read_graph(data, where)
            weights = {}
            for layer in graph.get("layers", []):
                name = layer.get("name")
                keys = [weight_key(name, i) for i in range(len(layer.get("weights", [])))]
                missing = [key for key in keys if key not in data.files]
                if missing:
                    raise InvalidInput(f"{where}: missing array {missing[0]!r}")
                weights[name] = [data[key] for key in keys]
    except FileNotFoundError:
        raise InvalidInput(f"{where}: no such file") from None
    except IsADirectoryError:
        raise InvalidInput(f"{where}: is a folder, not a file") from None
    except (AttributeError, TypeError) as exc:
        raise InvalidInput(f"{where}: malformed model description ({exc})") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise InvalidInput(f"{where}: not a readable .npz file ({exc})") from None
    validate_model(graph, weights, where)
    if dtype is None:
        dtype = recorded_dtype(graph, where)
    return GraphRuntime(graph, weights, dtype=dtype, blas_threads=blas_threads)


#: The dtypes an exported file can record as the one it runs in.
RECORDED_DTYPES = ("float32", "float64")


def recorded_dtype(graph: Mapping, where: str) -> str:
    """The dtype a file runs in by default: ``dtype``; in older files ``verification.reference_dtype``; else float64."""
    verification = graph.get("verification")
    fallback = verification.get("reference_dtype", "float64") if isinstance(verification, Mapping) else "float64"
    dtype = graph.get("dtype", fallback)
    if dtype not in RECORDED_DTYPES:
        raise InvalidInput(f"{where}: dtype must be one of {', '.join(RECORDED_DTYPES)}, got {dtype!r}")
    return dtype
