"""The `unlearn` command drives the whole user path against the running service (API and worker processes).

Data set upload, model training (and registration by upload), deletion with --wait, status, checkpoint download
with sha256 check, the purged version answering 410, receipt verification (pinned key and a tampered copy), and
the refusals a user meets (unknown ids, ids already deleted).
"""

import hashlib
import json
import re
import subprocess
import sys

import httpx
import pytest
from safetensors.numpy import load_file

from tests.helpers import DIGITS_CLASSES, DIGITS_FEATURES, digits_ids, digits_safetensors, logreg_checkpoint
from tests.live import METRICS_TOKEN

pytestmark = pytest.mark.integration

ROWS = 400  # digits rows in the data set (ids user-0 .. user-399)
LOGREG = json.dumps({"in_features": DIGITS_FEATURES, "num_classes": DIGITS_CLASSES})
CLI_TIMEOUT_S = 300


def unlearn(service, *args: str, expect: int = 0) -> subprocess.CompletedProcess:
    """Run the command as a user would, in its own process, configured through UNLEARN_URL / UNLEARN_API_KEY."""
    result = subprocess.run(
        [sys.executable, "-m", "unlearn_client", "--json", *args],
        cwd=service.workdir,
        env=service.env,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
    )
    assert result.returncode == expect, (
        f"unlearn {' '.join(args)}: exit {result.returncode}, expected {expect}\n"
        f"stdout:\n{result.stdout[-3000:]}\nstderr:\n{result.stderr[-3000:]}"
    )
    return result


def output(result: subprocess.CompletedProcess):
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def files(service):
    data = service.workdir / "digits.safetensors"
    data.write_bytes(digits_safetensors(rows=ROWS))
    ids = service.workdir / "ids.txt"
    ids.write_text(digits_ids(ROWS))
    checkpoint = service.workdir / "logreg.safetensors"
    checkpoint.write_bytes(logreg_checkpoint())
    return {"data": data, "ids": ids, "checkpoint": checkpoint}


