"""Known differences between Keras's backends, each named, explained and pinned by a test.

The NumPy reference follows Keras on TensorFlow. Where another backend
computes something else for the same model, a check on that backend fails,
and its report names the difference (``known_differences``) so that the
failure reads as the backend behaviour it is, not as a bug in the model or in
the tool. Each entry says where in Keras the behaviour comes from;
``tests/test_backends.py`` pins each one, so a Keras release that changes it
fails the test suite. docs/backends.md lists them with measured figures.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .spec import CheckSpec

__all__ = ["KNOWN_DIFFERENCES", "KnownDifference", "applying"]


@dataclass(frozen=True)
class KnownDifference:
    """One backend behaviour: its name, the backends that have it, what it does and where it comes from."""

    name: str
    backends: tuple[str, ...]
    summary: str
    source: str
    #: whether a check with these options can meet it (on one of ``backends``)
    applies: Callable[[CheckSpec], bool]

    def to_dict(self) -> dict:
        return {"name": self.name, "backends": list(self.backends), "summary": self.summary, "source": self.source}


def _leading_masked_steps_seen(spec: CheckSpec) -> bool:
    # A masked step before the first real one, with a non-zero start state, in a sequence that is compared
    # (a returned sequence, or the lower layers of a stack); Bidirectional zeroes masked outputs itself.
    start_state = spec.initial_state or spec.stateful
    sequence = spec.return_sequences or len(spec.M) > 1
    return spec.mask != "none" and not spec.unroll and start_state and sequence and spec.bidirectional is None


KNOWN_DIFFERENCES: tuple[KnownDifference, ...] = (
    KnownDifference(
        name="jax-masked-step-outputs-state",
        backends=("jax",),
        summary=(
            "At a masked step, Keras's JAX time loop (not unrolled) outputs the layer's carried state, where "
            "TensorFlow and torch repeat the previous output, zeros before the first real step: with a "
            "non-zero start state (initial_state, or a stateful layer's carried state) the masked steps "
            "before the first real one output that state instead of zeros"
        ),
        source="keras/src/backend/jax/rnn.py: the lax.scan step uses output_tm1 = states[0]",
        applies=_leading_masked_steps_seen,
    ),
    KnownDifference(
        name="jax-predict-drops-rnn-state",
        backends=("jax",),
        summary=(
            "On JAX, model.predict and predict_on_batch do not carry a stateful layer's state from one "
            "call to the next: the state variables are not among the model's non_trainable_variables, so "
            "the stateless predict step never returns their update and every batch starts from zeros "
            "(the eager call model(x) carries them)"
        ),
        source="keras/src/backend/jax/trainer.py predict_on_batch (stateless_call) and keras/src/layers/rnn/rnn.py",
        applies=lambda spec: spec.stateful and spec.keras_call != "eager",
    ),
    KnownDifference(
        name="float64-computed-in-float32",
        backends=("jax", "torch"),
        summary=(
            "Keras's type promotion maps float64 to float32 on every backend but TensorFlow, so a float64 "
            "policy's matmuls compute in float32 on jax and torch (float32-sized errors, about 1e-7); "
            "JAX without jax_enable_x64 also stores float64 weights and inputs as float32, and with it a "
            "float64 SimpleRNN fails inside lax.scan (a float64 carry comes back float32)"
        ),
        source="keras/src/backend/common/dtypes.py: BIT64_TO_BIT32_DTYPE",
        applies=lambda spec: spec.keras_dtype == "float64",
    ),
)


def applying(spec: CheckSpec, backend: str) -> list[KnownDifference]:
    """The known differences that can affect this check on this backend."""
    return [d for d in KNOWN_DIFFERENCES if backend in d.backends and d.applies(spec)]
