"""Which Keras 3 backend runs: chosen in one place, before Keras is imported.

Keras binds its backend when it is first imported (from ``KERAS_BACKEND``), so
the choice is made here and nowhere else: :func:`select` validates a name
(``--backend``, a config's ``backend`` key, else ``KERAS_BACKEND``, else
tensorflow), checks that the backend's package is installed and sets
``KERAS_BACKEND`` for the import that follows. A name that is not a backend, a
backend that is not installed, or a second backend in a process already bound
to another is an :class:`~rnn_parity.errors.InvalidInput` (exit 2) that says
what to do. Nothing here imports Keras or a backend: installed packages are
found from their metadata.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from importlib import metadata

from .errors import InvalidInput

__all__ = [
    "BACKENDS",
    "bound",
    "default",
    "install_command",
    "installed",
    "installed_backends",
    "select",
    "version",
]

#: The Keras 3 backends the tool runs on, in the order ``--backend all`` runs them.
BACKENDS = ("tensorflow", "jax", "torch")

#: The module each backend imports, and the distribution whose version it reports.
_MODULE = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}
_DISTRIBUTIONS = {"tensorflow": ("tensorflow", "tensorflow-cpu", "tf-nightly"), "jax": ("jax",), "torch": ("torch",)}


def install_command(name: str) -> str:
    """The command that installs a backend's extra."""
    return f"pip install 'rnn-parity[{name}]'"


def default() -> str:
    """``KERAS_BACKEND`` if set, else tensorflow (not validated: see :func:`select`)."""
    return os.environ.get("KERAS_BACKEND") or "tensorflow"


def installed(name: str) -> bool:
    """Whether the backend's package can be imported (found without importing it)."""
    if name in sys.modules:
        return True
    try:
        return importlib.util.find_spec(_MODULE[name]) is not None
    except (ImportError, ValueError):
        return False


def installed_backends() -> list[str]:
    """The backends whose package is installed, in :data:`BACKENDS` order."""
    return [name for name in BACKENDS if installed(name)]


def version(name: str) -> str | None:
    """The installed version of a backend's package, from its metadata."""
    for dist in _DISTRIBUTIONS[name]:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return None


def bound() -> str | None:
    """The backend Keras is already bound to in this process, or None before Keras is imported."""
    keras = sys.modules.get("keras")
    if keras is None:
        return None
    try:
        return keras.backend.backend()
    except AttributeError:  # Keras is being imported right now
        return os.environ.get("KERAS_BACKEND")


def _where(name: str | None, origin: str) -> str:
    return f"{origin} {name}" if origin.startswith("--") else f"{origin}={name}"


def validate(name: str, origin: str = "--backend") -> str:
    """``name`` if it is a backend the tool runs on and is installed; else InvalidInput."""
    if name not in BACKENDS:
        raise InvalidInput(
            f"{_where(name, origin)}: not a Keras backend this tool runs on (one of {', '.join(BACKENDS)})"
        )
    if not installed(name):
        raise InvalidInput(f"{_where(name, origin)}: the {name} backend is not installed; {install_command(name)}")
    return name


def select(name: str | None = None) -> str:
    """Fix the backend for this process before Keras is imported; return its name.

    ``name`` None means ``KERAS_BACKEND``, else tensorflow. Raises InvalidInput
    for an unknown or uninstalled backend, or when Keras is already bound to
    another backend in this process (run that backend in its own process).
    """
    origin = "--backend" if name is not None else "KERAS_BACKEND"
    chosen = name if name is not None else default()
    current = bound()
    if current == chosen:
        return chosen
    validate(chosen, origin)
    if current is not None:
        raise InvalidInput(
            f"{_where(chosen, origin)}: Keras is already running on {current} in this process "
            "(a backend is fixed when Keras is first imported)"
        )
    os.environ["KERAS_BACKEND"] = chosen
    return chosen
