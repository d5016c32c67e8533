"""GET /v1/architectures, token-id data sets, and registration against installed plugins: input contracts are
checked against the data set's recorded shape and dtype, and a plugin that raises, answers with the wrong output
shape or refuses its config gives a 422 problem naming it, with nothing written and nothing enqueued."""

import json

import numpy as np
import pytest
from safetensors.numpy import save

from tests.app.fakes import RecordingJobs
from tests.app.written import snapshot
from tests.conftest import auth
from tests.helpers import upload_dataset
from tests.unlearn_contract.sample_plugins import sample_registry  # noqa: F401 - fixture

TRAIN = {"epochs": 1, "batch_size": 32, "lr": 0.01, "alpha": 0.0, "seed": 0}
TEXT = {"name": "text-transformer", "config": {"vocab_size": 50, "max_length": 8, "num_classes": 3}}


@pytest.fixture
def jobs(app) -> RecordingJobs:
    app.state.jobs = RecordingJobs()
    return app.state.jobs


def token_ids(rows: int = 12, length: int = 8, top: int = 49, *, holdout: bool = True) -> bytes:
    rng = np.random.default_rng(0)
    x = rng.integers(0, top + 1, (rows, length)).astype(np.int64)
    x[0, 0] = top  # the largest id is there
    tensors = {"features": x, "labels": np.arange(rows, dtype=np.int64) % 3}
    if holdout:
        tensors |= {"holdout_features": x[:4].copy(), "holdout_labels": np.arange(4, dtype=np.int64) % 3}
    return save(tensors)


def dataset(client, data: bytes) -> dict:
    resp = upload_dataset(client, data, name="d")
    assert resp.status_code == 201, resp.text
    return resp.json()


def upload(client, spec: dict, checkpoint: bytes):
    files = {"checkpoint": ("m.safetensors", checkpoint, "application/octet-stream")}
    return client.post("/v1/models", data={"spec": json.dumps(spec)}, files=files)


def refused(app, jobs, send, status: int = 422) -> dict:
    before = snapshot(app)
    resp = send()
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    assert snapshot(app) == before and jobs.training == []
    return resp.json()


def test_the_installed_architectures_are_listed_with_their_schema_and_contract(client, make_key):
    resp = client.get("/v1/architectures", headers=auth(make_key("reader")))
    assert resp.status_code == 200, resp.text
    items = {a["name"]: a for a in resp.json()["items"]}
    assert {"logreg", "mlp", "lenet", "resnet18", "text-transformer", "frozen-cnn"} <= set(items)
    mlp = items["mlp"]
    assert mlp["source"] == "built-in" and mlp["version"] == "1.0.0" and mlp["inputs"]["dtype"] == "float"
    assert set(mlp["config_schema"]["required"]) == {"in_features", "hidden", "num_classes"}
    assert mlp["config_schema"]["properties"]["hidden"]["maxItems"] == 256
    text = items["text-transformer"]
    assert text["inputs"]["dtype"] == "int64" and "token ids" in text["inputs"]["description"]
    assert text["source"].startswith("unlearn-text-transformer") and text["version"] == "0.1.0"
    assert text["config_schema"]["properties"]["vocab_size"]["minimum"] == 2
    assert items["frozen-cnn"]["config_schema"]["properties"]["num_classes"]["default"] == 10
    assert client.get("/v1/architectures", headers={"Authorization": ""}).status_code == 401


def test_the_openapi_document_shows_the_listing(client):
    doc = client.get("/openapi.json").json()
    operation = doc["paths"]["/v1/architectures"]["get"]
    assert operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("ArchitectureList")
    assert "config_schema" in doc["components"]["schemas"]["ArchitectureOut"]["properties"]


def test_token_id_data_sets_record_dtype_and_range(client):
    body = dataset(client, token_ids(top=41))
    assert (body["feature_shape"], body["feature_dtype"], body["feature_range"]) == ([8], "int64", [0, 41])
    floats = dataset(client, save({"features": np.zeros((3, 2), np.float16), "labels": np.arange(3)}))
    assert (floats["feature_dtype"], floats["feature_range"]) == ("float16", None)
    assert client.get(f"/v1/datasets/{body['id']}").json() == body


def test_token_ids_skip_the_finite_check_and_negative_ids_are_recorded(client):
    x = np.array([[-5, 3], [7, 2**40]], np.int64)
    body = dataset(client, save({"features": x, "labels": np.array([0, 1])}))
    assert body["feature_range"] == [-5, 2**40]