def test_whole_user_path(service, files, tmp_path):
    dataset = output(unlearn(service, "datasets", "upload", "digits", str(files["data"]), "--ids", str(files["ids"])))
    assert dataset["num_rows"] == ROWS
    assert output(unlearn(service, "datasets", "get", dataset["id"]))["id"] == dataset["id"]

    # Trained by the service: --wait returns once version 1 is published.
    model = output(
        unlearn(
            service,
            *("models", "train", "--name", "digits-logreg", "--dataset", dataset["id"], "--arch", "logreg"),
            *("--config", LOGREG, "--epochs", "2", "--batch-size", "64", "--lr", "0.05", "--seed", "0"),
            *("--wait", "--timeout", "240", "--poll", "0.2"),
        )
    )
    assert model["status"] == "ready" and model["latest_version"] == 1
    assert output(unlearn(service, "models", "get", model["id"]))["status"] == "ready"

    # Deletion with a progress bar; the same Idempotency-Key answers with the same request.
    delete = ("delete", model["id"], "user-3", "user-17", "--reason", "erasure request", "--idempotency-key", "k-1")
    waited = unlearn(service, *delete, "--wait", "--timeout", "240", "--poll", "0.2")
    deletion = output(waited)
    assert deletion["status"] == "succeeded", deletion
    assert deletion["base_version"] == 1 and deletion["result_version"] == 2
    assert "%" in waited.stderr and "succeeded" in waited.stderr  # the progress line
    assert output(unlearn(service, *delete))["id"] == deletion["id"]
    assert output(unlearn(service, "status", deletion["id"]))["status"] == "succeeded"
    # The worker's counters reach the API's /metrics through the shared multi-process folder.
    assert httpx.get(f"{service.url}/metrics").status_code == 401
    metrics = httpx.get(f"{service.url}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}).text
    # (method "retrain" when the approximate update missed its target and the default policy retrained)
    applied = re.search(r'^unlearn_deletions_applied_total\{method="(?:iau|retrain)"\} (\S+)$', metrics, re.MULTILINE)
    assert applied and float(applied.group(1)) >= 1, metrics[:2000]

    versions = output(unlearn(service, "models", "versions", model["id"]))["items"]
    assert [v["version"] for v in versions] == [2, 1]
    latest = versions[0]

    # Download: sha256 checked against the ETag; the file is the published checkpoint.
    target = tmp_path / "latest.safetensors"
    got = output(unlearn(service, "download", model["id"], "-o", str(target)))
    assert got["version"] == 2 and got["sha256"] == latest["checkpoint_sha256"]
    assert hashlib.sha256(target.read_bytes()).hexdigest() == latest["checkpoint_sha256"]
    assert set(load_file(target)) == {"linear.weight", "linear.bias"}
    again = unlearn(service, "download", model["id"], "--version", "2", "-o", str(target))
    assert output(again)["transferred"] is False and "already up to date" in again.stderr
    wrong = unlearn(service, "download", model["id"], "--sha256", "0" * 64, "-o", str(tmp_path / "x"), expect=4)
    assert "differs" in wrong.stderr and not (tmp_path / "x").exists()

    # Version 1 still carries the deleted rows: purged, 410.
    purged = unlearn(service, "download", model["id"], "--version", "1", "-o", str(tmp_path / "v1"), expect=1)
    assert "410" in purged.stderr

    # Receipt: verified against the service's key, against a pinned copy of it, and rejected once altered.
    assert output(unlearn(service, "receipt", "verify", deletion["id"]))["verified"] is True
    key_file, receipt_file = tmp_path / "audit-key.json", tmp_path / "receipt.json"
    key_doc = httpx.get(f"{service.url}/v1/audit/public-key", headers={"Authorization": f"Bearer {service.api_key}"})
    key_file.write_text(key_doc.text)
    unlearn(service, "receipt", "get", deletion["id"], "-o", str(receipt_file))
    verified = unlearn(service, "receipt", "verify", "--file", str(receipt_file), "--public-key", str(key_file))
    assert output(verified)["deletion_id"] == deletion["id"]
    receipt = json.loads(receipt_file.read_text())
    receipt["request"]["sample_ids"] = ["user-3"]
    receipt_file.write_text(json.dumps(receipt))
    rejected = unlearn(
        service, "receipt", "verify", "--file", str(receipt_file), "--public-key", str(key_file), expect=4
    )
    assert "REJECTED" in rejected.stderr

    # Lists, every page: the data set, the model, its deletion and the audit entries about it.
    assert dataset["id"] in [d["id"] for d in output(unlearn(service, "datasets", "list", "--all"))["items"]]
    models = output(unlearn(service, "models", "list", "--dataset", dataset["id"], "--limit", "1", "--all"))
    assert [m["id"] for m in models["items"]] == [model["id"]] and models["next_cursor"] is None
    listed = output(unlearn(service, "deletions", "list", "--model", model["id"], "--status", "succeeded"))
    assert [d["id"] for d in listed["items"]] == [deletion["id"]]
    entries = output(unlearn(service, "audit", "log", "--deletion", deletion["id"], "--limit", "1", "--all"))
    kinds = [e["event_type"] for e in entries["items"]]
    assert kinds[0] == "deletion.requested" and "deletion.succeeded" in kinds
    table = subprocess.run(
        [sys.executable, "-m", "unlearn_client", "deletions", "list", "--model", model["id"]],
        env=service.env,
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
    )
    assert table.returncode == 0 and table.stdout.split()[:3] == ["ID", "MODEL_ID", "STATUS"]
    assert deletion["id"] in table.stdout

    # The log, checked against the key pinned above: a signed head, and that the log only grew since it.
    head_file = tmp_path / "head.json"
    head = output(unlearn(service, "audit", "head", "--verify", "--public-key", str(key_file)))
    head_file.write_text(json.dumps(head))
    unlearn(service, "delete", model["id"], "user-40", "--wait", "--timeout", "240", "--poll", "0.2")
    grown = unlearn(service, "audit", "consistency", str(head["tree_size"]), "--old-head", str(head_file),
                    "--public-key", str(key_file))  # fmt: skip
    assert output(grown)["second_size"] > head["tree_size"] and "saved head" in grown.stderr

    # Refusals: unknown ids (422) and ids already deleted (409) name the ids.
    unknown = unlearn(service, "delete", model["id"], "nobody-1", expect=1)
    assert "422" in unknown.stderr and "nobody-1" in unknown.stderr
    again = unlearn(service, "delete", model["id"], "user-3", expect=1)
    assert "409" in again.stderr and "user-3" in again.stderr


def test_register_uploaded_checkpoint(service, files):
    dataset = output(unlearn(service, "datasets", "upload", "digits-2", str(files["data"])))
    model = output(
        unlearn(
            service,
            *("models", "create", "--name", "uploaded", "--dataset", dataset["id"], "--arch", "logreg"),
            *("--config", LOGREG, "--checkpoint", str(files["checkpoint"])),
        )
    )
    assert model["status"] == "ready" and model["latest_version"] == 1
    (version,) = output(unlearn(service, "models", "versions", model["id"]))["items"]
    assert version["checkpoint_sha256"] == hashlib.sha256(files["checkpoint"].read_bytes()).hexdigest()
    wrong = unlearn(
        service,
        *("models", "create", "--name", "bad", "--dataset", dataset["id"], "--arch", "logreg"),
        *("--config", json.dumps({"in_features": 7, "num_classes": 3}), "--checkpoint", str(files["checkpoint"])),
        expect=1,
    )
    assert "422" in wrong.stderr
