"""The NumPy graph runtime on its own: no Keras here.

Mask rules are checked against values worked out by hand from Keras's source
(``keras/src/layers/merging``); ``test_verify.py`` checks the same layers
against Keras itself.
"""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest

from rnn_parity import reference as ref
from rnn_parity.errors import InvalidInput
from rnn_parity.runtime import FORMAT, GraphRuntime, SequentialRuntime, load, pack

from conftest import FRAMEWORKS, python_without

#: The CLI stack and saved-model readers: an exported model runs without any of them.
CLI_STACK = ("pydantic", "click", "rich", "h5py", "yaml")


def _graph(layers, inputs, outputs):
    return {"format": FORMAT, "format_version": 1, "name": "t", "inputs": inputs, "outputs": outputs, "layers": layers}


def _layer(name, class_name, inputs, config=None, **extra):
    return {
        "name": name,
        "class_name": class_name,
        "config": config or {},
        "inputs": [[i, 0] for i in inputs],
        "receives_mask": True,
        "weights": [],
        **extra,
    }


# Two one-feature sequences; Masking(0) masks steps where the value is 0:
# x1 = [1, 0, 2, 0] → mask [T, F, T, F];  x2 = [0, 3, -4, 0] → mask [F, T, T, F].
X1 = np.array([1.0, 0.0, 2.0, 0.0]).reshape(1, 4, 1)
X2 = np.array([0.0, 3.0, -4.0, 0.0]).reshape(1, 4, 1)
INPUTS = [
    {"name": "a", "shape": [None, 4, 1], "dtype": "float32"},
    {"name": "b", "shape": [None, 4, 1], "dtype": "float32"},
]


def _merge(class_name, *, mask_second=True, config=None):
    layers = [
        _layer("ma", "Masking", ["a"], {"mask_value": 0.0}),
        _layer("mb", "Masking", ["b"], {"mask_value": 0.0}),
        _layer("m", class_name, ["ma", "mb" if mask_second else "b"], config),
    ]
    trace = GraphRuntime(_graph(layers, INPUTS, [["m", 0]]), {}).run({"a": X1, "b": X2})
    return trace.outputs["m"].ravel().tolist(), trace.masks["m"][0]


@pytest.mark.parametrize(
    "class_name, values",
    [
        ("Add", [1, 3, -2, 0]),
        ("Subtract", [1, -3, 6, 0]),
        ("Average", [0.5, 1.5, -1, 0]),
        # masked steps count as 1; the step masked in both is zeroed
        ("Multiply", [1, 3, -8, 0]),
        # Merge._apply_merge_op_and_or_mask: a masked value is replaced by the other input's
        ("Maximum", [1, 3, 2, 0]),
        ("Minimum", [1, 3, -4, 0]),
    ],
)
def test_merge_values_and_the_or_of_the_masks(class_name, values):
    out, mask = _merge(class_name)
    assert out == values
    assert mask.ravel().tolist() == [True, True, True, False]


def test_merge_with_an_unmasked_input_has_no_mask():
    out, mask = _merge("Add", mask_second=False)
    assert out == [1, 3, -2, 0]
    assert mask is None


def test_multiply_with_one_mask_still_counts_masked_steps_as_one():
    out, mask = _merge("Multiply", mask_second=False)
    assert out == [0, 3, -8, 0]  # x1 → [1, 1, 2, 1] times raw x2 [0, 3, -4, 0]
    assert mask is None


def test_concatenate_masks_an_unmasked_input_as_all_real():
    out, mask = _merge("Concatenate", mask_second=False, config={"axis": -1})
    assert out == [1, 0, 0, 3, 2, -4, 0, 0]
    assert mask.ravel().tolist() == [True, True, True, True]
    _, both = _merge("Concatenate", config={"axis": -1})
    assert both.ravel().tolist() == [True, True, True, False]


def test_concatenate_on_the_time_axis_joins_the_masks():
    out, mask = _merge("Concatenate", config={"axis": 1})
    assert out == [1, 0, 2, 0, 0, 3, -4, 0]
    assert mask.ravel().tolist() == [True, False, True, False, False, True, True, False]


def _rnn_weights(rng, d, m, gates=1):
    return [
        rng.standard_normal((d, gates * m)),
        rng.standard_normal((m, gates * m)) * 0.3,
        rng.standard_normal(gates * m),
    ]


