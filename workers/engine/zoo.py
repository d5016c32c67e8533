"""Model zoo: the architectures the service can build, train and unlearn.

The state_dict layouts are a public contract (users train checkpoints against them), see docs/engine.md:

    logreg    linear.weight (K, D), linear.bias (K,)
    mlp       net.0.weight (H1, D), net.0.bias, net.2.weight (H2, H1), ..., net.{2L}.weight (K, HL)
    lenet     conv1 (6, C, 5, 5), conv2 (16, 6, 5, 5), fc1 (120, 400), fc2 (84, 120), fc3 (K, 84):
              the CNN of Influence Approximation Unlearning (IAU, Liu et al.)
    resnet18  CIFAR-style ResNet-18 (3x3 stem, no max-pool) with BatchNorm

Features are flattened to (N, D) for logreg/mlp and reshaped to (N, C, 32, 32) for the CNNs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from math import prod

import torch
import torch.nn.functional as F
from torch import Tensor, nn

ARCHITECTURES = ("logreg", "mlp", "lenet", "resnet18")
IMAGE_SIZE = 32  # CNN inputs are (C, 32, 32)
MAX_MLP_HIDDEN_LAYERS = 256  # deeper plain MLPs do not train; the bound also keeps building one cheap


class ZooError(ValueError):
    """An architecture spec or an input that the zoo cannot build or accept."""


class CheckpointMismatch(ZooError):
    """A checkpoint whose tensors do not match the architecture's state_dict layout."""

    def __init__(
        self,
        missing: list[str],
        unexpected: list[str],
        misshaped: list[tuple[str, str, str]],
    ):
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
class ArchSpec:
    name: str  # one of ARCHITECTURES
    config: dict = field(default_factory=dict)  # e.g. {"in_features": 64, "num_classes": 10}


# name -> {config key: default (None = required)}
_CONFIG_KEYS: dict[str, dict[str, object]] = {
    "logreg": {"in_features": None, "num_classes": None},
    "mlp": {"in_features": None, "hidden": None, "num_classes": None},
    "lenet": {"in_channels": 3, "num_classes": 10},
    "resnet18": {"in_channels": 3, "num_classes": 10},
}


