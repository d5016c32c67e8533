"""Building, checking and feeding the modules of installed architectures (torch; the API imports this lazily).

`resolve(name, config)` validates a config against the plugin's pydantic model. Every call into plugin code goes
through `_call`, so an exception raised by a plugin becomes a PluginError that names the architecture, its
version and the step (build, describe its inputs, forward, ...): the API answers it with a 422, a job records it
as a readable failure. Modules are built on the `meta` device to count parameters, read the state_dict layout
and check the output shape without allocating anything.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from math import prod
from typing import Any

import torch
from pydantic import BaseModel, ValidationError
from torch import Tensor, nn

from unlearn_contract import registry as _registry
from unlearn_contract.architecture import Architecture, InputContract, PluginError, RowsInfo, config_problem

PROBE_ROWS = 2  # rows of the meta forward pass that checks the output shape


class CheckpointMismatch(PluginError):
    """A checkpoint whose tensors do not match the architecture's state_dict layout."""

    def __init__(self, missing: list[str], unexpected: list[str], misshaped: list[tuple[str, str, str]]):
        self.missing = missing
        self.unexpected = unexpected
        self.misshaped = misshaped  # (key, expected "shape dtype", got "shape dtype")
        parts = []
        if missing:
            parts.append("missing tensors: " + ", ".join(missing))
        if unexpected:
            parts.append("unexpected tensors: " + ", ".join(unexpected))
        if misshaped:
            parts.append(
                "mis-shaped or wrong-dtype tensors: "
                + ", ".join(f"{k} (expected {want}, got {got})" for k, want, got in misshaped)
            )
        super().__init__("checkpoint does not match the architecture: " + "; ".join(parts))


@dataclass(frozen=True)
class Resolved:
    """An installed architecture with a validated config."""

    name: str
    plugin: Architecture
    version: str
    source: str
    config: BaseModel

    def config_dict(self) -> dict[str, Any]:
        """The config with defaults filled in, as JSON."""
        return self.config.model_dump(mode="json")

    def describe(self) -> str:
        return f"architecture {self.name} ({self.source}, version {self.version})"


def resolve(name: str, config: Mapping[str, Any] | None) -> Resolved:
    """The installed architecture `name` with `config` validated; PluginError naming every problem."""
    installed = _registry.get_registry().get(name)
    if config is None:
        config = {}
    if not isinstance(config, Mapping):
        raise PluginError(f"{name}: config must be an object, got {type(config).__name__}")
    try:
        validated = installed.plugin.Config.model_validate(dict(config))
    except ValidationError as exc:
        raise PluginError(config_problem(name, exc)) from None
    except Exception as exc:  # noqa: BLE001 - a validator of the plugin's that raised something else
        raise PluginError(f"{name}: config validation raised {type(exc).__name__}: {exc}") from None
    return Resolved(name, installed.plugin, installed.version, installed.source, validated)


@functools.lru_cache(maxsize=64)
def _resolve_json(name: str, config_json: str) -> Resolved:
    return resolve(name, json.loads(config_json))


def resolve_cached(name: str, config: Mapping[str, Any] | None) -> Resolved:
    """resolve(), remembered for configs seen before (the engine resolves per chunk of rows)."""
    try:
        key = json.dumps(config or {}, sort_keys=True)
    except (TypeError, ValueError):
        return resolve(name, config)
    return _resolve_json(name, key)


def _call(arch: Resolved, what: str, fn: Callable, *args: Any) -> Any:
    try:
        return fn(*args)
    except PluginError:
        raise
    except Exception as exc:  # noqa: BLE001 - plugin code: any failure is reported, never a crash of the caller
        raise PluginError(f"{arch.describe()} failed to {what}: {type(exc).__name__}: {exc}"[:1000]) from exc


def contract(arch: Resolved) -> InputContract:
    found = _call(arch, "describe its inputs", arch.plugin.inputs, arch.config)
    if not isinstance(found, InputContract):
        raise PluginError(f"{arch.describe()}: inputs() returned {type(found).__name__}, not an InputContract")
    if found.dtype != arch.plugin.input_dtype:
        raise PluginError(
            f"{arch.describe()}: inputs() says {found.dtype} but input_dtype is {arch.plugin.input_dtype}"
        )
    return found


