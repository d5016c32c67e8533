"""Models the service refuses at registration: checkpoints holding NaN or infinite weights, and architectures
whose parameter count passes UNLEARN_MAX_MODEL_PARAMETERS (counted without building the model). Each is a 422
problem that writes nothing."""

import json
import time

import numpy as np
import pytest
from safetensors.numpy import save

from tests.app.fakes import RecordingJobs
from tests.app.written import snapshot
from tests.helpers import LOGREG_SPEC, logreg_checkpoint, upload_digits

TRAIN = {"epochs": 1, "batch_size": 32, "lr": 0.01, "alpha": 0.0, "seed": 1}


@pytest.fixture
def dataset(client, app) -> dict:
    app.state.jobs = RecordingJobs()
    return upload_digits(client, rows=40)


def upload(client, spec: dict, ckpt: bytes):
    files = {"checkpoint": ("m.safetensors", ckpt, "application/octet-stream")}
    return client.post("/v1/models", data={"spec": json.dumps(spec)}, files=files)


def refused(app, send) -> dict:
    before = snapshot(app)
    resp = send()
    assert resp.status_code == 422, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    assert snapshot(app) == before
    assert app.state.jobs.training == []
    return resp.json()


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("tensor", ["linear.weight", "linear.bias"])
def test_non_finite_checkpoint_weights_are_422(client, app, dataset, bad, tensor):
    rng = np.random.default_rng(0)
    weights = {"linear.weight": rng.normal(size=(10, 64)).astype(np.float32), "linear.bias": np.zeros(10, np.float32)}
    weights[tensor].reshape(-1)[7] = bad
    spec = {"name": "m", "dataset_id": dataset["id"], **LOGREG_SPEC}
    body = refused(app, lambda: upload(client, spec, save(weights)))
    assert body["non_finite"] == [tensor] and tensor in body["detail"]


def test_non_finite_weights_past_the_first_chunk_are_found(client, app, dataset, monkeypatch):
    from app.models import checks

    monkeypatch.setattr(checks, "CHUNK_BYTES", 64)  # one weight row (64 float32) a chunk
    weights = {"linear.weight": np.ones((10, 64), np.float32), "linear.bias": np.zeros(10, np.float32)}
    weights["linear.weight"][9, 63] = np.nan
    spec = {"name": "m", "dataset_id": dataset["id"], **LOGREG_SPEC}
    assert refused(app, lambda: upload(client, spec, save(weights)))["non_finite"] == ["linear.weight"]
    weights["linear.weight"][9, 63] = 0.5
    assert upload(client, spec, save(weights)).status_code == 201


def _mlp(dataset: dict, hidden: list[int]) -> dict:
    config = {"in_features": 64, "hidden": hidden, "num_classes": 10}
    return {"name": "big", "dataset_id": dataset["id"], "architecture": {"name": "mlp", "config": config}}


def test_trillion_parameter_mlp_is_refused_at_once(client, app, dataset):
    spec = _mlp(dataset, [1_000_000, 1_000_000])  # about 10^12 weights in the middle layer
    started = time.perf_counter()
    body = refused(app, lambda: client.post("/v1/models", json={**spec, "train": TRAIN}))
    assert time.perf_counter() - started < 2.0
    expected = 65 * 1_000_000 + 1_000_001 * 1_000_000 + 1_000_001 * 10
    assert body["parameters"] == expected and body["limit"] == 100_000_000
    assert "parameters" in body["detail"] and "UNLEARN_MAX_MODEL_PARAMETERS" in body["detail"]
    # uploaded checkpoints are held to the same cap (checked before the checkpoint is read)
    assert refused(app, lambda: upload(client, spec, logreg_checkpoint()))["parameters"] == expected


def test_the_cap_is_a_setting_and_counts_exactly(client, app, dataset, settings):
    count = 65 * 32 + 33 * 10  # mlp 64 -> 32 -> 10: weights and biases
    app.state.settings = settings.model_copy(update={"max_model_parameters": count - 1})
    spec = _mlp(dataset, [32])
    assert refused(app, lambda: client.post("/v1/models", json={**spec, "train": TRAIN}))["parameters"] == count
    app.state.settings = settings.model_copy(update={"max_model_parameters": count})
    assert client.post("/v1/models", json={**spec, "train": TRAIN}).status_code == 202


@pytest.mark.parametrize(
    ("name", "config", "expected"),
    [
        ("logreg", {"in_features": 3072, "num_classes": 10**6}, 3073 * 10**6),
        ("lenet", {"in_channels": 3, "num_classes": 10**9}, None),
        ("resnet18", {"in_channels": 3, "num_classes": 10**9}, None),
    ],
)
def test_every_architecture_is_counted(client, app, settings, name, config, expected):
    app.state.jobs = RecordingJobs()
    app.state.settings = settings.model_copy(update={"max_model_parameters": 10**8})
    x = np.zeros((4, 3, 32, 32), np.float32)
    files = {"file": ("d", save({"features": x, "labels": np.arange(4, dtype=np.int64)}))}
    ds = client.post("/v1/datasets", data={"name": "img"}, files=files).json()
    spec = {"name": "m", "dataset_id": ds["id"], "architecture": {"name": name, "config": config}}
    body = refused(app, lambda: client.post("/v1/models", json={**spec, "train": TRAIN}))
    assert body["parameters"] > 10**8
    if expected is not None:
        assert body["parameters"] == expected


def test_too_many_mlp_layers_is_422_without_building_them(client, app, dataset):
    from workers.engine.zoo import MAX_MLP_HIDDEN_LAYERS

    spec = _mlp(dataset, [1] * 100_000)  # few parameters, but a worker would build 100,000 layers
    started = time.perf_counter()
    body = refused(app, lambda: client.post("/v1/models", json={**spec, "train": TRAIN}))
    assert time.perf_counter() - started < 2.0
    assert "hidden" in body["detail"] and str(MAX_MLP_HIDDEN_LAYERS) in body["detail"]
    deep = _mlp(dataset, [4] * MAX_MLP_HIDDEN_LAYERS)
    assert client.post("/v1/models", json={**deep, "train": TRAIN}).status_code == 202
