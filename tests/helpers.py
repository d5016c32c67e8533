"""Test helpers: the sklearn digits data set as safetensors, uploads, checkpoints for the zoo."""

from functools import lru_cache

import numpy as np
from safetensors.numpy import save

DIGITS_FEATURES = 64
DIGITS_CLASSES = 10


@lru_cache
def digits_arrays(holdout: int = 300) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(features, labels, holdout_features, holdout_labels): the 1797 digits, scaled to [0, 1]."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)  # (1797, 64)
    y = digits.target.astype(np.int64)  # (1797,)
    return x[holdout:], y[holdout:], x[:holdout], y[:holdout]


def digits_safetensors(*, holdout: bool = True, rows: int | None = None) -> bytes:
    x, y, hx, hy = digits_arrays()
    if rows is not None:
        x, y = x[:rows], y[:rows]
    tensors = {"features": x, "labels": y}
    if holdout:
        tensors.update(holdout_features=hx, holdout_labels=hy)
    return save(tensors)


def digits_ids(n: int, prefix: str = "user-") -> str:
    return "".join(f"{prefix}{i}\n" for i in range(n))


def upload_dataset(client, data: bytes, *, name: str = "digits", ids: str | None = None, headers=None):
    files = {"file": ("data.safetensors", data, "application/octet-stream")}
    form = {"name": name}
    if ids is not None:
        form["ids"] = ids
    return client.post("/v1/datasets", data=form, files=files, headers=headers or {})


def upload_digits(client, *, rows: int | None = None, ids: bool = True) -> dict:
    """Register the digits data set (ids user-0..user-N-1 unless ids=False); returns the dataset body."""
    data = digits_safetensors(rows=rows)
    n = rows or len(digits_arrays()[1])
    resp = upload_dataset(client, data, ids=digits_ids(n) if ids else None)
    assert resp.status_code == 201, resp.text
    return resp.json()


def logreg_checkpoint(*, in_features: int = DIGITS_FEATURES, num_classes: int = DIGITS_CLASSES, seed: int = 0):
    """A safetensors checkpoint for the zoo's logreg layout (linear.weight, linear.bias)."""
    rng = np.random.default_rng(seed)
    return save(
        {
            "linear.weight": rng.normal(0, 0.01, (num_classes, in_features)).astype(np.float32),
            "linear.bias": np.zeros(num_classes, np.float32),
        }
    )


LOGREG_SPEC = {"architecture": {"name": "logreg", "config": {"in_features": 64, "num_classes": 10}}}


def register_uploaded_model(client, dataset_id: str, *, checkpoint: bytes | None = None, name: str = "m") -> dict:
    """Register a logreg model from an uploaded checkpoint (201, version 1, ready); returns the model body."""
    import json

    spec = {"name": name, "dataset_id": dataset_id, **LOGREG_SPEC}
    files = {"checkpoint": ("model.safetensors", checkpoint or logreg_checkpoint(), "application/octet-stream")}
    resp = client.post("/v1/models", data={"spec": json.dumps(spec)}, files=files)
    assert resp.status_code == 201, resp.text
    return resp.json()
