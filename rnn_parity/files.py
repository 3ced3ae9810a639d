"""Writing reports safely: atomically, creating missing folders."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .errors import InvalidInput

__all__ = ["ensure_distinct", "ensure_writable", "write_atomic"]


def ensure_writable(path: str | os.PathLike, option: str) -> Path:
    """Fail early (before any work) when ``path`` cannot be written; create its folders."""
    path = Path(path)
    if path.is_dir():
        raise InvalidInput(f"{option} {path}: is a folder, not a file")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=path.parent, prefix=".rnn-parity-probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise InvalidInput(f"{option} {path}: cannot write there ({exc.strerror or exc})") from None
    return path


def ensure_distinct(paths: dict[str, str | os.PathLike]) -> None:
    """Refuse two options (``{"--json": path, …}``) that would write the same file."""
    seen: dict[Path, str] = {}
    for option, path in paths.items():
        key = Path(path).resolve()
        if key in seen:
            raise InvalidInput(f"{seen[key]} and {option} both write {path}")
        seen[key] = option


def write_atomic(path: str | os.PathLike, data: str | bytes) -> None:
    """Write to a temporary file beside ``path``, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data.encode("utf-8") if isinstance(data, str) else data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
