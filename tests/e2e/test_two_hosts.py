"""Two worker "hosts" against one PostgreSQL, one Redis and one S3-compatible object store (a real SeaweedFS).

Each host is a worker process with a scratch folder of its own and a blob folder of its own that must stay unused:
they share no filesystem for blobs, so every data set, checkpoint and gradient cache travels through the object
store. The API (this process) is a third host with its own scratch folder. Concurrent deletion requests for
three models, some repeating an Idempotency-Key, must come out as they do on one host: per model, versions in
sequence and requests applied in the order they were made; each request applied exactly once; requests that
queued up behind an update coalesced; every superseded version purged, its objects gone from the store and from
both hosts' scratch folders; the audit log intact. (The per-model lock is PostgreSQL's, so this runs on
PostgreSQL only; SQLite's file lock serves one host.)
"""

import json
import random
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from rq import Worker
from sqlalchemy import select

from app.core.db import session_scope
from app.datasets.orm import Dataset
from app.deletions.orm import DeletionRequest
from app.models.orm import ModelVersion
from tests.helpers import upload_digits
from tests.workers import factories as f
from workers.queue import get_queue

pytestmark = [pytest.mark.parametrize("storage", ["s3"]), pytest.mark.parametrize("backend", ["postgresql"])]

ARCH = {"name": "mlp", "config": {"in_features": 64, "hidden": [16], "num_classes": 10}}
RECIPE = {"epochs": 2, "batch_size": 64, "lr": 0.01, "alpha": 0.005, "seed": 0}
MODELS = 3
PER_MODEL = 24  # distinct requests per model (2 rows each)
REPEATS = 20  # requests repeating an earlier one's Idempotency-Key and body


def host_env(root: Path) -> dict[str, str]:
    return {"UNLEARN_SCRATCH_DIR": str(root / "scratch"), "UNLEARN_STORAGE_DIR": str(root / "blobs")}


def scratch_copies(root: Path) -> set[str]:
    return {p.name for p in (root / "scratch" / "cache").glob("??/*")}


