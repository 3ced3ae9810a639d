"""Every Keras 3 backend: selection, per-backend parity, the backend differences found, --backend all.

Keras binds its backend when it is first imported, so the backends other than
this process's run in their own processes: the per-backend parity cases go
through a sweep whose cases carry a ``backend`` key (each backend's cases run
in a worker process of that backend), and the pinned backend behaviours run
as small scripts in a subprocess per backend.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from rnn_parity import backend
from rnn_parity.backend_notes import KNOWN_DIFFERENCES
from rnn_parity.config import Case
from rnn_parity.spec import build_spec

from conftest import invoke, invoke_json

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
INSTALLED = backend.installed_backends()
needs_all = pytest.mark.skipif(len(INSTALLED) < 3, reason="needs tensorflow, jax and torch installed (make install)")


# ----- selection ---------------------------------------------------------------------------------------------
def test_the_default_backend_is_keras_backend_else_tensorflow(monkeypatch):
    monkeypatch.delenv("KERAS_BACKEND", raising=False)
    assert backend.default() == "tensorflow"
    monkeypatch.setenv("KERAS_BACKEND", "jax")
    assert backend.default() == "jax"


def test_an_unknown_or_missing_backend_names_the_fix(monkeypatch):
    from rnn_parity.errors import InvalidInput

    with pytest.raises(InvalidInput, match=r"--backend numpy: not a Keras backend this tool runs on"):
        backend.validate("numpy")
    monkeypatch.setattr(backend, "installed", lambda name: name != "torch")
    with pytest.raises(InvalidInput, match=r"the torch backend is not installed; pip install 'rnn-parity\[torch\]'"):
        backend.validate("torch")


@pytest.mark.keras
def test_a_second_backend_in_a_bound_process_is_refused(keras):
    from rnn_parity.errors import InvalidInput

    other = next(name for name in backend.BACKENDS if name != keras.backend.backend())
    if not backend.installed(other):
        pytest.skip(f"{other} is not installed")
    with pytest.raises(InvalidInput, match="Keras is already running on"):
        backend.select(other)
    assert backend.select(keras.backend.backend()) == keras.backend.backend()


def test_check_options_refuse_an_unknown_backend():
    result = invoke(["check", "--backend", "numpy"], 2)
    assert "'numpy' is not one of 'tensorflow', 'jax', 'torch', 'all'" in result.stderr
    result = invoke(["explain", "--backend", "all"], 2)
    assert result.stderr == "Error: --backend all: explain walks through one backend; choose tensorflow, jax or torch\n"


# ----- the same cases on every backend --------------------------------------------------------------------------
#: Lean: masks, go_backwards, Bidirectional, stateful and initial states, a few cases each.
PARITY_CASES = {
    "lstm-mask-post": {"cell": "lstm", "mask": "post", "return_sequences": True, "N": 4, "T": 6},
    "gru-mask-pre": {"cell": "gru", "mask": "pre", "return_sequences": True, "N": 4, "T": 6},
    "rnn-backwards-masked": {"go_backwards": True, "mask": "post", "return_sequences": True, "N": 4, "T": 6},
    "gru-bidirectional-sum-masked": {
        "cell": "gru",
        "bidirectional": "sum",
        "mask": "post",
        "return_sequences": True,
        "N": 3,
        "T": 5,
    },  # fmt: skip
    "lstm-bidirectional-states": {"cell": "lstm", "bidirectional": "concat", "return_state": True, "N": 2, "T": 5},
    "rnn-stateful": {"stateful": True, "return_state": True, "N": 3, "T": 5},
    # the eager call carries a stateful layer's state on every backend, JAX included
    "rnn-stateful-eager": {"stateful": True, "return_state": True, "N": 3, "T": 5, "keras_call": "eager"},
    "gru-initial-state-mask-pre": {
        "cell": "gru",
        "initial_state": True,
        "mask": "pre",
        "return_sequences": True,
        "N": 4,
        "T": 6,
    },  # fmt: skip
    "lstm-stack-initial-state": {"cell": "lstm", "M": (4, 3), "initial_state": True, "return_state": True, "N": 2},
    "lstm-float16": {"cell": "lstm", "keras_dtype": "float16", "tolerance": "auto", "N": 2, "T": 5},
    "gru-float64": {"cell": "gru", "keras_dtype": "float64", "tolerance": "auto", "N": 2, "T": 5},
}

#: (backend, case) → the known difference that makes it fail there; every other pair passes.
EXPECTED_FAILURES = {
    ("jax", "rnn-stateful"): "jax-predict-drops-rnn-state",
    ("jax", "gru-initial-state-mask-pre"): "jax-masked-step-outputs-state",
    ("jax", "gru-float64"): "float64-computed-in-float32",
    ("torch", "gru-float64"): "float64-computed-in-float32",
}


@pytest.fixture(scope="module")
def per_backend():
    """One sweep of every parity case on every installed backend (other backends in their own processes)."""
    from rnn_parity.sweep import run_sweep

    cases = [
        Case(f"{name}@{b}", build_spec(**{"keras_call": "compiled", **options}, backend=b), "generated", "backends")
        for b in INSTALLED
        for name, options in PARITY_CASES.items()
    ]
    result = run_sweep(cases)
    return {(c.spec.backend, c.name.split("@")[0]): o for c, o in zip(cases, result.outcomes, strict=True)}


@pytest.mark.keras
@pytest.mark.parametrize("case", list(PARITY_CASES))
@pytest.mark.parametrize("name", backend.BACKENDS)
def test_parity_on_every_backend(per_backend, name, case):
    if name not in INSTALLED:
        pytest.skip(f"{name} is not installed")
    outcome = per_backend[(name, case)]
    assert outcome.error is None, outcome.error
    report = outcome.report
    assert report["environment"]["keras_backend"] == name
    known = EXPECTED_FAILURES.get((name, case))
    if known is None:
        assert outcome.status == "pass", (report["layers"], report["states"])
        assert report["known_differences"] == []
    else:
        assert outcome.status == "fail"
        assert report["diagnosis"] == "discrepancy"
        assert known in [d["name"] for d in report["known_differences"]]


# ----- the backend behaviours found, pinned --------------------------------------------------------------------
PROBE = textwrap.dedent(
    """
    import json, warnings
    import numpy as np
    warnings.simplefilter("ignore")
    from rnn_parity.keras_runner import import_keras
    keras = import_keras()
    facts = {"backend": keras.backend.backend()}
    rng = np.random.default_rng(0)

    # Masked steps before the first real one, with an initial state (mask pre).
    x = rng.standard_normal((2, 4, 3)).astype("float32")
    x[:, :2] = 0.0
    h0 = rng.standard_normal((2, 2)).astype("float32")
    x_in, s_in = keras.Input((4, 3)), keras.Input((2,))
    masking = keras.layers.Masking(0.0)
    masked = masking(x_in)
    out = keras.layers.SimpleRNN(2, return_sequences=True)(masked, initial_state=[s_in],
                                                          mask=masking.compute_mask(x_in))
    y = keras.Model([x_in, s_in], out)([x, h0])
    first = keras.ops.convert_to_numpy(y)[:, 0]
    facts["masked_first_step"] = ("zeros" if np.allclose(first, 0) else
                                  "initial_state" if np.allclose(first, h0, atol=1e-6) else "other")

    # A stateful layer through predict_on_batch twice: is the state carried?
    z = rng.standard_normal((2, 5, 3)).astype("float32")
    i = keras.Input(batch_shape=(2, 5, 3))
    layer = keras.layers.GRU(4, stateful=True)
    model = keras.Model(i, layer(i))
    a, b = model.predict_on_batch(z), model.predict_on_batch(z)
    facts["predict_carries_state"] = not np.allclose(a, b)
    layer.reset_states()
    a, b = np.asarray(keras.ops.convert_to_numpy(model(z))), np.asarray(keras.ops.convert_to_numpy(model(z)))
    facts["eager_carries_state"] = not np.allclose(a, b)

    # float64 promotion, and float16 layers with the default (orthogonal) recurrent initializer.
    f64 = keras.ops.ones((2, 2), dtype="float64")
    facts["float64_matmul_dtype"] = keras.backend.standardize_dtype(keras.ops.matmul(f64, f64).dtype)
    try:
        keras.layers.LSTM(3, dtype="float16")(np.zeros((1, 2, 3), "float16"))
        facts["float16_orthogonal"] = "builds"
    except Exception as exc:
        facts["float16_orthogonal"] = type(exc).__name__

    # A ConvLSTM behind Masking: a mask per grid position, (N, T, W).
    v = rng.standard_normal((2, 3, 4, 2)).astype("float32")
    v[0, 1, 2] = 0.0
    v_in = keras.Input((3, 4, 2))
    conv = keras.layers.ConvLSTM1D(2, 3, padding="same", return_sequences=True)
    try:
        keras.Model(v_in, conv(keras.layers.Masking(0.0)(v_in)))(v)
        facts["convlstm_position_mask"] = "runs"
    except Exception as exc:
        facts["convlstm_position_mask"] = "Incompatible shapes" if "Incompatible shapes" in str(exc) else repr(exc)
    print("FACTS" + json.dumps(facts))
    """
)


@pytest.fixture(scope="module")
def facts():
    found = {}
    for name in INSTALLED:
        proc = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=600,
                              env={**ENV, "KERAS_BACKEND": name})  # fmt: skip
        line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("FACTS")), None)
        assert line is not None, proc.stderr[-2000:]
        found[name] = json.loads(line[len("FACTS") :])
    return found


@pytest.mark.keras
def test_jax_outputs_the_carried_state_at_leading_masked_steps(facts):
    """Pins jax-masked-step-outputs-state (docs/backends.md): TensorFlow and torch output zeros there."""
    expected = {"tensorflow": "zeros", "torch": "zeros", "jax": "initial_state"}
    for name, got in facts.items():
        assert got["masked_first_step"] == expected[name], name


@pytest.mark.keras
def test_jax_predict_does_not_carry_a_stateful_layers_state(facts):
    """Pins jax-predict-drops-rnn-state: the eager call carries the state on every backend, predict not on JAX."""
    for name, got in facts.items():
        assert got["eager_carries_state"], name
        assert got["predict_carries_state"] == (name != "jax"), name


@pytest.mark.keras
def test_float64_computes_in_float32_except_on_tensorflow(facts):
    """Pins float64-computed-in-float32 (Keras's type promotion)."""
    for name, got in facts.items():
        assert got["float64_matmul_dtype"] == ("float64" if name == "tensorflow" else "float32"), name


@pytest.mark.keras
def test_float16_layers_with_the_orthogonal_initializer_only_build_on_tensorflow(facts):
    """Why the check builds float16 layers with zeros recurrent kernels (keras_runner._buildable)."""
    for name, got in facts.items():
        assert (got["float16_orthogonal"] == "builds") == (name == "tensorflow"), name


@pytest.mark.keras
def test_jax_cannot_run_a_convlstm_behind_masking(facts):
    """Pins jax-convlstm-position-mask (docs/backends.md): verify names it on JAX (below)."""
    for name, got in facts.items():
        assert got["convlstm_position_mask"] == ("Incompatible shapes" if name == "jax" else "runs"), name


@pytest.mark.keras
@pytest.mark.skipif("jax" not in INSTALLED, reason="needs jax")
def test_verify_on_jax_names_the_convlstm_mask_failure(tmp_path, keras):
    i = keras.Input((4, 5, 2))
    masked = keras.layers.Masking(0.0)(i)
    keras.Model(i, keras.layers.ConvLSTM1D(2, 3, padding="same")(masked)).save(tmp_path / "m.keras")
    proc = subprocess.run([sys.executable, "-m", "rnn_parity", "verify", str(tmp_path / "m.keras"), "--backend", "jax"],
                          capture_output=True, text=True, timeout=600, env=ENV)  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    [line] = proc.stderr.splitlines()
    assert line.startswith("Error: Keras could not run the model on these inputs: ConvLSTM1D.call(): Incompatible")
    assert "jax-convlstm-position-mask in docs/backends.md" in line


def test_every_known_difference_is_pinned_here():
    names = {d.name for d in KNOWN_DIFFERENCES}
    assert names == set(EXPECTED_FAILURES.values())


# ----- the compiled path ---------------------------------------------------------------------------------------
@pytest.mark.keras
@pytest.mark.parametrize(
    "options",
    [
        {"cell": "lstm", "mask": "post", "return_sequences": True, "N": 3},
        {"cell": "gru", "go_backwards": True, "mask": "pre", "return_state": True, "N": 3},
        {"bidirectional": "ave", "mask": "post", "return_sequences": True, "N": 3},
        {"cell": "gru", "bidirectional": "none", "return_state": True, "N": 2},
        {"cell": "lstm", "stateful": True, "return_state": True, "N": 2},
        {"initial_state": True, "mask": "pre", "return_sequences": True, "N": 3},
        {"cell": "gru", "unroll": True, "reset_after": False, "N": 2},
        {"cell": "lstm", "M": (4, 3), "use_bias": False, "N": 2},
        {"keras_dtype": "float64", "N": 2},
        {"keras_dtype": "mixed_float16", "N": 2},
    ],
    ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items() if k != "N"),
)
def test_the_compiled_call_agrees_with_the_eager_call_and_predict(options, keras):
    """Parity is claimed for predict_on_batch; the eager call and model.predict give the same numbers."""
    import numpy as np

    from rnn_parity import keras_runner
    from rnn_parity.architecture import layers_for
    from rnn_parity.case import make_case

    spec = build_spec(T=6, **options)
    layers = layers_for(spec)
    case = make_case(spec, layers)
    runs = {
        mode: keras_runner.run_keras(layers, case, stateful=spec.stateful, dtype=spec.keras_dtype, mode=mode)
        for mode in keras_runner.CALL_MODES
    }
    tol = {"float16": 2e-3, "float64": 1e-12}.get(spec.compute_dtype, 1e-6)
    for mode in ("eager", "predict"):
        for name, value in runs["compiled"].outputs.items():
            got = runs[mode].outputs[name]
            for a, b in zip(value if isinstance(value, list) else [value], got if isinstance(got, list) else [got]):
                np.testing.assert_allclose(a, b, atol=tol, rtol=tol, err_msg=f"{mode} {name}")
        for name, states in runs["compiled"].states.items():
            for a, b in zip(states, runs[mode].states[name], strict=True):
                np.testing.assert_allclose(a, b, atol=tol, rtol=tol, err_msg=f"{mode} {name} state")


