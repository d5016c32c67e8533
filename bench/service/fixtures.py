"""The data set and checkpoints the benchmark uploads, and the few setup calls it makes through the API."""

from __future__ import annotations

import json

import httpx
import numpy as np
from safetensors.numpy import save

FEATURES, CLASSES = 64, 10


def dataset_bytes(rows: int, seed: int = 0) -> tuple[bytes, bytes]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((rows, FEATURES), dtype=np.float32)
    w = rng.standard_normal((FEATURES, CLASSES), dtype=np.float32)
    y = (x @ w).argmax(1).astype(np.int64)
    hx = rng.standard_normal((1000, FEATURES), dtype=np.float32)
    hy = (hx @ w).argmax(1).astype(np.int64)
    data = save({"features": x, "labels": y, "holdout_features": hx, "holdout_labels": hy})
    ids = "".join(f"s-{i}\n" for i in range(rows)).encode()
    return data, ids


def logreg_checkpoint(data: bytes, steps: int = 200, lr: float = 0.5) -> bytes:
    """A logreg fitted to the data set (full-batch softmax regression), as a user would upload it."""
    from safetensors.numpy import load

    tensors = load(data)
    x, y = tensors["features"], tensors["labels"]
    w = np.zeros((CLASSES, FEATURES), np.float32)
    b = np.zeros(CLASSES, np.float32)
    onehot = np.eye(CLASSES, dtype=np.float32)[y]
    for _ in range(steps):
        logits = x @ w.T + b
        logits -= logits.max(1, keepdims=True)
        p = np.exp(logits)
        p /= p.sum(1, keepdims=True)
        err = (p - onehot) / len(y)
        w -= lr * (err.T @ x)
        b -= lr * err.sum(0)
    return save({"linear.weight": w.astype(np.float32), "linear.bias": b.astype(np.float32)})


def mlp_checkpoint(hidden: list[int]) -> bytes:
    rng = np.random.default_rng(2)
    widths = [FEATURES, *hidden, CLASSES]
    tensors = {}
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
        tensors[f"net.{2 * i}.weight"] = rng.standard_normal((b, a), dtype=np.float32) * 0.01
        tensors[f"net.{2 * i}.bias"] = np.zeros(b, np.float32)
    return save(tensors)


class Api:
    """The few setup calls the benchmark makes through the public API (httpx)."""

    def __init__(self, url: str, key: str) -> None:
        self.http = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=300)

    def upload_dataset(self, data: bytes, ids: bytes) -> str:
        files = {"file": ("data.safetensors", data, "application/octet-stream"), "ids": ("ids.txt", ids, "text/plain")}
        resp = self.http.post("/v1/datasets", data={"name": "bench"}, files=files)
        resp.raise_for_status()
        return resp.json()["id"]

    def register(self, dataset_id: str, arch: dict, checkpoint: bytes, name: str) -> str:
        spec = {"name": name, "dataset_id": dataset_id, "architecture": arch}
        files = {"checkpoint": ("model.safetensors", checkpoint, "application/octet-stream")}
        resp = self.http.post("/v1/models", data={"spec": json.dumps(spec)}, files=files)
        if resp.status_code != 201:
            raise RuntimeError(f"model registration answered {resp.status_code}: {resp.text[:500]}")
        return resp.json()["id"]

    def close(self) -> None:
        self.http.close()
