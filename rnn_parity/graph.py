"""A saved Keras model's configuration → the layer graph the NumPy runtime runs.

Works on configuration dicts alone (what ``model.get_config()`` returns and
what ``.keras`` and ``.h5`` files store), so nothing here imports Keras:

* :func:`scan` looks at a file's stored configuration before Keras loads
  anything and refuses Lambda layers, custom objects, layers and options the
  reference does not implement (:class:`~rnn_parity.errors.Unsupported`,
  exit 4) and models without a recurrent layer (exit 2);
* :func:`build_graph` turns the configuration of the loaded model into the
  description :class:`rnn_parity.runtime.GraphRuntime` executes (see
  :mod:`rnn_parity.runtime` for the format).

Every layer keeps its Keras class name; its ``config`` keeps only the Keras
keys that change what the layer computes at inference. Options that only act
in training (dropout rates, regularizers, constraints, initializers, seeds) or
only change how Keras schedules the same arithmetic (``unroll``,
``implementation``, ``use_cudnn``) are dropped.

Keras 3 records the masks that pass between layers of a Functional model as
small operations (``NotEqual``, ``Any``, ``LogicalOr``…) feeding ``mask=``
arguments. The runtime recomputes masks with Keras's own rules, so these
operations are dropped; an operation that computes *data* is refused.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import NamedTuple

from .errors import InvalidInput, Unsupported
from .layer_spec import common_checks
from .layers import LAYERS, resolve
from .recurrent import RECURRENT_LIKE, TIME_DISTRIBUTED, WRAPPERS, unwrap
from .runtime import FORMAT, FORMAT_VERSION, n_tensors

__all__ = ["SUPPORTED_LAYERS", "build_graph", "layer_options", "scan"]

#: Why a model without a recurrent layer is refused (exit 2).
NO_RECURRENT_LAYER = (
    "has no recurrent layer (SimpleRNN, LSTM, GRU, RNN or ConvLSTM1D/2D/3D); rnn-parity verifies recurrent models"
)
MODEL_CLASSES = frozenset({"Sequential", "Functional", "Model"})
#: The layers verify and export support, with what the runtime does for each: the registry's, and the inputs.
SUPPORTED_LAYERS = {"InputLayer": "the model's inputs", **{name: spec.summary for name, spec in LAYERS.items()}}
#: Keras operations that only compute masks between layers.
MASK_OPERATIONS = frozenset(
    {
        "NotEqual",
        "Equal",
        "Any",
        "All",
        "ExpandDims",
        "Squeeze",
        "ZerosLike",
        "OnesLike",
        "LogicalOr",
        "LogicalAnd",
        "LogicalNot",
        "Concatenate",
        "BroadcastTo",
        "Cast",
        "Reshape",
        "Where",
    }
)


class StoredLayer(NamedTuple):
    """One layer entry of a stored configuration (wrapped layers named ``wrapper/inner``)."""

    name: str
    class_name: str
    config: Mapping
    entry: Mapping


class Refusal(NamedTuple):
    """A layer (or operation) the runtime cannot reproduce, and why."""

    name: str
    class_name: str
    problems: list[str]


class TensorRef(NamedTuple):
    """Output ``index`` of ``layer``, with its shape when the configuration records it."""

    layer: str
    index: int
    shape: list | None = None


class Call(NamedTuple):
    """How a layer is called: its data tensors, initial_state tensors, mask argument, and what is unsupported."""

    data: list[TensorRef]
    states: list[TensorRef]
    mask: object
    problems: list[str]
    options: dict = {}  # other keyword arguments of the call (e.g. Attention's use_causal_mask)


class Node(NamedTuple):
    """One layer of the model as the graph will hold it: what it reads and whether ``call`` gets the mask."""

    entry: Mapping
    inputs: list[tuple[str, int]]
    initial_state: list[tuple[str, int]]
    receives_mask: bool
    problems: list[str]
    options: dict = {}


# --------------------------------------------------------------------------
# One layer's options: the config the runtime reads, and what it cannot do.
# --------------------------------------------------------------------------


def layer_options(class_name: str, cfg: Mapping) -> tuple[dict, list[str]]:
    """``(config the runtime reads, problems)`` for one layer class of the registry.

    The config is the one of the class the graph writes (:func:`rnn_parity.layers.resolve`:
    an ``RNN`` around one built-in cell is written as that cell's layer).
    """
    if class_name not in LAYERS:
        raise ValueError(f"not a supported class: {class_name}")
    problems: list[str] = []
    written, written_cfg = resolve(class_name, cfg)
    if written != class_name:
        common_checks(cfg, problems)  # the stored layer's own dtype policy; the written config's is checked next
    out = LAYERS[written].keep(written_cfg, problems)
    return out, list(dict.fromkeys(problems))


# --------------------------------------------------------------------------
# Before Keras loads anything: the stored configuration, any format.
# --------------------------------------------------------------------------


def _model_layers(raw: Mapping) -> tuple[str, list]:
    """The model's class and its list of layer entries, from a stored configuration."""
    cfg = raw.get("config")
    if isinstance(cfg, list):  # very old Sequential files
        return str(raw.get("class_name")), cfg
    if not isinstance(cfg, Mapping) or not isinstance(cfg.get("layers"), list):
        raise InvalidInput("the model configuration lists no layers")
    return str(raw.get("class_name")), cfg["layers"]


def _entry_name(entry: Mapping) -> str:
    cfg = entry.get("config") if isinstance(entry.get("config"), Mapping) else {}
    return str(entry.get("name") or cfg.get("name") or "?")


def _is_operation(entry: Mapping) -> bool:
    module = str(entry.get("module") or "")
    if module:
        return module.startswith("keras.src.ops") or module.startswith("keras.ops")
    return entry.get("class_name") in MASK_OPERATIONS and entry.get("class_name") not in LAYERS


def _is_custom(entry: Mapping) -> bool:
    module = str(entry.get("module") or "")
    registered = str(entry.get("registered_name") or "")
    return (bool(module) and not module.startswith("keras")) or ">" in registered


def _walk(entries: list) -> Iterator[StoredLayer]:
    """Each layer entry, and each layer wrapped inside one."""
    for entry in entries:
        if not isinstance(entry, Mapping) or _is_operation(entry):
            continue
        cfg = entry.get("config") if isinstance(entry.get("config"), Mapping) else {}
        name = _entry_name(entry)
        yield StoredLayer(name=name, class_name=str(entry.get("class_name")), config=cfg, entry=entry)
        inner = []
        if entry.get("class_name") in WRAPPERS:
            inner = [cfg[key] for key in ("layer", "backward_layer") if isinstance(cfg.get(key), Mapping)]
        elif entry.get("class_name") in MODEL_CLASSES and isinstance(cfg.get("layers"), list):
            inner = cfg["layers"]
        yield from (layer._replace(name=f"{name}/{layer.name}") for layer in _walk(inner))


def _problems(class_name: str, cfg: Mapping, entry: Mapping) -> list[str]:
    if class_name == "Lambda":
        return [
            "a Lambda layer holds Python code; refused (models are loaded in Keras's safe mode, which never "
            "runs code from a file)"
        ]
    if _is_custom(entry):
        return [
            f"a custom object (registered as {entry.get('registered_name') or entry.get('module')!r}); "
            "refused (safe mode loads no custom code)"
        ]
    if class_name in MODEL_CLASSES:
        return ["a nested model is not supported"]
    if class_name == "InputLayer":
        problems = []
        if cfg.get("sparse") or cfg.get("ragged"):
            problems.append("sparse or ragged inputs are not supported")
        if cfg.get("optional"):
            problems.append("optional inputs are not supported")
        return problems
    if class_name not in LAYERS:
        return ["not implemented by the NumPy reference"]
    return layer_options(class_name, cfg)[1]


def _unsupported(where: str, found: list[Refusal]) -> Unsupported:
    parts = [
        f"{'operation' if r.class_name.startswith('keras.ops.') else 'layer'} {r.name!r} ({r.class_name}): "
        + "; ".join(r.problems)
        for r in found
    ]
    return Unsupported(f"{where}: unsupported: " + " | ".join(parts))


def scan(raw: Mapping, where: str) -> None:
    """Check a stored model configuration before anything is loaded.

    Raises:
        InvalidInput: the configuration has no layers, or no recurrent layer.
        Unsupported: a Lambda layer, a custom object, or a layer or option the
            reference does not implement; every offending layer is named.
    """
    if not isinstance(raw, Mapping):
        raise InvalidInput(f"{where}: the model configuration is not an object")
    model_class, entries = _model_layers(raw)
    if model_class not in MODEL_CLASSES:
        raise InvalidInput(f"{where}: stores a {model_class}, not a Sequential or Functional model")
    walked = list(_walk(entries))
    if not any(layer.class_name in RECURRENT_LIKE for layer in walked):
        raise InvalidInput(f"{where}: {NO_RECURRENT_LAYER}")
    found = []
    for layer in walked:
        if "/" in layer.name:
            continue  # wrapped layers are checked with their wrapper
        problems = _problems(layer.class_name, layer.config, layer.entry)
        if problems:
            found.append(Refusal(name=layer.name, class_name=layer.class_name, problems=problems))
    if found:
        raise _unsupported(where, found)


# --------------------------------------------------------------------------
# After loading: the loaded model's configuration → the runtime's graph.
# --------------------------------------------------------------------------


def _input_spec(entry: Mapping) -> dict:
    cfg = entry.get("config") or {}
    shape = cfg.get("batch_shape") or cfg.get("batch_input_shape")
    dtype = cfg.get("dtype") or "float32"
    if isinstance(dtype, Mapping):
        dtype = (dtype.get("config") or {}).get("name", "float32")
    return {"name": _entry_name(entry), "shape": list(shape) if shape is not None else None, "dtype": str(dtype)}


def _tensor_ref(value) -> TensorRef | None:
    """The tensor a serialized Keras tensor refers to, else None."""
    if isinstance(value, Mapping) and value.get("class_name") == "__keras_tensor__":
        cfg = value.get("config") or {}
        layer, _node, index = cfg["keras_history"]
        return TensorRef(layer=str(layer), index=int(index), shape=cfg.get("shape"))
    if isinstance(value, list) and len(value) in (3, 4) and isinstance(value[0], str):  # Keras 2 style
        return TensorRef(layer=value[0], index=int(value[2]))
    return None


def _tensor_list(value) -> list[TensorRef] | None:
    """A tensor, or a (nested) list of tensors, as references in order; None when it is anything else.

    Keras stores the initial states of ``RNN(StackedRNNCells)`` nested by cell
    (``[[h₁, c₁], h₂]``); flattened they are the states in cell order.
    """
    single = _tensor_ref(value)
    if single is not None:
        return [single]
    if isinstance(value, (list, tuple)) and value:
        parts = [_tensor_list(v) for v in value]
        if all(part is not None for part in parts):
            return [ref for part in parts for ref in part]
    return None


def _parse_call(node, call_inputs: tuple[str, ...] = ()) -> Call:
    """One call of a layer, as stored in its ``inbound_nodes``.

    ``call_inputs``: the names of the call's data arguments when the layer takes
    them one by one (``MultiHeadAttention(query, value, key)``); otherwise the data
    is the first argument and further tensors are initial states.
    """
    if isinstance(node, Mapping):
        args, kwargs = list(node.get("args", [])), dict(node.get("kwargs") or {})
    elif isinstance(node, list):  # Keras 2: [[layer, node, index, kwargs], ...]
        args, kwargs = [[v for v in node]], dict(node[0][3]) if node and len(node[0]) > 3 else {}
    else:
        return Call(data=[], states=[], mask=None, problems=["cannot read how the layer is called"])
    problems = []
    if call_inputs:
        named = dict(zip(call_inputs, args))
        named.update({key: kwargs.pop(key) for key in call_inputs if key in kwargs})
        parts = [_tensor_list(named[key]) for key in call_inputs if named.get(key) is not None]
        data = [ref for part in parts for ref in part] if parts and all(p and len(p) == 1 for p in parts) else None
        rest = args[len(call_inputs) :]
    else:
        data = _tensor_list(args[0]) if args else None
        rest = args[1:]
    if data is None:
        return Call(data=[], states=[], mask=None, problems=["called on something that is not a tensor"])
    states = []
    if "initial_state" in kwargs:
        rest = [kwargs.pop("initial_state")] + rest
    for value in rest:
        if value is None:
            continue
        refs = _tensor_list(value)
        if refs is None:
            problems.append(f"called with an argument {value!r}")
        else:
            states.extend(refs)
    masks = [kwargs.pop("mask", None), *(kwargs.pop(f"{key}_mask", None) for key in call_inputs)]
    masks = [m for m in masks if m is not None]
    kwargs.pop("training", None)
    return Call(data=data, states=states, mask=masks or None, problems=problems, options=kwargs)


def _chain(entries: list, model_cfg: Mapping, where: str):
    """A Sequential model as graph nodes: each layer reads the previous one."""
    inputs, nodes = [], []
    if entries and entries[0].get("class_name") == "InputLayer":
        inputs.append(_input_spec(entries[0]))
        entries = entries[1:]
    elif model_cfg.get("build_input_shape") is not None:
        inputs.append({"name": "input_layer", "shape": list(model_cfg["build_input_shape"]), "dtype": "float32"})
    else:
        raise InvalidInput(f"{where}: the Sequential model was saved without an input shape (never built)")
    previous = (inputs[0]["name"], 0)
    for entry in entries:
        nodes.append(Node(entry=entry, inputs=[previous], initial_state=[], receives_mask=True, problems=[]))
        previous = (_entry_name(entry), 0)
    return inputs, nodes, [list(previous)]


def _functional(entries: list, model_cfg: Mapping, where: str):
    """A Functional model as graph nodes, mask operations dropped."""
    by_name = {_entry_name(e): e for e in entries}
    inputs = [_input_spec(e) for e in entries if e.get("class_name") == "InputLayer"]
    order = model_cfg.get("input_layers") or []
    if order and isinstance(order[0], str):
        order = [order]
    rank = {str(ref[0]): i for i, ref in enumerate(order)}
    inputs.sort(key=lambda spec: rank.get(spec["name"], len(rank)))
    outputs = model_cfg.get("output_layers") or []
    if outputs and isinstance(outputs[0], str):
        outputs = [outputs]
    outputs = [[str(ref[0]), int(ref[2])] for ref in outputs]

    calls = {}
    for entry in entries:
        if entry.get("class_name") == "InputLayer":
            continue
        inbound = entry.get("inbound_nodes") or []
        name = _entry_name(entry)
        if len(inbound) != 1:
            problem = f"called {len(inbound)} times (a shared layer); not supported" if inbound else "never called"
            calls[name] = Call(data=[], states=[], mask=None, problems=[problem])
            continue
        if _is_operation(entry):
            node = inbound[0]
            args = node.get("args", []) if isinstance(node, Mapping) else []
            refs = [r for a in args for r in (_tensor_list(a) or [])]
            calls[name] = Call(data=refs, states=[], mask=None, problems=[])
        else:
            spec = LAYERS.get(str(entry.get("class_name")))
            calls[name] = _parse_call(inbound[0], spec.call_inputs if spec is not None else ())

    # Operations reached from a layer's data, or a model output, compute data: refused.
    data_ops, stack = set(), [ref[0] for ref in outputs]
    for name, call in calls.items():
        if not _is_operation(by_name[name]):
            stack.extend(r.layer for r in [*call.data, *call.states])
    while stack:
        name = stack.pop()
        if name in by_name and _is_operation(by_name[name]) and name not in data_ops:
            data_ops.add(name)
            stack.extend(r.layer for r in calls[name].data)

    nodes = []
    for entry in entries:
        name = _entry_name(entry)
        if entry.get("class_name") == "InputLayer" or (_is_operation(entry) and name not in data_ops):
            continue
        if _is_operation(entry):
            nodes.append(
                Node(
                    entry={**entry, "class_name": f"keras.ops.{entry.get('class_name')}"},
                    inputs=[],
                    initial_state=[],
                    receives_mask=False,
                    problems=["a Keras operation on data (keras.ops, or arithmetic on tensors) is not supported"],
                )
            )
            continue
        call = calls[name]
        spec = LAYERS.get(str(entry.get("class_name")))
        problems, receives_mask = call.problems, False
        accepted = spec.call_options if spec is not None else ()
        problems = [
            *problems,
            *(
                f"called with {key}={value!r}, which is not supported"
                for key, value in call.options.items()
                if key not in accepted and value is not None and value is not False
            ),
        ]
        if call.mask is not None:
            masks = [m for given in call.mask for m in (given if isinstance(given, list) else [given]) if m is not None]
            sources = [_tensor_ref(m) for m in masks]
            if any(source is None or not _is_operation(by_name.get(source.layer, {})) for source in sources):
                problems = [
                    *problems,
                    "called with an explicit mask tensor; only masks Keras propagates "
                    "itself (Embedding mask_zero, Masking) are supported",
                ]
            receives_mask = True
        ranks = {len(r.shape) for r in call.data if r.shape is not None}
        if spec is not None and spec.same_rank and len(ranks) > 1:
            problems = [*problems, "merges inputs of different ranks"]
        if spec is not None and spec.input_rank is not None and ranks - {spec.input_rank}:
            problems = [
                *problems,
                f"takes inputs of rank {spec.input_rank} (batch, steps, features), got rank {max(ranks)}",
            ]
        nodes.append(
            Node(
                entry=entry,
                inputs=[(r.layer, r.index) for r in call.data],
                initial_state=[(r.layer, r.index) for r in call.states],
                receives_mask=receives_mask,
                problems=problems,
                options={key: value for key, value in call.options.items() if key in accepted},
            )
        )
    return inputs, nodes, outputs


def _runs_recurrent(class_name: str, cfg: Mapping) -> bool:
    """A recurrent layer, or TimeDistributed around one."""
    if class_name == TIME_DISTRIBUTED:
        class_name, cfg = unwrap(class_name, cfg)
    return LAYERS[class_name].recurrent


def build_graph(model_class: str, model_cfg: Mapping, where: str) -> dict:
    """The runtime's description of a loaded model (weights not included).

    Args:
        model_class: ``"Sequential"`` or ``"Functional"``.
        model_cfg: the loaded model's ``get_config()``.
        where: the file, for messages.

    Returns:
        the graph dict (see :mod:`rnn_parity.runtime`), each layer with an
        empty ``weights`` list for the caller to fill.

    Raises:
        Unsupported: a layer, an option, a call or an operation the runtime
            cannot reproduce (all of them named).
        InvalidInput: no recurrent layer, no input shape.
    """
    model_class = "Sequential" if model_class == "Sequential" else "Functional"
    entries = [e for e in model_cfg.get("layers", []) if isinstance(e, Mapping)]
    inputs, nodes, outputs = (_chain if model_class == "Sequential" else _functional)(entries, model_cfg, where)
    layers, found, tensor_count = [], [], {spec["name"]: 1 for spec in inputs}
    for node in nodes:
        entry, problems, receives_mask = node.entry, node.problems, node.receives_mask
        name, class_name = _entry_name(entry), str(entry.get("class_name"))
        if not class_name.startswith("keras.ops."):
            problems = [*problems, *_problems(class_name, entry.get("config") or {}, entry)]
        config = {}
        if not problems:
            config = {**layer_options(class_name, entry.get("config") or {})[0], **node.options}
            class_name = resolve(class_name, entry.get("config") or {})[0]  # RNN around one cell: that cell's layer
            if node.initial_state and not LAYERS[class_name].recurrent:
                problems.append("called with initial_state")
        # Keras hands call() the input's mask when call takes one and gets one tensor argument (a list counts as one).
        if not problems and (model_class == "Sequential" or (LAYERS[class_name].call_mask and not node.initial_state)):
            receives_mask = True
        if problems:
            found.append(Refusal(name=name, class_name=class_name, problems=problems))
            continue
        if model_class == "Sequential" and n_tensors(class_name, config) > 1 and node is not nodes[-1]:
            problem = "returns several tensors inside a Sequential model"
            found.append(Refusal(name=name, class_name=class_name, problems=[problem]))
        layer = {
            "name": name,
            "class_name": class_name,
            "config": config,
            "inputs": [list(r) for r in node.inputs],
            "receives_mask": receives_mask,
            "weights": [],
        }
        if node.initial_state:
            layer["initial_state"] = [list(r) for r in node.initial_state]
        layers.append(layer)
        tensor_count[name] = n_tensors(class_name, config)
    if found:
        raise _unsupported(where, found)
    if model_class == "Sequential" and layers:
        outputs = [[layers[-1]["name"], i] for i in range(tensor_count[layers[-1]["name"]])]
    if not any(_runs_recurrent(layer["class_name"], layer["config"]) for layer in layers):
        raise InvalidInput(f"{where}: {NO_RECURRENT_LAYER}")
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "name": str(model_cfg.get("name", "model")),
        "keras_class": model_class,
        "inputs": inputs,
        "outputs": outputs,
        "layers": layers,
    }
