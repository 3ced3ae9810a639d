"""``check --impl``, the ``impl`` sweep key and the Python API, against real Keras models."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

import rnn_parity
from rnn_parity import reference as R
from rnn_parity.errors import InvalidInput
from rnn_parity.testing import assert_matches_keras

from conftest import invoke, invoke_json

IMPLS = Path(__file__).parent / "impls"
pytestmark = pytest.mark.keras


def target(file: str, name: str) -> str:
    return f"{IMPLS / file}:{name}"


def words(table: str) -> str:
    """The table's text with its line wrapping undone."""
    return " ".join(table.split())


# ------------------------------------------------------------------ correct loops pass against Keras


@pytest.mark.parametrize(
    ("impl", "options"),
    [
        (target("simple_rnn.py", "notebook_rnn"), {"N": 3}),
        (target("lstm.py", "lstm"), {"cell": "lstm", "N": 2}),
        (target("gru.py", "gru"), {"cell": "gru", "N": 2}),
    ],
)
def test_correct_loops_match_keras(impl, options):
    result = rnn_parity.check(impl, **options)
    assert result and result.passed
    report = result.to_dict()
    assert report["verdict"] == "impl_vs_keras"
    assert report["impl"]["passed"] is True
    assert report["impl"]["vs_keras"]["output"]["max_abs_diff"] == result.max_abs_diff < 1e-5
    assert report["impl"]["vs_reference"]["output"]["passed"] is True
    assert report["impl"]["suspected_mistakes"] == []


# ------------------------------------------------------------------ broken loops: exit 1, the right mistake first


@pytest.mark.parametrize(
    ("impl", "options", "mistake"),
    [
        (target("lstm.py", "forget_cell_swapped"), {"cell": "lstm"}, "lstm_gates_icfo"),
        (target("simple_rnn.py", "transposed_recurrent"), {}, "transposed_recurrent_kernel"),
        (target("simple_rnn.py", "no_bias"), {}, "no_bias"),
        (target("simple_rnn.py", "one_step_short"), {}, "one_step_short"),
        (target("gru.py", "reset_before"), {"cell": "gru"}, "gru_reset_placement"),
        (
            target("gru.py", "gru_keras2_hard_sigmoid"),
            {"cell": "gru", "recurrent_activation": "hard_sigmoid"},
            "keras2_hard_sigmoid",
        ),
    ],
)
def test_broken_loops_fail_naming_their_mistake(impl, options, mistake):
    args = ["check", "--impl", impl]
    for key, value in options.items():
        args += [f"--{key.replace('_', '-')}", value]
    report = invoke_json(args, 1)
    assert report["passed"] is False
    assert report["impl"]["suspected_mistakes"][0]["id"] == mistake
    assert report["impl"]["mistakes_tried"] > 0
    # Keras itself agrees with the reference: the report shows it is the loop that is off
    assert report["max_abs_diff"] < 1e-5 and report["impl"]["vs_reference"]["output"]["passed"] is False


def test_the_table_names_the_mistake():
    out = words(invoke(["check", "--impl", target("lstm.py", "forget_cell_swapped"), "--cell", "lstm"], 1).stdout)
    assert "your output matches the reference with the forget and cell gates swapped" in out
    assert "yours vs Keras" in out and "Keras vs reference" in out


def test_nothing_matches_says_so():
    out = words(invoke(["check", "--impl", target("simple_rnn.py", "scrambled")], 1).stdout)
    assert "none of the" in out and "known mistakes that apply here reproduces your output" in out


# ------------------------------------------------------------------ the function fails


def test_a_raising_function_shows_its_message_and_line():
    assert (
        "your implementation raised ValueError: matmul"
        in invoke(["check", "--impl", target("simple_rnn.py", "raises")], 1).stdout
    )
    failure = invoke_json(["check", "--impl", target("simple_rnn.py", "raises")], 1)["impl"]["failure"]
    assert failure["kind"] == "raised" and failure["message"].startswith("ValueError: matmul")
    assert "simple_rnn.py:83 in raises: h = np.tanh(x[:, t] @ Wh + h @ Wh + bh)" in failure["location"]


def test_a_missing_function_is_exit_2_in_one_line():
    result = invoke(["check", "--impl", target("simple_rnn.py", "nope")], 2)
    assert result.stderr.strip().count("\n") == 0
    assert result.stderr.startswith("Error: --impl ") and result.stderr.strip().endswith("has no 'nope'")


def test_a_hung_function_is_stopped():
    report = invoke_json(["check", "--impl", target("simple_rnn.py", "hangs"), "--timeout", "0.5"], 1)
    assert report["impl"]["failure"] == {
        "kind": "timeout",
        "message": "stopped after the --timeout of 0.5 s",
        "location": None,
    }


def test_a_function_without_initial_state_is_exit_2():
    result = invoke(["check", "--impl", target("simple_rnn.py", "notebook_rnn"), "--initial-state"], 2)
    assert "does not accept the keyword argument initial_state, which --initial-state passes" in result.stderr


def test_hidden_localises_the_first_wrong_step_and_states_are_compared():
    report = invoke_json(
        ["check", "--impl", target("simple_rnn.py", "with_state"), "--return-state", "--stateful", "--N", "2"]
    )
    assert set(report["impl"]["vs_keras"]) == {"output", "h"}
    report = invoke_json(["check", "--impl", target("simple_rnn.py", "with_hidden"), "--N", "2"])
    assert report["impl"]["vs_keras"]["hidden"]["passed"] is True
    assert report["impl"]["first_divergence"] is None


