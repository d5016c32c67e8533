"""The built-in architectures (the model zoo), served through the same plugin interface as installed ones.

The state_dict layouts are a public contract (users train checkpoints against them), see docs/engine.md:

    logreg    linear.weight (K, D), linear.bias (K,)
    mlp       net.0.weight (H1, D), net.0.bias, net.2.weight (H2, H1), ..., net.{2L}.weight (K, HL)
    lenet     conv1 (6, C, 5, 5), conv2 (16, 6, 5, 5), fc1 (120, 400), fc2 (84, 120), fc3 (K, 84):
              the CNN of Influence Approximation Unlearning (IAU, Liu et al.)
    resnet18  CIFAR-style ResNet-18 (3x3 stem, no max-pool) with BatchNorm (He et al., 2016)

Rows are float; logreg/mlp take D numbers per row and lenet/resnet18 C x 32 x 32 numbers, flat or already
shaped (reshaped row-major).
"""

from __future__ import annotations

from typing import Annotated

import torch.nn.functional as F
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field
from torch import Tensor, nn

from unlearn_contract.architecture import Architecture, InputContract

ZOO_VERSION = "1.0.0"  # the layouts above; changes only if a layout ever changes
IMAGE_SIZE = 32  # CNN inputs are (C, 32, 32)
MAX_MLP_HIDDEN_LAYERS = 256  # deeper plain MLPs do not train; the bound also keeps building one cheap


def _positive(value: int) -> int:
    if value < 1:
        raise ValueError(f"must be a positive integer, got {value}")
    return value


def _classes(value: int) -> int:
    if value < 2:
        raise ValueError(f"must be at least 2, got {value}")
    return value


def _layers(value: object) -> object:
    if isinstance(value, list) and len(value) > MAX_MLP_HIDDEN_LAYERS:
        raise ValueError(f"may list at most {MAX_MLP_HIDDEN_LAYERS} layers, got {len(value)}")
    return value


def _non_empty(value: list[int]) -> list[int]:
    if not value:
        raise ValueError("must be a non-empty list of widths")
    return value


Positive = Annotated[int, AfterValidator(_positive), Field(json_schema_extra={"minimum": 1})]
Classes = Annotated[int, AfterValidator(_classes), Field(json_schema_extra={"minimum": 2})]
Hidden = Annotated[
    list[Positive],
    BeforeValidator(_layers),
    AfterValidator(_non_empty),
    Field(json_schema_extra={"minItems": 1, "maxItems": MAX_MLP_HIDDEN_LAYERS}),
]


class _Config(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")


class LogRegConfig(_Config):
    in_features: Positive  # numbers per row
    num_classes: Classes


class MLPConfig(_Config):
    in_features: Positive  # numbers per row
    hidden: Hidden  # widths of the hidden layers
    num_classes: Classes


class CNNConfig(_Config):
    in_channels: Positive = 3  # rows are (in_channels, 32, 32)
    num_classes: Classes = 10


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


def _dense_count(widths: list[int]) -> int:
    return sum((fan_in + 1) * fan_out for fan_in, fan_out in zip(widths, widths[1:], strict=False))  # W and b


class LogRegArchitecture(Architecture):
    name = "logreg"
    Config = LogRegConfig
    description = "logistic regression: one linear layer"
    input_description = "float rows of in_features numbers (any shape holding that many, flattened)"

    def build(self, config: LogRegConfig) -> nn.Module:
        return LogReg(config.in_features, config.num_classes)

    def inputs(self, config: LogRegConfig) -> InputContract:
        return InputContract("float", (config.in_features,), reshape=True)

    def parameter_count(self, config: LogRegConfig) -> int:
        return _dense_count([config.in_features, config.num_classes])


class MLPArchitecture(Architecture):
    name = "mlp"
    Config = MLPConfig
    description = "multi-layer perceptron: Linear, ReLU, ..., Linear"
    input_description = "float rows of in_features numbers (any shape holding that many, flattened)"

    def build(self, config: MLPConfig) -> nn.Module:
        return MLP(config.in_features, config.hidden, config.num_classes)

    def inputs(self, config: MLPConfig) -> InputContract:
        return InputContract("float", (config.in_features,), reshape=True)

    def parameter_count(self, config: MLPConfig) -> int:
        return _dense_count([config.in_features, *config.hidden, config.num_classes])


class _ImageArchitecture(Architecture):
    Config = CNNConfig
    input_description = "float rows of in_channels x 32 x 32 numbers (flat or shaped, reshaped row-major)"

    def inputs(self, config: CNNConfig) -> InputContract:
        return InputContract("float", (config.in_channels, IMAGE_SIZE, IMAGE_SIZE), reshape=True)


class LeNetArchitecture(_ImageArchitecture):
    name = "lenet"
    description = "LeNet-5 style CNN of the IAU paper, 32x32 inputs"

    def build(self, config: CNNConfig) -> nn.Module:
        return LeNet(config.in_channels, config.num_classes)


class ResNet18Architecture(_ImageArchitecture):
    name = "resnet18"
    description = "CIFAR-style ResNet-18 with BatchNorm, 32x32 inputs"

    def build(self, config: CNNConfig) -> nn.Module:
        return ResNet18(config.in_channels, config.num_classes)


BUILTIN: tuple[Architecture, ...] = (
    LogRegArchitecture(),
    MLPArchitecture(),
    LeNetArchitecture(),
    ResNet18Architecture(),
)
