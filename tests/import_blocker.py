"""Make importing some packages fail, and remember every attempt.

Used in-process by ``conftest.py`` (``RNN_PARITY_BLOCK_FRAMEWORKS=1``: the tests not marked ``keras``
run where TensorFlow, Keras, JAX and torch cannot be imported) and in child processes by
``conftest.python_without``. Standard library only: it is imported before anything else.
"""

from __future__ import annotations

import importlib.abc
import sys

#: Keras and the packages behind its backends.
FRAMEWORKS = ("tensorflow", "keras", "tf_keras", "jax", "jaxlib", "torch")


class Blocker(importlib.abc.MetaPathFinder):
    """A ``sys.meta_path`` finder that refuses ``blocked`` top-level packages and records the attempts."""

    def __init__(self, blocked):
        self.blocked = frozenset(blocked)
        self.attempted: list[str] = []

    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in self.blocked:
            self.attempted.append(name)
            raise ModuleNotFoundError(f"{name} is blocked in this process", name=name)
        return None


def install(blocked=FRAMEWORKS) -> Blocker:
    """Put a :class:`Blocker` first on ``sys.meta_path``; refuse if a blocked package is already imported."""
    already = sorted(m for m in sys.modules if m.partition(".")[0] in set(blocked))
    if already:
        raise RuntimeError(f"already imported, cannot be blocked: {already[:5]}")
    blocker = Blocker(blocked)
    sys.meta_path.insert(0, blocker)
    return blocker