@pytest.mark.keras
def test_a_new_sequence_length_reuses_the_compiled_model(keras):
    from rnn_parity import keras_runner
    from rnn_parity.checker import run_check

    keras_runner.clear_models()
    for t in (5, 9, 13, 21):
        spec = build_spec(cell="gru", T=t, N=2, seed=t, keras_call="compiled")
        assert run_check(spec, time_profile=False).passed
    assert len(keras_runner._models) == 1


@needs_all
@pytest.mark.keras
@pytest.mark.parametrize("name", ["tensorflow", "jax"])
def test_importing_keras_leaves_out_what_only_happens_to_be_installed(name):
    """TensorFlow imports JAX and Keras imports matplotlib and PIL just because they are installed: kept out,
    except the backend's own package; afterwards they import as usual."""
    code = """
        import json, sys
        from rnn_parity.keras_runner import import_keras
        import_keras()
        during = sorted(m for m in ("jax", "torch", "matplotlib", "PIL") if m in sys.modules)
        import matplotlib, PIL
        print(json.dumps(during))
    """
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          env={**ENV, "KERAS_BACKEND": name}, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == (["jax"] if name == "jax" else [])


# ----- --backend all -------------------------------------------------------------------------------------------
@needs_all
@pytest.mark.keras
def test_check_backend_all_runs_every_backend_and_compares_them():
    proc = subprocess.run([sys.executable, "-m", "rnn_parity", "check", "--backend", "all", "--format", "json",
                           "--cell", "lstm", "--mask", "post", "--return-sequences", "--T", "5", "--N", "3"],
                          capture_output=True, text=True, env=ENV, timeout=900)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    report = json.loads(proc.stdout)
    assert report["passed"] and report["status"] == "pass"
    assert set(report["backends"]) == {"tensorflow", "jax", "torch"}
    for name, entry in report["backends"].items():
        assert entry["passed"] and entry["environment"]["keras_backend"] == name
    assert report["skipped"] == {}
    pairs = {tuple(d["backends"]) for d in report["differences"]}
    assert pairs == {("tensorflow", "jax"), ("tensorflow", "torch"), ("jax", "torch")}
    for diff in report["differences"]:
        assert 0 <= diff["max_abs_diff"] < 1e-5 and diff["array"]


