"""Issue 5 reliability with real worker processes, the real PostgreSQL and the real Redis:

ordered concurrent deletions with two workers, SIGKILL in the middle of an update, a flushed Redis, and a
job that fails for good.
"""

import time

import pytest
import redis
from rq import Worker

from app.core.config import get_settings
from app.core.db import session_scope
from app.core.storage import FileBlobStore
from tests.workers import factories as f
from workers.queue import enqueue_deletion, get_queue, get_redis

pytestmark = pytest.mark.parametrize("backend", ["postgresql"])

# An update that runs for minutes on digits: exact correction streamed one row at a time, no early stop.
SLOW_UPDATE = {
    "correction": "exact",
    "chunk_size": 1,
    "max_steps": 500,
    "target_auc": -1.0,
    "auc_tolerance": 0.0,
    "max_accuracy_drop": 1.0,
    "min_stop_rows": 0,
}


def _status(request_id):
    return f.request(request_id).status


def _all_done(request_ids):
    statuses = [_status(r) for r in request_ids]
    assert "failed" not in statuses, [f.request(r).error for r in request_ids if _status(r) == "failed"]
    return all(s == "succeeded" for s in statuses)


def _assert_sequential_history(model_id, request_ids, rows_of):
    versions = f.versions(model_id)
    numbers = [v.version for v in versions]
    assert numbers == list(range(1, len(numbers) + 1)), numbers
    assert all(v.parent_version == v.version - 1 for v in versions[1:])
    assert [v.state for v in versions] == ["purged"] * (len(versions) - 1) + ["available"]
    assert f.model(model_id).latest_version == numbers[-1]
    applied = [rid for v in versions for rid in v.applied_requests]
    assert sorted(applied) == sorted(request_ids), "every request applied exactly once"
    version_of = {rid: v.version for v in versions for rid in v.applied_requests}
    stones = {t.row_index: t for t in f.tombstones(model_id)}
    for rid in request_ids:
        r = f.request(rid)
        assert r.result_version == version_of[rid] and r.attempts >= 1
        for row in rows_of[rid]:
            assert stones[row].state == "deleted" and stones[row].request_id == rid
            assert stones[row].deleted_in_version == version_of[rid]
    assert len(stones) == sum(len(rows) for rows in rows_of.values())
    return versions


def test_concurrent_deletions_with_two_workers_apply_each_once_in_sequence(settings, workers):
    tenant = f.make_tenant()
    model_id = f.trained_model(tenant, f.make_dataset(tenant), unlearn_defaults=f.MOVING_UPDATE)
    workers.start()
    workers.start()
    queue = get_queue()
    f.wait_for(lambda: len(Worker.all(queue=queue)) == 2, what="two workers listening")

    rows_of = {}
    for i in range(40):
        rows = [2 * i, 2 * i + 1]
        rid = f.make_deletion(tenant, model_id, rows)
        enqueue_deletion(rid, model_id)
        rows_of[rid] = rows
        if i % 10 == 9:
            time.sleep(0.3)  # let an update start, so later requests queue up behind it
    f.wait_for(lambda: _all_done(rows_of), timeout=120, what="all deletions")

    versions = _assert_sequential_history(model_id, list(rows_of), rows_of)
    assert 2 <= len(versions) - 1 < len(rows_of), "requests that queued up were coalesced"
    assert any(len(v.applied_requests) > 1 for v in versions)
    f.verify_audit_log()
    events = [e for e, _ in f.audit_events(model_id)]
    assert events.count("deletion.succeeded") == len(rows_of)
    assert events.count("version.created") == len(versions)
    assert events.count("version.purged") == len(versions) - 1
    # Each version N is purged right after version N+1 is created, in the same transaction.
    history = [(e, refs.get("version")) for e, refs in f.audit_events(model_id) if e.startswith("version.")]
    for (kind, version), (next_kind, next_version) in zip(history[1:], history[2:], strict=False):
        if next_kind == "version.purged":
            assert (kind, version) == ("version.created", next_version + 1)


