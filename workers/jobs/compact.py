"""Compact a data set: rewrite its blob without the rows no model carries any more, in one crash-safe step.

Enqueued (with Settings.compaction_delay_s) after a deletion publishes and when an erasure is accepted, and by
the reconciler for every data set whose compaction is due or stopped half-way. One compaction of a data set runs
at a time (its own lock). The steps, and what a crash after each leaves:

1. plan the rows to erase (workers.compaction.plan); nothing to erase: the due mark is cleared;
2. write the new blob to a temporary file in the blob store, fsync it, record the compaction (``writing``,
   with the new blob's sha256), then rename the file into place. A crash leaves a temporary file (the
   reconciler deletes old ones) or a ``writing`` record: the next run deletes its blob, marks it ``abandoned``
   and plans again; the data set still names the old blob, unchanged;
3. take the locks of every ready model of the data set (no update reads the row space while it changes) and
   rewrite the gradient caches of their available versions (the ``covered`` mask is indexed by position), their
   blobs listed on the record;
4. one transaction (workers.compaction.switch) moves the data set, its rows and the versions' caches to the new
   blobs, and marks the record ``switched``. A crash before its commit changes nothing; after it, the data is
   erased from what the database names;
5. delete the old blob and caches (unless something else still names them), then mark the record ``done`` and
   the erasures whose rows are all gone finished (``erasure.completed``). A crash before that leaves a
   ``switched`` record: the next run deletes them and finishes the erasures.
"""

from __future__ import annotations

import os
import uuid

import torch
from sqlalchemy import select, update

from app.core.db import session_scope, utcnow
from app.datasets.orm import DatasetCompaction
from app.models.orm import ModelVersion
from workers import compaction
from workers.compaction import CacheRewrite, Plan, Stale
from workers.datastore import get_store, positions
from workers.jobs.common import event, phase, read_grad_cache, short_error, write_grad_cache
from workers.locks import ModelLock, ModelLocks, dataset_lock_id
from workers.publish import delete_blob_if_unused

LOCK_WAIT_S = 600.0  # seconds to wait for the models' locks before giving up (the reconciler tries again)


def compact_dataset(dataset_id: str) -> dict:
    """RQ job: erase from the stored data set every row no model carries; a no-op when there is none."""
    lock = ModelLock(dataset_lock_id(dataset_id))
    if not lock.acquire(block=False):
        return {"dataset_id": dataset_id, "skipped": "another compaction of this data set is running"}
    try:
        recovered = recover(dataset_id)
        with session_scope() as session:
            p = compaction.plan(session, dataset_id)
        if p is None:
            return {"dataset_id": dataset_id, "skipped": "no such data set"}
        if not p.rows:
            with session_scope() as session:
                compaction.clear_due(session, dataset_id)
            return {"dataset_id": dataset_id, "rows": 0, "recovered": recovered, "blocked": p.blocked}
        return {**_compact(p), "recovered": recovered}
    finally:
        lock.release()


def _compact(p: Plan) -> dict:
    drop = positions(torch.tensor(p.rows, dtype=torch.int64), p.erased)  # (R,) positions in the current blob
    with phase("compaction", "write"):
        to_blob, to_size, compaction_id = _write_blob(p, drop.tolist())
    locks = ModelLocks(p.models)
    if not locks.acquire(timeout_s=LOCK_WAIT_S):
        abandon(compaction_id, reason="the models stayed busy")  # still due: the reconciler enqueues it again
        return {"dataset_id": p.dataset_id, "rows": 0, "skipped": "the models stayed busy"}
    try:
        with phase("compaction", "caches"):
            caches = _rewrite_caches(p, drop, compaction_id)
        try:
            with phase("compaction", "switch"), session_scope() as session:
                result = compaction.switch(
                    session, p, compaction_id=compaction_id, to_blob=to_blob, to_size=to_size, caches=caches
                )
        except Stale as exc:
            abandon(compaction_id, reason=str(exc))  # still due: the reconciler plans it again
            return {"dataset_id": p.dataset_id, "rows": 0, "skipped": str(exc)}
    finally:
        locks.release()
    finished = finish(compaction_id)
    event("dataset.compacted", dataset_id=p.dataset_id, rows=len(p.rows), sha256=to_blob)
    _refresh(result["dropped_caches"])
    return {"dataset_id": p.dataset_id, "rows": len(p.rows), "sha256": to_blob, **result, "erasures_finished": finished}