def test_token_id_data_sets_refuse_mixed_kinds(client, app, jobs):
    x = np.zeros((4, 8), np.int64)
    y = np.arange(4, dtype=np.int64)
    mixed = save({"features": x, "labels": y, "holdout_features": x[:2].astype(np.float32), "holdout_labels": y[:2]})
    body = refused(app, jobs, lambda: upload_dataset(client, mixed))
    assert "holdout_features must be int64 ids like features, got F32" in body["detail"]
    body = refused(app, jobs, lambda: upload_dataset(client, save({"features": x.astype(np.int32), "labels": y})))
    assert "features must be a float tensor or int64 ids, got I32" in body["detail"]


@pytest.mark.parametrize(
    ("data", "config", "fragment"),
    [
        (save({"features": np.zeros((4, 8), np.float32), "labels": np.arange(4)}), {}, "takes int64 ids"),
        (token_ids(top=50), {}, "takes ids from 0 to 49 but the data set's features range from 0 to 50"),
        (token_ids(length=9), {}, "expects rows of shape [8] but the data set's rows have shape [9]"),
        (token_ids(), {"num_classes": 2}, "predicts 2 classes"),
        (token_ids(), {"embed_dim": 30, "heads": 4}, "embed_dim (30) must be a multiple of heads (4)"),
    ],
)
def test_registration_names_the_mismatch_with_the_input_contract(client, app, jobs, data, config, fragment):
    ds = dataset(client, data)
    arch = {"name": TEXT["name"], "config": {**TEXT["config"], **config}}
    spec = {"name": "m", "dataset_id": ds["id"], "architecture": arch}
    body = refused(app, jobs, lambda: client.post("/v1/models", json={**spec, "train": TRAIN}))
    assert fragment in body["detail"], body
    assert refused(app, jobs, lambda: upload(client, spec, b"never read"))["detail"] == body["detail"]


def test_a_text_model_is_registered_for_training_and_from_a_checkpoint(client, jobs):
    import torch

    from workers.engine import ArchSpec, build_model, checkpoint_bytes

    ds = dataset(client, token_ids())
    spec = {"name": "text", "dataset_id": ds["id"], "architecture": TEXT}
    resp = client.post("/v1/models", json={**spec, "train": TRAIN})
    assert resp.status_code == 202, resp.text
    assert jobs.training == [resp.json()["id"]]
    torch.manual_seed(0)
    state = build_model(ArchSpec(TEXT["name"], TEXT["config"])).state_dict()
    resp = upload(client, spec, checkpoint_bytes(state))
    assert resp.status_code == 201, resp.text
    assert resp.json()["latest_version"] == 1
    del state["head.bias"]
    assert upload(client, spec, checkpoint_bytes(state)).json()["missing"] == ["head.bias"]


@pytest.mark.parametrize(
    ("name", "config", "fragment"),
    [
        ("raises-in-build", {}, "failed to build: RuntimeError: the backbone weights are missing"),
        ("not-a-module", {}, "build() returned dict, not a torch.nn.Module"),
        ("wrong-output", {}, "expected float logits of shape (2, K)"),
        ("raises-in-forward", {}, "failed to run a forward pass on rows of shape [4]: ValueError"),
        ("trains-nothing", {}, "trainable() names no parameter of the module"),
        ("bad-contract", {}, "inputs() returned tuple, not an InputContract"),
        ("picky", {"width": 3}, "width must be even"),
        ("raising-validator", {"width": 4}, "config validation raised KeyError"),
        ("not-an-architecture", {}, "installed but unavailable"),
        ("no-such-plugin", {}, "unknown architecture 'no-such-plugin'; installed:"),
    ],
)
def test_a_broken_plugin_is_a_422_that_writes_nothing(client, app, jobs, sample_registry, name, config, fragment):  # noqa: F811
    ds = dataset(client, save({"features": np.zeros((6, 4), np.float32), "labels": np.arange(6) % 3}))
    spec = {"name": "m", "dataset_id": ds["id"], "architecture": {"name": name, "config": config}}
    body = refused(app, jobs, lambda: client.post("/v1/models", json={**spec, "train": TRAIN}))
    assert fragment in body["detail"], body
    assert fragment in refused(app, jobs, lambda: upload(client, spec, b"never read"))["detail"]


def test_a_sample_plugin_that_works_registers(client, jobs, sample_registry):  # noqa: F811
    ds = dataset(client, save({"features": np.zeros((6, 4), np.float32), "labels": np.arange(6) % 3}))
    spec = {"name": "m", "dataset_id": ds["id"], "architecture": {"name": "tiny", "config": {}}}
    resp = client.post("/v1/models", json={**spec, "train": TRAIN})
    assert resp.status_code == 202, resp.text
    listed = {a["name"]: a for a in client.get("/v1/architectures").json()["unavailable"]}
    assert "not an unlearn_contract.Architecture" in listed["not-an-architecture"]["error"]
