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
from .layers import LAYERS
from .recurrent import BIDIRECTIONAL, CELLS, MERGE_MODES, RECURRENT_LIKE, TIME_DISTRIBUTED, WRAPPERS, is_recurrent
from .reference import ACTIVATIONS
from .rnn_cell import as_layer, cells_of
from .runtime import FORMAT, FORMAT_VERSION, IDENTITY_CLASSES, MERGE_CLASSES, n_tensors

__all__ = ["SUPPORTED_LAYERS", "build_graph", "layer_options", "scan"]

MODEL_CLASSES = frozenset({"Sequential", "Functional", "Model"})
#: The layers verify and export support, with what the runtime does for each.
SUPPORTED_LAYERS = {
    "InputLayer": "the model's inputs",
    "SimpleRNN": "reference.simple_rnn",
    "LSTM": "reference.lstm",
    "GRU": "reference.gru (reset_after on or off)",
    BIDIRECTIONAL: "reference.bidirectional around SimpleRNN/LSTM/GRU, every merge_mode",
    "Masking": "mask = any(x != mask_value); masked steps zeroed",
    "Embedding": "row lookup; mask_zero gives mask = ids != 0",
    "Dense": "reference.dense over the last axis, any rank",
    TIME_DISTRIBUTED: "around Dense, Activation or an identity layer",
    "Activation": "any built-in activation the reference implements",
    "Concatenate": "np.concatenate on any axis; masks as Keras combines them",
    "Add": "sum; mask = OR of the masks when every input has one",
    "Subtract": "difference of two inputs",
    "Multiply": "product; masked steps count as 1, as in Keras",
    "Average": "mean of the inputs",
    "Maximum": "elementwise max with Keras's mask handling",
    "Minimum": "elementwise min with Keras's mask handling",
    "RepeatVector": "repeat a vector n times (the mask stops here)",
    "GlobalAveragePooling1D": "mean over time, masked steps excluded",
    "GlobalMaxPooling1D": "max over time (Keras ignores the mask)",
    **{name: "identity at inference" for name in sorted(IDENTITY_CLASSES)},
    "RNN": "around one SimpleRNNCell, LSTMCell or GRUCell (also in Bidirectional): runs as that layer",
    **{name: spec.summary for name, spec in LAYERS.items()},
}
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
_FLOAT_POLICIES = ("float32", "float64")


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


def _activation(cfg: Mapping, key: str, default: str | None, problems: list[str]) -> str:
    value = cfg.get(key, default)
    if value is None:
        return "linear"
    if isinstance(value, Mapping):  # a serialized function: a built-in by name, or custom code
        inner = value.get("config")
        if str(value.get("module", "")).startswith("keras") and isinstance(inner, str) and inner in ACTIVATIONS:
            return inner
        named = inner if isinstance(inner, str) else value.get("registered_name") or value.get("class_name")
        problems.append(f"{key} is a custom function ({named!r}); custom objects are refused")
        return "linear"
    if isinstance(value, str) and value in ACTIVATIONS:
        return value
    problems.append(f"{key}={value!r} is not an activation the reference implements")
    return "linear"


def _dtype(cfg: Mapping, problems: list[str]) -> None:
    value = cfg.get("dtype")
    if value is None:
        return
    name = value
    if isinstance(value, Mapping):
        kind = value.get("class_name")
        if kind not in ("DTypePolicy", "FloatDTypePolicy", "Policy"):
            problems.append(f"dtype policy {kind} (quantized or per-variable) is not supported")
            return
        name = (value.get("config") or {}).get("name")
    if name not in _FLOAT_POLICIES:
        problems.append(f"computes in {name} (dtype policy); the reference supports float32 and float64 models")


def _no_adapters(cfg: Mapping, problems: list[str]) -> None:
    if cfg.get("lora_rank"):
        problems.append(f"LoRA adapters (lora_rank={cfg['lora_rank']}) are not supported")
    if cfg.get("quantization_config") is not None:
        problems.append("a quantized layer is not supported")


def _recurrent(class_name: str, cfg: Mapping, problems: list[str]) -> dict:
    if "cell" in cfg:
        problems.append("a layer built around a cell object is not supported")
    out = {
        "units": cfg.get("units"),
        "activation": _activation(cfg, "activation", "tanh", problems),
        "use_bias": bool(cfg.get("use_bias", True)),
        "return_sequences": bool(cfg.get("return_sequences", False)),
        "return_state": bool(cfg.get("return_state", False)),
        "go_backwards": bool(cfg.get("go_backwards", False)),
        "stateful": bool(cfg.get("stateful", False)),
        "zero_output_for_mask": bool(cfg.get("zero_output_for_mask", False)),
    }
    if not isinstance(out["units"], int) or out["units"] < 1:
        problems.append(f"units={out['units']!r} is not a positive integer")
    options = CELLS[class_name].options
    if "recurrent_activation" in options:
        out["recurrent_activation"] = _activation(cfg, "recurrent_activation", "sigmoid", problems)
    if "reset_after" in options:
        out["reset_after"] = bool(cfg.get("reset_after", True))
    if cfg.get("time_major"):  # Keras 2 only: (timesteps, batch, features) in and out
        out["time_major"] = True
    return out