def _write_blob(p: Plan, drop: list[int]) -> tuple[str, int, str]:
    """Steps 2: the new blob fsynced in the store's tmp folder, its record, then the rename into place."""
    from workers.rowfile import rewrite_without_rows

    store = get_store()
    fh, tmp = store.temp_file()
    try:
        with fh:
            sha, size = rewrite_without_rows(store.local_path(p.blob_sha256), fh, drop)
            fh.flush()
            os.fsync(fh.fileno())
        compaction_id = str(uuid.uuid4())
        with session_scope() as session:
            session.add(
                DatasetCompaction(
                    id=compaction_id,
                    dataset_id=p.dataset_id,
                    from_blob=p.blob_sha256,
                    to_blob=sha,
                    rows=len(p.rows),
                    state="writing",
                    old_blobs=[],
                    created_at=utcnow(),
                )
            )
        store.commit_temp(tmp, sha)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return sha, size, compaction_id


def _rewrite_caches(p: Plan, drop: torch.Tensor, compaction_id: str) -> list[CacheRewrite]:
    """Step 3: each available version's gradient cache with its ``covered`` mask (N,) cut to the kept rows.

    A cache that covers a row being erased (a version superseded before the row was deleted) or that does not
    match the current blob is dropped instead: its version gets no cache, and a refresh computes a new one."""
    keep = compaction.keep_mask(p.num_rows, drop)  # (N,) bool
    with session_scope() as session:
        versions = session.execute(
            select(ModelVersion.id, ModelVersion.version, ModelVersion.grad_cache_sha256).where(
                ModelVersion.model_id.in_(p.models),
                ModelVersion.state == "available",
                ModelVersion.grad_cache_sha256.is_not(None),
            )
        ).all()
    out: list[CacheRewrite] = []
    for pk, version, sha in versions:
        new_sha = None
        try:
            grad_sum, covered = read_grad_cache(sha)
        except FileNotFoundError:
            covered = None
        if covered is not None and covered.shape[0] == p.num_rows and not bool(covered[drop].any()):
            new_sha, _ = write_grad_cache(grad_sum, covered[keep], version=version)
        out.append(CacheRewrite(version_pk=pk, old_sha=sha, new_sha=new_sha))
    written = [c.new_sha for c in out if c.new_sha]
    if written:
        with session_scope() as session:
            session.execute(
                update(DatasetCompaction)
                .where(DatasetCompaction.id == compaction_id)
                .values(detail={"new_caches": written})
            )
    return out


def finish(compaction_id: str) -> list[str]:
    """Step 5: delete the blobs the switch left behind; the record becomes ``done`` and the erasures whose rows
    are all gone finish, in one transaction. Returns the ids of the erasures finished."""
    with session_scope() as session:
        record = session.get(DatasetCompaction, compaction_id)
        if record is None or record.state != "switched":
            return []
        old, dataset_id = list(record.old_blobs or []), record.dataset_id
    for sha in old:
        delete_blob_if_unused(sha)
    with session_scope() as session:
        done = session.execute(
            update(DatasetCompaction)
            .where(DatasetCompaction.id == compaction_id, DatasetCompaction.state == "switched")
            .values(state="done", finished_at=utcnow())
        ).rowcount
        if not done:
            return []
        return compaction.finish_erasures(session, dataset_id=dataset_id, compaction_id=compaction_id)


def abandon(compaction_id: str, *, reason: str) -> None:
    """A compaction that did not switch: delete the blobs it wrote (unless something names them)."""
    with session_scope() as session:
        record = session.get(DatasetCompaction, compaction_id)
        if record is None or record.state != "writing":
            return
        written = [record.to_blob, *((record.detail or {}).get("new_caches") or [])]
    for sha in written:
        delete_blob_if_unused(sha)
    with session_scope() as session:
        session.execute(
            update(DatasetCompaction)
            .where(DatasetCompaction.id == compaction_id, DatasetCompaction.state == "writing")
            .values(state="abandoned", finished_at=utcnow(), detail={"reason": reason[:500]})
        )
    event("compaction.abandoned", compaction_id=compaction_id, reason=reason)


def recover(dataset_id: str) -> int:
    """Finish (``switched``) or abandon (``writing``) the compactions of the data set a crash left half-way.

    Called with the data set's compaction lock held, so none of them is still running. Returns how many."""
    with session_scope() as session:
        stuck = session.execute(
            select(DatasetCompaction.id, DatasetCompaction.state).where(
                DatasetCompaction.dataset_id == dataset_id, DatasetCompaction.state.in_(("writing", "switched"))
            )
        ).all()
    for compaction_id, state in stuck:
        if state == "switched":
            finish(compaction_id)
        else:
            abandon(compaction_id, reason="stopped before the switch (the worker died)")
    return len(stuck)


def _refresh(versions: list[tuple[str, int]]) -> None:
    """Queue a gradient-cache refresh of each latest version whose cache was dropped."""
    from workers.queue import enqueue_cache_refresh

    for model_id, version in versions:
        try:
            enqueue_cache_refresh(model_id, version)
        except Exception as exc:  # the reconciler queues it later
            event("cache.enqueue_failed", model_id=model_id, version=version, error=short_error(exc))
