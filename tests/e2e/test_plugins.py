"""Installed architecture plugins end to end, through the HTTP API with a real worker process: register a data set
and a model of each example plugin, train it in the worker, delete rows, read the verdict, download the checkpoint
and load it into the plugin's module.

- text-transformer: token-id rows (int64), a synthetic four-topic corpus;
- frozen-cnn: a frozen pretrained backbone with a trainable head; every published version keeps the backbone bit
  for bit (after an IAU deletion and after an exact retrain).
"""

import hashlib

import numpy as np
import torch
from safetensors.numpy import save
from safetensors.torch import load as st_load

from tests.e2e.test_service import poll
from tests.helpers import upload_dataset
from workers.engine import ArchSpec, build_model, prepare_inputs

RECIPE = {"epochs": 4, "batch_size": 32, "lr": 0.003, "alpha": 0.005, "seed": 0}


def _register(client, data: bytes, rows: int, architecture: dict) -> tuple[dict, str]:
    ids = "".join(f"doc-{i}\n" for i in range(rows))
    resp = upload_dataset(client, data, name="plugin data", ids=ids)
    assert resp.status_code == 201, resp.text
    dataset = resp.json()
    body = {"name": architecture["name"], "dataset_id": dataset["id"], "architecture": architecture, "train": RECIPE}
    resp = client.post("/v1/models", json=body)
    assert resp.status_code == 202, resp.text
    model_id = resp.json()["id"]
    model = poll(client, f"/v1/models/{model_id}", lambda b: b["status"] != "training", timeout=240)
    assert (model["status"], model["latest_version"]) == ("ready", 1), model
    return dataset, model_id


def _delete(client, model_id: str, sample_ids: list[str], method: str = "iau") -> dict:
    resp = client.post(f"/v1/models/{model_id}/deletions", json={"sample_ids": sample_ids, "method": method})
    assert resp.status_code == 202, resp.text
    status = poll(client, resp.headers["location"], lambda b: b["status"] in ("succeeded", "failed"), timeout=240)
    assert status["status"] == "succeeded", status
    return status


def _download(client, model_id: str, version: str = "latest") -> dict[str, torch.Tensor]:
    resp = client.get(f"/v1/models/{model_id}/versions/{version}/checkpoint")
    assert resp.status_code == 200, resp.text
    assert hashlib.sha256(resp.content).hexdigest() == resp.headers["etag"].strip('"')
    return st_load(resp.content)


def _check_verdict(evidence: dict) -> None:
    """The targeted pipeline's verdict; when it missed its target the model's default policy escalated the
    request to an exact retrain, whose evidence keeps the missed verdict as `escalated_from`."""
    assert evidence["request"]["rows"] == 3 and len(evidence["forget_commitment"]) == 64
    if evidence["outcome"]["target"]["kind"] == "exact":
        assert evidence["method"] == "retrain" and evidence["outcome"]["met"] is True
        evidence = evidence["escalated_from"]
        assert evidence["outcome"]["met"] is False
    outcome = evidence["outcome"]
    assert outcome["target"]["kind"] == "membership" and isinstance(outcome["met"], bool)
    assert "membership AUC" in outcome["reason"] and 0.0 <= outcome["measured"]["membership_auc"] <= 1.0


def test_a_text_classifier_over_token_ids(client, workers):
    from unlearn_text.corpus import dataset

    workers.start()
    x, y, hx, hy, vocab = dataset(300, 200, max_length=16, seed=2)
    data = save(
        {"features": x.numpy(), "labels": y.numpy(), "holdout_features": hx.numpy(), "holdout_labels": hy.numpy()}
    )
    arch = {"name": "text-transformer", "config": {"vocab_size": len(vocab), "max_length": 16, "num_classes": 4}}
    registered, model_id = _register(client, data, 300, arch)
    assert (registered["feature_dtype"], registered["feature_range"]) == ("int64", [0, len(vocab) - 1])

    status = _delete(client, model_id, ["doc-1", "doc-2", "doc-3"])
    assert (status["base_version"], status["result_version"]) == (1, 2)
    evidence = status["evidence"]
    _check_verdict(evidence)
    assert evidence["parameters"]["frozen"] == 0

    spec = ArchSpec(arch["name"], arch["config"])
    net = build_model(spec).eval()
    net.load_state_dict(_download(client, model_id), strict=True)
    with torch.no_grad():
        correct = (net(prepare_inputs(spec, hx)).argmax(1) == hy).double().mean().item()
    assert abs(correct - evidence["after"]["holdout"]["accuracy"]) < 1e-9  # the verdict describes this checkpoint
    assert client.get(f"/v1/models/{model_id}/versions/1/checkpoint").status_code == 410


def test_a_frozen_backbone_with_a_trainable_head(client, workers):
    from unlearn_transfer import FrozenCNN
    from unlearn_transfer.pretrain import PRETRAIN_ROWS, digits_images

    workers.start()
    images, labels = digits_images(PRETRAIN_ROWS, PRETRAIN_ROWS + 500)  # images the backbone never saw
    flat = images.reshape(len(labels), 64).numpy()  # rows of 64 floats, as a user would store them
    data = save({"features": flat[:350], "labels": labels[:350].numpy(), "holdout_features": flat[350:],
                 "holdout_labels": labels[350:].numpy()})  # fmt: skip
    arch = {"name": "frozen-cnn", "config": {"num_classes": 10}}
    _, model_id = _register(client, data, 350, arch)
    first = _download(client, model_id, "1")
    pretrained = FrozenCNN().pretrained(None)
    assert all(torch.equal(first[k], v) for k, v in pretrained.items())

    status = _delete(client, model_id, ["doc-4", "doc-5", "doc-6"])
    _check_verdict(status["evidence"])
    assert status["evidence"]["parameters"] == {"trainable": 1290, "frozen": 4896}
    second = _download(client, model_id)
    assert all(torch.equal(second[k], v) for k, v in pretrained.items())
    # the head moves unless the pipeline kept the starting state as its best (the verdict says which)
    assert torch.equal(second["head.weight"], first["head.weight"]) == (status["evidence"]["param_distance"] == 0)

    status = _delete(client, model_id, ["doc-7", "doc-8", "doc-9"], method="retrain")
    assert status["evidence"]["outcome"]["met"] is True and status["result_version"] == 3
    third = _download(client, model_id)
    assert all(torch.equal(third[k], v) for k, v in pretrained.items())
    assert not torch.equal(third["head.weight"], first["head.weight"])  # the head was retrained
    net = build_model(ArchSpec(arch["name"], arch["config"])).eval()
    net.load_state_dict(third, strict=True)
    with torch.no_grad():
        accuracy = (net(torch.tensor(flat[350:]).reshape(-1, 1, 8, 8)).argmax(1) == labels[350:]).double().mean()
    assert accuracy > 0.8 and np.isclose(float(accuracy), status["evidence"]["after"]["holdout"]["accuracy"])
