"""Files written by Keras 2 (tf.keras): detection, translation, and which Keras verifies them.

Keras 3 cannot load most Keras 2 ``.h5`` files as they are ("Unrecognized
keyword arguments passed to LSTM: {'time_major': False}"), and where it can, it
does not always compute the same model. This module works on the stored
configuration alone (no Keras import):

* :func:`detect` tells a Keras 2 file from its ``keras_version`` and
  ``backend`` root attributes (Keras 3 writes ``keras_version`` 3.x and no
  ``backend``) and, failing those, from keys only Keras 2 writes;
* :func:`translate` rewrites the configuration for Keras 3 and lists every
  rewrite: options that do not change the result are dropped (``time_major``
  False, ``implementation``), defaults that differ between the versions are
  written out (a GRU saved without ``reset_after`` is ``reset_after=False``,
  as Keras 2 before 2.3 meant; an LSTM/GRU without ``recurrent_activation``
  used ``hard_sigmoid`` before 2.3);
* every option whose *meaning* differs in Keras 3 is listed as a
  :class:`MeaningChange`: ``hard_sigmoid`` is ``clip(0.2x + 0.5, 0, 1)`` in
  Keras 2 and ``relu6(x + 3) / 6`` in Keras 3 (the default ``recurrent_activation``
  of Keras 2's ConvLSTMs);
* :func:`translate_for_keras2` rewrites it for the Keras 2 installed here
  (tf_keras): only the version-dependent defaults are written out;
* both run ``CuDNNLSTM`` / ``CuDNNGRU`` (GPU-only layers) as the ``LSTM`` /
  ``GRU(reset_after=True)`` computing the same equations, with the weights
  converted as Keras 2 converts them when it loads cuDNN weights into those
  layers (:func:`cudnn_weights_as_keras`);
* :func:`plan` decides which Keras verifies a file (``--keras 2|3|auto``), and
  :func:`keras2_graph` turns what Keras 2 loaded into the runtime's graph with
  Keras 2's definitions (``keras2:hard_sigmoid``, every layer handed its mask).

What Keras 3 cannot express (``time_major=True``) is
:class:`~rnn_parity.errors.Unsupported` naming the layer, unless Keras 2 runs it.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import re
import shutil
import sys
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import InvalidInput, Unsupported

__all__ = [
    "CUDNN",
    "KERAS2_EXTRA",
    "Keras2File",
    "MeaningChange",
    "Plan",
    "Translation",
    "conv_lstm_differences",
    "cudnn_weights_as_keras",
    "detect",
    "detect_file",
    "keras2_activation",
    "keras2_graph",
    "keras2_installed",
    "keras2_semantics",
    "plan",
    "translate",
    "translate_for_keras2",
    "translated_name",
    "write_translated",
]

RECURRENT = ("SimpleRNN", "LSTM", "GRU")
#: Keras 2's convolutional LSTMs. They store ``time_major`` but never read it (always batch-major), default to
#: ``recurrent_activation="hard_sigmoid"`` in every Keras 2 version, and never zero a masked step's output
#: (their call does not pass ``zero_output_for_mask`` on, which Bidirectional sets): see conv_lstm_differences.
CONV_LSTMS = ("ConvLSTM1D", "ConvLSTM2D", "ConvLSTM3D")
#: Keras 2's cuDNN layers → the layer computing the same equations on any device (and its options).
CUDNN = {
    "CuDNNLSTM": ("LSTM", {"activation": "tanh", "recurrent_activation": "sigmoid", "use_bias": True}),
    "CuDNNGRU": (
        "GRU",
        {"activation": "tanh", "recurrent_activation": "sigmoid", "use_bias": True, "reset_after": True},
    ),
}
#: How to get Keras 2 itself.
KERAS2_EXTRA = "pip install 'rnn-parity[keras2]'"
#: Keras 2's hard_sigmoid and Keras 3's, as the reports print them.
HARD_SIGMOID_KERAS2 = "clip(0.2x + 0.5, 0, 1)"
HARD_SIGMOID_KERAS3 = "relu6(x + 3) / 6"
_ACTIVATION_KEYS = ("activation", "recurrent_activation")
_WRAPPERS = ("Bidirectional", "TimeDistributed")
_MERGES = ("Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", "Concatenate")


@dataclass(frozen=True)
class Keras2File:
    """What marks a file as written by Keras 2.

    Attributes:
        keras_version: the ``keras_version`` attribute (e.g. ``"2.15.0"``), or None.
        backend: the ``backend`` attribute (``"tensorflow"``), or None.
        evidence: why the file counts as Keras 2, for messages.
    """

    keras_version: str | None
    backend: str | None
    evidence: str


@dataclass(frozen=True)
class MeaningChange:
    """An option Keras 3 reads with another meaning than the Keras 2 that wrote the file.

    ``option`` names it as the reports print it (``"recurrent_activation=hard_sigmoid"``).
    """

    layer: str
    option: str
    keras2: str
    keras3: str

    def describe(self) -> str:
        return f"{self.option} changed meaning: Keras 2 {self.keras2}, Keras 3 {self.keras3}"


@dataclass
class Translation:
    """A Keras 2 configuration rewritten for the Keras that loads it (3, or the Keras 2 installed here).

    Attributes:
        config: the configuration that Keras loads (``{"class_name", "config"}``).
        rewrites: one line per change, naming the layer (``"lstm: dropped time_major=False …"``).
        changes: the options that compute something else in Keras 3 (always empty for Keras 2).
        cudnn: top-level layer name → the cuDNN class whose weights it holds (itself, or inside
            ``Bidirectional``); those weights are converted when the file is loaded.
    """

    config: dict
    rewrites: list[str] = field(default_factory=list)
    changes: list[MeaningChange] = field(default_factory=list)
    cudnn: dict[str, str] = field(default_factory=dict)

    def changes_at(self, layer: str) -> list[MeaningChange]:
        """The meaning changes of one layer (a wrapped layer counts as its wrapper's)."""
        return [c for c in self.changes if c.layer == layer or c.layer.startswith(f"{layer}/")]


def _version_tuple(version: str | None) -> tuple[int, ...]:
    if not version:
        return ()
    return tuple(int(part) for part in re.findall(r"\d+", version)[:3])


def _layers(raw: Mapping) -> list:
    cfg = raw.get("config")
    if isinstance(cfg, list):  # Sequential files of Keras 2.0-2.1
        return cfg
    if isinstance(cfg, Mapping) and isinstance(cfg.get("layers"), list):
        return cfg["layers"]
    return []


def _walk(entries: list, prefix: str = "") -> Iterator[tuple[str, dict]]:
    """Every layer entry, wrapped layers too, as ``(name, entry)``; entries are the stored dicts."""
    for entry in entries:
        if not isinstance(entry, dict) or not isinstance(entry.get("config"), dict):
            continue
        name = prefix + str(entry["config"].get("name") or entry.get("name") or "?")
        yield name, entry
        if entry.get("class_name") in _WRAPPERS:
            for key in ("layer", "backward_layer"):
                inner = entry["config"].get(key)
                if isinstance(inner, dict):
                    yield from _walk([inner], f"{name}/")


def _written_by_keras2(raw: Mapping) -> bool:
    for _, entry in _walk(_layers(raw)):
        cfg = entry["config"]
        if "time_major" in cfg or "batch_input_shape" in cfg or entry.get("class_name") in CUDNN:
            return True
    return False


def detect_file(model_file) -> Keras2File | None:
    """A :class:`Keras2File` when the :class:`~rnn_parity.model_file.ModelFile` was written by Keras 2, else None.

    An ``.h5`` file: :func:`detect`. A ``.keras`` archive: its ``metadata.json``'s
    ``keras_version`` (Keras 2.12 to 2.15, and tf_keras, write the archive as well).
    """
    if model_file.format == "h5":
        return detect(model_file.path, model_file.config)
    version = model_file.keras_version
    if version is not None and _version_tuple(version)[:1] == (2,):
        return Keras2File(version, None, f"metadata.json keras_version {version}")
    return None


def detect(path: str | Path, raw: Mapping) -> Keras2File | None:
    """A :class:`Keras2File` when the ``.h5`` file at ``path`` was written by Keras 2, else None.

    Args:
        path: the file (only HDF5 files are read here; for a ``.keras`` archive, see :func:`detect_file`).
        raw: its stored model configuration.
    """
    import h5py  # comes with Keras; does not import TensorFlow

    try:
        with h5py.File(path, "r") as f:
            attrs = {key: f.attrs.get(key) for key in ("keras_version", "backend")}
    except OSError:
        return None
    version, backend = (v.decode("utf-8", "replace") if isinstance(v, bytes) else v for v in attrs.values())
    version = None if version is None else str(version)
    backend = None if backend is None else str(backend)
    if version is not None and _version_tuple(version)[:1] == (2,):
        return Keras2File(version, backend, f"keras_version {version}")
    if version is None and backend is not None:
        return Keras2File(None, backend, f"backend attribute {backend!r}, which Keras 3 does not write")
    if (version is None or _version_tuple(version)[:1] < (3,)) and _written_by_keras2(raw):
        return Keras2File(version, backend, "options only Keras 2 writes (time_major, batch_input_shape)")
    return None


def _before_2_3(version: str | None) -> bool:
    parts = _version_tuple(version)
    return bool(parts) and parts[:2] < (2, 3)


def _run_cudnn_as(name: str, entry: dict, out: Translation) -> str:
    """Rewrite a CuDNNLSTM/CuDNNGRU entry in place as the LSTM/GRU computing the same; its new class."""
    cls = entry["class_name"]
    target, options = CUDNN[cls]
    entry["class_name"] = target
    entry["config"].update(options)
    out.cudnn[name.split("/")[0]] = cls
    shown = ", ".join(f"{key}={value}" for key, value in options.items() if key not in ("activation", "use_bias"))
    bias = "input bias + recurrent bias" if target == "LSTM" else "[input bias, recurrent bias], (2, 3·units)"
    out.rewrites.append(
        f"{name}: {cls} runs as {target}({shown}), weights converted as Keras 2 loads them into one "
        f"(kernels re-laid out per gate, bias = {bias})"
    )
    return target


def _translate_layer(name: str, entry: dict, version: str | None, out: Translation, refused: list, keras: int):
    cls, cfg = entry.get("class_name"), entry["config"]
    if cls in CUDNN:
        cls = _run_cudnn_as(name, entry, out)
    if keras == 3 and "batch_input_shape" in cfg:
        shape = cfg.pop("batch_input_shape")
        if cls == "InputLayer":
            cfg["batch_shape"] = shape
            out.rewrites.append(f"{name}: batch_input_shape renamed batch_shape")
        else:  # Keras 3 builds a Sequential model's input from its InputLayer
            out.rewrites.append(f"{name}: dropped batch_input_shape={shape} (the model's InputLayer keeps the shape)")
    if cls in RECURRENT and keras == 3:
        if cfg.get("time_major"):
            refused.append(f"layer {name!r} ({cls}): time_major=True has no Keras 3 equivalent")
        if "time_major" in cfg:
            cfg.pop("time_major")
            out.rewrites.append(f"{name}: dropped time_major=False (Keras 3 is always batch-major)")
        if "implementation" in cfg:
            value = cfg.pop("implementation")
            out.rewrites.append(f"{name}: dropped implementation={value} (schedules the same arithmetic)")
    if cls in CONV_LSTMS and keras == 3:
        if "time_major" in cfg:
            value = cfg.pop("time_major")
            out.rewrites.append(f"{name}: dropped time_major={value} (Keras 2's ConvLSTM never reads it: batch-major)")
        if "recurrent_activation" not in cfg:
            cfg["recurrent_activation"] = "hard_sigmoid"
            out.rewrites.append(f"{name}: recurrent_activation=hard_sigmoid written out (Keras 2's ConvLSTM default)")
    if cls in ("LSTM", "GRU") and "recurrent_activation" not in cfg:
        default = "hard_sigmoid" if _before_2_3(version) else "sigmoid"
        cfg["recurrent_activation"] = default
        out.rewrites.append(f"{name}: recurrent_activation={default} written out (Keras {version} default)")
    if cls == "GRU" and "reset_after" not in cfg:
        cfg["reset_after"] = False
        out.rewrites.append(f"{name}: reset_after=False written out (Keras 2's GRU without the option)")
    if keras == 3:
        for key in _ACTIVATION_KEYS:
            if cfg.get(key) == "hard_sigmoid":
                out.changes.append(MeaningChange(name, f"{key}=hard_sigmoid", HARD_SIGMOID_KERAS2, HARD_SIGMOID_KERAS3))


def _translated(raw: Mapping, keras_version: str | None, where: str, keras: int) -> tuple[Translation, list[str]]:
    config = copy.deepcopy(dict(raw))
    entries = _layers(config)
    if not entries:
        raise InvalidInput(f"{where}: the model configuration lists no layers")
    if isinstance(config.get("config"), list):
        config["config"] = {"name": "sequential", "layers": entries}
    out, refused = Translation(config), []
    differences = conv_lstm_differences(entries) if keras == 3 else []  # before time_major is dropped
    for name, entry in _walk(entries):
        _translate_layer(name, entry, keras_version, out, refused, keras)
    if keras == 3 and str(config.get("module", "")).startswith("tf_keras") and config.get("class_name") == "Functional":
        # A .keras archive names the class it was saved from; Keras 3 only builds classes of its own.
        config.update(module="keras.src.models.functional", registered_name="Functional")
        out.rewrites.append(f"{config['config'].get('name', 'model')}: tf_keras's Functional read as Keras 3's")
    if keras == 3:
        _initial_states_for_keras3(entries, out)
        out.changes.extend(differences + _merge_differences(entries))
    return out, refused


def translate(raw: Mapping, keras_version: str | None = None, *, where: str = "the model") -> Translation:
    """Rewrite a Keras 2 model configuration for Keras 3; ``raw`` is left unchanged.

    Raises:
        InvalidInput: the configuration lists no layers.
        Unsupported: a layer or option without a Keras 3 equivalent (all named).
    """
    out, refused = _translated(raw, keras_version, where, keras=3)
    if refused:
        raise Unsupported(f"{where}: Keras 2 file: " + " | ".join(refused))
    return out


def translate_for_keras2(raw: Mapping, keras_version: str | None = None, *, where: str = "the model") -> Translation:
    """Rewrite a Keras 2 model configuration for the Keras 2 installed here, which may be newer.

    The defaults that changed in Keras 2.3 are written out (``recurrent_activation``,
    GRU's ``reset_after``), and cuDNN layers run as the LSTM/GRU computing the same
    (Keras 2 runs ``CuDNNLSTM`` on a GPU only). Everything else is kept as it is.
    """
    return _translated(raw, keras_version, where, keras=2)[0]


def cudnn_weights_as_keras(class_name: str, weights: list[np.ndarray]) -> list[np.ndarray]:
    """``CuDNNLSTM`` / ``CuDNNGRU`` weights as ``LSTM`` / ``GRU(reset_after=True)`` hold them.

    Args:
        class_name: ``"CuDNNLSTM"`` or ``"CuDNNGRU"``.
        weights: ``[kernel (D, G·M), recurrent_kernel (M, G·M), bias (2·G·M,)]`` as the cuDNN layer
            stores them, G gate blocks in Keras's order (i, f, c, o or z, r, h).

    cuDNN multiplies ``W_g · x`` with each gate's ``(M, D)`` matrix read row-major, and
    Keras 2's cuDNN layers store ``W_g`` *reshaped* (not transposed) into the gate's
    ``(D, M)`` block of ``kernel``; a Keras layer computes ``x · K_g``, so
    ``K_g = block.reshape(M, D).T``; likewise ``U_g = block.T`` for ``recurrent_kernel``.
    The bias holds every gate's input bias, then every gate's recurrent bias: an
    LSTM only ever adds the two (one ``(4M,)`` bias); a GRU with ``reset_after=True``
    keeps them as the two rows of its ``(2, 3M)`` bias. This is the conversion
    Keras 2 applies when it loads cuDNN weights into an LSTM/GRU layer.
    """
    kernel, recurrent_kernel, bias = (np.asarray(w) for w in weights)
    gates = 4 if class_name == "CuDNNLSTM" else 3
    features, units = kernel.shape[0], recurrent_kernel.shape[0]
    if kernel.shape[1] != gates * units or bias.shape != (2 * gates * units,):
        raise InvalidInput(
            f"{class_name} weights have shapes {kernel.shape}, {recurrent_kernel.shape}, {bias.shape}; "
            f"expected (D, {gates * units}), ({units}, {gates * units}), ({2 * gates * units},)"
        )
    kernel = np.hstack([block.reshape(units, features).T for block in np.hsplit(kernel, gates)])
    recurrent_kernel = np.hstack([block.T for block in np.hsplit(recurrent_kernel, gates)])
    input_bias, recurrent_bias = np.split(bias, 2)
    bias = input_bias + recurrent_bias if gates == 4 else np.stack([input_bias, recurrent_bias])
    return [kernel, recurrent_kernel, bias]


def translated_name(source: str | Path) -> str:
    """The name of a translated copy of ``source``: its format's suffix, which Keras reads the format from."""
    return "translated.keras" if zipfile.is_zipfile(source) else "translated.h5"


def write_translated(source: str | Path, target: str | Path, translation: Translation, *, convert_cudnn: bool):
    """Copy the ``.h5`` file or ``.keras`` archive to ``target`` with the translated configuration.

    ``convert_cudnn``: also rewrite the weights of the cuDNN layers as
    :func:`cudnn_weights_as_keras` converts them (Keras 3 does not; Keras 2's own
    loader does it when it loads them into the LSTM/GRU). The cuDNN layers are
    Keras 2's TensorFlow 1 layers, saved in ``.h5`` files; in an archive they are refused.
    """
    import h5py

    if zipfile.is_zipfile(source):
        if translation.cudnn:
            raise Unsupported(f"{source}: {', '.join(translation.cudnn.values())} in a .keras archive")
        with zipfile.ZipFile(source) as original, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as copy:
            for item in original.infolist():
                data = original.read(item)  # the archive passed the size checks of model_file
                copy.writestr(item, json.dumps(translation.config) if item.filename == "config.json" else data)
        return
    shutil.copyfile(source, target)
    with h5py.File(target, "r+") as f:
        f.attrs["model_config"] = json.dumps(translation.config)
        if not convert_cudnn:
            return
        weights = f["model_weights"] if "model_weights" in f else f
        for layer, class_name in translation.cudnn.items():
            group = weights[layer]
            names = [n.decode("utf-8") if isinstance(n, bytes) else str(n) for n in group.attrs["weight_names"]]
            for start in range(0, len(names), 3):  # forward, then backward inside Bidirectional
                triple = names[start : start + 3]
                for name, array in zip(triple, cudnn_weights_as_keras(class_name, [group[n][()] for n in triple])):
                    del group[name]
                    group.create_dataset(name, data=array)


def keras2_activation(name: str) -> str:
    """The reference's name for what activation ``name`` computed in Keras 2 (``hard_sigmoid`` differs)."""
    return f"keras2:{name}" if name == "hard_sigmoid" else name


def keras2_semantics(graph: dict) -> dict:
    """A copy of ``graph`` whose activations mean what they meant in Keras 2 (``hard_sigmoid``)."""

    def convert(cfg: dict) -> dict:
        out = {k: (keras2_activation(v) if k in _ACTIVATION_KEYS and isinstance(v, str) else v) for k, v in cfg.items()}
        if isinstance(cfg.get("layer"), dict):
            out["layer"] = {**cfg["layer"], "config": convert(cfg["layer"].get("config") or {})}
        return out

    return {**graph, "layers": [{**layer, "config": convert(layer.get("config") or {})} for layer in graph["layers"]]}


def _tensor(ref: list) -> dict:
    """A tensor reference as Keras 3 serializes it; Keras 2 records no shape (Keras replaces this placeholder)."""
    return {"class_name": "__keras_tensor__", "config": {"shape": [], "dtype": "float32", "keras_history": ref[:3]}}


def _states_as_keyword(entry: Mapping) -> Mapping | None:
    """A recurrent layer's Keras 2 call ``[x, h, c]`` (states folded into its inputs) as Keras 3 records it
    (``initial_state=[h, c]``); None when the entry is not such a call."""
    nodes = entry.get("inbound_nodes")
    if (
        entry.get("class_name") not in (*RECURRENT, *CONV_LSTMS, "Bidirectional")
        or not isinstance(nodes, list)
        or len(nodes) != 1
    ):
        return None
    node = nodes[0]
    if not isinstance(node, list) or len(node) < 2 or not all(isinstance(r, list) and len(r) >= 3 for r in node):
        return None
    kwargs = dict(node[0][3]) if len(node[0]) > 3 and isinstance(node[0][3], Mapping) else {}
    call = {"args": [_tensor(node[0])], "kwargs": {**kwargs, "initial_state": [_tensor(r) for r in node[1:]]}}
    return {**entry, "inbound_nodes": [call]}


def _masks_anywhere(entries: list) -> bool:
    """Whether a layer of the model makes a mask (Masking, Embedding(mask_zero=True))."""
    return any(
        entry.get("class_name") == "Masking"
        or (entry.get("class_name") == "Embedding" and entry["config"].get("mask_zero"))
        for _, entry in _walk(entries)
    )


def conv_lstm_differences(entries: list) -> list[MeaningChange]:
    """What Keras 2's ``Bidirectional`` computes otherwise than Keras 3 around a ConvLSTM returning sequences.

    Keras 2's ``Bidirectional`` sets ``zero_output_for_mask`` on the layers it wraps, but its
    ConvLSTMs do not pass it to their loop: in a model that makes a mask, a masked step
    repeats the previous output where Keras 3 (and the runtime, which follows it) gives
    zeros; like the ``initial_state`` check, this one is by configuration (the mask may
    stop before). And it reverses the backward sequence on axis 0 when the wrapped layer
    has ``time_major=True``, which a ConvLSTM stores but never reads: the batch axis.
    """
    masked, found = _masks_anywhere(entries), []
    for name, entry in _walk(entries):
        inner = entry["config"].get("layer") if entry.get("class_name") == "Bidirectional" else None
        if not isinstance(inner, Mapping) or inner.get("class_name") not in CONV_LSTMS:
            continue
        cfg = inner.get("config") or {}
        if not cfg.get("return_sequences"):
            continue
        if masked:
            found.append(
                MeaningChange(
                    name,
                    "Bidirectional(ConvLSTM) returning sequences in a masked model",
                    "repeats the previous output at a masked step",
                    "gives zeros there",
                )
            )
        if cfg.get("time_major"):
            found.append(
                MeaningChange(
                    name,
                    "Bidirectional(ConvLSTM(time_major=True)) returning sequences",
                    "reverses the backward sequence along the batch axis",
                    "along the time axis",
                )
            )
    return found


def _initial_states_for_keras3(entries: list, out: Translation) -> None:
    masked = _masks_anywhere(entries)
    for index, entry in enumerate(entries):
        converted = _states_as_keyword(entry) if isinstance(entry, dict) else None
        if converted is None:
            continue
        entries[index] = converted
        name = str(entry["config"].get("name") or entry.get("name"))
        out.rewrites.append(f"{name}: initial_state passed as a keyword (Keras 2 records the states as call inputs)")
        if masked:  # conservative: the mask may stop before this layer
            out.changes.append(
                MeaningChange(
                    name,
                    "initial_state in a masked model",
                    "passes the layer its input's mask",
                    "passes no mask to a layer called with initial_state (every step computed)",
                )
            )


def keras2_graph(model_class: str, model_cfg: Mapping, where: str) -> dict:
    """The runtime's graph of a model as Keras 2 loaded it (its ``get_config()``), with Keras 2's semantics.

    Keras 2 differs from Keras 3 in three things the graph holds:

    * a recurrent layer called with ``initial_state`` records the states as further
      inputs of its call (``[x, h, c]``), not as a keyword;
    * every layer receives its input's mask, also a recurrent layer called with
      ``initial_state`` (Keras 3 hands the mask only to a call with one tensor);
    * ``hard_sigmoid`` is ``clip(0.2x + 0.5, 0, 1)``: ``keras2:hard_sigmoid``.

    * merging layers ignore the masks when they compute and merge them otherwise
      (``Add`` and the like: the AND of the masks given; ``Concatenate``: the AND on
      the last axis): in a model that makes masks, each gets ``keras2_masks``.

    A graph with a ``time_major`` layer or a ``keras2_masks`` merge is written in format 2
    (see docs/npz-format.md).
    A ConvLSTM's ``time_major`` is dropped (Keras 2 never reads it). ``Bidirectional``
    around a ConvLSTM returning sequences is Unsupported where Keras 2 computes it
    otherwise than Keras 3 (:func:`conv_lstm_differences`): the runtime follows Keras 3.
    """
    from .graph import build_graph
    from .recurrent import cell_config

    layers = [(_states_as_keyword(e) or e) if isinstance(e, Mapping) else e for e in model_cfg.get("layers", [])]
    differences = conv_lstm_differences([e for e in layers if isinstance(e, dict)])
    if differences:
        raise Unsupported(
            f"{where}: "
            + " | ".join(
                f"layer {d.layer!r} (Bidirectional): {d.option}: Keras 2 {d.keras2}, Keras 3 {d.keras3} (the runtime "
                "follows Keras 3); not supported for Keras 2 yet"
                for d in differences
            )
        )
    graph = build_graph(model_class, {**model_cfg, "layers": layers}, where)
    masked = _masks_anywhere([e for e in layers if isinstance(e, dict)])
    for layer in graph["layers"]:
        layer["receives_mask"] = True
        if masked and layer["class_name"] in _MERGES:
            layer["config"]["keras2_masks"] = True
    # A format-1 reader would ignore time_major or keras2_masks and compute another model.
    if any(
        cell_config(layer["class_name"], layer["config"]).get("time_major") or layer["config"].get("keras2_masks")
        for layer in graph["layers"]
    ):
        graph["format_version"] = 2
    return keras2_semantics(graph)


def _merge_differences(entries: list) -> list[MeaningChange]:
    """The merging layers of a model that makes masks: Keras 2 merges their masks otherwise than Keras 3.

    By configuration, like the ``initial_state`` check (the mask may stop before the
    layer). Keras 2 computes without the masks and gives the AND of the masks given;
    Keras 3 gives the OR when every input has one (none otherwise), and its
    ``Multiply``, ``Maximum`` and ``Minimum`` replace masked values. ``Concatenate``
    differs only when it joins the last axis (on another axis both join the masks).
    """
    if not _masks_anywhere(entries):
        return []
    found = []
    for name, entry in _walk(entries):
        cls = entry.get("class_name")
        if cls not in _MERGES or (cls == "Concatenate" and entry["config"].get("axis", -1) in (1, -2)):
            continue
        keras2, keras3 = "the AND of the masks given", "the OR of the masks when every input has one"
        if cls == "Concatenate":
            keras2, keras3 = "the AND of the joined masks", "their OR"
        if cls in ("Multiply", "Maximum", "Minimum"):
            keras3 += ", masked values replaced"
        found.append(MeaningChange(name, f"{cls} in a masked model", keras2, keras3))
    return found


def keras2_installed() -> bool:
    """Whether Keras 2 itself (tf_keras, the ``keras2`` extra) can be imported; found without importing it."""
    if "tf_keras" in sys.modules:
        return True
    try:
        return importlib.util.find_spec("tf_keras") is not None
    except (ImportError, ValueError):
        return False


@dataclass(frozen=True)
class Plan:
    """Which Keras verifies a file, and the configuration it loads.

    Attributes:
        keras: 2 (tf_keras, the Keras that wrote a Keras 2 file) or 3.
        reason: why that Keras, for the report.
        found: what marks the file as written by Keras 2 (None for a Keras 3 file).
        translation: the configuration that Keras loads (None: the file as it is).
    """

    keras: int
    reason: str
    found: Keras2File | None = None
    translation: Translation | None = None


def _keras3_refusal(where: str, found: Keras2File, what: str, forced: bool) -> Unsupported:
    then = (
        "verify it against Keras 2 with --keras 2, or see `rnn-parity upgrade` for the difference per layer"
        if forced
        else f"verifying it needs Keras 2 itself: {KERAS2_EXTRA}"
    )
    return Unsupported(f"{where}: written by Keras 2 ({found.evidence}), and {what}; {then}")


def plan(model_file, keras: str = "auto", backend: str | None = None) -> Plan:
    """Decide which Keras verifies ``model_file`` (a :class:`~rnn_parity.model_file.ModelFile`).

    ``keras``: ``"auto"`` (Keras 2 for a file Keras 2 wrote when tf_keras is installed
    and no other backend than TensorFlow is asked for, else Keras 3), ``"2"`` or ``"3"``.

    Raises:
        InvalidInput: ``--keras 2`` for a file Keras 3 wrote, or with a backend other than TensorFlow.
        Unsupported: Keras 2 is needed and not installed, or Keras 3 would compute
            another model (``hard_sigmoid``) or cannot run it (``time_major=True``).
    """
    where = str(model_file.path)
    found = detect_file(model_file)
    if found is None:
        if keras == "2":
            raise InvalidInput(
                f"{where}: --keras 2: written by Keras {model_file.keras_version or '3'}, not Keras 2; "
                "Keras 3 verifies it"
            )
        return Plan(3, "written by Keras 3")
    forced = keras == "3" or backend not in (None, "tensorflow")
    if keras == "auto":
        if backend not in (None, "tensorflow"):
            keras, reason = "3", f"--backend {backend}: Keras 2 runs on TensorFlow only"
        elif keras2_installed():
            keras, reason = "2", "written by Keras 2, which is installed (--keras auto)"
        else:
            keras, reason = "3", "written by Keras 2, which is not installed: its Keras 3 translation (--keras auto)"
    else:
        reason = f"--keras {keras}"
    if keras == "2":
        if backend not in (None, "tensorflow"):
            raise InvalidInput(f"--backend {backend}: Keras 2 runs on TensorFlow only (--keras 2)")
        if not keras2_installed():
            raise Unsupported(f"{where}: --keras 2 runs Keras 2 itself: {KERAS2_EXTRA}")
        translation = translate_for_keras2(model_file.config, found.keras_version, where=where)
        return Plan(2, reason, found, translation)
    translation, refused = _translated(model_file.config, found.keras_version, where, keras=3)
    if refused:
        raise _keras3_refusal(where, found, "Keras 3 cannot run it: " + " | ".join(refused), forced)
    if translation.changes:
        where_changed: dict[str, set[str]] = {}
        for change in translation.changes:
            where_changed.setdefault(change.describe(), set()).add(change.layer)
        what = "Keras 3 computes it differently: " + "; ".join(
            f"{description} (layers {', '.join(sorted(layers))})" for description, layers in where_changed.items()
        )
        raise _keras3_refusal(where, found, what, forced)
    return Plan(3, reason, found, translation)
