"""Helpers for the verdict, escalation and consolidation tests: a model registered and trained through the API and
the real worker code run in this process, the verdict of the engine's update forced, and the retrained
checkpoint the service should publish computed independently with the engine's `train`."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load as st_load
from unlearn_client.verify.checks import verify_receipt

from app.audit.signing import load_public_key
from tests.app.fakes import RecordingJobs
from tests.helpers import digits_arrays, upload_digits
from tests.workers import factories as f
from workers.engine import ArchSpec, TrainConfig, train

ROWS = 600  # training rows of the digits data set used here (user-0 .. user-599)
SHORT_REPAIR = {"repair_steps": 3}  # the verdict is forced: a short repair keeps the tests quick


def register_trained(app, client, unlearn: dict | None = None) -> str:
    """A model registered through the API (its jobs recorded, not queued) and trained by the real job here."""
    from workers.jobs.train import train_model

    app.state.jobs = RecordingJobs()
    dataset = upload_digits(client, rows=ROWS)
    body = {"name": "m", "dataset_id": dataset["id"], "architecture": f.SMALL_MLP, "train": f.FAST_RECIPE}
    resp = client.post("/v1/models", json={**body, "unlearn": {**SHORT_REPAIR, **(unlearn or {})}})
    assert resp.status_code == 202, resp.text
    model_id = resp.json()["id"]
    assert train_model(model_id).get("version") == 1, f.model(model_id).error
    return model_id


def delete(client, model_id: str, rows: list[int], **extra) -> str:
    resp = client.post(f"/v1/models/{model_id}/deletions", json={"sample_ids": [f"user-{i}" for i in rows], **extra})
    assert resp.status_code == 202, resp.text
    return resp.json()["id"]


def status(client, request_id: str) -> dict:
    resp = client.get(f"/v1/deletions/{request_id}")
    assert resp.status_code == 200, resp.text
    return resp.json()


def receipt(client, request_id: str) -> dict:
    """The request's receipt, checked offline against the published key."""
    resp = client.get(f"/v1/deletions/{request_id}/receipt")
    assert resp.status_code == 200, resp.text
    body = resp.json()
    verify_receipt(body, load_public_key(client.get("/v1/audit/public-key").json()["public_key_pem"]))
    return body


def checkpoint(client, model_id: str, version: int) -> dict[str, torch.Tensor]:
    resp = client.get(f"/v1/models/{model_id}/versions/{version}/checkpoint")
    assert resp.status_code == 200, resp.text
    return st_load(resp.content)


def retrained(deleted_rows: list[int]) -> dict[str, torch.Tensor]:
    """The engine's `train` with the model's recipe on every row but `deleted_rows` (CPU training is
    deterministic, so the service's exact retrain must give these very tensors)."""
    x, y = digits_arrays()[0][:ROWS], digits_arrays()[1][:ROWS]
    keep = torch.ones(len(y), dtype=torch.bool)
    keep[torch.tensor(deleted_rows, dtype=torch.int64)] = False
    idx = keep.nonzero().flatten()  # (N - |deleted|,)
    spec = ArchSpec(f.SMALL_MLP["name"], f.SMALL_MLP["config"])
    return train(
        spec, torch.from_numpy(x)[idx], torch.from_numpy(y)[idx], TrainConfig(**f.FAST_RECIPE), torch.device("cpu")
    )


def assert_same_tensors(got: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> None:
    assert sorted(got) == sorted(expected)
    for name, tensor in expected.items():
        assert torch.equal(got[name], tensor), f"{name} differs from the retrained model's"


@pytest.fixture
def verdict(monkeypatch: pytest.MonkeyPatch) -> dict:
    """Forces `outcome.met` of every approximate update (the real update still runs): {"met": bool}; records
    the purpose each update was configured with in "purposes"."""
    import workers.jobs.updates as updates

    real = updates.unlearn
    forced: dict = {"met": True, "purposes": []}

    def unlearn(*args, **kwargs):
        cfg = args[6]
        forced["purposes"].append(getattr(cfg, "purpose", None))
        result = real(*args, **kwargs)
        outcome = dict(result.evidence.get("outcome") or {"target": {"kind": "forced"}, "measured": {}})
        outcome.update(met=forced["met"], reason=f"forced met={forced['met']} by the test")
        result.evidence["outcome"] = outcome
        return result

    monkeypatch.setattr(updates, "unlearn", unlearn)
    return forced