def test_two_hosts_sharing_only_the_object_store_keep_every_guarantee(
    client, settings, workers, object_store, s3_prefix, tmp_path
):
    hosts = [tmp_path / "host-a", tmp_path / "host-b"]
    for host in hosts:
        workers.start(env=host_env(host))
    f.wait_for(lambda: len(Worker.all(queue=get_queue())) == 2, what="both hosts listening")
    dataset = upload_digits(client)
    model_ids = []
    for i in range(MODELS):
        resp = client.post(
            "/v1/models", json={"name": f"m{i}", "dataset_id": dataset["id"], "architecture": ARCH, "train": RECIPE}
        )
        assert resp.status_code == 202, resp.text
        model_ids.append(resp.json()["id"])
    f.wait_for(lambda: all(f.model(m).status == "ready" for m in model_ids), timeout=120, what="training")

    calls = [
        (model_id, f"{model_id}-{i}", [f"user-{2 * i + m}", f"user-{2 * i + m + 1}"])
        for m, model_id in enumerate(model_ids)
        for i in range(0, 2 * PER_MODEL, 2)
    ]
    calls += random.Random(0).sample(calls, REPEATS)
    random.Random(1).shuffle(calls)

    def post(call):
        model_id, key, ids = call
        r = client.post(f"/v1/models/{model_id}/deletions", json={"sample_ids": ids}, headers={"Idempotency-Key": key})
        return model_id, key, r.status_code, r.json()

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(post, calls))
    ids_by_key: dict[str, set[str]] = {}
    for _, key, status, body in answers:
        assert status in (202, 409), (status, body)  # 409: the same key while its first request is in flight
        if status == 202:
            ids_by_key.setdefault(key, set()).add(body["id"])
    assert len(ids_by_key) == MODELS * PER_MODEL and all(len(ids) == 1 for ids in ids_by_key.values())

    def all_done():
        with session_scope() as session:
            statuses = list(
                session.execute(select(DeletionRequest.status).where(DeletionRequest.model_id.in_(model_ids))).scalars()
            )
        assert "failed" not in statuses
        return len(statuses) == MODELS * PER_MODEL and all(s == "succeeded" for s in statuses)

    f.wait_for(all_done, timeout=240, every=0.5, what="every deletion")

    purged_blobs: set[str] = set()
    for model_id in model_ids:
        with session_scope() as session:
            requests = list(
                session.execute(
                    select(DeletionRequest)
                    .where(DeletionRequest.model_id == model_id)
                    .order_by(DeletionRequest.created_at, DeletionRequest.id)
                ).scalars()
            )
        versions = f.versions(model_id)
        assert [v.version for v in versions] == list(range(1, len(versions) + 1))
        assert all(v.parent_version == v.version - 1 for v in versions[1:])
        assert [v.state for v in versions] == ["purged"] * (len(versions) - 1) + ["available"]
        applied = [rid for v in versions for rid in v.applied_requests]
        assert sorted(applied) == sorted(r.id for r in requests), "each request applied exactly once"
        assert len(versions) - 1 < PER_MODEL, "requests that queued up behind an update were coalesced"
        version_of = {rid: v.version for v in versions for rid in v.applied_requests}
        order = [version_of[r.id] for r in requests]
        assert order == sorted(order), "per model, requests applied in the order they were made"
        stones = f.tombstones(model_id)
        assert len(stones) == 2 * PER_MODEL and {t.state for t in stones} == {"deleted"}
        assert all(t.deleted_in_version == version_of[t.request_id] for t in stones)
        purged_blobs |= {b for v in versions[:-1] for b in (v.checkpoint_sha256, v.grad_cache_sha256) if b}
        events = [e for e, _ in f.audit_events(model_id)]
        assert events.count("deletion.succeeded") == PER_MODEL
        assert events.count("version.purged") == len(versions) - 1

    def live_blobs() -> set[str]:
        with session_scope() as session:
            named = {session.get(Dataset, dataset["id"]).blob_sha256}
            for v in session.execute(
                select(ModelVersion).where(ModelVersion.model_id.in_(model_ids), ModelVersion.state == "available")
            ).scalars():
                named |= {v.checkpoint_sha256, v.grad_cache_sha256} - {None}
        return named

    # A purged version's blob is gone unless a live version holds the same bytes: a deletion that left the
    # weights unchanged (no membership signal) publishes the same checkpoint again.
    def store_holds_only_live_blobs():
        live = live_blobs()  # read again: a version's gradient cache is built after it is published
        stored = object_store.shas(s3_prefix)
        return stored <= live and not stored & (purged_blobs - live)

    f.wait_for(store_holds_only_live_blobs, timeout=30, what="only the blobs of live versions in the object store")
    f.wait_for(
        lambda: not any(scratch_copies(h) & (purged_blobs - live_blobs()) for h in hosts),
        timeout=30,
        what="both hosts' scratch copies of purged versions to go",
    )
    published = {(m, v.version) for m in model_ids for v in f.versions(m)[1:]}

    def logged():  # a worker logs an update just after its commit: wait for the last lines
        found = [_applied(workers.log_dir / f"worker-{i}.log") for i in range(len(hosts))]
        return found if len(found[0]) + len(found[1]) >= len(published) else None

    applied_by = f.wait_for(logged, timeout=10, what="the workers' logs")
    assert sorted(applied_by[0] + applied_by[1]) == sorted(published), "each version made once, by one host"
    for host, applied in zip(hosts, applied_by, strict=True):
        assert applied, f"{host.name} applied no update"
        assert scratch_copies(host), f"{host.name} read no blob through its scratch cache"
        assert not (host / "blobs").exists(), f"{host.name} used a local blob folder"
    assert not Path(settings.storage_dir).exists(), "the API used a local blob folder"
    f.verify_audit_log()


def _applied(log: Path) -> list[tuple[str, int]]:
    """(model id, version) of every update a worker published, from its JSON log lines."""
    out = []
    for line in log.read_text(errors="replace").splitlines():
        if '"deletion.applied"' in line:
            record = json.loads(line)
            out.append((record["model_id"], record["version"]))
    return out
