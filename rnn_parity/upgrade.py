"""The upgrade report: does Keras 3 compute the same model as the Keras 2 that wrote a file?

For a file written by Keras 2 (``.h5``, or a ``.keras`` archive), :func:`run_upgrade` runs the same seeded inputs
through

* Keras 2 itself (``tf_keras``, the ``keras2`` extra), loading the file as it is
  (:func:`rnn_parity.keras2.translate_for_keras2`: old defaults written out, cuDNN
  layers as the LSTM/GRU computing the same),
* Keras 3, loading the configuration :func:`rnn_parity.keras2.translate` rewrote
  (a copy of the file, so the weights are Keras 3's reading of it), and
* the NumPy runtime computing Keras 2's definitions (``keras2:hard_sigmoid``, the
  masks Keras 2 hands to each layer: :func:`rnn_parity.keras2.keras2_graph`) with
  Keras 2's weights, in float64,

and compares every layer's output and the mask attached to it, Keras 3 against
Keras 2 (the verdict) and the reference against Keras 2 (proof that the reason is
understood), with the pass rule of :mod:`rnn_parity.compare`. A layer that differs
is explained by the options that changed meaning there (``hard_sigmoid``) or, when
it has none, by the nearest layer it reads from (directly or further up) whose
output or mask differs. Imports Keras (both versions) lazily.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .compare import compare
from .errors import InvalidInput
from .graph import build_graph, scan
from .keras2 import Keras2File, Translation, detect_file, keras2_graph, translate, translate_for_keras2
from .model_file import read_model_file
from .model_inputs import seeded
from .runtime import GraphRuntime

__all__ = ["UpgradeLayer", "UpgradeResult", "run_upgrade"]


@dataclass(frozen=True)
class UpgradeLayer:
    """One layer, Keras 3 against Keras 2.

    Attributes:
        name, class_name: the layer.
        same: Keras 3's output equals Keras 2's within the tolerance, and so does its mask.
        mask_same: the masks the two attach to the output agree (no mask counts as every step real).
        max_abs: largest |Keras 3 − Keras 2| over the layer's output.
        reason: why it differs ("" when the same).
        reference_same, reference_max_abs: the NumPy reference computing Keras 2's
            definitions (``keras2:hard_sigmoid``), float64, against Keras 2, same rule.
    """

    name: str
    class_name: str
    same: bool
    max_abs: float
    reason: str = ""
    reference_same: bool = True
    reference_max_abs: float = 0.0
    mask_same: bool = True


@dataclass
class UpgradeResult:
    """The upgrade report of one file.

    Attributes:
        same: Keras 3 computes the same model (every layer the same).
        keras_version: the Keras that wrote the file.
        rewrites: how the configuration was translated for Keras 3.
        layers: per layer, in the model's order.
    """

    file: str
    keras_version: str | None
    evidence: str
    atol: float
    rtol: float
    rewrites: list[str] = field(default_factory=list)
    layers: list[UpgradeLayer] = field(default_factory=list)

    @property
    def same(self) -> bool:
        return all(layer.same for layer in self.layers)

    @property
    def summary(self) -> str:
        if self.same:
            return "yes: Keras 3 computes the same model"
        first = next(layer for layer in self.layers if not layer.same)
        where = f"max |Δ| {first.max_abs:.2g}" if first.max_abs or first.mask_same else "its mask differs"
        return f"no: {first.reason} ({where} at layer {first.name})"

    def to_dict(self) -> dict:
        return {
            "file": self.file,
            "written_by": {"keras_version": self.keras_version, "evidence": self.evidence},
            "same": self.same,
            "summary": self.summary,
            "tolerance": {"atol": self.atol, "rtol": self.rtol},
            "rewrites": list(self.rewrites),
            "layers": [
                {
                    "name": layer.name,
                    "class_name": layer.class_name,
                    "same": layer.same,
                    "max_abs": layer.max_abs,
                    "mask_same": layer.mask_same,
                    "reason": layer.reason,
                    "reference": {"same": layer.reference_same, "max_abs": layer.reference_max_abs},
                }
                for layer in self.layers
            ],
        }


def _first(value):
    return value[0] if isinstance(value, (list, tuple)) else value


def _per_layer_outputs(framework, model, arrays: list[np.ndarray], mask_of=None) -> tuple[dict, dict]:
    """Every layer's first output on ``arrays`` and the mask attached to it, by layer name."""
    from .keras2_model import layer_outputs

    names = [layer.name for layer in model.layers if type(layer).__name__ != "InputLayer"]
    tensors, masks = layer_outputs(framework, model, names, arrays, mask_of)
    return {name: values[0] for name, values in tensors.items()}, {name: values[0] for name, values in masks.items()}


