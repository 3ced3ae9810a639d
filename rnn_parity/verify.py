"""Verify a saved Keras model layer by layer: file → graph → (Keras, NumPy runtime) → comparisons.

:func:`run_verify` is the library entry point behind ``rnn-parity verify``
(and the check ``export`` runs before writing). The order is chosen so that a
bad file or an unsupported model is refused before TensorFlow is imported or
anything runs:

1. read the file without Keras (:mod:`rnn_parity.model_file`): exit 2 on a bad file;
2. scan its stored configuration (:func:`rnn_parity.graph.scan`): exit 4 on an
   unsupported layer or option, exit 2 without a recurrent layer;
3. read ``--input`` (exit 2);
4. load with Keras in safe mode and build the layer graph from the loaded
   model (:func:`rnn_parity.graph.build_graph`, exit 4 again if needed);
5. run Keras with every layer's output and mask marked, run the NumPy
   runtime, and compare every layer's output, mask and states.

The Keras side is Keras 3, or Keras 2 itself (tf_keras) for a file Keras 2 wrote
(:func:`rnn_parity.keras2.plan`, ``--keras``): Keras 2 loads the file as it is
(:mod:`rnn_parity.keras2_model`), and the runtime computes Keras 2's definitions
(:func:`rnn_parity.keras2.keras2_graph`). Everything after the Keras run is the same.
"""

from __future__ import annotations

import os
import shlex
import time
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationInfo, field_validator, model_validator

from .compare import Comparison
from .environment import environment
from .errors import Unsupported
from .graph import build_graph, scan
from .keras2 import keras2_graph, plan
from .layers import LAYERS
from .model_file import ModelFile, read_model_file
from .model_inputs import Feeds, match_arrays, read_arrays, seeded
from .parity import SideParity, compare_side, named_arrays, run_reference
from .recurrent import n_outputs, state_names
from .runtime import GraphRuntime, expected_weights
from .spec import (
    Fraction,
    PositiveInt,
    ReferenceDtype,
    Seed,
    ToleranceMode,
    ToleranceValue,
    explicit_only,
    option_name,
    option_namer,
    validated,
)
from .tolerance import DEFAULT_ATOL, DEFAULT_MODE, DEFAULT_RTOL, ThreeWay, Tolerance, ToleranceRule

__all__ = ["LayerCheck", "MaskCheck", "VerifyOptions", "VerifyResult", "run_verify"]


