"""Writing reports safely: atomically, creating missing folders."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .errors import InvalidInput

__all__ = ["check_writable", "ensure_distinct", "ensure_writable", "write_atomic"]


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


def check_writable(path: str | os.PathLike, option: str) -> Path:
    """Fail early when ``path`` could not be written, without creating anything.

    The nearest existing folder on the way must be writable; missing folders are
    left for :func:`write_atomic` to create, so a command that fails leaves no trace.
    """
    path = Path(path)
    if path.is_dir():
        raise InvalidInput(f"{option} {path}: is a folder, not a file")
    if path.exists() and not os.access(path, os.W_OK):
        raise InvalidInput(f"{option} {path}: cannot write there (permission denied)")
    parent = path.absolute().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise InvalidInput(f"{option} {path}: cannot write there ({parent} is not a folder)")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InvalidInput(f"{option} {path}: cannot write there (permission denied in {parent})")
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
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes it private; give it a normal file's permissions
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