def trainable(arch: Resolved) -> tuple[str, ...] | None:
    names = _call(arch, "name its trainable parameters", arch.plugin.trainable, arch.config)
    if names is None:
        return None
    if isinstance(names, str) or not all(isinstance(n, str) for n in names):
        raise PluginError(f"{arch.describe()}: trainable() must return a list of names or None")
    return tuple(names)


def build(arch: Resolved) -> nn.Module:
    """plugin.build(config) on torch's current default device, with the frozen parameters marked."""
    module = _call(arch, "build", arch.plugin.build, arch.config)
    if not isinstance(module, nn.Module):
        raise PluginError(f"{arch.describe()}: build() returned {type(module).__name__}, not a torch.nn.Module")
    freeze(module, arch)
    return module


def meta_module(arch: Resolved) -> nn.Module:
    """The module built on the meta device (shapes only, nothing allocated)."""
    with torch.device("meta"):
        return build(arch)


def layout(arch: Resolved) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
    """key -> (shape, dtype) of every tensor in the architecture's state_dict."""
    return {k: (tuple(v.shape), v.dtype) for k, v in meta_module(arch).state_dict().items()}


def parameter_count(arch: Resolved) -> int:
    """Numbers in the state_dict (parameters and buffers): the plugin's own count, else a meta build's."""
    count = _call(arch, "count its parameters", arch.plugin.parameter_count, arch.config)
    if count is None:
        return sum(prod(shape) for shape, _ in layout(arch).values())
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise PluginError(f"{arch.describe()}: parameter_count() returned {count!r}, not a count")
    return count


def freeze(module: nn.Module, arch: Resolved) -> None:
    """requires_grad only on the parameters the plugin lets the engine change (all when it names none)."""
    names = trainable(arch)
    if names is None:
        return
    params = dict(module.named_parameters())
    unmatched = [n for n in names if not any(k == n or k.startswith(n + ".") for k in params)]
    if unmatched:
        raise PluginError(f"{arch.describe()}: trainable() names no parameter of the module: {unmatched}")
    for key, p in params.items():
        p.requires_grad_(any(key == n or key.startswith(n + ".") for n in names))
    if not any(p.requires_grad for p in params.values()):
        raise PluginError(f"{arch.describe()}: trainable() leaves no parameter to train")


def train_mode(module: nn.Module) -> nn.Module:
    """Training mode, except submodules whose parameters are all frozen: they stay in eval mode, so a frozen
    backbone's BatchNorm statistics and dropout do not change while the rest trains."""
    module.train()
    for sub in module.modules():
        params = list(sub.parameters())
        if params and not any(p.requires_grad for p in params):
            sub.eval()
    return module


def _shape_text(shape) -> str:
    return "[" + ",".join("any" if s is None else str(s) for s in shape) + "]"


def prepare_inputs(arch: Resolved, features: Tensor) -> Tensor:
    """Rows (N, ...) as the module consumes them: float32 or int64, reshaped when the contract says so."""
    c = contract(arch)
    if features.dim() < 1:
        raise PluginError("features must have a leading row dimension")
    if c.dtype == "float":
        features = features.to(torch.float32)
    elif features.is_floating_point() or features.is_complex() or features.dtype == torch.bool:
        raise PluginError(f"{arch.name} takes int64 ids, got {str(features.dtype).removeprefix('torch.')} rows")
    else:
        features = features.to(torch.int64)
    n, row = features.shape[0], tuple(features.shape[1:])
    if c.reshape:
        per_row = prod(row)
        if per_row != c.numel:
            got = "x".join(str(s) for s in row) or "scalar"
            raise PluginError(
                f"{arch.name} expects {c.numel} numbers per row ({_shape_text(c.shape)}), got rows of shape "
                f"{got} ({per_row})"
            )
        return features.reshape(n, *c.shape)
    if len(row) != len(c.shape) or any(w is not None and w != g for w, g in zip(c.shape, row, strict=False)):
        raise PluginError(f"{arch.name} expects rows of shape {_shape_text(c.shape)}, got {_shape_text(row)}")
    return features


