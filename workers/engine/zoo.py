"""Architectures as the engine sees them: an `ArchSpec` {name, config} resolved through the installed plugins
(unlearn_contract: the built-in zoo logreg/mlp/lenet/resnet18 and every `unlearn.architectures` entry point).

Every function takes an ArchSpec and raises ZooError (unlearn_contract.PluginError) for anything the installed
architectures cannot build or accept. The built-in layouts are documented in docs/engine.md and
unlearn_contract/zoo.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from unlearn_contract import PluginError
from unlearn_contract import modules as _m
from unlearn_contract.modules import CheckpointMismatch, Resolved
from unlearn_contract.zoo import (  # noqa: F401 - the built-in modules, importable from here as before
    BUILTIN,
    IMAGE_SIZE,
    MAX_MLP_HIDDEN_LAYERS,
    MLP,
    BasicBlock,
    LeNet,
    LogReg,
    ResNet18,
)

ARCHITECTURES = tuple(p.name for p in BUILTIN)  # the built-in ones; installed plugins add more
ZooError = PluginError

__all__ = [
    "ARCHITECTURES",
    "ArchSpec",
    "CheckpointMismatch",
    "ZooError",
    "build_model",
    "expected_feature_count",
    "expected_layout",
    "load_model",
    "normalized_config",
    "parameter_count",
    "prepare_inputs",
    "resolved",
    "train_mode",
    "validate_checkpoint",
    "validate_spec",
]


@dataclass(frozen=True)
class ArchSpec:
    name: str  # an installed architecture: logreg, mlp, lenet, resnet18 or a plugin's
    config: dict = field(default_factory=dict)  # e.g. {"in_features": 64, "num_classes": 10}


def resolved(spec: ArchSpec) -> Resolved:
    """The installed architecture with the spec's config validated (remembered per config)."""
    return _m.resolve_cached(spec.name, spec.config)


def normalized_config(spec: ArchSpec) -> dict:
    """The spec's config with defaults filled in; raises ZooError for anything that cannot be built."""
    return resolved(spec).config_dict()


def validate_spec(spec: ArchSpec) -> None:
    """Raise ZooError with a clear message if no installed architecture can build this spec."""
    resolved(spec)


def expected_feature_count(spec: ArchSpec) -> int | None:
    """Numbers per input row when the architecture fixes them (in_features, C*32*32); None when it does not."""
    return _m.contract(resolved(spec)).numel


def prepare_inputs(spec: ArchSpec, features: Tensor) -> Tensor:
    """Rows (N, ...) as the architecture consumes them: float32 (reshaped, e.g. (N, D) or (N, C, 32, 32)) or
    int64 ids, per its input contract."""
    return _m.prepare_inputs(resolved(spec), features)


def build_model(spec: ArchSpec) -> nn.Module:
    """A freshly initialised module for the spec (parameters drawn from torch's global RNG)."""
    return _m.build(resolved(spec))


def expected_layout(spec: ArchSpec) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
    """key -> (shape, dtype) of every tensor in the architecture's state_dict."""
    return _m.layout(resolved(spec))


def parameter_count(spec: ArchSpec) -> int:
    """Numbers in the architecture's state_dict (parameters and buffers), counted without allocating them."""
    return _m.parameter_count(resolved(spec))


def validate_checkpoint(spec: ArchSpec, tensors: dict[str, Tensor]) -> None:
    """Raise CheckpointMismatch naming every missing, unexpected, mis-shaped and wrong-dtype tensor."""
    _m.validate_checkpoint(resolved(spec), tensors)


def load_model(spec: ArchSpec, state_dict: dict[str, Tensor], device: torch.device) -> nn.Module:
    """Build the architecture on `device` and load the state_dict into it (strict), in eval mode; parameters
    the architecture keeps frozen have requires_grad False, so no update ever moves them."""
    return _m.load_module(resolved(spec), state_dict, device)


def init_state(spec: ArchSpec, seed: int) -> dict[str, Tensor]:
    """Seeded initial parameters, drawn on the CPU so every device starts from the same point, with the
    architecture's pretrained tensors (e.g. a frozen backbone) in place."""
    return _m.initial_state(resolved(spec), seed)


def train_mode(model: nn.Module) -> nn.Module:
    """Training mode for the trainable part; frozen submodules stay in eval mode."""
    return _m.train_mode(model)


def trainable_summary(model: nn.Module) -> dict:
    """How many parameter numbers an update may change, and how many are frozen."""
    params = list(model.parameters())
    train = sum(p.numel() for p in params if p.requires_grad)
    return {"trainable": train, "frozen": sum(p.numel() for p in params) - train}
