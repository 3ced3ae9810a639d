"""The validated description of one check: sizes, seed, tolerances and layer options.

One type, :class:`CheckSpec`, serves both the ``check`` command (its options in
snake_case) and every case of a sweep config, so both get the same defaults and
the same validation. Building a spec never imports TensorFlow.

The option types (:data:`PositiveInt`, :data:`Seed`, :data:`ToleranceValue`,
:data:`Fraction`, :data:`ReferenceDtype`, :data:`ToleranceMode`), the rule
:func:`explicit_only` and :func:`validated` are shared with ``verify`` and
``export`` (:class:`rnn_parity.verify.VerifyOptions`), so an option gives the
same message on every command: ``--atol must be ≥ 0, got -1.0``.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from . import reference
from .errors import InvalidInput
from .recurrent import CELL_KEYS, CELLS, DIRECTIONS
from .tolerance import DEFAULT_ATOL, DEFAULT_MODE, DEFAULT_RTOL

__all__ = [
    "CheckSpec",
    "Fraction",
    "GATES",
    "PositiveInt",
    "ReferenceDtype",
    "Seed",
    "ToleranceMode",
    "ToleranceValue",
    "build_spec",
    "describe_errors",
    "error_reason",
    "estimate_bytes",
    "explicit_only",
    "format_bytes",
    "option_name",
    "option_namer",
    "parse_size",
    "validated",
]

#: Gate blocks per cell: columns of the kernel are ``GATES[cell] * units``.
GATES = {cell.key: cell.n_gates for cell in CELLS.values()}

DEFAULT_MAX_MEMORY = 4 * 1024**3
M = TypeVar("M", bound=BaseModel)

PositiveInt = Annotated[StrictInt, Field(ge=1)]
Seed = Annotated[StrictInt, Field(ge=0)]
#: Strict: a number, never a string such as "1e-5" (YAML 1.2's unquoted 1e-5 is read as a number).
ToleranceValue = Annotated[float, Field(ge=0, allow_inf_nan=False, strict=True)]
Fraction = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False, strict=True)]
ReferenceDtype = Literal["float64", "float32"]
ToleranceMode = Literal["explicit", "dtype", "auto"]

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?i?B?)?\s*$", re.IGNORECASE)
_UNITS = {
    "": 1,
    "B": 1,
    "K": 1000,
    "KB": 1000,
    "KIB": 1024,
    "M": 1000**2,
    "MB": 1000**2,
    "MIB": 1024**2,
    "G": 1000**3,
    "GB": 1000**3,
    "GIB": 1024**3,
    "T": 1000**4,
    "TB": 1000**4,
    "TIB": 1024**4,
}


def parse_size(text: str | int) -> int:
    """``"4GiB"``, ``"512MB"``, ``"1000000"`` → bytes. Raises ValueError."""
    if isinstance(text, bool):
        raise ValueError(f"expected a size such as 4GiB, got {text!r}")
    if isinstance(text, int):
        if text < 1:
            raise ValueError(f"must be a positive size, got {text}")
        return text
    match = _SIZE.match(str(text))
    unit = (match.group(2) or "").upper() if match else None
    if not match or unit not in _UNITS:
        raise ValueError(f"expected a size such as 4GiB or 512MB, got {text!r}")
    value = int(float(match.group(1)) * _UNITS[unit])
    if value < 1:
        raise ValueError(f"must be a positive size, got {text!r}")
    return value


def format_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


# What the before-validators below also accept, for the JSON Schema of sweep configs.
_UNITS_SCHEMA = {
    "anyOf": [
        {"type": "integer", "minimum": 1},
        {"type": "array", "items": {"type": "integer", "minimum": 1}, "minItems": 1},
        {"type": "string", "pattern": r"^\d+(,\d+)*$"},
    ]
}
_SIZE_SCHEMA = {
    "anyOf": [
        {"type": "integer", "minimum": 1},
        {"type": "string", "pattern": r"^\s*\d+(\.\d+)?\s*[KMGTkmgt]?[Ii]?[Bb]?\s*$"},
    ]
}


class CheckSpec(BaseModel):
    """One check. Field names are the YAML keys; ``--reference-dtype`` is ``reference_dtype``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Sizes, named as in the course notebook.
    N: PositiveInt = Field(1, description="batch size")
    T: PositiveInt = Field(10, description="timesteps")
    D: PositiveInt = Field(3, description="input features")
    M: Annotated[tuple[PositiveInt, ...], WithJsonSchema(_UNITS_SCHEMA)] = Field(
        (5,), description="units; several (64,32) make a stack", min_length=1
    )
    K: PositiveInt = Field(2, description="Dense outputs")
    seed: Seed = Field(0, description="seed for weights and inputs")

    # The pass rule: |keras - numpy| <= atol + rtol * |numpy| for every element.
    atol: ToleranceValue = Field(DEFAULT_ATOL, description="absolute tolerance")
    rtol: ToleranceValue = Field(DEFAULT_RTOL, description="relative tolerance")
    reference_dtype: ReferenceDtype = Field("float64", description="dtype of the NumPy reference")
    keras_dtype: Literal["float32", "float64", "float16", "mixed_float16"] = Field(
        "float32", description="dtype policy of the Keras layers"
    )
    tolerance: ToleranceMode = Field(DEFAULT_MODE, description="how the tolerance is chosen")
    max_mismatch_frac: Fraction = Field(0.0, description="fraction of elements allowed over tolerance")
    max_memory: Annotated[int, Field(ge=1), WithJsonSchema(_SIZE_SCHEMA)] = Field(
        DEFAULT_MAX_MEMORY, description="refuse cases whose arrays exceed this many bytes (or a size such as 8GiB)"
    )

    # The recurrent layer(s).
    cell: Literal["simple_rnn", "lstm", "gru"] = Field("simple_rnn", description="recurrent layer")
    activation: str = Field("tanh", description="activation of the cell")
    recurrent_activation: str | None = Field(None, description="gate activation (LSTM/GRU; default sigmoid)")
    use_bias: bool = Field(True, description="recurrent layers use a bias")
    reset_after: bool = Field(True, description="GRU's reset_after")
    unit_forget_bias: bool = Field(True, description="LSTM's unit_forget_bias")
    return_sequences: bool = Field(False, description="compare every timestep")
    return_state: bool = Field(False, description="compare the final states too")
    go_backwards: bool = Field(False, description="read the sequence from the end")
    initial_state: bool = Field(False, description="seeded random initial states")
    mask: Literal["none", "post", "pre"] = Field("none", description="random lengths, padding after or before")
    stateful: bool = Field(False, description="two batches through a stateful layer")
    bidirectional: Literal["concat", "sum", "mul", "ave", "none"] | None = Field(
        None, description="wrap in Bidirectional with this merge mode"
    )
    unroll: bool = Field(False, description="Keras unrolls the time loop")

    # Where Keras runs, and which of its calls is compared.
    backend: Literal["tensorflow", "jax", "torch"] | None = Field(
        None, description="Keras backend (default: KERAS_BACKEND, else tensorflow)"
    )
    keras_call: Literal["auto", "compiled", "eager", "predict"] = Field(
        "auto",
        description="the Keras call compared: compiled (predict_on_batch's), eager (model(x)), predict; "
        "auto: compiled when the run drives the model through enough steps, else eager",
    )

    # Diagnostics.
    time_profile: bool = Field(
        True, description="compare the last recurrent layer at every timestep (a sweep does it for failing cases)"
    )
    gradients: bool = Field(
        False, description="also compare the gradients of a seeded linear loss (NumPy BPTT against Keras's autodiff)"
    )
    fd_check: bool = Field(False, description="check the NumPy gradients by central finite differences in float64")

    # Your own implementation against Keras (docs/your-implementation.md).
    impl: str | None = Field(None, description="your function, FILE.py:FUNCTION or package.module:FUNCTION")
    impl_dtype: Literal["float32", "float64"] = Field("float32", description="dtype of the x and weights impl gets")
    timeout: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = Field(
        None, description="seconds impl may run per case before it is stopped"
    )

    @field_validator("M", mode="before")
    @classmethod
    def _units(cls, value):
        if isinstance(value, str):
            try:
                return tuple(int(p) for p in value.split(","))
            except ValueError:
                raise ValueError("must be a positive integer or a list such as 64,32") from None
        if isinstance(value, int) and not isinstance(value, bool):
            return (value,)
        return value

    @field_validator("max_memory", mode="before")
    @classmethod
    def _size(cls, value):
        if isinstance(value, str):
            try:
                return parse_size(value)
            except ValueError:
                raise ValueError("must be a size such as 4GiB or 512MB") from None
        return value

    @field_validator("impl")
    @classmethod
    def _target(cls, value):
        if value is not None:
            module, _, function = value.rpartition(":")
            if not module or not function:
                raise ValueError("must be FILE.py:FUNCTION or package.module:FUNCTION")
        return value

    @field_validator("activation", "recurrent_activation")
    @classmethod
    def _known_activation(cls, value):
        if value is not None and value not in reference.ACTIVATIONS:
            raise ValueError(f"must be a Keras built-in activation ({', '.join(sorted(reference.ACTIVATIONS))})")
        return value

    @model_validator(mode="after")
    def _combinations(self, info: ValidationInfo):
        opt = option_namer(info)
        cell, takes = opt("cell", self.cell), CELLS[CELL_KEYS[self.cell]].options
        if "reset_after" not in takes and not self.reset_after:
            raise ValueError(f"{opt('reset_after', False)} is a GRU option, but {cell}")
        if "unit_forget_bias" not in takes and not self.unit_forget_bias:
            raise ValueError(f"{opt('unit_forget_bias', False)} is an LSTM option, but {cell}")
        if "recurrent_activation" not in takes and self.recurrent_activation is not None:
            raise ValueError(
                f"{opt('recurrent_activation', self.recurrent_activation)} is an LSTM/GRU option, but {cell}"
            )
        if self.bidirectional == "none" and len(self.M) > 1:
            raise ValueError(
                f"{opt('bidirectional', 'none')} returns two outputs, which the next layer of a stack "
                f"({opt('M', ','.join(map(str, self.M)))}) cannot take"
            )
        if self.bidirectional and self.go_backwards:
            raise ValueError(
                f"Keras's Bidirectional refuses a layer that goes backwards: "
                f"{opt('bidirectional', self.bidirectional)} with {opt('go_backwards', True)}"
            )
        if self.bidirectional and self.stateful and self.return_state:
            # keras/src/layers/rnn/bidirectional.py compute_mask multiplies a generator: a TypeError
            raise ValueError(
                f"Keras 3's Bidirectional fails to build a stateful layer that returns its state: "
                f"{opt('bidirectional', self.bidirectional)} with {opt('stateful', True)} "
                f"and {opt('return_state', True)}"
            )
        if self.fd_check and not self.gradients:
            raise ValueError(f"{opt('fd_check', True)} checks the gradients, which need {opt('gradients', True)}")
        if self.gradients and self.stateful:
            raise ValueError(
                f"{opt('gradients', True)}: gradients of a {opt('stateful', True)} layer span two calls; "
                "they are not computed"
            )
        if self.stateful and self.initial_state:
            raise ValueError(
                f"{opt('stateful', True)} and {opt('initial_state', True)} both set the start state; choose one"
            )
        explicit_only(self, opt)
        need = estimate_bytes(self)
        if need > self.max_memory:
            raise ValueError(
                f"this case's arrays need about {format_bytes(need)}, over "
                f"{opt('max_memory', format_bytes(self.max_memory))}; raise it if the machine has room"
            )
        return self

    # ----- derived values -----
    @property
    def units(self) -> tuple[int, ...]:
        return self.M

    @property
    def gate_activation(self) -> str:
        return self.recurrent_activation or "sigmoid"

    @property
    def compute_dtype(self) -> str:
        """The dtype Keras computes in (mixed_float16 computes in float16)."""
        return "float16" if self.keras_dtype == "mixed_float16" else self.keras_dtype

    @property
    def variable_dtype(self) -> str:
        """The dtype of Keras's weights (mixed_float16 keeps float32 variables)."""
        return "float32" if self.keras_dtype == "mixed_float16" else self.keras_dtype

    def command_line(self, command: str = "check") -> str:
        """The ``rnn-parity`` command that reproduces this case (options that differ from the defaults)."""
        parts = ["rnn-parity", command]
        for key, field in type(self).model_fields.items():
            value = getattr(self, key)
            if value == field.default:
                continue
            if isinstance(value, bool):
                parts.append(option_name(key, "cli"))  # a non-default False is a --no-… flag
            elif key == "M":
                parts += ["--M", ",".join(map(str, value))]
            else:
                parts += [option_name(key, "cli"), f"{value:g}" if isinstance(value, float) else str(value)]
        return " ".join(parts)

    def public_config(self) -> dict:
        """The spec as JSON-ready values (M as an int when there is one layer)."""
        data = self.model_dump()
        data["M"] = self.M[0] if len(self.M) == 1 else list(self.M)
        return data