# ------------------------------------------------------------------ the Python API


def test_the_api_result():
    def broken(x, Wx, Wh, bh, Wo, bo):
        h = np.zeros((x.shape[0], Wh.shape[0]), dtype=x.dtype)
        for t in range(x.shape[1]):
            h = np.tanh(x[:, t] @ Wx + h @ Wh.T + bh)
        return h @ Wo + bo

    result = rnn_parity.check(broken, N=2)
    assert not result and result.passed is False and result.max_abs_diff > 1e-3
    assert result.to_dict()["impl"]["suspected_mistakes"][0]["id"] == "transposed_recurrent_kernel"
    html = result._repr_html_()
    assert html.startswith("<pre") and html.endswith("</pre>")
    shown = words(re.sub(r"<[^>]+>", "", html))
    assert "rnn-parity check FAIL your implementation vs Keras" in shown
    assert "your output matches the reference with the recurrent kernel transposed" in shown
    assert "the recurrent kernel transposed" in words(result.text())
    assert "FAIL" in repr(result)
    plain = rnn_parity.check(T=4)
    assert plain and plain.to_dict()["verdict"] == "keras_vs_reference"


def test_the_api_refuses_bad_options():
    with pytest.raises(InvalidInput, match="^T must be a positive integer, got 0$"):
        rnn_parity.check(T=0)
    with pytest.raises(InvalidInput, match="not a known option"):
        rnn_parity.check(units=5)


def test_assert_matches_keras():
    assert assert_matches_keras(target("simple_rnn.py", "notebook_rnn"), N=2)
    with pytest.raises(AssertionError) as info:
        assert_matches_keras(target("simple_rnn.py", "no_bias"), N=2)
    assert "the recurrent layer's bias left out" in words(str(info.value))


# ------------------------------------------------------------------ sweeps


def test_an_impl_in_sweep_defaults(cfg):
    name = cfg(
        f"""
        defaults:
          impl: {target("simple_rnn.py", "mutates_its_arguments")}
          T: 4
        cases:
          - {{N: 1}}
          - {{N: 2, impl: "{target("simple_rnn.py", "notebook_rnn")}"}}
          - {{N: 2, impl: "{target("simple_rnn.py", "no_bias")}"}}
        """
    )
    invoke(["sweep", name, "--json", "out.json"], 1)
    import json

    cases = json.loads(Path("out.json").read_text())["cases"]
    assert [c["status"] for c in cases] == ["pass", "pass", "fail"]
    assert cases[2]["impl"]["suspected_mistakes"][0]["id"] == "no_bias"


def test_a_sweep_with_a_missing_impl_is_exit_2_before_running(cfg):
    name = cfg("cases:\n  - {impl: nowhere.py:f}\n")
    result = invoke(["sweep", name], 2)
    assert "nowhere.py:f: no such file nowhere.py" in result.stderr


# ------------------------------------------------------------------ states and sequences of every layout


def _bidirectional_none(x, W1, U1, b1, W2, U2, b2, Wo, bo):
    y, hf, cf, hb, cb = R.bidirectional(R.lstm, x, [W1, U1, b1], [W2, U2, b2], merge_mode=None, return_state=True)
    return {"output": [R.dense(y[0], Wo, bo), R.dense(y[1], Wo, bo)], "states": [hf, cf, hb, cb]}


def _stack_with_start(x, W1, U1, b1, W2, U2, b2, Wo, bo, *, initial_state=None):
    first, second = initial_state  # one list per layer of the stack
    y = R.gru(x, W1, U1, b1, return_sequences=True, initial_state=first)
    y, h = R.gru(y, W2, U2, b2, initial_state=second, return_state=True)
    return {"output": R.dense(y, Wo, bo), "states": [h]}  # the last layer's, as Keras returns them


@pytest.mark.parametrize(
    ("fn", "options", "arrays"),
    [
        (
            _bidirectional_none,
            {"cell": "lstm", "bidirectional": "none", "return_state": True},
            ["output", "forward_h", "forward_c", "backward_h", "backward_c"],
        ),
        (
            _stack_with_start,
            {"cell": "gru", "M": "4,3", "initial_state": True, "return_state": True},
            ["output", "gru_2.h"],
        ),
    ],
)
def test_states_in_keras_layout_are_compared(fn, options, arrays):
    result = rnn_parity.check(fn, N=2, T=5, **options)
    assert result, result.text()
    assert list(result.to_dict()["impl"]["vs_keras"]) == arrays


def test_hidden_finds_the_first_wrong_step_of_an_ignored_mask():
    def mask_ignored(x, Wx, Wh, bh, Wo, bo):
        y = R.simple_rnn(x, Wx, Wh, bh, return_sequences=True, go_backwards=True)  # forgets the padding
        return {"output": R.dense(y, Wo, bo), "hidden": y}

    impl = rnn_parity.check(mask_ignored, mask="post", go_backwards=True, return_sequences=True, N=3, T=6).to_dict()
    assert impl["impl"]["first_divergence"] == 0  # read backwards, the padding comes first
    assert [s["id"] for s in impl["impl"]["suspected_mistakes"]] == ["mask_ignored"]
