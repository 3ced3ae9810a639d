"""Files written by Keras 2 (tf.keras): detection, translation for Keras 3, and what changes meaning.

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
  Keras 2 and ``relu6(x + 3) / 6`` in Keras 3.

What cannot be translated is :class:`~rnn_parity.errors.Unsupported` naming
the layer: ``time_major=True``, ``CuDNNLSTM`` / ``CuDNNGRU`` (their bias
layout differs; not translated yet).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .errors import InvalidInput, Unsupported

__all__ = ["Keras2File", "MeaningChange", "Translation", "detect", "for_keras3", "keras2_activation", "translate"]

RECURRENT = ("SimpleRNN", "LSTM", "GRU")
#: Keras 2's hard_sigmoid and Keras 3's, as the reports print them.
HARD_SIGMOID_KERAS2 = "clip(0.2x + 0.5, 0, 1)"
HARD_SIGMOID_KERAS3 = "relu6(x + 3) / 6"
_ACTIVATION_KEYS = ("activation", "recurrent_activation")
_WRAPPERS = ("Bidirectional", "TimeDistributed")


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
    """An option Keras 3 reads with another meaning than the Keras 2 that wrote the file."""

    layer: str
    option: str
    keras2: str
    keras3: str

    def describe(self) -> str:
        return f"{self.option}=hard_sigmoid changed meaning: Keras 2 {self.keras2}, Keras 3 {self.keras3}"


@dataclass
class Translation:
    """A Keras 2 configuration rewritten for Keras 3.

    Attributes:
        config: the configuration Keras 3 loads (``{"class_name", "config"}``).
        rewrites: one line per change, naming the layer (``"lstm: dropped time_major=False …"``).
        changes: the options that compute something else in Keras 3.
    """

    config: dict
    rewrites: list[str] = field(default_factory=list)
    changes: list[MeaningChange] = field(default_factory=list)

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
        if "time_major" in cfg or "batch_input_shape" in cfg or entry.get("class_name") in ("CuDNNLSTM", "CuDNNGRU"):
            return True
    return False


def detect(path: str | Path, raw: Mapping) -> Keras2File | None:
    """A :class:`Keras2File` when the ``.h5`` file at ``path`` was written by Keras 2, else None.

    Args:
        path: the file (only HDF5 files are read; a ``.keras`` archive is Keras 3's format).
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


def _translate_layer(name: str, entry: dict, version: str | None, out: Translation, refused: list[str]) -> None:
    cls, cfg = entry.get("class_name"), entry["config"]
    if cls in ("CuDNNLSTM", "CuDNNGRU"):
        refused.append(f"layer {name!r} ({cls}): CuDNN layers are not translated yet")
        return
    if "batch_input_shape" in cfg:
        shape = cfg.pop("batch_input_shape")
        if cls == "InputLayer":
            cfg["batch_shape"] = shape
            out.rewrites.append(f"{name}: batch_input_shape renamed batch_shape")
        else:  # Keras 3 builds a Sequential model's input from its InputLayer
            out.rewrites.append(f"{name}: dropped batch_input_shape={shape} (the model's InputLayer keeps the shape)")
    if cls in RECURRENT:
        if cfg.get("time_major"):
            refused.append(f"layer {name!r} ({cls}): time_major=True has no Keras 3 equivalent")
        if "time_major" in cfg:
            cfg.pop("time_major")
            out.rewrites.append(f"{name}: dropped time_major=False (Keras 3 is always batch-major)")
        if "implementation" in cfg:
            value = cfg.pop("implementation")
            out.rewrites.append(f"{name}: dropped implementation={value} (schedules the same arithmetic)")
        if cls in ("LSTM", "GRU") and "recurrent_activation" not in cfg:
            default = "hard_sigmoid" if _before_2_3(version) else "sigmoid"
            cfg["recurrent_activation"] = default
            out.rewrites.append(f"{name}: recurrent_activation={default} written out (Keras {version} default)")
        if cls == "GRU" and "reset_after" not in cfg:
            cfg["reset_after"] = False
            out.rewrites.append(f"{name}: reset_after=False written out (Keras 2's GRU without the option)")
    for key in _ACTIVATION_KEYS:
        if cfg.get(key) == "hard_sigmoid":
            out.changes.append(MeaningChange(name, key, HARD_SIGMOID_KERAS2, HARD_SIGMOID_KERAS3))


def for_keras3(model_file, where: str | None = None) -> tuple[Keras2File, Translation] | None:
    """The Keras 3 translation of a Keras 2 file (a :class:`~rnn_parity.model_file.ModelFile`), else None.

    ``verify`` and ``export`` run a Keras 2 file this way. A file whose translation
    changes what it computes (``hard_sigmoid``) is refused: Keras 3 would verify
    a different model from the one Keras 2 trained.

    Raises:
        Unsupported: the translation changes the model's meaning, or cannot be made.
    """
    if model_file.format != "h5":
        return None
    found = detect(model_file.path, model_file.config)
    if found is None:
        return None
    where = where or str(model_file.path)
    translation = translate(model_file.config, found.keras_version, where=where)
    if translation.changes:
        layers = ", ".join(sorted({change.layer for change in translation.changes}))
        raise Unsupported(
            f"{where}: written by Keras 2 ({found.evidence}), and Keras 3 computes it differently: "
            f"{translation.changes[0].describe()} (layers {layers}); "
            "see `rnn-parity upgrade` for the difference per layer"
        )
    return found, translation


def keras2_activation(name: str) -> str:
    """The reference's name for what activation ``name`` computed in Keras 2 (``hard_sigmoid`` differs)."""
    return f"keras2:{name}" if name == "hard_sigmoid" else name


def translate(raw: Mapping, keras_version: str | None = None, *, where: str = "the model") -> Translation:
    """Rewrite a Keras 2 model configuration for Keras 3; ``raw`` is left unchanged.

    Raises:
        InvalidInput: the configuration lists no layers.
        Unsupported: a layer or option without a Keras 3 equivalent (all named).
    """
    config = copy.deepcopy(dict(raw))
    entries = _layers(config)
    if not entries:
        raise InvalidInput(f"{where}: the model configuration lists no layers")
    if isinstance(config.get("config"), list):
        config["config"] = {"name": "sequential", "layers": entries}
    out, refused = Translation(config), []
    for name, entry in _walk(entries):
        _translate_layer(name, entry, keras_version, out, refused)
    if refused:
        raise Unsupported(f"{where}: Keras 2 file: " + " | ".join(refused))
    return out
