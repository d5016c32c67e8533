"""Small datasets for tests and benchmarks: scikit-learn's digits and a synthetic task that must be memorised."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

DIGITS_SCALE = 16.0  # digits pixels are integers 0..16


def load_digits_split(holdout_fraction: float = 0.3, seed: int = 0) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Digits (1,797 rows, 8x8 = 64 features in [0, 1], 10 classes) split into train and holdout, seeded."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = torch.tensor(digits.data, dtype=torch.float32) / DIGITS_SCALE  # (1797, 64)
    y = torch.tensor(digits.target, dtype=torch.int64)  # (1797,)
    order = torch.randperm(y.shape[0], generator=torch.Generator().manual_seed(seed))
    n_hold = int(round(holdout_fraction * y.shape[0]))
    hold, train = order[:n_hold], order[n_hold:]
    return x[train], y[train], x[hold], y[hold]


def digits_as_images(x: Tensor, channels: int = 1) -> Tensor:
    """(N, 64) digits -> (N, C, 32, 32) by nearest-neighbour upsampling, for the CNNs."""
    img = x.reshape(-1, 1, 8, 8)  # (N, 1, 8, 8)
    img = F.interpolate(img, scale_factor=4, mode="nearest")  # (N, 1, 32, 32)
    return img.expand(-1, channels, -1, -1).contiguous()  # (N, C, 32, 32)


def synthetic_memorise(
    n: int, d: int = 32, classes: int = 10, signal: float = 0.5, seed: int = 0
) -> tuple[Tensor, Tensor]:
    """Gaussian features with a weak class signal: a model fits its rows well beyond what generalises,
    so training rows have visibly lower loss than unseen rows (membership is detectable)."""
    gen = torch.Generator().manual_seed(seed)
    centers = torch.randn(classes, d, generator=gen)  # (K, D)
    y = torch.randint(0, classes, (n,), generator=gen)  # (N,)
    x = signal * centers[y] + torch.randn(n, d, generator=gen)  # (N, D)
    return x, y