def check_rows(arch: Resolved, rows: RowsInfo) -> InputContract:
    """The contract, after checking that rows like `rows` fit it (PluginError naming the mismatch)."""
    c = contract(arch)
    problem = c.mismatch(rows)
    if problem:
        raise PluginError(f"architecture {arch.name} {problem}")
    return c


def probe_classes(arch: Resolved, rows: RowsInfo) -> int:
    """Run the module on PROBE_ROWS meta rows shaped like `rows`; the output must be logits (PROBE_ROWS, K).
    Returns K. Checks build, the trainable names and the forward pass without allocating anything."""
    c = check_rows(arch, rows)
    model = meta_module(arch).eval()
    shape = c.shape if c.reshape else rows.shape
    dtype = torch.float32 if c.dtype == "float" else torch.int64
    x = torch.zeros((PROBE_ROWS, *shape), dtype=dtype, device="meta")  # (B, ...)
    with torch.no_grad():
        out = _call(arch, f"run a forward pass on rows of shape {_shape_text(shape)}", model, x)
    if not isinstance(out, Tensor):
        raise PluginError(f"{arch.describe()}: forward returned {type(out).__name__}, not a tensor of logits")
    if out.dim() != 2 or out.shape[0] != PROBE_ROWS or not out.is_floating_point():
        got = f"{tuple(out.shape)} {str(out.dtype).removeprefix('torch.')}"
        raise PluginError(
            f"{arch.describe()}: forward on {PROBE_ROWS} rows returned {got}; expected float logits of shape "
            f"({PROBE_ROWS}, K)"
        )
    if out.shape[1] < 2:
        raise PluginError(f"{arch.describe()}: the module predicts {out.shape[1]} class; at least 2 are needed")
    return int(out.shape[1])


def _describe(shape: tuple[int, ...], dtype: torch.dtype) -> str:
    return f"({', '.join(str(s) for s in shape)}) {str(dtype).removeprefix('torch.')}"


def validate_checkpoint(arch: Resolved, tensors: Mapping[str, Tensor]) -> None:
    """Raise CheckpointMismatch naming every missing, unexpected, mis-shaped and wrong-dtype tensor."""
    want = layout(arch)
    missing = sorted(set(want) - set(tensors))
    unexpected = sorted(set(tensors) - set(want))
    misshaped = []
    for key in sorted(set(want) & set(tensors)):
        shape, dtype = want[key]
        got = tensors[key]
        if tuple(got.shape) != shape or got.dtype != dtype:
            misshaped.append((key, _describe(shape, dtype), _describe(tuple(got.shape), got.dtype)))
    if missing or unexpected or misshaped:
        raise CheckpointMismatch(missing, unexpected, misshaped)


def initial_state(arch: Resolved, seed: int) -> dict[str, Tensor]:
    """Seeded initial tensors, drawn on the CPU (the same on every device), with the plugin's pretrained ones."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        with torch.device("cpu"):
            model = build(arch)
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    given = _call(arch, "load its pretrained tensors", arch.plugin.pretrained, arch.config)
    if given:
        extra = sorted(set(given) - set(state))
        if extra:
            raise PluginError(f"{arch.describe()}: pretrained() gives tensors the module lacks: {extra}")
        for key, value in given.items():
            if not isinstance(value, Tensor) or value.shape != state[key].shape or value.dtype != state[key].dtype:
                raise PluginError(f"{arch.describe()}: pretrained tensor {key} does not match the module's")
            state[key] = value.detach().to("cpu").clone()
    return state


def load_module(arch: Resolved, state_dict: Mapping[str, Tensor], device: torch.device) -> nn.Module:
    """Build the architecture on `device`, load the state_dict (strict) and mark frozen parameters; eval mode.

    Built on the meta device and materialised empty, unless a submodule keeps non-persistent buffers (values the
    state_dict does not hold): then it is built for real so those buffers get their values."""
    model = meta_module(arch)
    if any(getattr(m, "_non_persistent_buffers_set", None) for m in model.modules()):
        with torch.random.fork_rng(devices=[]), torch.device("cpu"):  # its random init leaves no trace
            model = build(arch)
        model = model.to(device)
    else:
        model = model.to_empty(device=device)
    model.load_state_dict(dict(state_dict), strict=True)
    return model.eval()