def test_graph_masking_rnn_dense_equals_the_reference():
    rng = np.random.default_rng(0)
    w_rnn, w_dense = _rnn_weights(rng, 3, 4), [rng.standard_normal((4, 2)), rng.standard_normal(2)]
    x = rng.standard_normal((2, 5, 3))
    x[0, 3:] = 0.0
    layers = [
        _layer("mask", "Masking", ["x"], {"mask_value": 0.0}),
        _layer("rnn", "SimpleRNN", ["mask"], {"units": 4, "return_sequences": True}),
        _layer("drop", "Dropout", ["rnn"]),
        _layer("out", "Dense", ["drop"], {"units": 2, "activation": "softmax"}),
    ]
    graph = _graph(layers, [{"name": "x", "shape": [None, None, 3], "dtype": "float32"}], [["out", 0]])
    trace = GraphRuntime(graph, {"rnn": w_rnn, "out": w_dense}).run(x)
    mask = np.any(x != 0, axis=-1)
    want = ref.dense(ref.simple_rnn(x, *w_rnn, return_sequences=True, mask=mask), *w_dense, activation="softmax")
    np.testing.assert_allclose(trace.output, want, rtol=1e-12)
    assert (trace.masks["out"][0] == mask).all()  # Dropout and Dense pass the mask on


def test_a_recurrent_layer_called_with_initial_state_does_not_get_the_mask():
    rng = np.random.default_rng(1)
    w = _rnn_weights(rng, 2, 3, gates=3) + []
    w[2] = rng.standard_normal((2, 9))
    x = rng.standard_normal((2, 4, 2))
    x[1, 2:] = 0.0
    h0 = rng.standard_normal((2, 3))
    layers = [
        _layer("mask", "Masking", ["x"], {"mask_value": 0.0}),
        {
            **_layer("gru", "GRU", ["mask"], {"units": 3, "return_sequences": True}),
            "initial_state": [["h0", 0]],
            "receives_mask": False,
        },
    ]
    inputs = [
        {"name": "x", "shape": [None, 4, 2], "dtype": "float32"},
        {"name": "h0", "shape": [None, 3], "dtype": "float32"},
    ]
    trace = GraphRuntime(_graph(layers, inputs, [["gru", 0]]), {"gru": w}).run([x, h0])
    masked_x = np.where(np.any(x != 0, axis=-1, keepdims=True), x, 0)
    np.testing.assert_allclose(trace.output, ref.gru(masked_x, *w, return_sequences=True, initial_state=[h0]))
    assert trace.masks["gru"][0].tolist() == [[True] * 4, [True, True, False, False]]  # still passed on
    assert "initial_state" in trace.notes["gru"][0]


def test_sequential_runtime_applies_the_same_rule_when_given_initial_states():
    rng = np.random.default_rng(2)
    w = _rnn_weights(rng, 2, 3)
    x = rng.standard_normal((2, 4, 2))
    x[0, 2:] = 0.0
    h0 = rng.standard_normal((2, 3))
    layers = [
        {"name": "masking", "class_name": "Masking", "config": {"mask_value": 0.0}},
        {"name": "rnn", "class_name": "SimpleRNN", "config": {"units": 3}},
    ]
    runtime = SequentialRuntime(layers, {"rnn": w})
    with_state = runtime.run(x, initial_states={"rnn": [h0]})
    np.testing.assert_allclose(with_state.output, ref.simple_rnn(x, *w, initial_state=[h0]))
    without = runtime.run(x)
    np.testing.assert_allclose(without.output, ref.simple_rnn(x, *w, mask=np.any(x != 0, axis=-1)))


def test_stateful_layers_carry_their_states_until_reset():
    rng = np.random.default_rng(3)
    w = _rnn_weights(rng, 2, 3, gates=4)
    layers = [_layer("lstm", "LSTM", ["x"], {"units": 3, "stateful": True})]
    runtime = GraphRuntime(
        _graph(layers, [{"name": "x", "shape": [2, 4, 2], "dtype": "float32"}], [["lstm", 0]]), {"lstm": w}
    )
    x = rng.standard_normal((2, 4, 2))
    first, second = runtime.predict(x), runtime.predict(x)
    _, h, c = ref.lstm(x, *w, return_state=True)
    np.testing.assert_allclose(second, ref.lstm(x, *w, initial_state=[h, c]))
    runtime.reset_states()
    np.testing.assert_allclose(runtime.predict(x), first)


def _embedding_graph():
    layers = [
        _layer(
            "emb", "Embedding", ["ids"], {"input_dim": 5, "output_dim": 2, "mask_zero": True}, weights=["embeddings"]
        ),
        _layer(
            "gru", "GRU", ["emb"], {"units": 2, "reset_after": False}, weights=["kernel", "recurrent_kernel", "bias"]
        ),
    ]
    return _graph(layers, [{"name": "ids", "shape": [None, None], "dtype": "int32"}], [["gru", 0]])