def estimate_bytes(spec: CheckSpec) -> int:
    """Roughly the bytes of the arrays both sides hold at once (TensorFlow's own overhead aside).

    Activations: the inputs ``N·T·D``; per recurrent layer of ``m`` units and
    ``G`` gate blocks, each direction's projected inputs ``N·T·G·m`` and its
    sequence ``N·T·m`` (twice: the reference and Keras); the Dense layer's
    output ``N·K`` (``N·T·K`` with return_sequences). Weights: per layer and
    direction the kernel ``D_in·G·m``, the recurrent kernel ``m·G·m`` and the
    bias ``2·G·m`` (GRU's reset_after), and the Dense kernel and bias. Elements
    count 8 bytes for the float64 truth, 4 for the reference in Keras's compute
    dtype and Keras's own itemsize (8, 4 or 2); weights 4 more for the seeded
    copy. Stateful checks hold two batches of activations.
    """
    directions = len(DIRECTIONS) if spec.bidirectional else 1
    g = GATES[spec.cell]
    elements = spec.N * spec.T * spec.D
    weights = 0
    features = spec.D
    for m in spec.M:
        elements += directions * spec.N * spec.T * (g * m + 2 * m)
        weights += directions * (features * g * m + m * g * m + 2 * g * m)
        features = 2 * m if spec.bidirectional == "concat" else m
    branches = 2 if spec.bidirectional == "none" else 1  # the Dense layer reads each output of merge_mode None
    elements += branches * spec.N * (spec.T if spec.return_sequences else 1) * spec.K
    weights += features * spec.K + spec.K
    keras_itemsize = {"float64": 8, "float32": 4, "float16": 2, "mixed_float16": 2}[spec.keras_dtype]
    itemsize = 8 + 4 + keras_itemsize  # the float64 truth, the low-precision reference, Keras
    return elements * itemsize * (2 if spec.stateful else 1) + weights * (itemsize + 4)


