"""The architecture plugin interface: what an installed package supplies so the service can build, train and
unlearn its classifiers.

A plugin is an `Architecture` (a subclass, or an instance of one) published under the Python entry-point group
`unlearn.architectures` (the packaging standard's plugin mechanism, read with importlib.metadata). It supplies:

- `name` and `version`;
- `Config`, a pydantic model validated when a model is registered (its JSON Schema is what GET /v1/architectures
  shows);
- `build(config) -> torch.nn.Module`, a module mapping a batch of rows (N, ...) to class logits (N, K);
- `inputs(config) -> InputContract`, the shape and dtype one data set row must have;
- optionally `trainable(config)`: the parameters the engine may change (the rest stay frozen: a pretrained
  backbone with a head that is trained and unlearned), `pretrained(config)`: initial values of some tensors
  when the service trains from scratch, and `parameter_count(config)`: the size without building the module.

This module imports no torch: the API reads configs and contracts with it alone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from math import prod
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import BaseModel, ValidationError

if TYPE_CHECKING:  # pragma: no cover - annotations only
    from torch import Tensor, nn

FLOAT_DTYPES = ("float16", "bfloat16", "float32", "float64")
INT_DTYPES = ("int64",)
InputDtype = Literal["float", "int64"]


class PluginError(ValueError):
    """An architecture that is unknown, cannot be built from its config, or does not fit a data set or input."""


@dataclass(frozen=True)
class RowsInfo:
    """What a data set's rows look like: per-row shape, stored dtype and, for integer rows, (min, max)."""

    shape: tuple[int, ...]
    dtype: str  # float16, bfloat16, float32, float64 or int64
    value_range: tuple[int, int] | None = None


def _shape_text(shape: Sequence[int | None]) -> str:
    return "[" + ",".join("any" if s is None else str(s) for s in shape) + "]"


@dataclass(frozen=True)
class InputContract:
    """The rows an architecture consumes: one row's shape (no leading N) and its dtype.

    dtype "float": any float dtype, handed to the module as float32. dtype "int64": integer ids (token ids),
    handed over as int64; `min_value`/`max_value` bound them (e.g. 0 and vocab_size - 1).
    shape: a size per dimension, None for any size. With `reshape`, a row of any shape holding prod(shape)
    numbers is accepted and reshaped row-major (every size must then be given).
    """

    dtype: InputDtype
    shape: tuple[int | None, ...]
    reshape: bool = False
    min_value: int | None = None
    max_value: int | None = None

    def __post_init__(self) -> None:
        if self.dtype not in ("float", "int64"):
            raise PluginError(f"input contract dtype must be 'float' or 'int64', got {self.dtype!r}")
        if not self.shape or any(s is not None and (not isinstance(s, int) or s < 1) for s in self.shape):
            raise PluginError(f"input contract shape must list positive sizes or None, got {self.shape!r}")
        if self.reshape and any(s is None for s in self.shape):
            raise PluginError("an input contract that reshapes rows must give every size")

    @property
    def numel(self) -> int | None:
        return None if any(s is None for s in self.shape) else prod(self.shape)

    def mismatch(self, rows: RowsInfo) -> str | None:
        """None when rows like these fit; otherwise one sentence naming the mismatch."""
        is_float = rows.dtype in FLOAT_DTYPES
        if self.dtype == "float" and not is_float:
            return f"takes float rows but the data set's features are {rows.dtype}"
        if self.dtype == "int64" and rows.dtype not in INT_DTYPES:
            return f"takes int64 ids but the data set's features are {rows.dtype}"
        have = _shape_text(rows.shape)
        if self.reshape:
            if prod(rows.shape) != self.numel:
                return (
                    f"expects {self.numel} numbers per row ({_shape_text(self.shape)}) but the data set's rows "
                    f"have shape {have} ({prod(rows.shape)})"
                )
        elif len(rows.shape) != len(self.shape) or any(
            want is not None and want != got for want, got in zip(self.shape, rows.shape, strict=False)
        ):
            return f"expects rows of shape {_shape_text(self.shape)} but the data set's rows have shape {have}"
        if self.dtype == "int64" and rows.value_range is not None:
            lo, hi = rows.value_range
            if (self.min_value is not None and lo < self.min_value) or (
                self.max_value is not None and hi > self.max_value
            ):
                return (
                    f"takes ids from {self.min_value} to {self.max_value} but the data set's features range "
                    f"from {lo} to {hi}"
                )
        return None

    def to_json(self) -> dict[str, Any]:
        return {
            "dtype": self.dtype,
            "shape": list(self.shape),
            "reshape": self.reshape,
            "min_value": self.min_value,
            "max_value": self.max_value,
        }


class Architecture:
    """Base class of an architecture plugin. Subclass it, set the class attributes, implement build and inputs.

    Architectures come only from code the operator installed; the service never unpickles anything (checkpoints
    are safetensors) and builds modules on torch's `meta` device to count and check them, so `build` must create
    its tensors through torch's default device (no explicit device="cpu", no file reads: use `pretrained`).
    """

    name: ClassVar[str]  # the architecture's name in API requests: lowercase letters, digits, '-', '_', '.'
    version: ClassVar[str] = ""  # the plugin's version; empty: the installed distribution's version
    Config: ClassVar[type[BaseModel]]  # validated at registration; extra="forbid" recommended
    description: ClassVar[str] = ""  # one line for GET /v1/architectures
    input_dtype: ClassVar[InputDtype] = "float"  # what inputs(config).dtype always is
    input_description: ClassVar[str] = ""  # the input contract in words, for GET /v1/architectures

    def build(self, config: Any) -> nn.Module:
        """A freshly initialised module for a validated config (parameters from torch's global RNG)."""
        raise NotImplementedError

    def inputs(self, config: Any) -> InputContract:
        """The shape and dtype of one row this config consumes."""
        raise NotImplementedError

    def trainable(self, config: Any) -> Sequence[str] | None:
        """Names or dotted prefixes of the parameters the engine may change; None: all of them."""
        return None

    def pretrained(self, config: Any) -> Mapping[str, Tensor] | None:
        """Initial values of some state_dict entries for training from scratch (e.g. a frozen backbone), read
        with safetensors; None: everything starts from `build`'s initialisation."""
        return None

    def parameter_count(self, config: Any) -> int | None:
        """Numbers in the state_dict, computed without building; None: counted on the meta device."""
        return None


def config_problem(name: str, exc: ValidationError) -> str:
    """One readable sentence for a config that failed validation: missing keys, unknown keys, then the rest."""
    missing = sorted(".".join(map(str, e["loc"])) for e in exc.errors() if e["type"] == "missing")
    unknown = sorted(".".join(map(str, e["loc"])) for e in exc.errors() if e["type"] == "extra_forbidden")
    parts = []
    if missing:
        parts.append(f"missing config keys {missing}")
    if unknown:
        parts.append(f"unknown config keys {unknown}")
    for e in exc.errors():
        if e["type"] in ("missing", "extra_forbidden"):
            continue
        loc = ".".join(map(str, e["loc"])) or "config"
        parts.append(f"config '{loc}': {e['msg'].removeprefix('Value error, ')}")
    return f"{name}: " + "; ".join(parts[:10])
