"""Issue 5 acceptance: 200 concurrent deletion requests through the API (some repeating an Idempotency-Key)
against one model, with two worker processes: exactly the expected requests exist, every row is deleted once,
versions are strictly sequential, requests that queued up behind an update were coalesced, and the audit log
verifies.
"""

import random
from concurrent.futures import ThreadPoolExecutor

import pytest
from rq import Worker

from tests.helpers import upload_digits
from tests.workers import factories as f
from workers.queue import get_queue

ARCH = {"name": "mlp", "config": {"in_features": 64, "hidden": [16], "num_classes": 10}}
RECIPE = {"epochs": 2, "batch_size": 64, "lr": 0.01, "alpha": 0.005, "seed": 0}
DISTINCT = 150  # distinct requests (2 rows each)
REPEATS = 50  # requests repeating an earlier one's Idempotency-Key and body


@pytest.mark.parametrize("backend", ["postgresql"])
def test_two_hundred_concurrent_requests_two_workers(client, workers):
    workers.start()
    workers.start()
    dataset = upload_digits(client)
    resp = client.post(
        "/v1/models", json={"name": "m", "dataset_id": dataset["id"], "architecture": ARCH, "train": RECIPE}
    )
    assert resp.status_code == 202, resp.text
    model_id = resp.json()["id"]
    f.wait_for(lambda: f.model(model_id).status == "ready", timeout=90, what="training")
    f.wait_for(lambda: len(Worker.all(queue=get_queue())) == 2, what="two workers listening")

    calls = [(f"key-{i}", [f"user-{2 * i}", f"user-{2 * i + 1}"]) for i in range(DISTINCT)]
    calls += random.Random(0).sample(calls, REPEATS)
    random.Random(1).shuffle(calls)

    def post(call):
        key, ids = call
        r = client.post(f"/v1/models/{model_id}/deletions", json={"sample_ids": ids}, headers={"Idempotency-Key": key})
        return key, r.status_code, r.json()

    with ThreadPoolExecutor(max_workers=16) as pool:
        answers = list(pool.map(post, calls))

    ids_by_key: dict[str, set[str]] = {}
    for key, status, body in answers:
        assert status in (202, 409), (status, body)  # 409: the same key while its first request is in flight
        if status == 202:
            ids_by_key.setdefault(key, set()).add(body["id"])
    assert len(ids_by_key) == DISTINCT and all(len(ids) == 1 for ids in ids_by_key.values())
    request_ids = [next(iter(ids)) for ids in ids_by_key.values()]

    def all_done():
        statuses = [f.request(r).status for r in request_ids]
        assert "failed" not in statuses
        return all(s == "succeeded" for s in statuses)

    f.wait_for(all_done, timeout=150, every=0.5, what="every deletion")

    versions = f.versions(model_id)
    assert [v.version for v in versions] == list(range(1, len(versions) + 1))
    assert all(v.parent_version == v.version - 1 for v in versions[1:])
    assert [v.state for v in versions][-1] == "available" and {v.state for v in versions[:-1]} <= {"purged"}
    applied = [rid for v in versions for rid in v.applied_requests]
    assert sorted(applied) == sorted(request_ids), "each request applied exactly once"
    assert len(versions) - 1 < DISTINCT, "requests queued behind an update were coalesced"
    stones = f.tombstones(model_id)
    assert len(stones) == 2 * DISTINCT and {t.state for t in stones} == {"deleted"}
    version_of = {rid: v.version for v in versions for rid in v.applied_requests}
    assert all(t.deleted_in_version == version_of[t.request_id] for t in stones)
    with_model = client.get(f"/v1/models/{model_id}").json()
    assert with_model["latest_version"] == versions[-1].version
    f.verify_audit_log()
