"""A user's own implementation: finding it, calling it, and naming its mistake (NumPy only, no Keras)."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from rnn_parity.architecture import layers_for
from rnn_parity.case import make_case
from rnn_parity.compare import compare
from rnn_parity.convention import calling_convention, signature_text
from rnn_parity.errors import InvalidInput
from rnn_parity.impl import ImplFailure, ImplReturn, call_impl, resolve_impl
from rnn_parity.mistakes import MISTAKES, Setup, forward, suspects
from rnn_parity.spec import build_spec

IMPLS = Path(__file__).parent / "impls"
TOL = {"atol": 1e-5, "rtol": 1.3e-6}


def target(file: str, name: str) -> str:
    return f"{IMPLS / file}:{name}"


def problem(**options):
    spec = build_spec(**options)
    layers = layers_for(spec)
    case = make_case(spec, layers)
    flat = [w for layer in layers for w in case.weights.get(layer.name, [])]
    return spec, case, flat, Setup(spec, tuple(layers), case.weights, case.batches, case.initial_states)


def run(impl, timeout=None, dtype="float32", **options):
    spec, case, flat, setup = problem(**options)
    result = call_impl(resolve_impl(impl), spec, flat, case.batches, case.initial_states, dtype=dtype, timeout=timeout)
    return result, setup


def suspected(impl, **options) -> list[str]:
    result, setup = run(impl, **options)
    assert isinstance(result, ImplReturn), result
    assert not compare(result.output, forward(setup), **TOL).passed
    return [s.id for s in suspects(setup, result.output, **TOL)]


# ------------------------------------------------------------------ correct implementations pass


@pytest.mark.parametrize(
    ("impl", "options"),
    [
        (target("simple_rnn.py", "notebook_rnn"), {"N": 3}),
        (target("simple_rnn.py", "with_hidden"), {"N": 2}),
        (target("lstm.py", "lstm"), {"cell": "lstm", "N": 2}),
        (target("gru.py", "gru"), {"cell": "gru", "N": 2}),
        (target("gru.py", "gru_hard_sigmoid"), {"cell": "gru", "recurrent_activation": "hard_sigmoid"}),
    ],
)
def test_correct_implementations_match_the_reference(impl, options):
    result, setup = run(impl, **options)
    assert isinstance(result, ImplReturn), result
    comparison = compare(result.output, forward(setup), **TOL)
    assert comparison.passed, comparison.max_abs_diff


def test_hidden_is_every_step_of_the_last_recurrent_layer():
    result, setup = run(target("simple_rnn.py", "with_hidden"), N=2, T=4)
    rnn = setup.layers[0]
    sequence = forward(replace(setup, layers=(replace(rnn, config={**rnn.config, "return_sequences": True}),)))
    assert result.hidden.shape == (2, 4, 5)
    assert compare(result.hidden, sequence, **TOL).passed


def test_float64_inputs_with_impl_dtype():
    result, _ = run(target("simple_rnn.py", "with_hidden"), dtype="float64")
    assert result.dtype == "float64"


# ------------------------------------------------------------------ the right mistake first


@pytest.mark.parametrize(
    ("impl", "options", "mistake"),
    [
        (target("simple_rnn.py", "transposed_recurrent"), {}, "transposed_recurrent_kernel"),
        (target("simple_rnn.py", "no_bias"), {}, "no_bias"),
        (target("simple_rnn.py", "one_step_short"), {}, "one_step_short"),
        (target("simple_rnn.py", "state_not_reset"), {"N": 3}, "state_not_reset"),
        (target("lstm.py", "forget_cell_swapped"), {"cell": "lstm"}, "lstm_gates_icfo"),
        (target("lstm.py", "output_cell_swapped"), {"cell": "lstm"}, "lstm_gates_ifoc"),
        (target("gru.py", "reset_before"), {"cell": "gru"}, "gru_reset_placement"),
        (
            target("gru.py", "gru_keras2_hard_sigmoid"),
            {"cell": "gru", "recurrent_activation": "hard_sigmoid"},
            "keras2_hard_sigmoid",
        ),
    ],
)
def test_the_right_mistake_ranks_first(impl, options, mistake):
    assert suspected(impl, **options)[0] == mistake


def test_one_step_short_names_its_twin_without_return_sequences():
    result, setup = run(target("simple_rnn.py", "one_step_short"))
    (first,) = suspects(setup, result.output, **TOL)
    assert first.id == "one_step_short"
    assert [m.id for m in first.equivalent] == ["output_before_update"]
    assert first.to_dict()["mistake"].startswith("the loop one step short")
    assert "the output taken before the step's update" in first.to_dict()["mistake"]


def test_nothing_matches_an_unknown_mistake():
    assert suspected(target("simple_rnn.py", "scrambled")) == []


def test_a_gate_order_is_named_as_the_loop_writes_it():
    """``f, c, i, o = split(z, 4)`` (a 3-cycle, its own inverse only by luck) is named f, c, i, o."""
    sys.path.insert(0, str(IMPLS))
    try:
        import lstm as fixture
    finally:
        sys.path.remove(str(IMPLS))

    def fcio(x, W, U, b, Wo, bo):
        return fixture._lstm(x, W, U, b, Wo, bo, order="fcio")

    ids = suspected(fcio, cell="lstm")
    assert ids[0] == "lstm_gates_fcio"
    entry = next(m for m in MISTAKES if m.id == "lstm_gates_fcio")
    assert entry.text == "the gate blocks read in the order f, c, i, o (Keras's is i, f, c, o)"


@pytest.mark.parametrize(
    "options",
    [
        {"cell": "simple_rnn"},
        {"cell": "lstm", "return_sequences": True},
        {"cell": "gru", "go_backwards": True, "return_sequences": True, "mask": "post"},
        {"cell": "gru", "bidirectional": "concat", "return_sequences": True},
        {"cell": "lstm", "stateful": True},
        {"cell": "simple_rnn", "D": 5, "M": 5, "initial_state": True},
    ],
)
def test_every_mistake_finds_itself_and_none_matches_the_reference(options):
    """Each mistake that applies changes the output, and ranks itself first (or is a named twin)."""
    _, _, _, setup = problem(N=3, T=6, **options)
    assert suspects(setup, forward(setup), **TOL) == []
    applied = 0
    for mistake in MISTAKES:
        output = mistake.apply(setup)
        if output is None:
            continue
        applied += 1
        first = suspects(setup, output, **TOL)[0]
        assert mistake.id in [first.id, *(m.id for m in first.equivalent)], (mistake.id, first)
    assert applied >= 10


def test_the_library_holds_every_gate_permutation():
    ids = {m.id for m in MISTAKES}
    assert sum(i.startswith("lstm_gates_") for i in ids) == 23
    assert sum(i.startswith("gru_gates_") for i in ids) == 5
    assert len(ids) == len(MISTAKES)


# ------------------------------------------------------------------ failures of the user's code


def test_a_raising_function_fails_with_its_message_and_line():
    result, _ = run(target("simple_rnn.py", "raises"))
    assert isinstance(result, ImplFailure)
    assert result.kind == "raised"
    assert result.message.startswith("ValueError: matmul")
    line = next(i for i, text in enumerate((IMPLS / "simple_rnn.py").read_text().splitlines(), 1) if "Wh where" in text)
    assert f"simple_rnn.py:{line} in raises: h = np.tanh(x[:, t] @ Wh + h @ Wh + bh)" in result.location


def test_a_wrong_shape_names_both_shapes():
    result, _ = run(target("simple_rnn.py", "last_sample_only"), N=3)
    assert result.kind == "output"
    assert result.message == "the output has shape (2,), but the model's is (3, 2) (N, K)"


def test_a_wrong_dtype_is_named():
    result, _ = run(target("simple_rnn.py", "integers"))
    assert result.message == (
        "the output has dtype int64; expected floating point (float32 or float64) of shape (1, 2) (N, K)"
    )


def test_a_dict_without_output_or_with_unknown_keys():
    result, _ = run(lambda x, *w: {"outputs": np.zeros((1, 2))})
    assert result.message == "the returned dict has unknown key(s) 'outputs'; known: ('output', 'hidden', 'states')"
    result, _ = run(lambda x, *w: {"hidden": np.zeros((1, 10, 5))})
    assert result.message == "the returned dict has no 'output'"


def test_a_hung_loop_is_stopped_by_the_timeout():
    result, _ = run(target("simple_rnn.py", "hangs"), timeout=0.3)
    assert result.kind == "timeout"
    assert result.message == "stopped after the --timeout of 0.3 s"
    assert 0.3 <= result.seconds < 5


def test_the_function_cannot_change_our_arrays_or_error_state():
    spec, case, flat, setup = problem()
    before = [w.copy() for w in flat], [x.copy() for x in case.batches]
    errors = np.geterr()
    result = call_impl(resolve_impl(target("simple_rnn.py", "mutates_its_arguments")), spec, flat, case.batches)
    assert isinstance(result, ImplReturn)
    assert all(np.array_equal(a, b) for a, b in zip(before[0], flat))
    assert all(np.array_equal(a, b) for a, b in zip(before[1], case.batches))
    assert np.geterr() == errors


def test_prints_go_to_stderr(capsys):
    def chatty(x, *weights):
        print("step 1")
        return np.zeros((1, 2), dtype=np.float32)

    run(chatty)
    out = capsys.readouterr()
    assert out.out == "" and out.err == "step 1\n"


# ------------------------------------------------------------------ keyword arguments: initial state, stateful


def test_initial_state_reaches_the_function():
    result, setup = run(target("simple_rnn.py", "with_state"), initial_state=True, N=2)
    assert compare(result.output, forward(setup), **TOL).passed


def test_stateful_carries_the_returned_states():
    result, setup = run(target("simple_rnn.py", "with_state"), stateful=True, N=2)
    assert compare(result.output, forward(setup), **TOL).passed
    assert len(result.states[0]) == 1


def test_a_function_without_the_keyword_is_refused():
    with pytest.raises(InvalidInput) as info:
        run(target("simple_rnn.py", "notebook_rnn"), initial_state=True)
    assert str(info.value) == (
        f"--impl {target('simple_rnn.py', 'notebook_rnn')}: does not accept the keyword argument "
        "initial_state, which --initial-state passes; add initial_state=None to its parameters"
    )


def test_return_state_needs_states():
    result, _ = run(target("simple_rnn.py", "notebook_rnn"), return_state=True)
    assert result.message == "--return-state needs the final states: return {'output': ..., 'states': [h]}"


def test_a_function_taking_too_few_weights_is_refused():
    with pytest.raises(InvalidInput) as info:
        run(target("simple_rnn.py", "notebook_rnn"), cell="lstm", use_bias=False)
    assert str(info.value).endswith(
        "notebook_rnn: cannot be called as f(x, W, U, Wo, bo) (4 weights for these options; "
        "see rnn-parity explain --weights): missing a required argument: 'bo'"
    )


# ------------------------------------------------------------------ finding the function


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("nocolon", "--impl nocolon: must be FILE.py:FUNCTION or package.module:FUNCTION"),
        ("missing.py:f", "--impl missing.py:f: no such file missing.py"),
        ("no_such_module_xyz:f", "--impl no_such_module_xyz:f: no module named 'no_such_module_xyz'"),
        ("json:no_such", "--impl json:no_such: module json has no 'no_such'"),
        ("json:__doc__", "--impl json:__doc__: '__doc__' is a str, not a function"),
    ],
)
def test_bad_targets(text, message):
    with pytest.raises(InvalidInput) as info:
        resolve_impl(text)
    assert str(info.value) == message


def test_missing_function_and_not_callable_in_a_file():
    with pytest.raises(InvalidInput, match=r"simple_rnn.py has no 'nope'$"):
        resolve_impl(target("simple_rnn.py", "nope"))
    with pytest.raises(InvalidInput, match=r"'not_a_function' is a int, not a function$"):
        resolve_impl(target("simple_rnn.py", "not_a_function"))


def test_an_import_error_names_the_line(tmp_path):
    broken = tmp_path / "broken.py"
    broken.write_text("import numpy as np\n\nraise RuntimeError('no GPU here')\n")
    with pytest.raises(InvalidInput) as info:
        resolve_impl(f"{broken}:f")
    assert str(info.value).endswith("importing it raised RuntimeError: no GPU here (" + str(broken) + ", line 3)")
    bad = tmp_path / "syntax.py"
    bad.write_text("def f(x:\n")
    with pytest.raises(
        InvalidInput, match=r"importing it raised SyntaxError: .* was never closed \(.*syntax.py, line 1\)$"
    ):
        resolve_impl(f"{bad}:f")


def test_a_module_target_from_the_current_folder_is_imported_once(tmp_path, monkeypatch):
    (tmp_path / "my_port.py").write_text("CALLS = []\nCALLS.append(1)\n\ndef rnn(x, *w):\n    return x\n")
    monkeypatch.chdir(tmp_path)
    first = resolve_impl("my_port:rnn")
    second = resolve_impl("my_port:rnn")
    assert first.fn is second.fn
    assert sys.modules["my_port"].CALLS == [1]


# ------------------------------------------------------------------ the weight list


def test_default_weights_are_the_notebooks():
    spec = build_spec()
    args = calling_convention(spec)
    assert [(w.param, w.name, w.shape) for w in args] == [
        ("Wx", "kernel", (3, 5)),
        ("Wh", "recurrent_kernel", (5, 5)),
        ("bh", "bias", (5,)),
        ("Wo", "kernel", (5, 2)),
        ("bo", "bias", (2,)),
    ]
    assert signature_text(spec) == "def my_rnn(x, Wx, Wh, bh, Wo, bo):"


def test_weights_for_a_gru_stack_bidirectional_and_no_bias():
    gru = calling_convention(build_spec(cell="gru", M="4,3"))
    assert [(w.param, w.shape) for w in gru] == [
        ("W_1", (3, 12)),
        ("U_1", (4, 12)),
        ("b_1", (2, 12)),
        ("W_2", (4, 9)),
        ("U_2", (3, 9)),
        ("b_2", (2, 9)),
        ("Wo", (3, 2)),
        ("bo", (2,)),
    ]
    assert gru[2].layout == "row 0 goes with x·W, row 1 with h·U (inside r ⊙ (…) for h); columns: z | r | h, 4 each"
    bi = calling_convention(build_spec(cell="lstm", bidirectional="concat", use_bias=False))
    assert [(w.param, w.name, w.shape) for w in bi] == [
        ("W_fwd", "forward_kernel", (3, 20)),
        ("U_fwd", "forward_recurrent_kernel", (5, 20)),
        ("W_bwd", "backward_kernel", (3, 20)),
        ("U_bwd", "backward_recurrent_kernel", (5, 20)),
        ("Wo", "kernel", (10, 2)),
        ("bo", "bias", (2,)),
    ]
    assert bi[0].layout == "rows: 3 inputs; columns: i | f | c | o, 5 each"
    assert (
        bi[4].layout == "rows: the 10 outputs of the last recurrent layer (forward, then backward); columns: 2 outputs"
    )
    assert signature_text(build_spec(initial_state=True), "f") == "def f(x, Wx, Wh, bh, Wo, bo, *, initial_state=None):"


def test_explain_weights_prints_the_convention_without_tensorflow():
    import subprocess

    script = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from rnn_parity.cli import main\n"
        "r = CliRunner().invoke(main, ['explain', '--weights', '--cell', 'gru', '--initial-state'])\n"
        "print(r.exit_code, 'tensorflow' in sys.modules, 'keras' in sys.modules)\n"
        "print(r.output)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    first, rest = out.split("\n", 1)
    assert first == "0 False False"
    assert "def my_rnn(x, W, U, b, Wo, bo, *, initial_state=None):" in rest
    assert "recurrent_kernel" in rest and "2×15" in rest
