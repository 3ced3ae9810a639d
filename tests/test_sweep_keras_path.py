"""The Keras path sweeps run: the model's eager call, built models reused per architecture.

For every layer option: the check passes against the reference, ``model.predict``
(a traced graph, what the first version of the tool ran) agrees with the eager
call within the default tolerance, and a reused model gives the very numbers a
fresh one gives.
"""

from __future__ import annotations

import numpy as np
import pytest

from rnn_parity import keras_runner
from rnn_parity.architecture import layers_for
from rnn_parity.case import make_case
from rnn_parity.checker import run_check
from rnn_parity.report import check_report
from rnn_parity.spec import build_spec

pytestmark = pytest.mark.keras

OPTIONS = {
    "simple_rnn": {},
    "lstm": {"cell": "lstm"},
    "gru": {"cell": "gru"},
    "gru-no-reset-after": {"cell": "gru", "reset_after": False},
    "mask-post-sequences": {"cell": "gru", "mask": "post", "return_sequences": True},
    "mask-pre": {"cell": "lstm", "mask": "pre"},
    "stateful": {"cell": "gru", "stateful": True},
    "bidirectional-concat": {"cell": "lstm", "bidirectional": "concat"},
    "bidirectional-none-masked": {"cell": "gru", "bidirectional": "none", "return_sequences": True, "mask": "pre"},
    "stack": {"cell": "lstm", "M": (6, 4), "return_sequences": True},
    "initial-state-return-state": {"cell": "lstm", "initial_state": True, "return_state": True},
    "bidirectional-states": {"cell": "gru", "bidirectional": "ave", "initial_state": True, "return_state": True},
    "go-backwards": {"go_backwards": True, "return_sequences": True},
    "unroll": {"cell": "gru", "unroll": True},
    "no-bias-relu": {"use_bias": False, "activation": "relu"},
}


def spec_for(options: dict, **extra):
    return build_spec(**{"N": 3, "T": 7, "D": 2, "M": 5, "K": 2, **options, **extra})


def predict_outputs(spec) -> list[np.ndarray]:
    """The same model on a fresh build, run the notebook's way: ``model.predict``."""
    layers = layers_for(spec)
    case = make_case(spec, layers)
    model, _ = keras_runner.build_model(layers, batch=spec.N, timesteps=spec.T, features=spec.D,
                                        stateful=spec.stateful, initial_state=spec.initial_state)  # fmt: skip
    for desc in layers:
        if desc.name in case.weights:
            model.get_layer(desc.name).set_weights(case.weights[desc.name])
    states = [s for desc in layers for s in case.initial_states.get(desc.name, [])]
    for x in case.batches:
        raw = model.predict([x, *states], batch_size=spec.N, verbose=0)
    return [np.asarray(r) for r in (raw if isinstance(raw, (list, tuple)) else [raw])]


def eager_outputs(spec) -> list[np.ndarray]:
    layers = layers_for(spec)
    result = keras_runner.run_keras(layers, make_case(spec, layers), stateful=spec.stateful)
    flat = []
    for desc in layers:
        out = result.outputs[desc.name]
        flat += list(out) if isinstance(out, list) else [out]
        flat += result.states.get(desc.name, [])
    return flat


def numbers(report: dict) -> dict:
    return {k: v for k, v in report.items() if k not in ("seconds", "versions")}


@pytest.mark.parametrize("options", OPTIONS.values(), ids=OPTIONS.keys())
def test_every_option_passes_and_predict_agrees(options):
    spec = spec_for(options)
    result = run_check(spec)
    assert result.passed, check_report(result)["layers"]
    eager, graph = eager_outputs(spec), predict_outputs(spec)
    assert len(eager) == len(graph)
    for a, b in zip(eager, graph, strict=True):
        np.testing.assert_allclose(a, b, atol=spec.atol, rtol=spec.rtol)


def test_a_reused_model_gives_the_numbers_of_a_fresh_one():
    keras_runner.clear_models()
    a = spec_for({"cell": "lstm"}, seed=1)
    b = spec_for({"cell": "lstm"}, seed=2, T=11, N=5)  # same architecture: same model, other weights and sizes
    fresh = numbers(check_report(run_check(a)))
    assert len(keras_runner._models) == 1
    run_check(b)
    assert len(keras_runner._models) == 1
    assert numbers(check_report(run_check(a))) == fresh


def test_a_reused_stateful_model_starts_from_zero_states():
    keras_runner.clear_models()
    spec = spec_for({"cell": "gru", "stateful": True})
    first = numbers(check_report(run_check(spec)))
    assert numbers(check_report(run_check(spec))) == first


def test_the_model_cache_is_bounded_and_the_session_cleared(monkeypatch):
    keras_runner.clear_models()
    monkeypatch.setattr(keras_runner, "MODEL_CACHE_SIZE", 2)
    monkeypatch.setattr(keras_runner, "BUILDS_PER_SESSION", 3)
    cleared = []
    real_clear = keras_runner.clear_models
    monkeypatch.setattr(keras_runner, "clear_models", lambda: (cleared.append(1), real_clear()))
    for m in (1, 2, 3):
        run_check(spec_for({}, M=m))
    assert len(keras_runner._models) == 2 and cleared == []
    run_check(spec_for({}, M=4))  # the fourth build starts a new session
    assert cleared == [1] and len(keras_runner._models) == 1
