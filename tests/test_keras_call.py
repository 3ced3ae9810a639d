"""Which Keras call a case compares: ``keras_call`` auto, compiled, eager, predict (rnn_parity/keras_call.py)."""

from __future__ import annotations

import pytest

from rnn_parity.config import load_cases
from rnn_parity.keras_call import COMPILE_FROM, architecture, layer_steps, resolve, resolve_one
from rnn_parity.spec import build_spec

from conftest import invoke_json


def test_layer_steps_count_timesteps_layers_directions_and_calls():
    assert layer_steps(build_spec(T=10)) == 10
    assert layer_steps(build_spec(T=10, M=(4, 3))) == 20
    assert layer_steps(build_spec(T=10, bidirectional="concat")) == 20
    assert layer_steps(build_spec(T=10, stateful=True)) == 20  # two batches


def test_a_short_case_alone_runs_eagerly_and_a_long_one_compiled():
    assert resolve_one(build_spec(T=COMPILE_FROM - 1)).keras_call == "eager"
    assert resolve_one(build_spec(T=COMPILE_FROM)).keras_call == "compiled"
    assert resolve_one(build_spec(T=COMPILE_FROM // 2, bidirectional="sum")).keras_call == "compiled"


def test_an_explicit_call_is_kept():
    for call in ("compiled", "eager", "predict"):
        assert resolve_one(build_spec(T=1, keras_call=call)).keras_call == call
        assert resolve_one(build_spec(T=10_000, keras_call=call)).keras_call == call


def test_cases_that_share_a_model_add_up_their_steps():
    # N, T and seed leave the model as it is: eight short cases together repay one trace.
    short = [build_spec(T=10, N=n, seed=s) for n in (1, 2) for s in range(4)]
    assert len({architecture(s) for s in short}) == 1
    assert {s.keras_call for s in resolve(short)} == {"compiled"}
    assert {s.keras_call for s in resolve(short[:2])} == {"eager"}


def test_cases_on_different_models_do_not():
    specs = [build_spec(T=10, cell=cell, M=(m,)) for cell in ("simple_rnn", "lstm", "gru") for m in (4, 5, 6)]
    assert len({architecture(s) for s in specs}) == len(specs)
    assert {s.keras_call for s in resolve(specs)} == {"eager"}


@pytest.mark.parametrize(
    "change",
    [{"cell": "lstm"}, {"M": (4, 4)}, {"D": 4}, {"mask": "post"}, {"keras_dtype": "float64"}, {"initial_state": True}],
)
def test_what_changes_the_model_changes_the_architecture(change):
    assert architecture(build_spec(**change)) != architecture(build_spec())


def test_a_stateful_or_unrolled_model_fixes_its_batch_or_length():
    assert architecture(build_spec(stateful=True, N=2)) != architecture(build_spec(stateful=True, N=3))
    assert architecture(build_spec(unroll=True, T=5)) != architecture(build_spec(unroll=True, T=6))
    assert architecture(build_spec(N=2, T=5)) == architecture(build_spec(N=3, T=6))


def test_a_config_is_resolved_as_a_whole_before_filter_and_shard(cfg):
    name = cfg(
        """
        defaults: {N: 2, D: 3, M: 4, K: 2}
        grid: {cell: [lstm, gru], seed: [0, 1, 2, 3, 4, 5, 6, 7]}
        cases:
          - {name: alone, cell: simple_rnn, T: 5}
          - {name: pinned, cell: simple_rnn, T: 5, keras_call: predict}
        """
    )
    calls = {case.name: case.spec.keras_call for case in load_cases([name])}
    assert calls.pop("alone") == "eager" and calls.pop("pinned") == "predict"
    assert set(calls.values()) == {"compiled"}  # 8 seeds × T=10 share each model
    # --filter and --shard choose among these resolved cases (tests/test_shards.py: shards merged = the whole run)
    from rnn_parity.config import select

    assert select(load_cases([name]), ["alone"])[0].spec.keras_call == "eager"


def test_the_resolved_call_is_in_the_reproduce_command(cfg):
    name = cfg("defaults: {T: 100}\ncases: [{name: long}, {name: rides-along, T: 3}, {name: short, T: 3, cell: gru}]\n")
    specs = {case.name: case.spec for case in load_cases([name])}
    assert specs["long"].keras_call == specs["rides-along"].keras_call == "compiled"  # the same model
    assert specs["short"].keras_call == "eager"
    assert "--keras-call eager" in specs["short"].command_line()


@pytest.mark.keras
@pytest.mark.parametrize("call", ["compiled", "eager", "predict"])
def test_check_reports_the_call_it_compared(call, keras):
    report = invoke_json(["check", "--cell", "gru", "--T", "4", "--N", "2", "--keras-call", call])
    assert report["passed"] and report["config"]["keras_call"] == call
    assert f"--keras-call {call}" in report["environment"]["command"]


@pytest.mark.keras
def test_check_resolves_auto_and_says_so(keras):
    short = invoke_json(["check", "--T", "4", "--N", "2"])
    long = invoke_json(["check", "--T", str(COMPILE_FROM), "--N", "2", "--no-time-profile"])
    assert short["config"]["keras_call"] == "eager"
    assert long["config"]["keras_call"] == "compiled"