class VerifyOptions(BaseModel):
    """What ``verify`` and ``export`` were asked to do, validated as ``check``'s options are.

    Build it with :meth:`build` to get :class:`~rnn_parity.errors.InvalidInput`
    naming the bad option (``--atol must be ≥ 0, got -1.0``); ``N``, ``T`` and
    ``seed`` are None when not given (the model's or the default sizes apply).
    The tolerances default as in ``check`` (:mod:`rnn_parity.tolerance`).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str
    input: str | None = None
    N: PositiveInt | None = None
    T: PositiveInt | None = None
    seed: Seed | None = None
    atol: ToleranceValue = DEFAULT_ATOL
    rtol: ToleranceValue = DEFAULT_RTOL
    reference_dtype: ReferenceDtype = "float64"
    tolerance: ToleranceMode = DEFAULT_MODE
    max_mismatch_frac: Fraction = 0.0
    #: the Keras backend that loads and runs the model (None: ``KERAS_BACKEND``, else tensorflow)
    backend: Literal["tensorflow", "jax", "torch"] | None = None
    #: which Keras verifies a file Keras 2 wrote: 2 (tf_keras), 3, or auto (2 when installed)
    keras: Literal["auto", "2", "3"] = "auto"

    @classmethod
    def build(cls, style: str = "cli", **values) -> VerifyOptions:
        """The options from keyword values (None: not given); raises InvalidInput naming each bad one."""
        return validated(cls, {key: value for key, value in values.items() if value is not None}, style)

    @field_validator("model", "input", mode="before")
    @classmethod
    def _path(cls, value):
        return os.fspath(value) if isinstance(value, os.PathLike) else value

    @field_validator("keras", mode="before")
    @classmethod
    def _keras(cls, value):
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @model_validator(mode="after")
    def _combinations(self, info: ValidationInfo):
        opt = option_namer(info)
        explicit_only(self, opt)
        if self.input is not None:
            given = [option_name(key, "cli") for key in ("N", "T", "seed") if getattr(self, key) is not None]
            if given:
                raise ValueError(f"{', '.join(given)} shape(s) the seeded inputs; they cannot be combined with --input")
        return self

    def command_line(self, command: str = "verify") -> str:
        """The ``rnn-parity`` command that reproduces this run (the options that differ from the defaults)."""
        parts = ["rnn-parity", command, shlex.quote(self.model)]
        for key, info in type(self).model_fields.items():
            value = getattr(self, key)
            if key == "model" or value == info.default:
                continue
            parts += [option_name(key, "cli"), shlex.quote(f"{value:g}" if isinstance(value, float) else str(value))]
        return " ".join(parts)

    @property
    def seed_value(self) -> int:
        return 0 if self.seed is None else self.seed


@dataclass(frozen=True)
class MaskCheck:
    """The mask Keras attached to one output tensor against the runtime's.

    ``keras`` and ``reference`` say whether each side has a mask at all;
    ``mismatches`` counts elements that differ when both do.
    """

    keras: bool
    reference: bool
    mismatches: int
    size: int

    @property
    def passed(self) -> bool:
        return self.keras == self.reference and self.mismatches == 0

    def to_dict(self) -> dict:
        return {
            "keras": self.keras,
            "reference": self.reference,
            "mismatches": self.mismatches,
            "size": self.size,
            "passed": self.passed,
        }


@dataclass(frozen=True)
class LayerCheck:
    """One layer: what it is, and its output, mask and states compared.

    Attributes:
        first_bad_step: for a failing ``(batch, timesteps, …)`` output, the first
            timestep (in the layer's output order) holding an element over tolerance.
        notes: Keras semantics that applied (see :class:`rnn_parity.runtime.Trace`).
    """

    name: str
    class_name: str
    config: dict
    inputs: tuple[str, ...]
    initial_state: tuple[str, ...]
    weights: tuple[tuple[str, tuple[int, ...]], ...]
    params: int
    comparison: Comparison
    masks: tuple[MaskCheck, ...]
    states: dict[str, Comparison]
    first_bad_step: int | None
    notes: tuple[str, ...] = ()

    @property
    def passed(self) -> bool:
        return (
            self.comparison.passed and all(m.passed for m in self.masks) and all(c.passed for c in self.states.values())
        )


@dataclass(frozen=True)
class VerifyResult:
    """Everything a report needs, plus the graph and weights ``export`` writes."""

    options: VerifyOptions
    model_file: ModelFile
    graph: dict
    weights: dict[str, list[np.ndarray]]
    feeds: Feeds
    layers: tuple[LayerCheck, ...]
    outputs: dict[str, Comparison]
    keras_outputs: tuple[np.ndarray, ...]
    total_params: int
    versions: dict[str, str | None]
    seconds: dict[str, float] = field(default_factory=dict)
    #: the tolerance applied to the (first) model output, and the rounding diagnosis there
    tolerance: Tolerance | None = None
    three_way: ThreeWay | None = None
    environment: dict = field(default_factory=dict)
    #: for a file written by Keras 2: how its configuration was rewritten for the Keras that ran it (else None)
    keras2_rewrites: tuple[str, ...] | None = None
    #: the Keras that ran: ``keras`` (2 or 3), ``label`` ("Keras 2 (tf_keras 2.21.0)"), ``reason``
    keras_side: dict = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return all(layer.passed for layer in self.layers) and all(c.passed for c in self.outputs.values())

    @property
    def output(self) -> Comparison:
        """The model's (first) output compared."""
        return next(iter(self.outputs.values()))

    @property
    def first_failure(self) -> LayerCheck | None:
        """The first layer, in execution order, that breaks tolerance or whose mask differs."""
        return next((layer for layer in self.layers if not layer.passed), None)


def _mask_check(keras_mask, reference_mask) -> MaskCheck:
    if keras_mask is None or reference_mask is None:
        size = (
            0
            if keras_mask is None and reference_mask is None
            else int(np.size(keras_mask if keras_mask is not None else reference_mask))
        )
        return MaskCheck(keras=keras_mask is not None, reference=reference_mask is not None, mismatches=0, size=size)
    k, r = np.asarray(keras_mask, dtype=bool), np.asarray(reference_mask, dtype=bool)
    if k.shape != r.shape:
        size = int(max(k.size, r.size))
        return MaskCheck(keras=True, reference=True, mismatches=size, size=size)
    return MaskCheck(keras=True, reference=True, mismatches=int(np.sum(k != r)), size=int(k.size))


def _feeds(options: VerifyOptions, graph: dict, arrays) -> Feeds:
    if arrays is not None:
        return match_arrays(graph, arrays, str(options.input))
    return seeded(graph, N=options.N, T=options.T, seed=options.seed_value)


def _check_weights(graph: dict, keras_run, where: str) -> None:
    """Name each layer's weights as Keras does; refuse a layer whose arrays the reference would read wrongly."""
    for layer in graph["layers"]:
        layer["weights"] = keras_run.weight_names[layer["name"]]
        got, want = len(keras_run.weights[layer["name"]]), expected_weights(layer["class_name"], layer["config"])
        if got != want:
            raise Unsupported(
                f"{where}: layer {layer['name']!r} ({layer['class_name']}) holds {got} weight "
                f"arrays where the reference expects {want}"
            )


def _labels(graph: dict) -> dict[str, list[str]]:
    return {layer["name"]: state_names(layer["class_name"], layer["config"]) for layer in graph["layers"]}


def _output_keys(graph: dict) -> list[str]:
    """A model output is named after its layer, with ``[index]`` when the layer gives several outputs."""
    sources = [source for source, _ in graph["outputs"]]
    return [source if sources.count(source) == 1 else f"{source}[{index}]" for source, index in graph["outputs"]]


def _axes(graph: dict) -> dict[str, tuple[str, ...]]:
    """The names of the axes of each layer's output and states, by array name, where the layer names them."""
    axes = {}
    for layer in graph["layers"]:
        output, state = LAYERS[layer["class_name"]].axis_names(layer["config"])
        if output is not None:
            axes[layer["name"]] = output
        if state is not None:
            axes.update({f"{layer['name']}.{label}": state for label in _labels(graph)[layer["name"]]})
    return axes


def _output_axes(graph: dict, keys: list[str]) -> dict[str, tuple[str, ...]]:
    """:func:`_axes` for the model outputs: a layer's output tensors first, then its states."""
    axes = {}
    layers = {layer["name"]: layer for layer in graph["layers"]}
    for key, (source, index) in zip(keys, graph["outputs"]):
        layer = layers[source]
        output, state = LAYERS[layer["class_name"]].axis_names(layer["config"])
        names = output if index < n_outputs(layer["class_name"], layer["config"]) else state
        if names is not None:
            axes[key] = names
    return axes


def _keras_layers(graph: dict, keras_run) -> dict:
    """Keras's side: each layer's output (a list of two for merge_mode=None) and the states it returns."""
    outputs, states = {}, {}
    for layer in graph["layers"]:
        name, tensors = layer["name"], keras_run.tensors[layer["name"]]
        n_out = n_outputs(layer["class_name"], layer["config"])
        outputs[name] = tensors[0] if n_out == 1 else tensors[:n_out]
        states[name] = tensors[n_out:]
    return named_arrays(outputs, states, _labels(graph))


def _layer_check(layer: dict, keras_run, trace, side: SideParity) -> LayerCheck:
    name, class_name, cfg = layer["name"], layer["class_name"], layer["config"]
    entry = side[name]
    n_out = n_outputs(class_name, cfg)
    states = [f"{name}.{label}" for label in state_names(class_name, cfg) if f"{name}.{label}" in side]
    return LayerCheck(
        name=name,
        class_name=class_name,
        config=cfg,
        inputs=tuple(ref[0] for ref in layer["inputs"]),
        initial_state=tuple(ref[0] for ref in layer.get("initial_state", [])),
        weights=tuple((n, tuple(w.shape)) for n, w in zip(layer["weights"], keras_run.weights[name], strict=True)),
        params=keras_run.param_counts[name],
        comparison=entry.comparison,
        masks=tuple(_mask_check(k, r) for k, r in zip(keras_run.masks[name][:n_out], trace.masks[name], strict=True)),
        states=side.comparisons(states),
        first_bad_step=None if entry.passed else entry.first_bad_step,
        notes=tuple(trace.notes.get(name, ())),
    )


def run_verify(options: VerifyOptions) -> VerifyResult:
    """Verify the model file named in ``options`` layer by layer (see the module docstring)."""
    from .backend import validate

    if options.backend is not None:
        validate(options.backend)  # an uninstalled backend is refused before anything is read
    started = time.perf_counter()
    model_file = read_model_file(options.model)
    where = str(model_file.path)
    side = plan(model_file, options.keras, options.backend)  # which Keras, and the configuration it loads
    translation = side.translation
    scan(translation.config if translation else model_file.config, where)
    arrays = read_arrays(options.input) if options.input is not None else None

    from . import keras_runner
    from .backend import select

    if side.keras == 2:
        from . import keras2_model as keras_side

        select("tensorflow")  # Keras 2 runs on TensorFlow only
        loaded = keras_side.load(model_file, translation)
        graph = keras2_graph(loaded.class_name, loaded.config, where)
    else:
        from . import keras_model as keras_side

        select(options.backend)  # before Keras is imported; TensorFlow only on its own backend
        loaded = keras_side.load(model_file, translation)
        graph = build_graph(loaded.class_name, loaded.config, where)
    feeds = _feeds(options, graph, arrays)
    load_seconds = time.perf_counter() - started

    started = time.perf_counter()
    keras_run = keras_side.run_marked(loaded, graph, feeds.arrays)
    keras_seconds = time.perf_counter() - started
    _check_weights(graph, keras_run, where)
    versions = keras_runner.versions()
    if side.keras == 2:
        versions["tf_keras"] = keras_side.version()
        label = f"Keras 2 (tf_keras {versions['tf_keras']})"
    else:
        label = f"Keras 3 ({versions['keras']}, {versions['backend']} backend)"

    # As in check: the runtime in float64 (the truth), in the model's compute dtype
    # (what a correct implementation in that dtype gets wrong) and in --reference-dtype.
    rule = ToleranceRule.of(options, _compute_dtype(keras_run, graph))
    runs = run_reference(
        lambda dtype: GraphRuntime(graph, keras_run.weights, dtype=dtype).run(feeds.arrays),
        rule,
        options.reference_dtype,
    )
    keras_layers = _keras_layers(graph, keras_run)
    layer_reference = runs.reference(rule, lambda trace: named_arrays(trace.outputs, trace.states, _labels(graph)))
    layers = compare_side("keras", keras_layers, layer_reference, where=lambda key: f"layer {key!r}", axes=_axes(graph))
    keys = _output_keys(graph)
    keras_outputs = {key: keras_run.tensors[source][index] for key, (source, index) in zip(keys, graph["outputs"])}
    reference = runs.reference(rule, lambda trace: dict(zip(keys, trace.model_outputs, strict=True)))
    outputs = compare_side(
        "keras", keras_outputs, reference, where=lambda key: f"model output {key}", axes=_output_axes(graph, keys)
    )
    return VerifyResult(
        options=options,
        model_file=model_file,
        graph=graph,
        weights=keras_run.weights,
        feeds=feeds,
        layers=tuple(_layer_check(layer, keras_run, runs.expected, layers) for layer in graph["layers"]),
        outputs=outputs.comparisons(),
        keras_outputs=tuple(keras_outputs.values()),
        total_params=keras_run.total_params,
        versions=versions,
        seconds={"load": load_seconds, "keras": keras_seconds, "reference": runs.seconds},
        tolerance=outputs[keys[0]].tolerance,
        three_way=_diagnosis(reference.worst_three_way(keras_outputs, keys[0]), layer_reference, keras_layers),
        environment=environment(options.command_line()),
        keras2_rewrites=tuple(translation.rewrites) if translation else None,
        keras_side={"keras": side.keras, "label": label, "reason": side.reason},
    )


def _diagnosis(output: ThreeWay, layer_reference, keras_layers: dict) -> ThreeWay:
    """The model outputs' diagnosis, unless a layer's output or state needs explaining more."""
    if output.diagnosis != "rounding" or not keras_layers:
        return output
    worst = layer_reference.worst_three_way(keras_layers, next(iter(keras_layers)))
    return output if worst.diagnosis == "rounding" else worst


def _compute_dtype(keras_run, graph: dict) -> str:
    """The dtype Keras computed the model's output in (float64 models stay float64)."""
    source, index = graph["outputs"][0]
    dtype = np.asarray(keras_run.tensors[source][index]).dtype
    return "float64" if dtype == np.float64 else "float32"
