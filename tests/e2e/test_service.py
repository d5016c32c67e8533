"""Issue 3 acceptance, end to end: the API (in process, over HTTP semantics) and a real `python -m workers`
process sharing the real database (PostgreSQL, then the embedded SQLite), the real Redis and a blob folder.

Register digits, train a model through the API, delete rows, poll until `succeeded`, download `latest` (its
sha256 is the ETag), load it with safetensors into the zoo model, see the evidence; the previous version
answers 410 and the deleted rows are tombstoned.
"""

import copy
import hashlib
import json
import subprocess
import sys
import time

import pytest
from safetensors.torch import load as st_load
from unlearn_client.verify.checks import VerificationError, verify_receipt

from app.audit.signing import load_public_key
from app.core.idhash import get_id_hasher
from tests.helpers import upload_digits
from tests.workers import factories as f
from workers.engine import ArchSpec, build_model

ARCH = {"name": "mlp", "config": {"in_features": 64, "hidden": [16], "num_classes": 10}}
RECIPE = {"epochs": 3, "batch_size": 64, "lr": 0.01, "alpha": 0.005, "seed": 0}


def poll(client, url, done, *, timeout=90.0):
    deadline = time.monotonic() + timeout
    while True:
        resp = client.get(url)
        assert resp.status_code == 200, resp.text
        body = resp.json()
        if done(body):
            return body
        assert time.monotonic() < deadline, f"timed out polling {url}: {body}"
        time.sleep(0.2)


def test_delete_rows_end_to_end(client, workers, tmp_path):
    workers.start()  # starts while the data set uploads and the model is registered
    dataset = upload_digits(client)
    resp = client.post(
        "/v1/models", json={"name": "digits-mlp", "dataset_id": dataset["id"], "architecture": ARCH, "train": RECIPE}
    )
    assert resp.status_code == 202, resp.text
    model_id = resp.json()["id"]
    model = poll(client, f"/v1/models/{model_id}", lambda b: b["status"] != "training")
    assert (model["status"], model["latest_version"]) == ("ready", 1), model

    forget = ["user-1", "user-2", "user-3"]
    resp = client.post(f"/v1/models/{model_id}/deletions", json={"sample_ids": forget, "reason": "account closed"})
    assert resp.status_code == 202, resp.text
    location = resp.headers["location"]
    status = poll(client, location, lambda b: b["status"] in ("succeeded", "failed"))
    assert status["status"] == "succeeded", status
    assert (status["base_version"], status["result_version"]) == (1, 2)
    evidence = status["evidence"]
    assert evidence["method"] == "iau" and evidence["request"]["rows"] == 3
    assert evidence["before"]["forget"]["rows"] == 3 and "membership_auc" in evidence["after"]
    assert len(evidence["forget_commitment"]) == 64

    resp = client.get(f"/v1/models/{model_id}/versions/latest/checkpoint")
    assert resp.status_code == 200
    assert hashlib.sha256(resp.content).hexdigest() == resp.headers["etag"].strip('"')
    net = build_model(ArchSpec(ARCH["name"], ARCH["config"]))
    net.load_state_dict(st_load(resp.content), strict=True)

    assert client.get(f"/v1/models/{model_id}/versions/1/checkpoint").status_code == 410
    versions = client.get(f"/v1/models/{model_id}/versions").json()["items"]
    assert [(v["version"], v["state"]) for v in versions] == [(2, "available"), (1, "purged")]

    stones = f.tombstones(model_id)
    tenant_id = f.model(model_id).tenant_id
    assert sorted(t.sample_id for t in stones) == sorted(get_id_hasher().hash_ids(tenant_id, forget)), "keyed hashes"
    assert {(t.state, t.deleted_in_version) for t in stones} == {("deleted", 2)}
    again = client.post(f"/v1/models/{model_id}/deletions", json={"sample_ids": ["user-2"]})
    assert again.status_code == 409, again.text

    check_receipt_offline(client, location, tmp_path)


def check_receipt_offline(client, location, tmp_path):
    """The signed receipt verifies with nothing but the published public key, by library and by command."""
    receipt = client.get(f"{location}/receipt")
    assert receipt.status_code == 200, receipt.text
    receipt = receipt.json()
    pem = client.get("/v1/audit/public-key").json()["public_key_pem"]
    verify_receipt(receipt, load_public_key(pem))
    tampered = copy.deepcopy(receipt)
    tampered["result_version"]["version"] = 7
    with pytest.raises(VerificationError):
        verify_receipt(tampered, load_public_key(pem))

    (tmp_path / "receipt.json").write_text(json.dumps(receipt))
    (tmp_path / "tampered.json").write_text(json.dumps(tampered))
    (tmp_path / "key.pem").write_text(pem)
    command = [sys.executable, "-m", "unlearn_client.verify", "receipt"]
    ok = subprocess.run([*command, tmp_path / "receipt.json", "--public-key", tmp_path / "key.pem"], check=False)
    bad = subprocess.run([*command, tmp_path / "tampered.json", "--public-key", tmp_path / "key.pem"], check=False)
    assert (ok.returncode, bad.returncode) == (0, 1)
