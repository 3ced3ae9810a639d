"""Which Keras call a check compares, when the case leaves it to rnn-parity (``keras_call: auto``).

Keras runs a model two ways that matter here (:data:`rnn_parity.keras_runner.CALL_MODES`):

* **compiled**: the backend's compiled forward pass, the one ``predict_on_batch``
  and ``model.predict`` run (a ``tf.function`` on TensorFlow, ``jax.jit`` on JAX).
  It is traced once per model (about 0.15–0.3 s for a recurrent model on this
  project's build machine), then a timestep costs tens of microseconds;
* **eager**: ``model(x, training=False)``, op by op: nothing to trace, but about
  1.5–4 ms per recurrent layer and timestep.

A sweep of many small models (``configs/smoke.yaml``) spends most of its time
tracing if every model is compiled, and a sweep of long sequences most of its
time in eager steps if none is. ``auto`` therefore compiles a model only when
the run will drive it through at least :data:`COMPILE_FROM` layer-steps in all,
counted over every case that shares the model (its *architecture*: everything
that makes Keras build another model; batch size, sequence length, seed and
tolerances do not). The choice is made from the case list alone, over every
case of the config files given (before ``--filter`` and ``--shard``), so a case
runs the same call in a serial run, a worker pool, a Dask cluster or any shard;
the report's ``config.keras_call`` and the reproduce command say which call ran.
On TensorFlow the two calls gave bit-identical outputs in every case measured;
a test keeps every call within tolerance of the others for every option.

NumPy side: no Keras import.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence

from .architecture import layers_for
from .spec import CheckSpec

__all__ = ["COMPILE_FROM", "architecture", "layer_steps", "resolve", "resolve_one"]

#: Compile a model when the run drives it through at least this many layer-steps (timesteps × recurrent
#: layers × directions × calls, summed over the cases that share it). Measured on this project's build
#: machine: one trace costs about as much as 40–60 eager layer-steps; docs/performance.md has the figures.
COMPILE_FROM = 64


def layer_steps(spec: CheckSpec) -> int:
    """How many (layer, direction, timestep) steps one case asks of Keras."""
    directions = 2 if spec.bidirectional else 1
    calls = 2 if spec.stateful else 1  # a stateful case runs two batches
    return spec.T * len(spec.M) * directions * calls


def architecture(spec: CheckSpec) -> str:
    """A key shared by the cases that run on one Keras model (as the Keras side caches them)."""
    layers = [[d.name, d.class_name, d.config] for d in layers_for(spec)]
    dims = {
        "batch": spec.N if spec.stateful else None,  # a stateful layer fixes the batch size
        "timesteps": spec.T if spec.unroll else None,  # unroll needs the length
        "features": spec.D,
        "stateful": spec.stateful,
        "initial_state": spec.initial_state,
        "dtype": spec.keras_dtype,
        "backend": spec.backend,
    }
    return json.dumps([layers, dims], sort_keys=True, default=str)


def resolve(specs: Sequence[CheckSpec]) -> list[CheckSpec]:
    """The specs with ``keras_call: auto`` replaced by the call chosen for them (the rest unchanged)."""
    keys = [architecture(s) if s.keras_call == "auto" else None for s in specs]
    totals: Counter[str] = Counter()
    for spec, key in zip(specs, keys, strict=True):
        if key is not None:
            totals[key] += layer_steps(spec)
    return [
        spec
        if key is None
        else spec.model_copy(update={"keras_call": "compiled" if totals[key] >= COMPILE_FROM else "eager"})
        for spec, key in zip(specs, keys, strict=True)
    ]


def resolve_one(spec: CheckSpec) -> CheckSpec:
    """One case on its own (``check``)."""
    return resolve([spec])[0]
