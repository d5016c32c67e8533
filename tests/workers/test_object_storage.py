"""Workers on an S3-compatible object store (UNLEARN_STORAGE_URL=s3://..., a real SeaweedFS server): training,
deletion and purge through objects only, publication that a SIGKILL cannot half-do, a purge cut short after its
commit and finished by the reconciler, and compaction that leaves no object and no scratch copy holding an
erased row. Each worker process gets a scratch folder and a blob folder of its own (the blob folder must stay
unused): nothing but the object store connects them."""

import hashlib
import time
from pathlib import Path

import numpy as np
import pytest

from app.core.db import session_scope
from app.core.s3store import S3BlobStore, S3Location
from app.datasets.orm import Dataset
from tests.helpers import digits_arrays
from tests.workers import factories as f
from tests.workers.procs import _clear_caches
from workers import datastore, publish
from workers.jobs import compact
from workers.jobs.cache import refresh_cache
from workers.jobs.deletions import apply_deletions
from workers.queue import enqueue_deletion, enqueue_training
from workers.reconciler import prune_scratch, reconcile

pytestmark = [pytest.mark.parametrize("storage", ["s3"]), pytest.mark.parametrize("backend", ["postgresql"])]

ROWS = 400
SLOW_UPDATE = {  # minutes on digits: exact correction streamed a row at a time, no early stop
    "correction": "exact",
    "chunk_size": 1,
    "max_steps": 500,
    "target_auc": -1.0,
    "auc_tolerance": 0.0,
    "max_accuracy_drop": 1.0,
    "min_stop_rows": 0,
}


def host_env(root: Path) -> dict[str, str]:
    """A worker "host": its own scratch folder, and a blob folder that must stay unused. (No compaction while
    the test looks: it would replace the data set's object.)"""
    return {
        "UNLEARN_SCRATCH_DIR": str(root / "scratch"),
        "UNLEARN_STORAGE_DIR": str(root / "blobs"),
        "UNLEARN_COMPACTION_DELAY_S": "3600",
    }


def scratch_copies(root: Path) -> set[str]:
    return {p.name for p in (root / "scratch" / "cache").glob("??/*")}


def _succeeded(request_id):
    r = f.request(request_id)
    assert r.status != "failed", r.error
    return r if r.status == "succeeded" else None


def _version(model_id, n, *, cached=False):
    found = next((v for v in f.versions(model_id) if v.version == n), None)
    return found if found is not None and (found.grad_cache_sha256 or not cached) else None


def _object_bytes(object_store, prefix: str, sha: str) -> bytes:
    body = object_store.client().get_object(Bucket=object_store.bucket, Key=f"{prefix}/{sha[:2]}/{sha}")["Body"]
    return body.read()


def test_a_worker_trains_deletes_and_purges_through_the_object_store(
    settings, workers, object_store, s3_prefix, tmp_path
):
    host = tmp_path / "host-a"
    tenant = f.make_tenant()
    dataset = f.make_dataset(tenant)
    model_id = f.make_training_model(tenant, dataset, unlearn_defaults=f.MOVING_UPDATE)
    enqueue_training(model_id)
    workers.start(env=host_env(host))
    v1 = f.wait_for(lambda: _version(model_id, 1, cached=True), timeout=90, what="version 1 and its cache")

    rid = f.make_deletion(tenant, model_id, [0, 1, 2])
    enqueue_deletion(rid, model_id)
    done = f.wait_for(lambda: _succeeded(rid), timeout=60, what="the deletion")
    assert done.result_version == 2 and done.evidence["correction"]["mode"] == "cached"
    v2 = f.wait_for(lambda: _version(model_id, 2, cached=True), timeout=60, what="version 2's cache")
    dataset_sha = _dataset_blob(dataset)
    assert object_store.shas(s3_prefix) == {dataset_sha, v2.checkpoint_sha256, v2.grad_cache_sha256}, (
        "version 1's checkpoint and cache objects are gone; nothing else was left behind"
    )
    ckpt = _object_bytes(object_store, s3_prefix, v2.checkpoint_sha256)
    assert hashlib.sha256(ckpt).hexdigest() == v2.checkpoint_sha256 and len(ckpt) == v2.checkpoint_size
    assert not scratch_copies(host) & {v1.checkpoint_sha256, v1.grad_cache_sha256}, "no copy of version 1 either"
    assert {dataset_sha, v2.checkpoint_sha256} <= scratch_copies(host), "the worker read blobs through its cache"
    assert not (host / "blobs").exists(), "the worker never used a local blob folder"


def _dataset_blob(dataset_id: str) -> str:
    with session_scope() as session:
        return session.get(Dataset, dataset_id).blob_sha256