def test_sigkill_mid_update_leaves_no_version_and_the_request_is_retried(settings, workers):
    store = FileBlobStore(get_settings().storage_dir)
    tenant = f.make_tenant()
    model_id = f.trained_model(tenant, f.make_dataset(tenant), unlearn_defaults=SLOW_UPDATE)
    rid = f.make_deletion(tenant, model_id, list(range(20)))
    enqueue_deletion(rid, model_id)
    blobs_before = set(store.root.glob("??/*"))
    doomed = workers.start()
    f.wait_for(lambda: f.request(rid).stage == "unlearning", what="the update to be running")
    time.sleep(0.5)
    workers.kill(doomed)

    r = f.request(rid)
    assert (r.status, r.attempts, r.result_version) == ("running", 1, None)
    assert [v.version for v in f.versions(model_id)] == [1] and f.model(model_id).latest_version == 1
    assert {t.state for t in f.tombstones(model_id)} == {"pending"}
    new_blobs = set(store.root.glob("??/*")) - blobs_before - _cache_blobs(model_id, store)
    assert not new_blobs, "no checkpoint of a partial version"

    f.set_unlearn_defaults(model_id, f.MOVING_UPDATE)
    workers.start()  # its reconciler finds the orphaned request (the lock died with the killed worker)
    f.wait_for(lambda: _all_done([rid]), timeout=60, what="the retried deletion")
    r = f.request(rid)
    assert (r.attempts, r.result_version) == (2, 2)
    _assert_sequential_history(model_id, [rid], {rid: list(range(20))})


def _cache_blobs(model_id, store):
    return {store.path(v.grad_cache_sha256) for v in f.versions(model_id) if v.grad_cache_sha256}


def test_flushed_redis_is_rebuilt_from_the_database(settings, workers, monkeypatch):
    # a Redis database of this test alone, so FLUSHDB touches nothing else
    url = get_settings().redis_url.rsplit("/", 1)[0] + "/13"
    monkeypatch.setenv("REDIS_URL", url)
    get_settings.cache_clear()
    tenant = f.make_tenant()
    model_id = f.trained_model(tenant, f.make_dataset(tenant), unlearn_defaults=f.MOVING_UPDATE)
    rows_of = {f.make_deletion(tenant, model_id, [i]): [i] for i in range(3)}
    for rid in rows_of:
        enqueue_deletion(rid, model_id)
    assert len(get_queue()) >= 3
    get_redis().flushdb()
    assert len(get_queue()) == 0

    workers.start()  # reconciles on start
    f.wait_for(lambda: _all_done(rows_of), timeout=60, what="deletions rebuilt from the database")

    # a request committed while the queue was unreachable (never enqueued): the periodic pass finds it
    late = f.make_deletion(tenant, model_id, [50])
    rows_of[late] = [50]
    f.wait_for(lambda: _all_done(rows_of), timeout=60, what="the periodic reconciler")
    _assert_sequential_history(model_id, list(rows_of), rows_of)
    redis.Redis.from_url(url).flushdb()


def test_a_job_that_fails_for_good_marks_the_request_failed_and_deletes_nothing(settings, workers):
    store = FileBlobStore(get_settings().storage_dir)
    tenant = f.make_tenant()
    model_id = f.trained_model(tenant, f.make_dataset(tenant))
    (v1,) = f.versions(model_id)
    store.delete(v1.checkpoint_sha256)  # every attempt now fails to read the checkpoint
    rid = f.make_deletion(tenant, model_id, [3, 4])
    enqueue_deletion(rid, model_id)
    workers.start(env={"UNLEARN_MAX_ATTEMPTS": "2"})
    f.wait_for(lambda: _status(rid) == "failed", timeout=60, what="the request to fail for good")

    r = f.request(rid)
    assert r.attempts == 2 and "gave up after 2 attempts" in r.error and r.result_version is None
    assert f.tombstones(model_id) == [], "nothing deleted: the claims on the rows are released"
    assert [(v.version, v.state) for v in f.versions(model_id)] == [(1, "available")]
    assert f.model(model_id).latest_version == 1
    events = [e for e, refs in f.audit_events(model_id) if refs.get("request_id") == rid]
    assert events == ["deletion.started", "deletion.failed"]
    f.verify_audit_log()


def test_training_interrupted_by_sigkill_is_requeued_and_finishes(settings, workers):
    from workers.locks import is_locked
    from workers.queue import enqueue_training

    tenant = f.make_tenant()
    dataset = f.make_dataset(tenant, rows=300)
    model_id = f.make_training_model(tenant, dataset, recipe={**f.FAST_RECIPE, "epochs": 20000})
    enqueue_training(model_id)
    doomed = workers.start()
    f.wait_for(lambda: is_locked(model_id), what="training to start")
    workers.kill(doomed)
    assert f.model(model_id).status == "training" and f.versions(model_id) == []

    with session_scope() as session:
        session.get(f.Model, model_id).train_recipe = f.FAST_RECIPE
    workers.start()  # its reconciler finds the model training with nobody holding its lock
    f.wait_for(lambda: f.model(model_id).status == "ready", timeout=60, what="training to finish")
    assert [(v.version, v.state) for v in f.versions(model_id)] == [(1, "available")]
