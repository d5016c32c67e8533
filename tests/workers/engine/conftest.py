"""Shared fixtures for the engine tests: small models on scikit-learn's digits, CPU, one thread."""

from dataclasses import dataclass

import pytest
import torch

from workers.engine import ArchSpec, TrainConfig, train
from workers.engine.data import load_digits_split

torch.set_num_threads(1)

CPU = torch.device("cpu")
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
def digits():
    return load_digits_split(holdout_fraction=0.3, seed=0)


@pytest.fixture(scope="session")
def digits_scenario(digits) -> DigitsScenario:
    x, y, xh, yh = digits
    n = y.shape[0]
    forget_idx = torch.randperm(n, generator=torch.Generator().manual_seed(FORGET_SEED))
    forget_idx = forget_idx[: int(FORGET_FRACTION * n)]
    retain_mask = torch.ones(n, dtype=torch.bool)
    retain_mask[forget_idx] = False
    original = train(DIGITS_MLP, x, y, DIGITS_TRAIN, CPU)
    retrained = train(DIGITS_MLP, x[retain_mask], y[retain_mask], DIGITS_TRAIN, CPU)
    return DigitsScenario(DIGITS_MLP, x, y, xh, yh, original, retrained, forget_idx, retain_mask)


@pytest.fixture(scope="session")
def small_logreg(digits):
    """A quickly trained logistic regression on 300 digits rows (features, labels, spec, state)."""
    x, y, _, _ = digits
    x, y = x[:300], y[:300]
    spec = ArchSpec("logreg", {"in_features": 64, "num_classes": 10})
    state = train(spec, x, y, TrainConfig(epochs=5, lr=1e-2, alpha=0.0), CPU)
    return spec, x, y, state