def test_sigkill_mid_update_publishes_nothing_and_another_host_finishes(
    settings, workers, object_store, s3_prefix, tmp_path
):
    tenant = f.make_tenant()
    model_id = f.trained_model(tenant, f.make_dataset(tenant), unlearn_defaults=SLOW_UPDATE)
    refresh_cache(model_id, 1)
    (v1,) = f.versions(model_id)
    rid = f.make_deletion(tenant, model_id, list(range(20)))
    enqueue_deletion(rid, model_id)
    before = object_store.shas(s3_prefix)
    doomed = workers.start(env=host_env(tmp_path / "host-a"))
    f.wait_for(lambda: f.request(rid).stage == "unlearning", timeout=60, what="the update to be running")
    time.sleep(0.5)
    workers.kill(doomed)

    r = f.request(rid)
    assert (r.status, r.result_version) == ("running", None)
    assert [v.version for v in f.versions(model_id)] == [1] and f.model(model_id).latest_version == 1
    assert object_store.shas(s3_prefix) == before, "no object of a version that was never published"

    f.set_unlearn_defaults(model_id, f.MOVING_UPDATE)
    workers.start(env=host_env(tmp_path / "host-b"))  # its reconciler finds the orphaned request
    done = f.wait_for(lambda: _succeeded(rid), timeout=90, what="the retried deletion on the other host")
    assert (done.attempts, done.result_version) == (2, 2)
    v1_after, v2 = f.versions(model_id)
    assert (v1_after.state, v2.state) == ("purged", "available")
    f.wait_for(
        lambda: not object_store.shas(s3_prefix) & {v1.checkpoint_sha256, v1.grad_cache_sha256},
        what="version 1's objects to go",
    )
    assert v2.checkpoint_sha256 in object_store.shas(s3_prefix)


def test_a_purge_cut_short_after_its_commit_is_finished_by_the_reconciler(
    settings, test_queue, object_store, s3_prefix, monkeypatch
):
    tenant = f.make_tenant()
    model_id = f.trained_model(tenant, f.make_dataset(tenant), unlearn_defaults=f.MOVING_UPDATE)
    refresh_cache(model_id, 1)
    (v1,) = f.versions(model_id)
    # The worker dies right after the publishing transaction commits, before it deletes anything.
    real_delete = publish.delete_blob_if_unused
    monkeypatch.setattr(publish, "delete_blob_if_unused", lambda sha: False)
    rid = f.make_deletion(tenant, model_id, [4, 5])
    apply_deletions(model_id, rid)
    assert _succeeded(rid).result_version == 2
    purged = f.versions(model_id)[0]
    assert purged.state == "purged", "the purge committed with the new version: downloads answer 410"
    doomed = {v1.checkpoint_sha256, v1.grad_cache_sha256}
    assert doomed <= object_store.shas(s3_prefix), "the objects outlived the crash"
    monkeypatch.setattr(publish, "delete_blob_if_unused", real_delete)

    # A writer that crashed mid-upload left an incomplete multipart upload: the same pass drops it.
    client = object_store.client()
    upload = client.create_multipart_upload(Bucket=object_store.bucket, Key=f"{s3_prefix}/ab/{'ab' * 32}")
    monkeypatch.setenv("UNLEARN_TMP_MAX_AGE_S", "1")
    _clear_caches()
    time.sleep(2.5)  # the store reports whole seconds
    report = reconcile()
    assert doomed <= set(report.blobs) and not object_store.shas(s3_prefix) & doomed
    assert report.tmp_files >= 1
    listed = client.list_multipart_uploads(Bucket=object_store.bucket, Prefix=s3_prefix).get("Uploads") or []
    assert upload["UploadId"] not in {u["UploadId"] for u in listed}


def _unique_rows(x: np.ndarray, candidates: list[int]) -> list[int]:
    """Rows whose float32 bytes occur once in the data set (a duplicate would stay in the blob legitimately)."""
    blob = x.tobytes() + digits_arrays()[2].tobytes()
    return [i for i in candidates if blob.count(x[i].tobytes()) == 1]


def test_compaction_deletes_the_old_data_set_object_and_every_scratch_copy(
    settings, test_queue, object_store, s3_prefix, tmp_path, monkeypatch
):
    x = digits_arrays()[0][:ROWS]
    tenant = f.make_tenant()
    dataset_id = f.make_dataset(tenant, rows=ROWS)
    model_id = f.trained_model(tenant, dataset_id, unlearn_defaults=f.MOVING_UPDATE)
    old = _dataset_blob(dataset_id)
    assert old in datastore.get_store().cached(), "training read the data set through this host's scratch cache"
    other_host = S3BlobStore(S3Location.parse(settings.storage_url), scratch=tmp_path / "host-b", cache_bytes=1 << 30)
    other_host.local_path(old)  # another host read the data set too
    erased = _unique_rows(x, [5, 17, 42, 43, 44])[:3]
    needles = [x[i].tobytes() for i in erased]
    rid = f.make_deletion(tenant, model_id, erased)
    apply_deletions(model_id, rid)
    assert _succeeded(rid)

    result = compact.compact_dataset(dataset_id)
    assert result["rows"] == 3, result
    new = _dataset_blob(dataset_id)
    stored = object_store.shas(s3_prefix)
    assert old not in stored and new in stored
    for sha in stored:
        data = _object_bytes(object_store, s3_prefix, sha)
        assert not any(n in data for n in needles), f"object {sha} still holds an erased row"
    assert old not in datastore.get_store().cached(), "the compacting host dropped its own copy"

    assert old in other_host.cached(), "the other host's copy goes at its reconciler's next pass"
    monkeypatch.setenv("UNLEARN_SCRATCH_DIR", str(tmp_path / "host-b"))
    _clear_caches()
    assert prune_scratch() == 1 and other_host.cached() == []
    for path in (tmp_path / "host-b").rglob("*"):
        if path.is_file():
            assert not any(n in path.read_bytes() for n in needles), path