def _wrapped(entry, what: str, problems: list[str]) -> tuple[str, Mapping]:
    if not isinstance(entry, Mapping):
        problems.append(f"{what} is not a layer configuration")
        return "?", {}
    return str(entry.get("class_name")), entry.get("config") or {}


def _as_cell_layer(class_name: str, cfg: Mapping) -> tuple[str, Mapping]:
    """An ``RNN`` around one built-in cell as that cell's layer; any other layer as it is."""
    translated = as_layer(cfg) if class_name == "RNN" else None
    return translated if translated is not None else (class_name, cfg)


def _bidirectional(cfg: Mapping, problems: list[str]) -> dict:
    merge_mode = cfg.get("merge_mode", "concat")
    if merge_mode not in MERGE_MODES:
        problems.append(f"merge_mode={merge_mode!r} is not one of {MERGE_MODES}")
    inner_class, inner_cfg = _as_cell_layer(*_wrapped(cfg.get("layer"), "the wrapped layer", problems))
    if inner_class not in CELLS:
        problems.append(f"wraps {inner_class}; only SimpleRNN, LSTM and GRU are supported")
        return {"merge_mode": merge_mode, "layer": {"class_name": inner_class, "config": {}}}
    forward = _recurrent(inner_class, inner_cfg, problems)
    if forward["go_backwards"]:
        problems.append("the forward layer has go_backwards=True")
    backward_entry = cfg.get("backward_layer")
    if backward_entry is not None:
        back_class, back_cfg = _as_cell_layer(*_wrapped(backward_entry, "backward_layer", problems))
        backward = _recurrent(back_class, back_cfg, []) if back_class in CELLS else {}
        same = {k: v for k, v in backward.items() if k not in ("go_backwards", "zero_output_for_mask")}
        want = {k: v for k, v in forward.items() if k not in ("go_backwards", "zero_output_for_mask")}
        if back_class != inner_class or same != want or not backward.get("go_backwards"):
            problems.append(
                "backward_layer is not the mirror image of the forward layer (same class and options, "
                "go_backwards=True)"
            )
    # Keras sets zero_output_for_mask = return_sequences on both directions.
    forward["zero_output_for_mask"] = forward["return_sequences"]
    return {"merge_mode": merge_mode, "layer": {"class_name": inner_class, "config": forward}}


def _per_step_options(class_name: str, cfg: Mapping, problems: list[str]) -> dict:
    if class_name == "Dense":
        _no_adapters(cfg, problems)
        return {
            "units": cfg.get("units"),
            "activation": _activation(cfg, "activation", None, problems),
            "use_bias": bool(cfg.get("use_bias", True)),
        }
    if class_name == "Activation":
        return {"activation": _activation(cfg, "activation", None, problems)}
    return {}


def _rnn_problems(cfg: Mapping) -> list[str]:
    cells, problems = cells_of(cfg)
    if not problems and len(cells) > 1:
        problems = ["keras.layers.RNN around StackedRNNCells is not supported yet; stack RNN layers instead"]
    return problems


