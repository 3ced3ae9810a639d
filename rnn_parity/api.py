"""The Python API: one check from a notebook or a test suite.

``rnn_parity.check(impl=None, **options)`` runs what ``rnn-parity check`` runs,
with the same option names as the sweep config keys (``T=10``, ``cell="lstm"``,
``return_sequences=True``, ``tolerance="auto"`` …), and returns the
:class:`~rnn_parity.checker.CheckResult`: true when parity holds, with
``.passed``, ``.max_abs_diff``, ``.to_dict()`` (the JSON report), a rich
rendering in terminals and an HTML one in Jupyter. ``impl`` is your own
implementation: a function ``f(x, *weights)`` or a ``"FILE.py:FUNCTION"`` /
``"package.module:FUNCTION"`` target (see docs/your-implementation.md); the
verdict is then your function against Keras.

Errors are raised, never printed: :class:`~rnn_parity.errors.InvalidInput` for
a bad option or a function that cannot be called as the options require.
"""

from __future__ import annotations

from collections.abc import Callable

from .errors import InvalidInput
from .impl import resolve_impl
from .spec import build_spec

__all__ = ["check"]


def check(impl: Callable | str | None = None, **options):
    """Run one check; ``impl`` is your implementation (optional), ``options`` the config keys.

    Returns:
        :class:`rnn_parity.checker.CheckResult` (``bool(result)`` is ``result.passed``).

    Raises:
        InvalidInput: an unknown option or bad value (the message names it), a
            target that cannot be imported, a function that cannot take the weights.
    """
    if "impl" in options:
        raise InvalidInput("impl is given twice")
    if isinstance(impl, str):
        options["impl"] = impl
    elif impl is not None and not callable(impl):
        raise InvalidInput(f"impl must be a function or a 'FILE.py:FUNCTION' target, got {type(impl).__name__}")
    spec = build_spec("config", **options)
    implementation = None
    if impl is not None:
        implementation = resolve_impl(impl, label=f"impl={impl}" if isinstance(impl, str) else None)
    from .checker import run_check

    return run_check(spec, impl=implementation)
