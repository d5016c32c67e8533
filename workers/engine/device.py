"""Device selection: one setting (`auto`, `cpu`, `cuda`, `cuda:N`) picks where every tensor op runs."""

from __future__ import annotations

import re

import torch


class DeviceError(ValueError):
    """A device setting that is malformed or names hardware this process cannot use."""


def resolve_device(setting: str = "auto") -> torch.device:
    """`auto` = cuda:0 when CUDA is available else cpu; `cuda` / `cuda:N` fail clearly without CUDA."""
    value = (setting or "auto").strip().lower()
    if value == "auto":
        return torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    if value == "cpu":
        return torch.device("cpu")
    match = re.fullmatch(r"cuda(?::(\d+))?", value)
    if not match:
        raise DeviceError(f"unknown device setting {setting!r}; use auto, cpu, cuda or cuda:N")
    if not torch.cuda.is_available():
        raise DeviceError(f"device {setting!r} requested but CUDA is not available in this process")
    index = int(match.group(1) or 0)
    count = torch.cuda.device_count()
    if index >= count:
        raise DeviceError(f"device {setting!r} requested but only {count} CUDA device(s) are visible")
    return torch.device("cuda", index)


def synchronize(device: torch.device) -> None:
    """Wait for queued kernels so wall-clock timings are honest on CUDA (no-op on CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