def _embedding_weights():
    rng = np.random.default_rng(4)
    return {
        "emb": [rng.standard_normal((5, 2))],
        "gru": [rng.standard_normal((2, 6)), rng.standard_normal((2, 6)), rng.standard_normal(6)],
    }


def test_pack_and_load_round_trip_without_pickles(tmp_path):
    graph, weights = _embedding_graph(), _embedding_weights()
    path = tmp_path / "m.npz"
    path.write_bytes(pack(graph, weights))
    with np.load(path, allow_pickle=False) as data:
        assert sorted(data.files) == ["graph", "weights/emb/0", "weights/gru/0", "weights/gru/1", "weights/gru/2"]
        assert data["graph"].dtype == np.uint8
        assert json.loads(data["graph"].tobytes())["format_version"] == 1
    ids = np.array([[1, 4, 2, 0], [3, 0, 0, 0]])
    np.testing.assert_array_equal(load(path).predict(ids), GraphRuntime(graph, weights).predict(ids))
    assert load(path, dtype="float32").predict(ids).dtype == np.float32


def _write(tmp_path, graph=None, weights=None, name="m.npz"):
    path = tmp_path / name
    path.write_bytes(pack(graph or _embedding_graph(), weights or _embedding_weights()))
    return path


def _npz(tmp_path, **arrays):
    path = tmp_path / "odd.npz"
    np.savez(path, **arrays)
    return path


def _error(call) -> str:
    with pytest.raises(InvalidInput) as info:
        call()
    return str(info.value)


def test_load_refuses_what_is_not_an_export(tmp_path):
    assert _error(lambda: load(tmp_path / "none.npz")) == f"{tmp_path / 'none.npz'}: no such file"
    np.save(tmp_path / "x.npy", np.zeros(3))
    assert _error(lambda: load(tmp_path / "x.npy")) == (
        f"{tmp_path / 'x.npy'}: is a single .npy array, not an rnn-parity model (.npz)"
    )
    odd = _npz(tmp_path, a=np.zeros(2))
    assert _error(lambda: load(odd)) == f"{odd}: not an rnn-parity model (no 'graph' entry)"
    good = _write(tmp_path)
    cut = tmp_path / "cut.npz"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    assert _error(lambda: load(cut)).startswith(f"{cut}: not a readable .npz file (")


def test_load_refuses_a_newer_format(tmp_path):
    path = _write(tmp_path, graph={**_embedding_graph(), "format_version": 3})
    assert _error(lambda: load(path)) == (
        f"{path}: written in format 3 by a newer rnn-parity; this runtime reads formats up to 2"
    )


def test_load_refuses_missing_or_wrong_weights(tmp_path):
    weights = _embedding_weights()
    graph = _embedding_graph()
    path = _write(tmp_path)
    with zipfile.ZipFile(path) as full, zipfile.ZipFile(tmp_path / "less.npz", "w") as less:
        for item in full.namelist():
            if item != "weights/gru/2.npy":
                less.writestr(item, full.read(item))
    assert _error(lambda: load(tmp_path / "less.npz")) == (f"{tmp_path / 'less.npz'}: missing array 'weights/gru/2'")
    graph["layers"][1]["weights"] = ["kernel", "recurrent_kernel"]
    path = _write(tmp_path, graph=graph, weights={**weights, "gru": weights["gru"][:2]}, name="two.npz")
    assert _error(lambda: load(path)) == f"{path}: layer 'gru' (GRU): needs 3 weight arrays, got 2"


def test_graph_must_be_in_order():
    graph = _embedding_graph()
    graph["layers"].reverse()
    assert _error(lambda: GraphRuntime(graph, _embedding_weights())) == (
        "layer 'gru' reads 'emb', which is not defined before it"
    )


def test_inputs_are_checked():
    runtime = GraphRuntime(_embedding_graph(), _embedding_weights())
    assert _error(lambda: runtime.predict(np.zeros((2, 3, 1), dtype=int))) == (
        "input 'ids': expected shape (N, ?), got (2, 3, 1)"
    )
    assert _error(lambda: runtime.predict(np.array([[1.5, 2.0]]))) == (
        "input 'ids' takes integer ids, got non-integer values"
    )
    assert _error(lambda: runtime.predict(np.array([[1, 5]]))) == (
        "layer 'emb' (Embedding): ids must lie in [0, 5), got values from 1 to 5"
    )
    assert _error(lambda: runtime.predict({"x": np.array([[1]])})) == (
        "inputs must be named ['ids']; missing ['ids'], unknown ['x']"
    )


