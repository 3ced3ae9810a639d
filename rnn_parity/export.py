"""Export a verified model: one ``.npz`` the NumPy runtime runs without TensorFlow.

:func:`run_export` verifies the model layer by layer (:func:`rnn_parity.verify.run_verify`),
packs the graph and weights (:func:`rnn_parity.runtime.pack`), loads those very
bytes back with :func:`rnn_parity.runtime.load` and runs them on the same
inputs, and writes the file (atomically) only when both the layer-by-layer
comparison and this round trip agree with Keras. Nothing is written otherwise.
"""

from __future__ import annotations

import copy
import io
import os
from dataclasses import dataclass, field
from pathlib import Path

from . import __version__
from .compare import Comparison, compare
from .errors import InvalidInput
from .files import write_atomic
from .runtime import load, pack
from .verify import VerifyOptions, VerifyResult, run_verify

__all__ = ["ExportResult", "exported_graph", "run_export"]


@dataclass(frozen=True)
class ExportResult:
    """The verification, the round trip of the packed file, and whether it was written."""

    verify: VerifyResult
    path: Path
    written: bool
    size: int = 0
    roundtrip: dict[str, Comparison] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.verify.passed and bool(self.roundtrip) and all(c.passed for c in self.roundtrip.values())


def exported_graph(result: VerifyResult) -> dict:
    """The verified graph plus where it came from and the evidence that it matches Keras."""
    graph = copy.deepcopy(result.graph)
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


def run_export(options: VerifyOptions, output: str | os.PathLike) -> ExportResult:
    """Verify ``options.model`` and, when parity holds, write it to ``output`` as an ``.npz``."""
    output = Path(output)
    if output.exists() and Path(options.model).exists() and output.resolve() == Path(options.model).resolve():
        raise InvalidInput(f"-o {output}: is the model file itself; choose another name")
    result = run_verify(options)
    if not result.passed:
        return ExportResult(result, output, written=False)
    data = pack(exported_graph(result), result.weights)
    reloaded = load(io.BytesIO(data), where=str(output))
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
        return ExportResult(result, output, written=False, roundtrip=roundtrip)
    try:
        write_atomic(output, data)
    except OSError as exc:  # checked before the verification; something changed since
        raise InvalidInput(f"-o {output}: cannot write there ({exc.strerror or exc})") from None
    return ExportResult(result, output, written=True, size=len(data), roundtrip=roundtrip)
