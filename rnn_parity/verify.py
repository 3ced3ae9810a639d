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
"""

from __future__ import annotations

import math
import shlex
import time
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from .compare import Comparison, compare
from .environment import environment
from .errors import InvalidInput, RnnParityError, Unsupported
from .graph import build_graph, scan
from .model_file import ModelFile, read_model_file
from .model_inputs import Feeds, match_arrays, read_arrays, seeded
from .runtime import GraphRuntime, expected_weights
from .tolerance import ThreeWay, Tolerance, resolve, three_way

__all__ = ["LayerCheck", "MaskCheck", "VerifyOptions", "VerifyResult", "run_verify", "state_labels"]


@dataclass(frozen=True)
class VerifyOptions:
    """What ``verify`` and ``export`` were asked to do (None: not given)."""

    model: str
    input: str | None = None
    N: int | None = None
    T: int | None = None
    seed: int | None = None
    atol: float | None = None
    rtol: float | None = None
    reference_dtype: str = "float64"
    tolerance: str = "explicit"
    max_mismatch_frac: float = 0.0

    #: ``check``'s defaults, with the same rationale (docs/tolerances.md, "Default tolerances and why").
    DEFAULT_ATOL: ClassVar[float] = 1e-5
    DEFAULT_RTOL: ClassVar[float] = 1.3e-6

    def validate(self) -> VerifyOptions:
        """Raise InvalidInput naming the first bad option and its value."""
        for flag, value in (("--N", self.N), ("--T", self.T)):
            if value is not None and (not isinstance(value, int) or value < 1):
                raise InvalidInput(f"{flag} must be a positive integer, got {value!r}")
        if self.seed is not None and (not isinstance(self.seed, int) or self.seed < 0):
            raise InvalidInput(f"--seed must be ≥ 0, got {self.seed!r}")
        for flag, value in (("--atol", self.atol), ("--rtol", self.rtol)):
            if value is not None and (not math.isfinite(value) or value < 0):
                raise InvalidInput(f"{flag} must be a finite number ≥ 0, got {value!r}")
        if self.tolerance not in ("explicit", "dtype", "auto"):
            raise InvalidInput(f"--tolerance must be one of explicit, dtype, auto, got {self.tolerance!r}")
        for flag, value in (("--atol", self.atol), ("--rtol", self.rtol)):
            if value is not None and self.tolerance != "explicit":
                raise InvalidInput(f"{flag} {value:g} applies to explicit tolerances, but --tolerance {self.tolerance}")
        if not (math.isfinite(self.max_mismatch_frac) and 0 <= self.max_mismatch_frac <= 1):
            raise InvalidInput(f"--max-mismatch-frac must be between 0 and 1, got {self.max_mismatch_frac!r}")
        if self.reference_dtype not in ("float64", "float32"):
            raise InvalidInput(f"--reference-dtype must be one of float64, float32, got {self.reference_dtype!r}")
        if self.input is not None:
            given = [
                flag for flag, value in (("--N", self.N), ("--T", self.T), ("--seed", self.seed)) if value is not None
            ]
            if given:
                raise InvalidInput(
                    f"{', '.join(given)} shape(s) the seeded inputs; they cannot be combined with --input"
                )
        return self

    @property
    def atol_value(self) -> float:
        return self.DEFAULT_ATOL if self.atol is None else self.atol

    @property
    def rtol_value(self) -> float:
        return self.DEFAULT_RTOL if self.rtol is None else self.rtol

    def command_line(self, command: str = "verify") -> str:
        """The ``rnn-parity`` command that reproduces this run."""
        parts = ["rnn-parity", command, shlex.quote(str(self.model))]
        for flag, value in (
            ("--input", self.input),
            ("--N", self.N),
            ("--T", self.T),
            ("--seed", self.seed),
            ("--atol", self.atol),
            ("--rtol", self.rtol),
        ):
            if value is not None:
                parts += [flag, shlex.quote(f"{value:g}" if isinstance(value, float) else str(value))]
        for flag, value, default in (
            ("--reference-dtype", self.reference_dtype, "float64"),
            ("--tolerance", self.tolerance, "explicit"),
            ("--max-mismatch-frac", self.max_mismatch_frac, 0.0),
        ):
            if value != default:
                parts += [flag, f"{value:g}" if isinstance(value, float) else str(value)]
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


def state_labels(class_name: str, config: dict) -> list[str]:
    """``h`` (and ``c`` for LSTM), prefixed ``forward_``/``backward_`` inside Bidirectional."""
    inner = config["layer"]["class_name"] if class_name == "Bidirectional" else class_name
    names = ["h", "c"] if inner == "LSTM" else ["h"]
    if class_name == "Bidirectional":
        return [f"{side}_{n}" for side in ("forward", "backward") for n in names]
    return names


def _first_bad_step(actual, expected, atol: float, rtol: float) -> int | None:
    a, e = np.asarray(actual), np.asarray(expected)
    if a.ndim < 3 or a.shape != e.shape:
        return None
    for t in range(a.shape[1]):
        if not compare(a[:, t], e[:, t], atol=atol, rtol=rtol).passed:
            return t
    return None


def _mask_check(keras_mask, reference_mask) -> MaskCheck:
    if keras_mask is None or reference_mask is None:
        size = (
            0
            if keras_mask is None and reference_mask is None
            else int(np.size(keras_mask if keras_mask is not None else reference_mask))
        )
        return MaskCheck(keras_mask is not None, reference_mask is not None, 0, size)
    k, r = np.asarray(keras_mask, dtype=bool), np.asarray(reference_mask, dtype=bool)
    if k.shape != r.shape:
        return MaskCheck(True, True, int(max(k.size, r.size)), int(max(k.size, r.size)))
    return MaskCheck(True, True, int(np.sum(k != r)), int(k.size))


def _checked_compare(where: str, actual, expected, tol: Tolerance) -> Comparison:
    try:
        return compare(actual, expected, atol=tol.atol, rtol=tol.rtol, max_mismatch_frac=tol.max_mismatch_frac)
    except ValueError as exc:
        raise RnnParityError(f"{where}: {exc}") from None


def _feeds(options: VerifyOptions, graph: dict, arrays) -> Feeds:
    if arrays is not None:
        return match_arrays(graph, arrays, str(options.input))
    return seeded(graph, N=options.N, T=options.T, seed=options.seed_value)


def run_verify(options: VerifyOptions) -> VerifyResult:
    """Verify the model file named in ``options`` layer by layer (see the module docstring)."""
    options.validate()
    started = time.perf_counter()
    model_file = read_model_file(options.model)
    where = str(model_file.path)
    scan(model_file.config, where)
    arrays = read_arrays(options.input) if options.input is not None else None

    from . import keras_model, keras_runner  # imports TensorFlow

    loaded = keras_model.load(model_file)
    graph = build_graph(loaded.class_name, loaded.config, where)
    feeds = _feeds(options, graph, arrays)
    load_seconds = time.perf_counter() - started

    started = time.perf_counter()
    keras_run = keras_model.run_marked(loaded, graph, feeds.arrays)
    keras_seconds = time.perf_counter() - started
    for layer in graph["layers"]:
        layer["weights"] = keras_run.weight_names[layer["name"]]
        got, want = len(keras_run.weights[layer["name"]]), expected_weights(layer["class_name"], layer["config"])
        if got != want:
            raise Unsupported(
                f"{where}: layer {layer['name']!r} ({layer['class_name']}) holds {got} weight "
                f"arrays where the reference expects {want}"
            )

    # As in check: the runtime in float64 (the truth), in the model's compute dtype
    # (what a correct implementation in that dtype gets wrong) and in --reference-dtype.
    compute_dtype = _compute_dtype(keras_run, graph)
    started = time.perf_counter()
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        runs = {
            dtype: GraphRuntime(graph, keras_run.weights, dtype=dtype).run(feeds.arrays)
            for dtype in dict.fromkeys(["float64", compute_dtype, options.reference_dtype])
        }
    reference_seconds = time.perf_counter() - started
    trace = runs["float64"] if options.tolerance == "auto" else runs[options.reference_dtype]
    truth, low = runs["float64"], runs[compute_dtype]

    def tol_for(truth_value, low_value) -> Tolerance:
        return resolve(
            options.tolerance,
            atol=options.atol_value,
            rtol=options.rtol_value,
            compute_dtype=compute_dtype,
            max_mismatch_frac=options.max_mismatch_frac,
            truth=truth_value,
            low=low_value,
        )

    checks = []
    for layer in graph["layers"]:
        name, class_name, cfg = layer["name"], layer["class_name"], layer["config"]
        keras_tensors = keras_run.tensors[name]
        n_out = len(trace.masks[name])  # outputs; with return_state Keras's states follow
        got = keras_tensors[0] if n_out == 1 else keras_tensors[:n_out]
        want = trace.outputs[name]
        tol = tol_for(truth.outputs[name], low.outputs[name])
        comparison = _checked_compare(f"layer {name!r}", got, want, tol)
        states = {}
        for i, (label, k_state, r_state) in enumerate(
            zip(state_labels(class_name, cfg), keras_tensors[n_out:], trace.states.get(name, []), strict=False)
        ):
            state_tol = tol_for(truth.states[name][i], low.states[name][i])
            states[f"{name}.{label}"] = _checked_compare(f"layer {name!r} state {label}", k_state, r_state, state_tol)
        masks = tuple(_mask_check(k, r) for k, r in zip(keras_run.masks[name][:n_out], trace.masks[name], strict=True))
        step = None if comparison.passed else _first_bad_step(got, want, tol.atol, tol.rtol)
        checks.append(
            LayerCheck(
                name=name,
                class_name=class_name,
                config=cfg,
                inputs=tuple(ref[0] for ref in layer["inputs"]),
                initial_state=tuple(ref[0] for ref in layer.get("initial_state", [])),
                weights=tuple(
                    (n, tuple(w.shape)) for n, w in zip(layer["weights"], keras_run.weights[name], strict=True)
                ),
                params=keras_run.param_counts[name],
                comparison=comparison,
                masks=masks,
                states=states,
                first_bad_step=step,
                notes=tuple(trace.notes.get(name, ())),
            )
        )
    outputs, keras_outputs, output_tol = {}, [], None
    for i, ((source, index), value) in enumerate(zip(graph["outputs"], trace.model_outputs, strict=True)):
        keras_value = keras_run.tensors[source][index]
        keras_outputs.append(keras_value)
        key = source if len([o for o in graph["outputs"] if o[0] == source]) == 1 else f"{source}[{index}]"
        tol = tol_for(truth.model_outputs[i], low.model_outputs[i])
        outputs[key] = _checked_compare(f"model output {key}", keras_value, value, tol)
        output_tol = output_tol or tol
    rounding = three_way(keras_outputs[0], truth.model_outputs[0], low.model_outputs[0], compute_dtype)
    return VerifyResult(
        options=options,
        model_file=model_file,
        graph=graph,
        weights=keras_run.weights,
        feeds=feeds,
        layers=tuple(checks),
        outputs=outputs,
        keras_outputs=tuple(keras_outputs),
        total_params=keras_run.total_params,
        versions=keras_runner.versions(),
        seconds={"load": load_seconds, "keras": keras_seconds, "reference": reference_seconds},
        tolerance=output_tol,
        three_way=rounding,
        environment=environment(options.command_line()),
    )


def _compute_dtype(keras_run, graph: dict) -> str:
    """The dtype Keras computed the model's output in (float64 models stay float64)."""
    source, index = graph["outputs"][0]
    dtype = np.asarray(keras_run.tensors[source][index]).dtype
    return "float64" if dtype == np.float64 else "float32"