def test_the_runtime_imports_and_runs_without_tensorflow_keras_or_the_cli_stack(tmp_path):
    path = _write(tmp_path)
    code = f"""
        import numpy as np
        from rnn_parity.runtime import load
        print(load({str(path)!r}).predict(np.array([[1, 2, 0]])).shape)
    """
    done = python_without(code, blocked=FRAMEWORKS + CLI_STACK)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "(1, 2)"
    assert done.attempted == []
    # NumPy and the standard library, and threadpoolctl, read by predict to choose the BLAS threads
    assert done.loaded == ["numpy", "rnn_parity", "threadpoolctl"]


def test_pack_writes_json_text_as_bytes():
    data = pack(_embedding_graph(), _embedding_weights())
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        assert json.loads(npz["graph"].tobytes().decode("utf-8"))["format"] == "rnn-parity.model"


def test_graph_runtime_and_checks_read_one_registry():
    from rnn_parity.graph import SUPPORTED_LAYERS
    from rnn_parity.layers import LAYERS
    from rnn_parity.model_checks import KNOWN_UNSUPPORTED
    from rnn_parity.recurrent import is_recurrent
    from rnn_parity.runtime import SUPPORTED_CLASSES

    assert set(SUPPORTED_LAYERS) - {"InputLayer"} == set(SUPPORTED_CLASSES) == set(LAYERS)
    assert not KNOWN_UNSUPPORTED & set(LAYERS)
    # recurrent.py's facts (standard library only) and the registry agree on which layers are recurrent
    assert {name for name, spec in LAYERS.items() if spec.recurrent} == {name for name in LAYERS if is_recurrent(name)}


# ----- TimeDistributed around any layer, RNN(StackedRNNCells), MultiHeadAttention's masks -----


def test_time_distributed_runs_the_wrapped_layer_on_every_timestep():
    from rnn_parity import layer_ops

    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 3, 6, 4))  # (batch, frames, positions, channels)
    kernel, bias = rng.standard_normal((3, 4, 5)), rng.standard_normal(5)
    conv = {"filters": 5, "kernel_size": 3, "padding": "same", "activation": "relu"}
    layers = [_layer("td", "TimeDistributed", ["x"], {"layer": {"class_name": "Conv1D", "config": conv}})]
    graph = _graph(layers, [{"name": "x", "shape": [None, 3, 6, 4], "dtype": "float32"}], [["td", 0]])
    got = GraphRuntime(graph, {"td": [kernel, bias]}).predict(x)
    want = np.stack([layer_ops.conv1d(x[:, t], kernel, bias, padding="same", activation="relu") for t in range(3)], 1)
    np.testing.assert_allclose(got, want, rtol=1e-12)


def _stacked(**options):
    cells = [
        {"class_name": "LSTMCell", "config": {"units": 3}},
        {"class_name": "GRUCell", "config": {"units": 2, "reset_after": False}},
    ]
    return {**options, "cell": {"class_name": "StackedRNNCells", "config": {"cells": cells}}}


def test_a_stacked_rnn_is_its_cells_run_in_turn_and_returns_every_cells_states():
    rng = np.random.default_rng(6)
    lstm, gru = _rnn_weights(rng, 2, 3, gates=4), _rnn_weights(rng, 3, 2, gates=3)
    x = rng.standard_normal((2, 5, 2))
    cfg = _stacked(return_sequences=True, return_state=True, go_backwards=True)
    layers = [_layer("rnn", "RNN", ["x"], cfg)]
    graph = _graph(layers, [{"name": "x", "shape": [None, 5, 2], "dtype": "float32"}], [["rnn", i] for i in range(4)])
    out, h1, c1, h2 = GraphRuntime(graph, {"rnn": lstm + gru}).predict(x)
    first, h, c = ref.lstm(x, *lstm, return_sequences=True, return_state=True, go_backwards=True)
    second, h_last = ref.gru(first, *gru, return_sequences=True, return_state=True, reset_after=False)
    for got, want in ((out, second), (h1, h), (c1, c), (h2, h_last)):
        np.testing.assert_allclose(got, want, rtol=1e-12)
    # stateful: the next call starts every cell from the states the last one ended with
    layers[0]["config"] = {**cfg, "stateful": True}
    runtime = GraphRuntime(graph, {"rnn": lstm + gru})
    runtime.predict(x)
    again = runtime.predict(x)
    first, *_ = ref.lstm(x, *lstm, return_sequences=True, return_state=True, go_backwards=True, initial_state=[h, c])
    second = ref.gru(first, *gru, return_sequences=True, reset_after=False, initial_state=[h_last])
    np.testing.assert_allclose(again[0], second, rtol=1e-12)