def _same_mask(a, b) -> bool:
    """Two attached masks agree; no mask counts as every step real."""
    if a is None or b is None:
        return all(m is None or bool(np.all(m)) for m in (a, b))
    return np.shape(a) == np.shape(b) and bool(np.array_equal(a, b))


def _sources(graph: dict) -> dict[str, list[str]]:
    """Each layer's nearest sources first: the layers it reads, then theirs, and so on (breadth first)."""
    reads = {layer["name"]: [ref[0] for ref in (*layer["inputs"], *layer.get("initial_state", []))]
             for layer in graph["layers"]}  # fmt: skip
    found = {}
    for name in reads:
        order, queue = [], list(reads[name])
        while queue:
            source = queue.pop(0)
            if source not in order:
                order.append(source)
                queue.extend(reads.get(source, []))
        found[name] = order
    return found


def _explain(name: str, translation: Translation, sources: list[str], differs: dict[str, str]) -> str:
    """Why layer ``name`` differs: its own changes of meaning, else the nearest source that differs."""
    changes = translation.changes_at(name)
    if changes:
        return "; ".join(change.describe() for change in changes)
    source = next((s for s in sources if s in differs), None)
    if source is None:
        return "differs with no option known to have changed meaning"
    if differs[source] == "mask":
        return f"its input's mask differs (from layer {source})"
    return f"its input differs (from layer {source})"


def run_upgrade(
    path: str | Path, *, N: int | None = None, T: int | None = None, seed: int = 0, atol=1e-5, rtol=1.3e-6
) -> UpgradeResult:
    """Compare Keras 3 with Keras 2 on a file Keras 2 wrote (``.h5`` or ``.keras``), layer by layer.

    Raises:
        InvalidInput: not a Keras model file, or not one Keras 2 wrote.
        Unsupported: tf-keras is not installed, or the file holds something
            :func:`~rnn_parity.keras2.translate` or the input generator cannot handle.
    """
    model_file = read_model_file(path)
    where = str(model_file.path)
    found: Keras2File | None = detect_file(model_file)
    if found is None:
        raise InvalidInput(f"{where}: was not written by Keras 2 (keras_version {model_file.keras_version})")
    translation = translate(model_file.config, found.keras_version, where=where)
    scan(translation.config, where)
    from . import keras2_model
    from .keras_model import load
    from .keras_runner import _stderr_parked, get_mask, import_keras

    tf_keras = keras2_model.import_tf_keras()
    loaded = load(model_file, translation)
    new = loaded.model
    # The graph of Keras 3's model: its configuration records the masks Keras passes between layers.
    graph = build_graph(loaded.class_name, loaded.config, where)
    feeds = seeded(graph, N=N, T=T, seed=seed)
    arrays = [feeds.arrays[spec["name"]] for spec in graph["inputs"]]
    old = keras2_model.load(model_file, translate_for_keras2(model_file.config, found.keras_version, where=where))
    with _stderr_parked():
        old_outs, old_masks = _per_layer_outputs(tf_keras, old.model, arrays)
        new_outs, new_masks = _per_layer_outputs(import_keras(), new, arrays, get_mask)

    # The reference computes Keras 2's definitions on Keras 2's own graph of the model (and its weights).
    old_graph = keras2_graph(old.class_name, old.config, where)
    weights = {layer["name"]: old.model.get_layer(layer["name"]).get_weights() for layer in old_graph["layers"]}
    trace = GraphRuntime(old_graph, weights, dtype="float64").run(feeds.arrays)

    result = UpgradeResult(where, found.keras_version, found.evidence, atol, rtol, list(translation.rewrites))
    sources, differs = _sources(graph), {}
    for layer in new.layers:
        if layer.name not in new_outs:
            continue
        cmp = compare(new_outs[layer.name], old_outs[layer.name], atol=atol, rtol=rtol)
        ours = compare(old_outs[layer.name], _first(trace.outputs[layer.name]), atol=atol, rtol=rtol)
        mask_same = _same_mask(new_masks[layer.name], old_masks[layer.name])
        same = cmp.passed and mask_same
        if not same:
            differs[layer.name] = "values" if not cmp.passed else "mask"
        result.layers.append(
            UpgradeLayer(
                layer.name,
                type(layer).__name__,
                same,
                cmp.max_abs_diff,
                "" if same else _explain(layer.name, translation, sources.get(layer.name, []), differs),
                reference_same=ours.passed,
                reference_max_abs=ours.max_abs_diff,
                mask_same=mask_same,
            )
        )
    return result
