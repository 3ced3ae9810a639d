"""Writing reports safely: atomically over regular files, in place into devices and pipes.

What is at an output path decides how it is written (docs/guarantees.md):

* a new path or a regular file (also through a symlink) is written to a temporary
  file beside it, flushed to disk and renamed over it: readers see the old
  file or the new one, never half of one; the symlink itself stays a symlink;
* anything else that can be opened for writing (a device node such as
  ``/dev/null`` or ``/dev/stdout``, a FIFO, a terminal, ``/proc/self/fd/1``) is
  opened and written in place, as ``tee`` would: it is never replaced by a file.

Every path is checked before any work (:func:`check_writable`,
:func:`ensure_writable`); a report that still cannot be written at the end
goes to a fallback file (:func:`write_or_fallback`), so no result is lost.
"""

from __future__ import annotations

import os
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .errors import InvalidInput

__all__ = [
    "Fallback",
    "check_writable",
    "ensure_distinct",
    "ensure_writable",
    "is_special",
    "write_atomic",
    "write_or_fallback",
]


def _target_mode(path: Path) -> int | None:
    """The mode of what ``path`` names (symlinks followed), or None when nothing is there yet."""
    try:
        return os.stat(path).st_mode
    except OSError:  # missing, under a file, or not searchable: the write itself will say why
        return None


def is_special(path: str | os.PathLike) -> bool:
    """Whether ``path`` names (perhaps through symlinks) something other than a regular file or a folder."""
    mode = _target_mode(Path(path))
    return mode is not None and not stat.S_ISREG(mode) and not stat.S_ISDIR(mode)


def _refuse_empty_or_folder(path: str | os.PathLike, option: str) -> Path:
    if str(path) == "":
        raise InvalidInput(f"{option}: the path is empty")
    if str(path).endswith(("/", os.sep)):  # Path() would drop the slash and write a file of that name
        raise InvalidInput(f"{option} {path}: names a folder; give a file name in it")
    path = Path(path)
    if path.is_dir():
        raise InvalidInput(f"{option} {path}: is a folder, not a file")
    return path


def _probe(folder: Path) -> None:
    """Create and remove a file in ``folder``: the only test that holds for root, read-only mounts and /proc."""
    fd, probe = tempfile.mkstemp(dir=folder, prefix=".rnn-parity-probe-")
    os.close(fd)
    os.unlink(probe)


def _check_special(path: Path, option: str) -> Path:
    # Opening a FIFO for writing would wait for a reader, so the permission bits decide.
    if not os.access(path, os.W_OK):
        raise InvalidInput(f"{option} {path}: cannot write there (permission denied)")
    return path


def ensure_writable(path: str | os.PathLike, option: str) -> Path:
    """Fail early (before any work) when ``path`` cannot be written; create its folders."""
    path = _refuse_empty_or_folder(path, option)
    if is_special(path):
        return _check_special(path, option)
    target = Path(os.path.realpath(path))
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        _probe(target.parent)
    except OSError as exc:
        raise InvalidInput(f"{option} {path}: cannot write there ({exc.strerror or exc})") from None
    return path


def check_writable(path: str | os.PathLike, option: str) -> Path:
    """Fail early when ``path`` could not be written, leaving no trace.

    The nearest existing folder on the way must take a new file (a probe file
    is created and removed at once); missing folders are left for
    :func:`write_atomic` to create, so a command that fails leaves nothing behind.
    """
    path = _refuse_empty_or_folder(path, option)
    if is_special(path):
        return _check_special(path, option)
    target = Path(os.path.realpath(path))
    if target.exists() and not os.access(target, os.W_OK):
        raise InvalidInput(f"{option} {path}: cannot write there (permission denied)")
    parent = target.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise InvalidInput(f"{option} {path}: cannot write there ({parent} is not a folder)")
    try:
        _probe(parent)
    except OSError as exc:
        raise InvalidInput(f"{option} {path}: cannot write there ({exc.strerror or exc} in {parent})") from None
    return path


def ensure_distinct(paths: dict[str, str | os.PathLike]) -> None:
    """Refuse two options (``{"--json": path, …}``) that would write the same file.

    Device nodes and pipes (``/dev/null``) may be named by several options.
    """
    seen: dict[Path, str] = {}
    for option, path in paths.items():
        if is_special(path):
            continue
        key = Path(path).resolve()
        if key in seen:
            raise InvalidInput(f"{seen[key]} and {option} both write {path}")
        seen[key] = option


def _write_in_place(path: Path, data: bytes) -> None:
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()


def write_atomic(path: str | os.PathLike, data: str | bytes) -> None:
    """Write ``data`` to ``path``: atomically over a regular file or a new path, in place into anything else.

    A regular file is replaced by renaming a fully written temporary file over
    it (through a symlink, the file it points to is replaced and the symlink
    kept); a device node, FIFO or terminal is opened and written, never replaced.
    """
    data = data.encode("utf-8") if isinstance(data, str) else data
    path = Path(path)
    if is_special(path):
        _write_in_place(path, data)
        return
    target = Path(os.path.realpath(path))
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes it private; give it a normal file's permissions
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


@dataclass(frozen=True)
class Fallback:
    """A report that could not be written where asked.

    Attributes:
        option: the option that named the path (``--json``).
        path: the path asked for.
        reason: why it could not be written (the system's words).
        written_to: where the report went instead, or None when that failed too.
    """

    option: str
    path: Path
    reason: str
    written_to: Path | None

    def message(self) -> str:
        where = f"written to {self.written_to} instead" if self.written_to else "not written"
        return f"{self.option} {self.path}: cannot write there ({self.reason}); {where}"


def _fallback_path(path: Path) -> Path:
    name = path.name or "report"
    fd, fallback = tempfile.mkstemp(prefix=f"rnn-parity-{os.getpid()}-", suffix=f"-{name}")
    os.close(fd)
    return Path(fallback)


def write_or_fallback(path: str | os.PathLike, data: str | bytes, option: str) -> Fallback | None:
    """Write a report; when ``path`` fails, write it to a new file in the temporary folder instead.

    Returns None when the report is at ``path``, else a :class:`Fallback` saying where it went.
    """
    path = Path(path)
    try:
        write_atomic(path, data)
        return None
    except OSError as exc:
        reason = exc.strerror or str(exc)
    try:
        fallback = _fallback_path(path)
        write_atomic(fallback, data)
    except OSError:
        return Fallback(option, path, reason, None)
    return Fallback(option, path, reason, fallback)
