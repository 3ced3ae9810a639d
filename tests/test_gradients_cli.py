"""``check --gradients``, ``--fd-check``, ``explain --gradients`` and the ``gradients`` sweep key, end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import invoke, invoke_json

pytestmark = pytest.mark.keras

SMALL = ["--N", "3", "--T", "6", "--D", "2", "--K", "2"]

#: The models issue 13's "done when" names, at small sizes.
DONE_WHEN = {
    "SimpleRNN": [],
    "masked LSTM returning sequences": ["--cell", "lstm", "--mask", "post", "--return-sequences"],
    "GRU go_backwards + initial state": ["--cell", "gru", "--go-backwards", "--initial-state"],
    "Bidirectional LSTM stack": ["--cell", "lstm", "--bidirectional", "concat", "--M", "4,3"],
    "masked GRU reset_after=False": ["--cell", "gru", "--no-reset-after", "--mask", "pre"],
}


@pytest.mark.parametrize("model", DONE_WHEN)
def test_check_gradients_passes(model):
    report = invoke_json(["check", *SMALL, *DONE_WHEN[model], "--gradients"], 0)
    grads = report["gradients"]
    assert grads["passed"] is True and report["passed"] is True
    names = list(grads["arrays"])
    assert names[0] == "input" and grads["arrays"]["input"]["shape"] == [3, 6, 2]
    assert any(n.endswith("recurrent_kernel") for n in names) and "dense/kernel" in names
    assert any("/initial_state/" in n for n in names) == ("--initial-state" in DONE_WHEN[model])
    assert grads["max_abs_diff"] == max(a["max_abs_diff"] for a in grads["arrays"].values())
    for entry in grads["arrays"].values():
        assert entry["passed"] and entry["tolerance"]["mode"] == "explicit"
    steps = grads["dh_norm"]
    assert len(steps["reference"]) == 6 and all(v >= 0 for v in steps["reference"])
    if steps["keras"] is not None:  # float32 Keras against the float64 truth
        np.testing.assert_allclose(steps["keras"], steps["reference"], rtol=1e-4, atol=1e-6)
    assert grads["fd_check"] is None


def test_initial_state_gradients_are_named_per_state():
    report = invoke_json(["check", *SMALL, "--cell", "lstm", "--initial-state", "--gradients"], 0)
    assert {"lstm/initial_state/h", "lstm/initial_state/c"} <= set(report["gradients"]["arrays"])


def test_float64_keras_gradients_agree_to_1e_9():
    report = invoke_json(
        ["check", *SMALL, "--cell", "gru", "--mask", "post", "--keras-dtype", "float64", "--gradients"], 0
    )
    for name, entry in report["gradients"]["arrays"].items():
        assert entry["max_rel_diff"] < 1e-9 or entry["max_abs_diff"] < 1e-12, name


def test_fd_check():
    report = invoke_json(["check", *SMALL, "--cell", "lstm", "--mask", "post", "--gradients", "--fd-check"], 0)
    fd = report["gradients"]["fd_check"]
    assert fd["passed"] is True and fd["max_rel_error"] < 1e-6 and fd["step"] == 1e-6
    assert set(fd["arrays"]) == set(report["gradients"]["arrays"])
    assert all(0 < a["checked"] <= 24 for a in fd["arrays"].values())


def test_a_wrong_keras_gradient_fails_with_exit_1(monkeypatch):
    import rnn_parity.keras_gradients as kg

    real = kg.keras_gradients

    def off_by_a_percent(*args, **kwargs):
        grads = real(*args, **kwargs)
        name = next(n for n in grads if n.endswith("recurrent_kernel"))
        grads[name] = grads[name] * 1.01
        return grads

    monkeypatch.setattr(kg, "keras_gradients", off_by_a_percent)
    report = invoke_json(["check", *SMALL, "--gradients"], 1)
    assert report["passed"] is False and report["gradients"]["passed"] is False
    assert report["gradients"]["arrays"]["simple_rnn/recurrent_kernel"]["passed"] is False
    assert report["gradients"]["arrays"]["input"]["passed"] is True


def test_fd_check_needs_gradients():
    result = invoke(["check", "--fd-check"], 2)
    assert result.stderr == "Error: --fd-check checks the gradients, which need --gradients\n"


def test_gradients_of_a_stateful_layer_are_refused():
    result = invoke(["check", "--stateful", "--gradients"], 2)
    assert "--gradients: gradients of a --stateful layer span two calls" in result.stderr


def test_table_shows_the_gradients_and_dh_over_time():
    out = invoke(["check", *SMALL, "--cell", "lstm", "--gradients", "--fd-check"], 0).stdout
    assert "Gradients of L = Σ G·y" in out and "lstm/recurrent_kernel" in out
    assert "‖dL/dh_t‖" in out and "finite differences" in out
    assert any(bar in out for bar in "▁▂▃▄▅▆▇█")


def test_explain_gradients():
    out = invoke(["explain", *SMALL, "--cell", "gru", "--no-reset-after", "--gradients"], 0).stdout
    assert "Backpropagation through time" in out
    assert "dU_h = Σ_t (r_t ⊙ h_(t-1))ᵀ·δh_t" in out
    assert "dL/dh_t step by step" in out and "gru/kernel" in out


def test_plot_has_a_gradient_panel(tmp_path):
    pytest.importorskip("matplotlib")
    png = tmp_path / "p.png"
    invoke(["check", *SMALL, "--gradients", "--plot", png], 0)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_sweep_gradients_key(cfg):
    name = cfg(
        """
        defaults: {N: 2, T: 4, D: 2, K: 2, gradients: true}
        grid: {cell: [lstm, gru]}
        """
    )
    invoke(["sweep", name, "--json", "r.json"], 0)
    report = json.loads(Path("r.json").read_text(encoding="utf-8"))
    assert [c["gradients"]["passed"] for c in report["cases"]] == [True, True]
    assert all(
        "lstm/kernel" in c["gradients"]["arrays"] or "gru/kernel" in c["gradients"]["arrays"] for c in report["cases"]
    )


def test_mixed_float16_gradients_under_the_auto_tolerance():
    """A float16 model's output is cast up before the loss; auto tolerances scale with float16's rounding."""
    args = ["check", *SMALL, "--cell", "gru", "--keras-dtype", "mixed_float16", "--tolerance", "auto", "--gradients"]
    grads = invoke_json(args, 0)["gradients"]
    assert grads["passed"] and all(a["tolerance"]["mode"] == "auto" for a in grads["arrays"].values())
    assert 1e-6 < grads["max_abs_diff"] < 1e-2  # float16 rounding, not float32's
