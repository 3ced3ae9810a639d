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
    path = _write(tmp_path, graph={**_embedding_graph(), "format_version": 2})
    assert _error(lambda: load(path)) == (
        f"{path}: written in format 2 by a newer rnn-parity; this runtime reads format 1"
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
    assert _error(lambda: load(path)) == "layer 'gru' (GRU) needs 3 weight arrays, got 2"


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


def test_graph_and_runtime_agree_on_the_supported_layers():
    from rnn_parity.graph import SUPPORTED_LAYERS
    from rnn_parity.runtime import SUPPORTED_CLASSES

    # An RNN around one built-in cell enters the graph as that cell's layer (SimpleRNN, LSTM or GRU).
    assert set(SUPPORTED_LAYERS) - {"InputLayer", "RNN"} == set(SUPPORTED_CLASSES)
