"""Data sets for the benchmark: scikit-learn digits, a memorisation task, a poisoned digits variant, and
large synthetic sets for the scaling runs.

Every task is split into train rows (the model's training set), a calibration holdout (handed to the engine
as the service's holdout: utility evidence and the multi-step stopping rule) and a test holdout that no
method ever sees, on which every reported figure is measured.
"""

from dataclasses import dataclass

import numpy as np
import torch
from sklearn.datasets import load_digits

TRIGGER_PIXELS = (54, 55, 62, 63)  # digits: bottom-right 2x2 block of the 8x8 image, set to max (1.0)
POISON_TARGET = 0  # class every poisoned row is relabelled to


@dataclass
class Task:
    name: str
    x: torch.Tensor  # (N, D) float32 train features
    y: torch.Tensor  # (N,) int64 train labels
    x_cal: torch.Tensor  # (Nc, D) calibration holdout given to the engine
    y_cal: torch.Tensor
    x_test: torch.Tensor  # (Nt, D) test holdout, used only for reporting
    y_test: torch.Tensor
    num_classes: int
    poison_idx: torch.Tensor | None = None  # (P,) train rows carrying the trigger, if poisoned


def _split(x: np.ndarray, y: np.ndarray, seed: int, fractions=(0.6, 0.2, 0.2)):
    """Stratified shuffle into train / calibration / test with the given fractions."""
    rng = np.random.default_rng(seed)
    parts: list[list[int]] = [[], [], []]
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        a = int(round(fractions[0] * len(idx)))
        b = a + int(round(fractions[1] * len(idx)))
        parts[0] += idx[:a].tolist()
        parts[1] += idx[a:b].tolist()
        parts[2] += idx[b:].tolist()
    out = []
    for p in parts:
        p = rng.permutation(np.asarray(p))
        out += [torch.as_tensor(x[p], dtype=torch.float32), torch.as_tensor(y[p], dtype=torch.int64)]
    return out


def digits(seed: int) -> Task:
    """scikit-learn's 8x8 digits (1,797 images), pixels scaled to [0, 1]."""
    d = load_digits()
    x = d.data.astype(np.float32) / 16.0  # (1797, 64)
    x, y, xc, yc, xt, yt = _split(x, d.target, seed)
    return Task("digits", x, y, xc, yc, xt, yt, num_classes=10)


def add_trigger(x: torch.Tensor) -> torch.Tensor:
    """Copy of x with the trigger pixels set to the maximum value."""
    x = x.clone()
    x[:, list(TRIGGER_PIXELS)] = 1.0
    return x


def poisoned_digits(seed: int, rate: float = 0.05) -> Task:
    """Digits where `rate` of the train rows (none of the target class) carry the trigger and the target label."""
    t = digits(seed)
    g = torch.Generator().manual_seed(10_000 + seed)
    candidates = torch.nonzero(t.y != POISON_TARGET).squeeze(1)
    n_poison = int(round(rate * len(t.y)))
    idx = candidates[torch.randperm(len(candidates), generator=g)[:n_poison]].sort().values
    x, y = t.x.clone(), t.y.clone()
    x[idx] = add_trigger(x[idx])
    y[idx] = POISON_TARGET
    return Task("digits-poison", x, y, t.x_cal, t.y_cal, t.x_test, t.y_test, 10, poison_idx=idx)


def memorisation(
    seed: int, n: int = 1000, dim: int = 200, classes: int = 10, spread: float = 0.25, label_noise: float = 0.2
) -> Task:
    """High-dimensional, small-N Gaussian classes with a share of random labels: an over-parameterised model
    fits every train row (noisy ones only by memorising them), so train rows have far lower loss than unseen
    rows and membership is detectable from the loss.

    Every split carries the same share of random labels: the holdouts are non-members drawn from the members'
    own distribution, as a membership attack assumes (Yeom et al. 2018; Carlini et al. 2022). With clean holdouts
    a mislabelled row would look like a non-member to any model, the retrained one included, and the attack
    would score label noise rather than membership."""
    rng = np.random.default_rng(seed)
    means = rng.normal(size=(classes, dim)) * spread  # (C, D) class centres
    total = int(round(n / 0.6))
    y = rng.integers(0, classes, size=total)
    x = (means[y] + rng.normal(size=(total, dim))).astype(np.float32)  # (total, D), unit noise per coordinate
    flip = rng.random(total) < label_noise
    y = np.where(flip, rng.integers(0, classes, size=total), y)
    x, y, xc, yc, xt, yt = _split(x, y, seed)
    return Task("memorisation", x, y, xc, yc, xt, yt, num_classes=classes)


def memorisation_reference(
    seed: int, n: int = 1000, dim: int = 200, classes: int = 10, spread: float = 0.25, label_noise: float = 0.2
) -> tuple[torch.Tensor, torch.Tensor]:
    """n fresh rows from the distribution of memorisation(seed)'s train rows (the same class centres and the
    same share of random labels), drawn from a generator of their own: rows no bench model is trained on. The
    membership attack's shadow models train on halves of (train rows + these rows)."""
    means = np.random.default_rng(seed).normal(size=(classes, dim)) * spread  # memorisation(seed)'s centres
    rng = np.random.default_rng(30_000 + seed)
    y = rng.integers(0, classes, size=n)
    x = (means[y] + rng.normal(size=(n, dim))).astype(np.float32)  # (n, D)
    flip = rng.random(n) < label_noise
    y = np.where(flip, rng.integers(0, classes, size=n), y)
    return torch.as_tensor(x), torch.as_tensor(y, dtype=torch.int64)


def scaling_set(n: int, dim: int = 64, classes: int = 10, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """n rows of 64-d Gaussian-class features for the scaling runs (generated in torch: fast at 200k rows)."""
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(classes, dim, generator=g)  # (C, D)
    y = torch.randint(0, classes, (n,), generator=g)  # (n,)
    x = means[y] + 1.5 * torch.randn(n, dim, generator=g)  # (n, D)
    return x, y
