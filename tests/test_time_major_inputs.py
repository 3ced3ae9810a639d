"""Seeded inputs for Keras 2 models with ``time_major=True``: ``--N`` is the batch and ``--T`` the timesteps
whatever the layout, and the padding ends each sample's sequence along the time axis (axis 0 there).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from rnn_parity.errors import InvalidInput
from rnn_parity.model_inputs import is_time_major, match_arrays, seeded

from conftest import invoke_json


def _layer(name, class_name, source, **config):
    return {"name": name, "class_name": class_name, "config": config, "inputs": [[source, 0]]}


def _lstm(name, source, *, time_major):
    config = {"units": 4, "return_sequences": True}
    if time_major:
        config["time_major"] = True  # the graph keeps the option only when it is true
    return _layer(name, "LSTM", source, **config)


def _graph(*layers, shape=(None, None, 3), dtype="float32"):
    return {
        "inputs": [{"name": "x", "shape": list(shape), "dtype": dtype}],
        "outputs": [[layers[-1]["name"], 0]],
        "layers": list(layers),
    }


def _masked_lstm(*, time_major, shape=(None, None, 3)):
    """x → Masking → LSTM, the LSTM time-major or not."""
    return _graph(
        _layer("mask", "Masking", "x", mask_value=0.0), _lstm("lstm", "mask", time_major=time_major), shape=shape
    )


def _padding(x, lengths, time_axis):
    """Whether each (sample, step) is padding, as the array holds it: all features 0."""
    steps = np.moveaxis(x, time_axis, 1)  # (sample, step, features)
    padded = np.all(steps == 0.0, axis=-1)
    want = np.arange(steps.shape[1])[None, :] >= np.asarray(lengths)[:, None]
    return padded, want


def test_a_time_major_input_gets_n_on_the_batch_axis_and_padding_along_time():
    feeds = seeded(_masked_lstm(time_major=True), N=3, T=7, seed=1)
    x = feeds.arrays["x"]
    assert x.shape == (7, 3, 3)  # (timesteps, batch, features)
    assert (feeds.N, feeds.T, feeds.time_major) == (3, 7, frozenset({"x"}))
    lengths = feeds.lengths["x"]
    assert len(lengths) == 3 and all(1 <= n <= 7 for n in lengths)
    for sample, n in enumerate(lengths):  # real steps first, then padding to the end of the sample's sequence
        assert np.all(x[n:, sample] == 0.0)
        assert np.all(x[:n, sample] != 0.0)
    padded, want = _padding(x, lengths, time_axis=0)
    np.testing.assert_array_equal(padded, want)


def test_a_batch_major_input_is_unchanged_and_draws_the_same_lengths():
    batch_major = seeded(_masked_lstm(time_major=False), N=3, T=7, seed=1)
    time_major = seeded(_masked_lstm(time_major=True), N=3, T=7, seed=1)
    x = batch_major.arrays["x"]
    assert x.shape == (3, 7, 3)
    assert (batch_major.N, batch_major.T, batch_major.time_major) == (3, 7, frozenset())
    assert batch_major.lengths == time_major.lengths
    padded, want = _padding(x, batch_major.lengths["x"], time_axis=1)
    np.testing.assert_array_equal(padded, want)


def test_the_defaults_fill_the_batch_and_time_axes_of_a_time_major_input():
    feeds = seeded(_masked_lstm(time_major=True))
    assert feeds.arrays["x"].shape == (10, 4, 3)  # T = 10 timesteps, N = 4 samples
    assert (feeds.N, feeds.T) == (4, 10)


def test_time_major_is_found_through_layers_that_keep_the_step_and_batch_axes():
    bidirectional = _layer(
        "bi",
        "Bidirectional",
        "drop",
        merge_mode="concat",
        layer={"class_name": "GRU", "config": {"units": 2, "time_major": True}},
    )
    chain = (_layer("dense", "Dense", "x", units=5), _layer("drop", "Dropout", "dense"), bidirectional)
    assert is_time_major(_graph(*chain), "x")
    in_time = _layer("td", "TimeDistributed", "x", layer={"class_name": "Dense", "config": {"units": 2}})
    assert is_time_major(_graph(in_time, _lstm("lstm", "td", time_major=True)), "x")
    # Conv1D drops the mask: the axes after it are its own, so the search stops there
    assert not is_time_major(
        _graph(_layer("conv", "Conv1D", "x", filters=2), _lstm("lstm", "conv", time_major=True)), "x"
    )
    assert not is_time_major(_masked_lstm(time_major=False), "x")


def test_time_major_ids_are_padded_with_zeros_along_time():
    embedding = _layer("emb", "Embedding", "x", input_dim=9, output_dim=4, mask_zero=True)
    feeds = seeded(
        _graph(embedding, _lstm("lstm", "emb", time_major=True), shape=(None, None), dtype="int32"), N=2, T=6
    )
    ids = feeds.arrays["x"]
    assert ids.shape == (6, 2) and ids.dtype == np.int32
    for sample, n in enumerate(feeds.lengths["x"]):
        assert np.all(ids[n:, sample] == 0) and np.all(ids[:n, sample] > 0)


def test_sizes_a_time_major_model_fixes_are_checked_on_their_own_axes():
    fixed_batch = _masked_lstm(time_major=True, shape=(None, 5, 3))  # batch 5 on axis 1, time open on axis 0
    assert seeded(fixed_batch, T=6).arrays["x"].shape == (6, 5, 3)
    assert seeded(fixed_batch, N=5).arrays["x"].shape == (10, 5, 3)
    with pytest.raises(InvalidInput) as err:
        seeded(fixed_batch, N=2)
    assert str(err.value) == "--N 2: the model fixes the batch size to 5 (axis 1 of the time-major input 'x')"
    fixed_time = _masked_lstm(time_major=True, shape=(6, None, 3))
    assert seeded(fixed_time, N=2).arrays["x"].shape == (6, 2, 3)
    with pytest.raises(InvalidInput) as err:
        seeded(fixed_time, T=4)
    assert str(err.value) == "--T 4: the model fixes the number of timesteps to 6 (axis 0 of the time-major input 'x')"
    with pytest.raises(InvalidInput) as err:  # a batch-major model's message is as it was
        seeded(_masked_lstm(time_major=False, shape=(5, None, 3)), N=2)
    assert str(err.value) == "--N 2: the model fixes the batch size to 5"


def test_given_time_major_arrays_report_the_batch_and_timesteps():
    graph = _masked_lstm(time_major=True, shape=(None, None, 3))
    feeds = match_arrays(graph, {"x": np.ones((7, 3, 3))}, "x.npy")
    assert (feeds.N, feeds.T) == (3, 7)
    with pytest.raises(InvalidInput, match=r"the model expects \(T, N, 3\)$"):
        match_arrays(graph, {"x": np.ones((7, 3))}, "x.npy")


@pytest.mark.keras
def test_verify_seeds_a_keras2_time_major_file_with_n_samples_of_t_steps(tmp_path):
    from rnn_parity.keras_runner import import_keras

    import_keras()  # TensorFlow's log levels first
    k2 = pytest.importorskip("tf_keras", reason="tf-keras (the keras2 extra) is not installed")
    model = k2.Sequential(
        [
            k2.layers.Masking(input_shape=(None, 2)),
            k2.layers.LSTM(4, time_major=True, return_sequences=True, name="lstm"),
            k2.layers.SimpleRNN(3, time_major=True, name="last"),
        ]
    )
    path = tmp_path / "time_major.h5"
    with warnings.catch_warnings():  # tf_keras calls .h5 "legacy"
        warnings.simplefilter("ignore", UserWarning)
        model.save(path)
    report = invoke_json(["verify", path, "--N", 3, "--T", 7])
    name = report["model"]["inputs"][0]["name"]
    assert report["passed"] is True
    assert report["inputs"]["shapes"] == {name: [7, 3, 2]}  # (timesteps, batch, features)
    assert (report["config"]["N"], report["config"]["T"]) == (3, 7)
    assert len(report["inputs"]["lengths"][name]) == 3
