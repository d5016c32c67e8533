"""Architecture plugins written for the tests: one that works and one for each way a plugin can be broken.

They are handed to unlearn_contract.registry.discover as entry points (`tests.unlearn_contract.sample_plugins:X`),
exactly as an installed distribution's would be."""

import pytest
import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator
from torch import nn

from unlearn_contract import Architecture, InputContract


class TinyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    width: int = Field(default=4, ge=1, le=64)
    num_classes: int = Field(default=3, ge=2, le=100)


class Tiny(Architecture):
    """Float rows of `width` numbers -> a linear layer."""

    name = "tiny"
    version = "9.9"
    Config = TinyConfig
    description = "a linear layer"
    input_description = "float rows of width numbers"

    def build(self, config):
        return nn.Linear(config.width, config.num_classes)

    def inputs(self, config):
        return InputContract("float", (config.width,))


class RaisesInBuild(Tiny):
    name = "raises-in-build"

    def build(self, config):
        raise RuntimeError("the backbone weights are missing")


class NotAModule(Tiny):
    name = "not-a-module"

    def build(self, config):
        return {"weight": torch.zeros(3, 4)}


class _Wide(nn.Module):
    def __init__(self, width, classes):
        super().__init__()
        self.linear = nn.Linear(width, classes)

    def forward(self, x):
        return self.linear(x).unsqueeze(-1)  # (N, K, 1): not logits (N, K)


class WrongOutput(Tiny):
    name = "wrong-output"

    def build(self, config):
        return _Wide(config.width, config.num_classes)


class _Crash(nn.Linear):
    def forward(self, x):
        raise ValueError("shape mismatch in layer 3")


class RaisesInForward(Tiny):
    name = "raises-in-forward"

    def build(self, config):
        return _Crash(config.width, config.num_classes)


class PickyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    width: int = 4
    num_classes: int = 3

    @field_validator("width")
    @classmethod
    def _even(cls, value: int) -> int:
        if value % 2:
            raise ValueError("width must be even")
        return value


class Picky(Tiny):
    name = "picky"
    Config = PickyConfig


class RaisingValidatorConfig(TinyConfig):
    @field_validator("width")
    @classmethod
    def _boom(cls, value: int) -> int:
        raise KeyError("width")  # not a ValueError: pydantic lets it through


class RaisingValidator(Tiny):
    name = "raising-validator"
    Config = RaisingValidatorConfig


class TrainsNothing(Tiny):
    name = "trains-nothing"

    def trainable(self, config):
        return ["backbone"]  # the module has no such parameter


class BadContract(Tiny):
    name = "bad-contract"

    def inputs(self, config):
        return (config.width,)  # not an InputContract


class NotAnArchitecture:
    name = "not-an-architecture"


class Misnamed(Tiny):
    name = "something-else"


class NoPydantic(Tiny):
    name = "no-pydantic"
    Config = dict


class NoBuild(Architecture):
    name = "no-build"
    Config = TinyConfig


WORKING = {"tiny": "Tiny", "raises-in-build": "RaisesInBuild", "not-a-module": "NotAModule",
           "wrong-output": "WrongOutput", "raises-in-forward": "RaisesInForward", "picky": "Picky",
           "raising-validator": "RaisingValidator", "trains-nothing": "TrainsNothing", "bad-contract": "BadContract",
           "not-an-architecture": "NotAnArchitecture"}  # fmt: skip


@pytest.fixture
def sample_registry():
    """The installed architectures plus the sample plugins above, for the duration of a test (in this process)."""
    from importlib.metadata import EntryPoint

    from unlearn_contract import ENTRY_POINT_GROUP, modules
    from unlearn_contract import registry as reg

    real = reg.get_registry()
    eps = [EntryPoint(name=n, value=f"{__name__}:{obj}", group=ENTRY_POINT_GROUP) for n, obj in WORKING.items()]
    found = reg.discover(eps=eps)
    found = reg.Registry({**real.installed, **found.installed}, {**real.unavailable, **found.unavailable})
    original = reg.get_registry
    reg.get_registry = lambda: found
    modules._resolve_json.cache_clear()
    try:
        yield found
    finally:
        reg.get_registry = original
        modules._resolve_json.cache_clear()
