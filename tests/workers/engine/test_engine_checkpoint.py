import hashlib
import os

import pytest
import torch
from safetensors import SafetensorError

from workers.engine import (
    ArchSpec,
    build_model,
    checkpoint_bytes,
    load_checkpoint,
    save_checkpoint,
    sha256_file,
    sha256_state_dict,
)
from workers.engine import checkpoint as checkpoint_module

SPEC = ArchSpec("mlp", {"in_features": 8, "hidden": [4], "num_classes": 3})


def test_round_trip_hash_and_size(tmp_path):
    state = build_model(SPEC).state_dict()
    path = tmp_path / "v1.safetensors"
    digest, size = save_checkpoint(state, path)
    assert size == path.stat().st_size
    assert digest == sha256_file(path) == hashlib.sha256(path.read_bytes()).hexdigest()
    assert digest == sha256_state_dict(state)
    loaded = load_checkpoint(path)
    assert loaded.keys() == state.keys()
    for k, v in state.items():
        assert torch.equal(loaded[k], v)
    from_bytes = load_checkpoint(path.read_bytes())
    assert all(torch.equal(from_bytes[k], v) for k, v in state.items())
    assert [p.name for p in tmp_path.iterdir()] == ["v1.safetensors"]  # no temp file left


def test_bytes_are_deterministic():
    state = build_model(SPEC).state_dict()
    copy = {k: v.clone() for k, v in reversed(list(state.items()))}
    assert checkpoint_bytes(state) == checkpoint_bytes(copy)


def test_failed_write_leaves_previous_file_and_no_temp(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.safetensors"
    old_digest, _ = save_checkpoint(build_model(SPEC).state_dict(), path)

    def boom(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint_module.os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint({"x": torch.ones(3)}, path)
    assert sha256_file(path) == old_digest
    assert os.listdir(tmp_path) == ["ckpt.safetensors"]


def test_pickle_is_never_loaded(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"linear.weight": torch.zeros(2, 2)}, path)  # a pickle archive, not safetensors
    with pytest.raises(SafetensorError):
        load_checkpoint(path)
    with pytest.raises(SafetensorError):
        load_checkpoint(path.read_bytes())
