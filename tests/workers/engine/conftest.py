"""Shared fixtures for the engine tests: small models on scikit-learn's digits, one CPU thread.

The engine under test runs on the `device` fixture: the CPU, unless UNLEARN_TEST_DEVICE names another device
(`cuda`, `cuda:N` or `auto`, as for resolve_device). `UNLEARN_TEST_DEVICE=cuda python -m pytest
tests/workers/engine` runs the same tests on a GPU; the reference computations the tests write out by hand
stay on the CPU.
"""

import os
from dataclasses import dataclass

import pytest
import torch

from workers.engine import ArchSpec, TrainConfig, resolve_device, train
from workers.engine.data import load_digits_split

torch.set_num_threads(1)

DEVICE_ENV = "UNLEARN_TEST_DEVICE"
DIGITS_MLP = ArchSpec("mlp", {"in_features": 64, "hidden": [128], "num_classes": 10})
DIGITS_TRAIN = TrainConfig(epochs=20, batch_size=64, lr=1e-2, alpha=0.005, seed=0)
FORGET_FRACTION = 0.1  # share of the training rows forgotten in the digits scenario
FORGET_SEED = 1


@dataclass
class DigitsScenario:
    spec: ArchSpec
    x: torch.Tensor  # (N, 64) training rows
    y: torch.Tensor  # (N,)
    xh: torch.Tensor  # (H, 64) holdout rows
    yh: torch.Tensor  # (H,)
    original: dict  # state_dict trained on all N rows
    retrained: dict  # state_dict trained on the retained rows only (the `retrain` method)
    forget_idx: torch.Tensor  # (F,)
    retain_mask: torch.Tensor  # (N,) bool


@pytest.fixture(scope="session")
def device() -> torch.device:
    """Where the engine runs in these tests: UNLEARN_TEST_DEVICE, default cpu."""
    return resolve_device(os.environ.get(DEVICE_ENV, "cpu"))


@pytest.fixture(scope="session")
def digits():
    return load_digits_split(holdout_fraction=0.3, seed=0)


@pytest.fixture(scope="session")
def digits_scenario(digits, device) -> DigitsScenario:
    x, y, xh, yh = digits
    n = y.shape[0]
    forget_idx = torch.randperm(n, generator=torch.Generator().manual_seed(FORGET_SEED))
    forget_idx = forget_idx[: int(FORGET_FRACTION * n)]
    retain_mask = torch.ones(n, dtype=torch.bool)
    retain_mask[forget_idx] = False
    original = train(DIGITS_MLP, x, y, DIGITS_TRAIN, device)
    retrained = train(DIGITS_MLP, x[retain_mask], y[retain_mask], DIGITS_TRAIN, device)
    return DigitsScenario(DIGITS_MLP, x, y, xh, yh, original, retrained, forget_idx, retain_mask)


@pytest.fixture(scope="session")
def small_logreg(digits, device):
    """A quickly trained logistic regression on 300 digits rows (features, labels, spec, state)."""
    x, y, _, _ = digits
    x, y = x[:300], y[:300]
    spec = ArchSpec("logreg", {"in_features": 64, "num_classes": 10})
    state = train(spec, x, y, TrainConfig(epochs=5, lr=1e-2, alpha=0.0), device)
    return spec, x, y, state