def _positive_int(name: str, key: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ZooError(f"{name}: config '{key}' must be a positive integer, got {value!r}")


def normalized_config(spec: ArchSpec) -> dict:
    """The spec's config with defaults filled in; raises ZooError for anything the zoo cannot build."""
    if not isinstance(spec.name, str) or spec.name not in _CONFIG_KEYS:
        raise ZooError(f"unknown architecture {spec.name!r}; known: {', '.join(ARCHITECTURES)}")
    if not isinstance(spec.config, dict):
        raise ZooError(f"{spec.name}: config must be an object, got {type(spec.config).__name__}")
    keys = _CONFIG_KEYS[spec.name]
    unknown = sorted(set(spec.config) - set(keys))
    if unknown:
        raise ZooError(f"{spec.name}: unknown config keys {unknown}; allowed: {sorted(keys)}")
    missing = sorted(k for k, default in keys.items() if default is None and k not in spec.config)
    if missing:
        raise ZooError(f"{spec.name}: missing config keys {missing}")
    cfg = {k: spec.config.get(k, default) for k, default in keys.items()}
    for key, value in cfg.items():
        if key == "hidden":
            if not isinstance(value, list | tuple) or len(value) == 0:
                raise ZooError(f"{spec.name}: config 'hidden' must be a non-empty list of widths, got {value!r}")
            if len(value) > MAX_MLP_HIDDEN_LAYERS:
                raise ZooError(
                    f"{spec.name}: config 'hidden' may list at most {MAX_MLP_HIDDEN_LAYERS} layers, got {len(value)}"
                )
            for width in value:
                _positive_int(spec.name, key, width)
            cfg[key] = list(value)
        else:
            _positive_int(spec.name, key, value)
    if cfg["num_classes"] < 2:
        raise ZooError(f"{spec.name}: config 'num_classes' must be at least 2, got {cfg['num_classes']}")
    return cfg


def validate_spec(spec: ArchSpec) -> None:
    """Raise ZooError with a clear message if the zoo cannot build this spec."""
    normalized_config(spec)


def expected_feature_count(spec: ArchSpec) -> int:
    """Numbers per input row: in_features for logreg/mlp, C*32*32 for the CNNs."""
    cfg = normalized_config(spec)
    if spec.name in ("logreg", "mlp"):
        return cfg["in_features"]
    return cfg["in_channels"] * IMAGE_SIZE * IMAGE_SIZE


def prepare_inputs(spec: ArchSpec, features: Tensor) -> Tensor:
    """Reshape rows (N, ...) to what the architecture consumes: (N, D) or (N, C, 32, 32), float32."""
    cfg = normalized_config(spec)
    if features.dim() < 1:
        raise ZooError("features must have a leading row dimension")
    n = features.shape[0]
    per_row = features[0].numel() if n else int(torch.tensor(features.shape[1:]).prod().item())
    want = expected_feature_count(spec)
    if per_row != want:
        shape = "x".join(str(s) for s in features.shape[1:]) or "scalar"
        layout = "flattened" if spec.name in ("logreg", "mlp") else f"[{cfg['in_channels']},32,32]"
        raise ZooError(f"{spec.name} expects {want} numbers per row ({layout}), got rows of shape {shape} ({per_row})")
    if not features.is_floating_point():
        features = features.float()
    features = features.to(torch.float32)
    if spec.name in ("logreg", "mlp"):
        return features.reshape(n, want)  # (N, D)
    return features.reshape(n, cfg["in_channels"], IMAGE_SIZE, IMAGE_SIZE)  # (N, C, 32, 32)


class LogReg(nn.Module):
    def __init__(self, in_features: int, num_classes: int):
        super().__init__()
        self.linear = nn.Linear(in_features, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(x)  # (N, D) -> (N, K)


class MLP(nn.Module):
    def __init__(self, in_features: int, hidden: list[int], num_classes: int):
        super().__init__()
        layers: list[nn.Module] = []
        width = in_features
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        layers.append(nn.Linear(width, num_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)  # (N, D) -> (N, K)


class LeNet(nn.Module):
    def __init__(self, in_channels: int = 3, num_classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 6, 5)
        self.pool = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = self.pool(F.relu(self.conv1(x)))  # (N, 6, 14, 14)
        x = self.pool(F.relu(self.conv2(x)))  # (N, 16, 5, 5)
        x = x.flatten(1)  # (N, 400)
        x = F.relu(self.fc1(x))  # (N, 120)
        x = F.relu(self.fc2(x))  # (N, 84)
        return self.fc3(x)  # (N, K)


class BasicBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes)
            )

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))  # (N, P, H/s, W/s)
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet18(nn.Module):
    def __init__(self, in_channels: int = 3, num_classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 64, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        planes, layers = 64, []
        for width, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            layers.append(nn.Sequential(BasicBlock(planes, width, stride), BasicBlock(width, width, 1)))
            planes = width
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.linear = nn.Linear(512, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = F.relu(self.bn1(self.conv1(x)))  # (N, 64, 32, 32)
        x = self.layer1(x)  # (N, 64, 32, 32)
        x = self.layer2(x)  # (N, 128, 16, 16)
        x = self.layer3(x)  # (N, 256, 8, 8)
        x = self.layer4(x)  # (N, 512, 4, 4)
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)  # (N, 512)
        return self.linear(x)  # (N, K)


def build_model(spec: ArchSpec) -> nn.Module:
    """A freshly initialised module for the spec (parameters drawn from torch's global RNG)."""
    cfg = normalized_config(spec)
    if spec.name == "logreg":
        return LogReg(cfg["in_features"], cfg["num_classes"])
    if spec.name == "mlp":
        return MLP(cfg["in_features"], cfg["hidden"], cfg["num_classes"])
    if spec.name == "lenet":
        return LeNet(cfg["in_channels"], cfg["num_classes"])
    return ResNet18(cfg["in_channels"], cfg["num_classes"])


def expected_layout(spec: ArchSpec) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
    """key -> (shape, dtype) of every tensor in the architecture's state_dict."""
    with torch.device("meta"):
        model = build_model(spec)
    return {k: (tuple(v.shape), v.dtype) for k, v in model.state_dict().items()}


def parameter_count(spec: ArchSpec) -> int:
    """Numbers in the architecture's state_dict (parameters and buffers), counted without allocating them: from
    the layer widths for logreg and mlp, from a build on the meta device for the fixed-depth CNNs."""
    cfg = normalized_config(spec)
    if spec.name in ("logreg", "mlp"):
        widths = [cfg["in_features"], *cfg.get("hidden", []), cfg["num_classes"]]
        return sum((fan_in + 1) * fan_out for fan_in, fan_out in zip(widths, widths[1:], strict=False))  # W and b
    return sum(prod(shape) for shape, _ in expected_layout(spec).values())


def _describe(shape: tuple[int, ...], dtype: torch.dtype) -> str:
    return f"({', '.join(str(s) for s in shape)}) {str(dtype).removeprefix('torch.')}"


def validate_checkpoint(spec: ArchSpec, tensors: dict[str, Tensor]) -> None:
    """Raise CheckpointMismatch naming every missing, unexpected, mis-shaped and wrong-dtype tensor."""
    layout = expected_layout(spec)
    missing = sorted(set(layout) - set(tensors))
    unexpected = sorted(set(tensors) - set(layout))
    misshaped = []
    for key in sorted(set(layout) & set(tensors)):
        shape, dtype = layout[key]
        got = tensors[key]
        if tuple(got.shape) != shape or got.dtype != dtype:
            misshaped.append((key, _describe(shape, dtype), _describe(tuple(got.shape), got.dtype)))
    if missing or unexpected or misshaped:
        raise CheckpointMismatch(missing, unexpected, misshaped)


def load_model(spec: ArchSpec, state_dict: dict[str, Tensor], device: torch.device) -> nn.Module:
    """Build the architecture on `device` and load the state_dict into it (strict), in eval mode."""
    with torch.device("meta"):
        model = build_model(spec)
    model = model.to_empty(device=device)
    model.load_state_dict(state_dict, strict=True)
    return model.eval()
