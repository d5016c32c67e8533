"""The engine API the benchmark uses, in one place (workers.engine), plus timing helpers."""

import time

import torch

from workers.engine import (
    ArchSpec,
    GradCache,
    TrainConfig,
    UnlearnConfig,
    build_cache,
    build_model,
    gradient_sum,
    prepare_inputs,
    resolve_device,
    retrain,
    sha256_state_dict,
    train,
    unlearn,
)
from workers.engine.device import synchronize
from workers.engine.zoo import load_model

__all__ = [
    "ArchSpec",
    "GradCache",
    "TrainConfig",
    "UnlearnConfig",
    "build_cache",
    "build_model",
    "gradient_sum",
    "load_model",
    "prepare_inputs",
    "resolve_device",
    "retrain",
    "sha256_state_dict",
    "synchronize",
    "timed",
    "train",
    "unlearn",
]


def timed(device: torch.device, fn, *args, **kwargs):
    """(fn(*args, **kwargs), wall seconds), synchronising CUDA around the call."""
    synchronize(device)
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    synchronize(device)
    return out, time.perf_counter() - start