#: CLI flags whose name is not simply ``--`` plus the key with dashes.
_FLAG_FOR_FALSE = {
    "use_bias": "--no-bias",
    "reset_after": "--no-reset-after",
    "unit_forget_bias": "--no-unit-forget-bias",
}


def option_name(key: str, style: str = "config") -> str:
    """How the user wrote ``key``: ``--reference-dtype`` on the command line, ``reference_dtype`` in YAML."""
    if style != "cli":
        return key
    return _FLAG_FOR_FALSE.get(key, "--" + key.replace("_", "-"))


def explicit_only(options: BaseModel, opt) -> None:
    """Refuse ``atol``/``rtol`` given with a tolerance mode other than ``explicit`` (which alone reads them)."""
    given = sorted(options.model_fields_set & {"atol", "rtol"})
    if options.tolerance != "explicit" and given:
        raise ValueError(
            f"{opt(given[0], getattr(options, given[0]))} applies to explicit tolerances, "
            f"but {opt('tolerance', options.tolerance)}"
        )


def option_namer(info: ValidationInfo):
    """``opt(key, value)``: an option and its value as the user wrote them: ``--T 0`` or ``T=0`` by the style."""
    style = (info.context or {}).get("style", "config")

    def opt(key: str, value) -> str:
        if style == "cli":
            if isinstance(value, bool):
                return _FLAG_FOR_FALSE[key] if (key in _FLAG_FOR_FALSE and not value) else option_name(key, style)
            return f"{option_name(key, style)} {value}"
        return f"{key}={str(value).lower() if isinstance(value, bool) else value}"

    return opt


