"""The parity core, the table of recurrent-layer facts and the shared option validation.

Everything here runs without TensorFlow except the facts checked against Keras's own layers.
"""

from __future__ import annotations

import numpy as np
import pytest

from rnn_parity.errors import InvalidInput, RnnParityError
from rnn_parity.parity import compare_side, compare_sides, run_reference
from rnn_parity.recurrent import CELLS, n_outputs, n_states, state_names
from rnn_parity.spec import build_spec
from rnn_parity.tolerance import AUTO_FACTOR, ToleranceRule
from rnn_parity.verify import VerifyOptions


def _sides(seed: int = 0, shape=(2, 6, 3)):
    """A float64 truth and a float32 run of the same values: what a correct float32 implementation gives."""
    truth = np.random.default_rng(seed).standard_normal(shape)
    return truth, truth.astype(np.float32)


def _reference(rule: ToleranceRule, **arrays):
    """A reference whose truth is ``arrays`` and whose low run is the same rounded to float32."""
    return run_reference(lambda dtype: {k: v.astype(dtype) for k, v in arrays.items()}, rule).reference(rule)


def test_the_first_bad_step_is_on_the_time_axis_also_for_two_stacked_directions():
    truth, _ = _sides()
    reference = _reference(ToleranceRule(), seq=truth, pair=np.stack([truth, truth]), last=truth[:, -1])
    seq, pair, last = truth.copy(), [truth.copy(), truth.copy()], truth[:, -1].copy()
    seq[1, 4, 2] += 1e-3
    pair[1][0, 2, 0] = np.nan  # the backward direction, step 2
    last[0, 1] += 1.0
    keras = compare_side("keras", {"seq": seq, "pair": pair, "last": last}, reference)
    assert [keras[k].first_bad_step for k in ("seq", "pair", "last")] == [4, 2, None]
    assert not keras.passed and keras["pair"].comparison.nonfinite == 1
    assert keras["seq"].comparison.worst_index == (1, 4, 2)


def test_each_array_gets_its_own_auto_tolerance_from_its_truth_and_low_run():
    small, big = _sides(1)[0] * 1e-3, _sides(2)[0] * 1e3
    rule = ToleranceRule("auto", compute_dtype="float32")
    reference = _reference(rule, small=small, big=big)
    side = compare_side("impl", {"small": small.astype(np.float32), "big": big.astype(np.float32)}, reference)
    assert side.passed
    assert side["big"].tolerance.atol > 1000 * side["small"].tolerance.atol
    low_error = np.abs(big.astype(np.float32) - big).max()
    assert side["big"].tolerance.atol >= AUTO_FACTOR * low_error
    assert reference.three_way("big", big.astype(np.float32)).diagnosis == "rounding"
    assert reference.three_way("big", big + 1.0).diagnosis == "discrepancy"


def test_several_sides_against_one_reference():
    truth, low = _sides(3)
    reference = _reference(ToleranceRule(), y=truth)
    wrong = truth.copy()
    wrong[0, 0, 0] += 1.0
    verdicts = compare_sides({"tensorflow": {"y": low}, "jax": {"y": wrong}}, reference)
    assert {side: result.passed for side, result in verdicts.items()} == {"tensorflow": True, "jax": False}
    assert verdicts["jax"]["y"].first_bad_step == 0


def test_a_shape_mismatch_names_the_array_and_the_side():
    truth, _ = _sides()
    reference = _reference(ToleranceRule(), seq=truth)
    with pytest.raises(RnnParityError, match=r"^layer 'seq': shapes differ: impl \(2, 6\), reference \(2, 6, 3\)$"):
        compare_side("impl", {"seq": truth[..., 0]}, reference, where=lambda name: f"layer {name!r}")


def test_the_reference_runs_once_per_dtype_and_expects_what_the_mode_asks():
    calls = []

    def run(dtype):
        calls.append(dtype)
        return dtype

    runs = run_reference(run, ToleranceRule("explicit", compute_dtype="float32"), "float32")
    assert calls == ["float64", "float32"] and (runs.truth, runs.low, runs.expected) == ("float64",) + ("float32",) * 2
    calls.clear()
    runs = run_reference(run, ToleranceRule("auto", compute_dtype="float32"), "float32")
    assert calls == ["float64", "float32"] and runs.expected == "float64"


@pytest.mark.keras
@pytest.mark.parametrize("class_name", sorted(CELLS))
def test_the_cell_table_matches_keras(keras, class_name):
    """States and gate blocks as Keras's own layers have them (no model is run)."""
    cell = CELLS[class_name]
    layer = getattr(keras.layers, class_name)(2, return_state=True)
    outputs = layer(keras.Input((4, 3)))
    assert len(outputs) - 1 == len(cell.states) == n_states(class_name, {})
    assert layer.cell.kernel.shape == (3, cell.n_gates * 2)
    wrapped = keras.layers.Bidirectional(getattr(keras.layers, class_name)(2, return_state=True), merge_mode=None)
    outputs = wrapped(keras.Input((4, 3)))
    config = {"merge_mode": None, "layer": {"class_name": class_name, "config": {}}}
    assert len(outputs) == n_outputs("Bidirectional", config) + len(state_names("Bidirectional", config))


SHARED = [
    ({"atol": -1.0}, "--atol must be ≥ 0, got -1.0"),
    ({"rtol": float("nan")}, "--rtol must be a finite number, got nan"),
    ({"max_mismatch_frac": 2.0}, "--max-mismatch-frac must be ≤ 1, got 2.0"),
    ({"seed": -1}, "--seed must be ≥ 0, got -1"),
    ({"T": 0}, "--T must be a positive integer, got 0"),
    ({"tolerance": "auto", "rtol": 1e-3}, "--rtol 0.001 applies to explicit tolerances, but --tolerance auto"),
]


@pytest.mark.parametrize("values, message", SHARED)
def test_check_and_verify_say_the_same_about_a_shared_option(values, message):
    with pytest.raises(InvalidInput) as check:
        build_spec("cli", **values)
    with pytest.raises(InvalidInput) as verify:
        VerifyOptions.build("cli", model="model.keras", **values)
    assert str(check.value) == str(verify.value) == message
