"""Export a verified model: one ``.npz`` the NumPy runtime runs without TensorFlow.

:func:`run_export` verifies the model layer by layer (:func:`rnn_parity.verify.run_verify`),
packs the graph and weights (:func:`rnn_parity.runtime.pack`), loads those very
bytes back with :func:`rnn_parity.runtime.load` and runs them on the same
inputs, and writes the file (atomically) only when both the layer-by-layer
comparison and this round trip agree with Keras. Nothing is written otherwise.

The file records the dtype the model runs in (``dtype``): by default the one the model
computes in (float32 for a float32 model), or the one asked for. The round trip runs in
that dtype, so the model is verified as it will run before it is written.
"""

from __future__ import annotations

import copy
import io
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import __version__
from .compare import Comparison, compare
from .errors import InvalidInput
from .files import write_atomic
from .runtime import RECORDED_DTYPES, load, pack
from .verify import VerifyOptions, VerifyResult, run_verify

__all__ = ["ExportResult", "compute_dtype", "exported_graph", "run_export"]


@dataclass(frozen=True)
class ExportResult:
    """The verification, the round trip of the packed file, and whether it was written."""

    verify: VerifyResult
    path: Path
    written: bool
    size: int = 0
    roundtrip: dict[str, Comparison] = field(default_factory=dict)
    #: the dtype the exported model runs in (and the round trip ran in); None when the verification failed
    dtype: str | None = None

    @property
    def passed(self) -> bool:
        return self.verify.passed and bool(self.roundtrip) and all(c.passed for c in self.roundtrip.values())


def compute_dtype(result: VerifyResult) -> str:
    """The dtype Keras computed the model in: float64 for a float64 model, else float32 (as verify decides)."""
    return "float64" if np.asarray(result.keras_outputs[0]).dtype == np.float64 else "float32"


def exported_graph(result: VerifyResult, dtype: str | None = None) -> dict:
    """The verified graph plus where it came from, the evidence that it matches Keras, and its ``dtype``.

    ``dtype`` (default: the model's compute dtype) is the one the file runs in by default.
    """
    graph = copy.deepcopy(result.graph)
    graph["dtype"] = dtype or compute_dtype(result)
    opts, feeds, source = result.options, result.feeds, result.model_file
    graph["source"] = {
        "file": source.path.name,
        "format": source.format,
        "sha256": source.sha256,
        "keras_version": source.keras_version,
    }
    graph["producer"] = {"rnn_parity": __version__, **result.versions}
    graph["verification"] = {
        "passed": result.passed,
        "atol": result.tolerance.atol,
        "rtol": result.tolerance.rtol,
        "tolerance": opts.tolerance,
        "reference_dtype": opts.reference_dtype,
        "inputs": "seeded" if opts.input is None else "file",
        "seed": None if opts.input is not None else opts.seed_value,
        "shapes": feeds.shapes(),
        "max_abs_diff": {key: c.max_abs_diff for key, c in result.outputs.items()},
        "layers": len(result.layers),
        "keras_side": result.keras_side.get("label"),
    }
    return graph


def run_export(options: VerifyOptions, output: str | os.PathLike, *, dtype: str | None = None) -> ExportResult:
    """Verify ``options.model`` and, when parity holds, write it to ``output`` as an ``.npz``.

    Args:
        options: what to verify and how (as for ``verify``).
        output: the ``.npz`` to write.
        dtype: ``"float32"`` or ``"float64"``, the dtype the exported model runs in by default
            and the round trip is run in; None: the model's compute dtype.
    """
    if dtype is not None and dtype not in RECORDED_DTYPES:
        raise InvalidInput(f"dtype must be one of {', '.join(RECORDED_DTYPES)}, got {dtype!r}")
    output = Path(output)
    if output.exists() and Path(options.model).exists() and output.resolve() == Path(options.model).resolve():
        raise InvalidInput(f"-o {output}: is the model file itself; choose another name")
    result = run_verify(options)
    if not result.passed:
        return ExportResult(result, output, written=False)
    graph = exported_graph(result, dtype)
    data = pack(graph, result.weights)
    reloaded = load(io.BytesIO(data), where=str(output))  # in the recorded dtype
    outputs = reloaded.run(result.feeds.arrays).model_outputs
    # The same tolerance each output was verified with.
    roundtrip = {
        key: compare(
            keras_value,
            value,
            atol=result.outputs[key].atol,
            rtol=result.outputs[key].rtol,
            max_mismatch_frac=result.outputs[key].max_mismatch_frac,
        )
        for key, keras_value, value in zip(result.outputs, result.keras_outputs, outputs, strict=True)
    }
    if not all(c.passed for c in roundtrip.values()):
        return ExportResult(result, output, written=False, roundtrip=roundtrip, dtype=graph["dtype"])
    try:
        write_atomic(output, data)
    except OSError as exc:  # checked before the verification; something changed since
        raise InvalidInput(f"-o {output}: cannot write there ({exc.strerror or exc})") from None
    return ExportResult(result, output, written=True, size=len(data), roundtrip=roundtrip, dtype=graph["dtype"])
