"""Checkpoints as safetensors: atomic writes, content hashes, and loads that never unpickle."""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load as st_load
from safetensors.torch import load_file as st_load_file
from safetensors.torch import save as st_save
from torch import Tensor

_READ_BLOCK = 1 << 20  # bytes read at a time when hashing a file


def _cpu_tensors(state_dict: dict[str, Tensor]) -> dict[str, Tensor]:
    # safetensors refuses shared or non-contiguous storage: give every tensor its own contiguous CPU copy
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in state_dict.items()}


def checkpoint_bytes(state_dict: dict[str, Tensor]) -> bytes:
    """The safetensors encoding of a state_dict (deterministic for equal tensors)."""
    return st_save(_cpu_tensors(state_dict))


def save_checkpoint(state_dict: dict[str, Tensor], path: str | os.PathLike) -> tuple[str, int]:
    """Write a safetensors checkpoint atomically (temp file, fsync, rename); returns (sha256 hex, size)."""
    path = Path(path)
    data = checkpoint_bytes(state_dict)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # make the rename itself durable
    finally:
        os.close(dir_fd)
    return hashlib.sha256(data).hexdigest(), len(data)


def load_checkpoint(source: str | os.PathLike | bytes) -> dict[str, Tensor]:
    """Read a safetensors checkpoint from a path or from bytes into CPU tensors. Never unpickles."""
    if isinstance(source, bytes | bytearray | memoryview):
        tensors = st_load(bytes(source))
    else:
        tensors = st_load_file(os.fspath(source), device="cpu")
    return {k: v.contiguous() for k, v in tensors.items()}


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(_READ_BLOCK):
            h.update(block)
    return h.hexdigest()


def sha256_state_dict(state_dict: dict[str, Tensor]) -> str:
    """sha256 of the checkpoint bytes this state_dict would be saved as."""
    return hashlib.sha256(checkpoint_bytes(state_dict)).hexdigest()


def state_dict_to(state_dict: dict[str, Tensor], device: torch.device | str) -> dict[str, Tensor]:
    return {k: v.detach().to(device) for k, v in state_dict.items()}
