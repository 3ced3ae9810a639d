"""A user's saved Keras model file, read without Keras: its format and stored configuration.

``.keras`` files are zip archives holding ``config.json``, ``metadata.json``
and ``model.weights.h5``; legacy ``.h5`` files are HDF5 with the configuration
in the root attribute ``model_config``. The format is told by the file's first
bytes, not its name, so a renamed file gets a precise message. Every problem
(missing, a folder, truncated, damaged, another format, weights only) is an
:class:`~rnn_parity.errors.InvalidInput` naming the file.
"""

from __future__ import annotations

import hashlib
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

from .errors import InvalidInput, one_line
from .limits import MAX_JSON_BYTES, check_member_size, loads_bounded, read_member

__all__ = ["ModelFile", "read_model_file"]

_ZIP_MAGIC = b"PK\x03\x04"
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_NPY_MAGIC = b"\x93NUMPY"
_KERAS_SUFFIXES = {"keras": (".keras",), "h5": (".h5", ".hdf5")}


@dataclass(frozen=True)
class ModelFile:
    """What the file says before Keras reads it.

    Attributes:
        path: the file.
        format: ``"keras"`` (zip archive) or ``"h5"`` (legacy HDF5).
        config: the stored model configuration (``{"class_name", "config"}``).
        keras_version: the Keras version that saved it, when recorded.
        sha256: hex digest of the file's bytes.
        size: bytes.
    """

    path: Path
    format: str
    config: dict
    keras_version: str | None
    sha256: str
    size: int


def _sniff(path: Path) -> str:
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
    except OSError as exc:
        raise InvalidInput(f"{path}: cannot read it ({exc.strerror or exc})") from None
    if not head:
        raise InvalidInput(f"{path}: is empty")
    if head.startswith(_ZIP_MAGIC):
        return "zip"
    if head == _HDF5_MAGIC:
        return "h5"
    if head.startswith(_NPY_MAGIC):
        raise InvalidInput(f"{path}: is a NumPy .npy array, not a Keras model (.keras or .h5)")
    raise InvalidInput(f"{path}: is not a Keras model file (neither a .keras zip archive nor an HDF5 .h5 file)")


def _read_keras(path: Path) -> tuple[dict, str | None]:
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            if "config.json" not in names:
                if names and all(n.endswith(".npy") for n in names):
                    raise InvalidInput(f"{path}: is a NumPy .npz archive, not a Keras model")
                raise InvalidInput(f"{path}: is a zip archive without config.json, not a .keras model")
            if not any(n.startswith("model.weights") for n in names):
                raise InvalidInput(f"{path}: holds no weights (model.weights.h5 is missing)")
            # The JSON members' sizes are checked before anything is decompressed (testzip reads every byte).
            json_members = [n for n in ("config.json", "metadata.json") if n in names]
            for name in json_members:
                check_member_size(archive, name, str(path))
            damaged = archive.testzip()
            if damaged is not None:
                raise InvalidInput(f"{path}: is damaged ({damaged} fails its checksum)")
            config = read_member(archive, "config.json", str(path))
            metadata = read_member(archive, "metadata.json", str(path)) if "metadata.json" in names else b"{}"
    except InvalidInput:
        raise
    except (zipfile.BadZipFile, EOFError, OSError, ValueError) as exc:
        raise InvalidInput(f"{path}: is truncated or damaged (not a complete zip archive: {one_line(exc)})") from None
    try:
        config = loads_bounded(config, f"{path}: config.json")
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"{path}: config.json is not valid JSON ({one_line(exc)})") from None
    try:
        version = loads_bounded(metadata, f"{path}: metadata.json").get("keras_version")
    except (ValueError, UnicodeDecodeError, AttributeError):
        version = None
    return config, version


def _read_h5(path: Path) -> tuple[dict, str | None]:
    import h5py  # comes with Keras; does not import TensorFlow

    try:
        with h5py.File(path, "r") as f:
            if "model_config" in f.attrs:
                size = f.attrs.get_id("model_config").get_storage_size()
                if size > MAX_JSON_BYTES:
                    raise InvalidInput(
                        f"{path}: model_config is {size} bytes, over the limit of {MAX_JSON_BYTES}; refused"
                    )
            raw = f.attrs.get("model_config")
            version = f.attrs.get("keras_version")
            has_weights = "model_weights" in f
    except OSError as exc:
        raise InvalidInput(f"{path}: is truncated or damaged (HDF5: {one_line(exc)})") from None
    if raw is None:
        raise InvalidInput(
            f"{path}: has no model configuration (a weights-only file? save the whole model with model.save)"
        )
    if not has_weights:
        raise InvalidInput(f"{path}: holds no weights (model_weights is missing)")
    try:
        config = loads_bounded(raw.decode("utf-8") if isinstance(raw, bytes) else str(raw), f"{path}: model_config")
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"{path}: model_config is not valid JSON ({one_line(exc)})") from None
    if isinstance(version, bytes):
        version = version.decode("utf-8", "replace")
    return config, (str(version) if version is not None else None)


def read_model_file(path: str | os.PathLike) -> ModelFile:
    """Identify a saved model and read its configuration; Keras is not imported.

    Raises:
        InvalidInput: the file is missing, a folder, empty, truncated, damaged,
            of another format, named for the other format, or has no model
            configuration or weights, or holds a configuration over the size or
            nesting limits of :mod:`rnn_parity.limits`.
    """
    path = Path(path)
    if not path.exists():
        raise InvalidInput(f"{path}: no such file")
    if path.is_dir():
        raise InvalidInput(f"{path}: is a folder, not a model file (save the model with model.save('model.keras'))")
    kind = _sniff(path)
    fmt = "keras" if kind == "zip" else "h5"
    config, version = _read_keras(path) if fmt == "keras" else _read_h5(path)
    suffix = path.suffix.lower()
    if suffix not in _KERAS_SUFFIXES[fmt]:
        want = _KERAS_SUFFIXES[fmt][0]
        what = "a .keras archive" if fmt == "keras" else "an HDF5 (.h5) file"
        raise InvalidInput(
            f"{path}: is {what} but named {suffix or 'without a suffix'}; Keras needs the name to end in {want}"
        )
    if not isinstance(config, dict):
        raise InvalidInput(f"{path}: the stored model configuration is not an object")
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return ModelFile(
        path=path,
        format=fmt,
        config=config,
        keras_version=version,
        sha256=digest.hexdigest(),
        size=path.stat().st_size,
    )
