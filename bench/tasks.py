"""Benchmark scenarios: a data set, an architecture, a training recipe and the rows to forget.

Trained models (the original and the exact retrain of each scenario) are memoised per process, so the
quality tables and the defaults sweep share them and their measured training times.
"""

import time
from dataclasses import dataclass
from functools import cache

import torch

from bench import data
from bench.adapter import ArchSpec, TrainConfig, synchronize, train


@dataclass(frozen=True)
class Recipe:
    hidden: tuple[int, ...]  # MLP hidden widths
    epochs: int
    batch_size: int = 64
    lr: float = 1e-3
    alpha: float = 0.005  # gradient-restriction weight


RECIPES = {
    "digits": Recipe(hidden=(128,), epochs=30),
    "digits-poison": Recipe(hidden=(128,), epochs=30),
    "memorisation": Recipe(hidden=(256,), epochs=40),
}

LOADERS = {"digits": data.digits, "digits-poison": data.poisoned_digits, "memorisation": data.memorisation}


@dataclass(frozen=True)
class Scenario:
    task: str  # key of LOADERS
    forget: str  # "1 row", "1%", "5%" or "poison"

    @property
    def label(self) -> str:
        if self.forget == "poison":
            what = "poisoned rows (trigger)"
        elif self.forget == "1 row":
            what = "1 random row"
        else:
            what = f"{self.forget} random rows"
        return f"{self.task}: forget {what}"


SCENARIOS = [
    Scenario("digits", "1 row"),
    Scenario("digits", "1%"),
    Scenario("digits", "5%"),
    Scenario("digits-poison", "poison"),
    Scenario("memorisation", "1 row"),
    Scenario("memorisation", "1%"),
    Scenario("memorisation", "5%"),
]


@cache
def task(name: str, seed: int) -> data.Task:
    return LOADERS[name](seed)


def spec_for(name: str, seed: int) -> ArchSpec:
    t = task(name, seed)
    cfg = {"in_features": t.x.shape[1], "hidden": list(RECIPES[name].hidden), "num_classes": t.num_classes}
    return ArchSpec("mlp", cfg)


SECOND_SEED = 7_000  # added to the training seed of the second retrain (the noise floor)


def train_config(name: str, seed: int, train_seed: int | None = None) -> TrainConfig:
    """The scenario's recipe; the training seed (initialisation, shuffling) is the data seed unless given."""
    r = RECIPES[name]
    s = seed if train_seed is None else train_seed
    return TrainConfig(epochs=r.epochs, batch_size=r.batch_size, lr=r.lr, alpha=r.alpha, seed=s)


@cache
def forget_index(sc: Scenario, seed: int) -> torch.Tensor:
    """Rows to forget: the poisoned rows, or a seeded random share of the train rows."""
    t = task(sc.task, seed)
    if sc.forget == "poison":
        return t.poison_idx
    g = torch.Generator().manual_seed(20_000 + seed)
    m = 1 if sc.forget == "1 row" else max(1, int(round(float(sc.forget.rstrip("%")) / 100 * len(t.y))))
    return torch.randperm(len(t.y), generator=g)[:m].sort().values


def _timed_train(name: str, seed: int, keep: torch.Tensor | None, device: torch.device, train_seed=None):
    t = task(name, seed)
    x, y = (t.x, t.y) if keep is None else (t.x[keep], t.y[keep])
    synchronize(device)
    start = time.perf_counter()
    state = train(spec_for(name, seed), x, y, train_config(name, seed, train_seed), device)
    synchronize(device)
    return state, time.perf_counter() - start


@cache
def original(name: str, seed: int, device: torch.device) -> tuple[dict, float]:
    """The model trained on every train row with the recipe: (state_dict, seconds)."""
    return _timed_train(name, seed, None, device)


@cache
def retrained(sc: Scenario, seed: int, device: torch.device) -> tuple[dict, float]:
    """The exact retrain on the retained rows with the same recipe and seed: (state_dict, seconds)."""
    keep = torch.ones(len(task(sc.task, seed).y), dtype=torch.bool)
    keep[forget_index(sc, seed)] = False
    return _timed_train(sc.task, seed, keep, device)


@cache
def retrained_second(sc: Scenario, seed: int, device: torch.device) -> tuple[dict, float]:
    """A second exact retrain on the same retained rows with another training seed: the distance between the
    two retrains is the noise floor of every figure (what retraining itself varies by)."""
    keep = torch.ones(len(task(sc.task, seed).y), dtype=torch.bool)
    keep[forget_index(sc, seed)] = False
    return _timed_train(sc.task, seed, keep, device, train_seed=SECOND_SEED + seed)