def test_multi_head_attention_removes_the_masks_attached_to_its_inputs():
    """Keras's MultiHeadAttention.call sets its inputs' masks to None: a later Add finds none, the layer that
    made the tensor reports none, but a recurrent layer handed the mask Keras recorded still masks."""
    rng = np.random.default_rng(7)
    w_rnn, w_gru = _rnn_weights(rng, 2, 4), _rnn_weights(rng, 4, 3, gates=3)
    w_gru[2] = rng.standard_normal((2, 9))
    heads = [rng.standard_normal(shape) for shape in ((4, 2, 3), (2, 3), (4, 2, 3), (2, 3), (4, 2, 3), (2, 3))]
    heads += [rng.standard_normal((2, 3, 4)), rng.standard_normal(4)]
    mha = {"num_heads": 2, "key_dim": 3, "value_dim": 3, "use_bias": True, "output_shape": None}
    layers = [
        _layer("mask", "Masking", ["x"], {"mask_value": 0.0}),
        _layer("rnn", "SimpleRNN", ["mask"], {"units": 4, "return_sequences": True}),
        {**_layer("mha", "MultiHeadAttention", ["rnn", "rnn"], mha), "receives_mask": False},
        {**_layer("add", "Add", ["rnn", "mha"]), "receives_mask": False},
        _layer("gru", "GRU", ["rnn"], {"units": 3, "return_sequences": True}),
    ]
    x = rng.standard_normal((2, 5, 2))
    x[0, 3:] = 0.0
    graph = _graph(layers, [{"name": "x", "shape": [None, 5, 2], "dtype": "float32"}], [["add", 0], ["gru", 0]])
    trace = GraphRuntime(graph, {"rnn": w_rnn, "mha": heads, "gru": w_gru}).run(x)
    mask = np.any(x != 0, axis=-1)
    assert trace.masks["rnn"] == [None] and trace.masks["add"] == [None]
    np.testing.assert_array_equal(trace.masks["mha"][0], mask)  # the query's mask, taken before it was removed
    h = ref.simple_rnn(x, *w_rnn, return_sequences=True, mask=mask)
    np.testing.assert_allclose(trace.outputs["gru"], ref.gru(h, *w_gru, return_sequences=True, mask=mask))


def test_keras2_time_major_layers_read_and_return_time_first():
    """Keras 2's time_major=True (kept in the config only when true): input and returned sequence
    (timesteps, batch, …), mask (timesteps, batch), states batch-major; also inside Bidirectional."""
    rng = np.random.default_rng(9)
    w = _rnn_weights(rng, 2, 3, gates=4)
    x = rng.standard_normal((2, 5, 2))
    x[1, 3:] = 0.0
    cfg = {"units": 3, "return_sequences": True, "return_state": True, "time_major": True}
    layers = [_layer("mask", "Masking", ["x"]), _layer("lstm", "LSTM", ["mask"], cfg)]
    graph = _graph(layers, [{"name": "x", "shape": [5, None, 2], "dtype": "float32"}], [["lstm", i] for i in range(3)])
    out, h, c = GraphRuntime(graph, {"lstm": w}).predict(np.swapaxes(x, 0, 1))
    want, want_h, want_c = ref.lstm(x, *w, return_sequences=True, return_state=True, mask=np.any(x != 0, axis=-1))
    np.testing.assert_allclose(out, np.swapaxes(want, 0, 1), rtol=1e-12)
    np.testing.assert_allclose(h, want_h, rtol=1e-12)
    np.testing.assert_allclose(c, want_c, rtol=1e-12)
    inner = {"class_name": "LSTM", "config": {"units": 3, "return_sequences": True, "time_major": True}}
    layers = [_layer("bi", "Bidirectional", ["x"], {"merge_mode": "concat", "layer": inner})]
    graph = _graph(layers, [{"name": "x", "shape": [5, None, 2], "dtype": "float32"}], [["bi", 0]])
    got = GraphRuntime(graph, {"bi": w + w}).predict(np.swapaxes(x, 0, 1))
    np.testing.assert_allclose(got, np.swapaxes(ref.bidirectional(ref.lstm, x, w, w, return_sequences=True), 0, 1))