def validated(kind: type[M], values: dict, style: str = "config") -> M:
    """A ``kind`` model validated from ``values``, raising :class:`InvalidInput` naming each bad option and value.

    ``style`` is ``"cli"`` to name options as flags (``--T``), else as YAML keys.
    """
    try:
        return kind.model_validate(values, context={"style": style})
    except ValidationError as exc:
        raise InvalidInput("; ".join(describe_errors(exc, values, name=lambda k: option_name(k, style)))) from None


def build_spec(style: str = "config", **values) -> CheckSpec:
    """Build a spec from keyword values, raising :class:`InvalidInput` naming the option and value."""
    return validated(CheckSpec, values, style)


def describe_errors(exc: ValidationError, values: dict, *, name=lambda key: key) -> list[str]:
    """One message per pydantic error: ``<key>: <reason>, got <value>``."""
    messages = []
    for err in exc.errors():
        loc = [str(p) for p in err["loc"] if not isinstance(p, int)]
        key = loc[0] if loc else None
        msg = err["msg"].removeprefix("Value error, ")
        if key is None:
            messages.append(msg)
            continue
        got = values.get(key, err.get("input"))
        messages.append(f"{name(key)} {_reason(err, msg)}, got {got!r}")
    return list(dict.fromkeys(messages))  # one bad item of a list can raise two errors that read the same


def error_reason(err: dict) -> str:
    """The reason of one pydantic error in this project's words, e.g. ``must be a positive integer``."""
    return _reason(err, err["msg"].removeprefix("Value error, "))


def _reason(err: dict, msg: str) -> str:
    kind = err["type"]
    if kind == "greater_than_equal":
        bound = err["ctx"]["ge"]
        return "must be a positive integer" if bound == 1 else f"must be ≥ {bound:g}"
    if kind == "less_than_equal":
        return f"must be ≤ {err['ctx']['le']:g}"
    if kind in ("int_type", "int_from_float", "int_parsing", "too_short"):
        return "must be a positive integer"
    if kind == "finite_number":
        return "must be a finite number"
    if kind == "extra_forbidden":
        return "is not a known option"
    if kind == "literal_error":
        return "must be one of " + err["ctx"]["expected"].replace("'", "")
    return msg.replace("Input should be", "must be", 1)