def layer_options(class_name: str, cfg: Mapping) -> tuple[dict, list[str]]:
    """``(config the runtime reads, problems)`` for one supported layer class."""
    problems: list[str] = []
    _dtype(cfg, problems)
    if class_name in CELLS:
        out = _recurrent(class_name, cfg, problems)
    elif class_name == BIDIRECTIONAL:
        out = _bidirectional(cfg, problems)
    elif class_name in ("Dense", "Activation") or class_name in IDENTITY_CLASSES:
        out = _per_step_options(class_name, cfg, problems)
    elif class_name == TIME_DISTRIBUTED:
        inner_class, inner_cfg = _wrapped(cfg.get("layer"), "the wrapped layer", problems)
        if inner_class in ("Dense", "Activation") or inner_class in IDENTITY_CLASSES:
            _dtype(inner_cfg, problems)
            out = {"layer": {"class_name": inner_class, "config": _per_step_options(inner_class, inner_cfg, problems)}}
        else:
            problems.append(f"wraps {inner_class}; only Dense, Activation and identity layers are supported")
            out = {}
    elif class_name == "Masking":
        value = cfg.get("mask_value", 0.0)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            problems.append(f"mask_value={value!r} is not a number")
        out = {"mask_value": value}
    elif class_name == "Embedding":
        _no_adapters(cfg, problems)
        out = {
            "input_dim": cfg.get("input_dim"),
            "output_dim": cfg.get("output_dim"),
            "mask_zero": bool(cfg.get("mask_zero", False)),
        }
    elif class_name == "Concatenate":
        out = {"axis": cfg.get("axis", -1)}
    elif class_name in MERGE_CLASSES:
        out = {}
    elif class_name == "RepeatVector":
        out = {"n": cfg.get("n")}
    elif class_name in ("GlobalAveragePooling1D", "GlobalMaxPooling1D"):
        out = {"data_format": cfg.get("data_format") or "channels_last", "keepdims": bool(cfg.get("keepdims", False))}
    elif class_name in LAYERS:
        out = LAYERS[class_name].options(cfg, problems)
    elif class_name == "RNN":
        translated = as_layer(cfg)
        if translated is None:
            problems.extend(_rnn_problems(cfg))
            out = {}
        else:
            layer_class, layer_cfg = translated
            _dtype(layer_cfg, problems)
            out = _recurrent(layer_class, layer_cfg, problems)
    else:
        raise ValueError(f"not a supported class: {class_name}")
    return out, problems


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
    return entry.get("class_name") in MASK_OPERATIONS and entry.get("class_name") not in MERGE_CLASSES


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
    if class_name == "RNN" and as_layer(cfg) is None:
        return _rnn_problems(cfg)
    if class_name == "InputLayer":
        problems = []
        if cfg.get("sparse") or cfg.get("ragged"):
            problems.append("sparse or ragged inputs are not supported")
        if cfg.get("optional"):
            problems.append("optional inputs are not supported")
        return problems
    if class_name not in SUPPORTED_LAYERS:
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
        raise InvalidInput(
            f"{where}: has no recurrent layer (SimpleRNN, LSTM or GRU); rnn-parity verifies recurrent models"
        )
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
    """A tensor, or a list of tensors, as references; None when it is anything else."""
    single = _tensor_ref(value)
    if single is not None:
        return [single]
    if isinstance(value, (list, tuple)) and value:
        refs = [_tensor_ref(v) for v in value]
        if all(r is not None for r in refs):
            return refs
    return None


def _parse_call(node) -> Call:
    """One call of a layer, as stored in its ``inbound_nodes``."""
    if isinstance(node, Mapping):
        args, kwargs = list(node.get("args", [])), dict(node.get("kwargs") or {})
    elif isinstance(node, list):  # Keras 2: [[layer, node, index, kwargs], ...]
        args, kwargs = [[v for v in node]], dict(node[0][3]) if node and len(node[0]) > 3 else {}
    else:
        return Call(data=[], states=[], mask=None, problems=["cannot read how the layer is called"])
    problems = []
    data = _tensor_list(args[0]) if args else None
    if data is None:
        return Call(data=[], states=[], mask=None, problems=["called on something that is not a tensor"])
    states = []
    rest = args[1:]
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
    mask = kwargs.pop("mask", None)
    kwargs.pop("training", None)
    return Call(data=data, states=states, mask=mask, problems=problems, options=kwargs)


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
            calls[name] = _parse_call(inbound[0])

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
        problems, receives_mask = call.problems, False
        accepted = LAYERS[entry.get("class_name")].call_options if entry.get("class_name") in LAYERS else ()
        problems = [
            *problems,
            *(f"called with {key}=, which is not supported" for key in call.options if key not in accepted),
        ]
        if call.mask is not None:
            masks = [m for m in (call.mask if isinstance(call.mask, list) else [call.mask]) if m is not None]
            sources = [_tensor_ref(m) for m in masks]
            if any(source is None or not _is_operation(by_name.get(source.layer, {})) for source in sources):
                problems = [
                    *problems,
                    "called with an explicit mask= tensor; only masks Keras propagates "
                    "itself (Embedding mask_zero, Masking) are supported",
                ]
            receives_mask = True
        ranks = {len(r.shape) for r in call.data if r.shape is not None}
        if entry.get("class_name") in MERGE_CLASSES and len(ranks) > 1:
            problems = [*problems, "merges inputs of different ranks"]
        nodes.append(
            Node(
                entry=entry,
                inputs=[(r.layer, r.index) for r in call.data],
                initial_state=[(r.layer, r.index) for r in call.states],
                receives_mask=receives_mask,
                problems=problems,
                options=dict(call.options),
            )
        )
    return inputs, nodes, outputs


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
            if class_name == "RNN":  # around one built-in cell: that cell's layer, same weights
                class_name = as_layer(entry.get("config") or {})[0]
            if node.initial_state and not is_recurrent(class_name):
                problems.append("called with initial_state")
        if (model_class == "Sequential" or (class_name in LAYERS and LAYERS[class_name].call_mask)) and not problems:
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
    if not any(is_recurrent(layer["class_name"]) for layer in layers):
        raise InvalidInput(
            f"{where}: has no recurrent layer (SimpleRNN, LSTM or GRU); rnn-parity verifies recurrent models"
        )
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "name": str(model_cfg.get("name", "model")),
        "keras_class": model_class,
        "inputs": inputs,
        "outputs": outputs,
        "layers": layers,
    }