def test_backend_all_with_none_installed_is_exit_2(monkeypatch):
    from rnn_parity import all_backends

    monkeypatch.setattr(all_backends, "installed_backends", lambda: [])
    result = invoke(["check", "--backend", "all"], 2)
    assert result.stderr.startswith("Error: --backend all: no Keras backend is installed; pip install")


@pytest.mark.keras
def test_a_backend_whose_process_dies_is_an_error_for_that_backend_only(monkeypatch, tmp_path, keras):
    """Also: a backend that is not installed is skipped with its pip command, the others run."""
    from rnn_parity import all_backends

    # A Python that dies of SIGKILL when it would run torch: the others still report.
    fake = tmp_path / "python"
    fake.write_text(f'#!/bin/sh\n[ "$KERAS_BACKEND" = torch ] && kill -9 $$\nexec {sys.executable} "$@"\n')
    fake.chmod(0o755)
    monkeypatch.setattr(all_backends, "PYTHON", str(fake))
    monkeypatch.setattr(all_backends, "installed_backends", lambda: ["tensorflow", "torch"])
    report = invoke_json(["check", "--backend", "all", "--T", "3"], 3)
    assert report["backends"]["tensorflow"]["passed"]
    assert report["backends"]["torch"]["status"] == "error"
    assert "torch process ended with exit code -9" in report["backends"]["torch"]["error"]
    assert report["status"] == "error" and not report["passed"]
    assert report["skipped"] == {"jax": "pip install 'rnn-parity[jax]'"}
    assert report["differences"] == []
