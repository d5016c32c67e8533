"""The database side of a data set's compaction: which rows to erase, and the one transaction that erases them.

A row is erased from the stored data once no model still carries it: every model of the data set that is
``ready`` has a ``deleted`` tombstone for it, no model is ``training`` on it, and (when the data set has no
ready model) an erasure named it. The switch transaction then, with the data set's row locked:

- checks that nothing changed since the plan (same blob, same models, the rows still erasable);
- replaces the rows' sample ids by their keyed hashes (dataset_rows, tombstones) and marks them erased; hashes
  the plain ids that requests made before keyed hashes still hold;
- points the data set at the new blob and the models' versions at their rewritten gradient caches (dropping a
  cache it did not rewrite: one recorded after the plan was read);
- records the compaction as ``switched`` with the blobs to delete, and appends ``dataset.compacted`` to the
  audit log.

Once the old blobs are deleted, ``finish_erasures`` marks the erasures whose rows are all erased as finished
(``erasure.completed``): an erasure reports success only when the old file is gone too.

Row numbers never change (workers.datastore): only the blob and what is indexed by position are rewritten.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

import torch
from sqlalchemy import bindparam, func, select, update
from sqlalchemy.orm import Session
from torch import Tensor

from app.core.db import utcnow
from app.core.idhash import get_id_hasher, is_hashed
from app.datasets.orm import Dataset, DatasetCompaction, DatasetErasure, DatasetRow
from app.deletions.orm import DeletionRequest, Tombstone
from app.models.orm import Model, ModelVersion
from workers.datastore import row_space
from workers.jobs.common import audit_many

CHUNK = 900  # row numbers per IN (...) (below SQLite's bound-parameter limit)


class Stale(Exception):
    """The data set changed between the plan and the switch; the compaction is abandoned and planned again."""


@dataclass
class Plan:
    dataset_id: str
    tenant_id: str
    blob_sha256: str
    num_rows: int  # rows in the current blob
    erased: Tensor  # sorted row numbers already erased (E,) int64
    models: list[str]  # ready models, sorted
    rows: list[int] = field(default_factory=list)  # row numbers to erase now, sorted
    blocked: str | None = None  # why nothing can be erased now, when something stops it


@dataclass
class CacheRewrite:
    version_pk: int  # model_versions.id
    old_sha: str
    new_sha: str | None  # None: the cache is dropped (a refresh recomputes it)


def lock_dataset_row(session: Session, dataset_id: str) -> None:
    """Hold the data set's row until the transaction ends. PostgreSQL: SELECT ... FOR UPDATE, which also waits
    for (and then holds off) a transaction inserting a model of this data set, whose foreign-key check takes a
    KEY SHARE lock on the row. SQLite: a write to the row first, which takes the database's write lock."""
    if session.get_bind().dialect.name == "sqlite":
        session.execute(update(Dataset).where(Dataset.id == dataset_id).values(blob_sha256=Dataset.blob_sha256))
    session.execute(select(Dataset.id).where(Dataset.id == dataset_id).with_for_update())


def plan(session: Session, dataset_id: str) -> Plan | None:
    """What a compaction of the data set would erase now (None when the data set is gone)."""
    dataset = session.execute(select(Dataset.tenant_id, Dataset.blob_sha256).where(Dataset.id == dataset_id)).first()
    if dataset is None:
        return None
    num_rows, erased = row_space(session, dataset_id)
    models = session.execute(select(Model.id, Model.status).where(Model.dataset_id == dataset_id)).all()
    ready = sorted(m for m, status in models if status == "ready")
    out = Plan(dataset_id, dataset[0], dataset[1], num_rows, erased, ready)
    training = sorted(m for m, status in models if status == "training")
    if training:
        out.blocked = f"model {training[0]} is training on the data set"
        return out
    if ready:
        live = DatasetRow.erased_at.is_(None)
        out.rows = sorted(
            session.execute(
                select(Tombstone.row_index)
                .join(DatasetRow, (DatasetRow.dataset_id == dataset_id) & (DatasetRow.row_index == Tombstone.row_index))
                .where(Tombstone.model_id.in_(ready), Tombstone.state == "deleted", live)
                .group_by(Tombstone.row_index)
                .having(func.count() == len(ready))
            ).scalars()
        )
        return out
    named: set[int] = set()
    for row_indexes in session.execute(
        select(DatasetErasure.row_indexes).where(
            DatasetErasure.dataset_id == dataset_id, DatasetErasure.finished_at.is_(None)
        )
    ).scalars():
        named.update(int(i) for i in row_indexes)
    done = set(erased.tolist())
    out.rows = sorted(named - done)
    return out


def _hash_rows(session: Session, p: Plan, now) -> None:
    """Replace the erased rows' ids by keyed hashes in dataset_rows and in every tombstone of the data set."""
    hasher = get_id_hasher()
    table = DatasetRow.__table__
    stones = Tombstone.__table__
    models = select(Model.id).where(Model.dataset_id == p.dataset_id).scalar_subquery()
    for start in range(0, len(p.rows), CHUNK):
        chunk = p.rows[start : start + CHUNK]
        plain = session.execute(
            select(DatasetRow.row_index, DatasetRow.sample_id).where(
                DatasetRow.dataset_id == p.dataset_id, DatasetRow.row_index.in_(chunk)
            )
        ).all()
        hashes = hasher.hash_ids(p.tenant_id, [sid for _, sid in plain])
        params = [{"r": r, "h": h} for (r, _), h in zip(plain, hashes, strict=True)]
        session.execute(
            update(table)
            .where(table.c.dataset_id == p.dataset_id, table.c.row_index == bindparam("r"))
            .values(sample_id=bindparam("h"), erased_at=now),
            params,
        )
        session.execute(
            update(stones)
            .where(stones.c.model_id.in_(models), stones.c.row_index == bindparam("r"))
            .values(sample_id=bindparam("h")),
            params,
        )


def _hash_old_requests(session: Session, dataset_id: str) -> int:
    """Hash the plain ids that requests made before keyed hashes hold (their commitment stays in the log)."""
    hasher = get_id_hasher()
    rows = session.execute(
        select(DeletionRequest.id, DeletionRequest.tenant_id, DeletionRequest.sample_ids)
        .join(Model, Model.id == DeletionRequest.model_id)
        .where(Model.dataset_id == dataset_id, DeletionRequest.sample_ids_sha256.is_(None))
    ).all()
    hashed = 0
    for request_id, tenant_id, ids in rows:
        if all(is_hashed(i) for i in ids or []):
            continue
        stored = [i if is_hashed(i) else hasher.hash_id(tenant_id, i) for i in ids]
        session.execute(update(DeletionRequest).where(DeletionRequest.id == request_id).values(sample_ids=stored))
        hashed += 1
    return hashed


def _point_caches(
    session: Session, p: Plan, caches: list[CacheRewrite]
) -> tuple[list[str], list[tuple[str, int]], int]:
    """Move the versions to their rewritten caches; drop caches recorded after the rewrite was planned.

    Returns (cache blobs to delete: the old ones and rewrites left unused, (model id, version) whose cache was
    dropped, how many versions moved to a rewritten cache)."""
    rewritten = {c.version_pk: c for c in caches}
    old: list[str] = []
    used: set[str] = set()
    dropped: list[tuple[str, int]] = []
    current = session.execute(
        select(ModelVersion.id, ModelVersion.model_id, ModelVersion.version, ModelVersion.grad_cache_sha256).where(
            ModelVersion.model_id.in_(p.models),
            ModelVersion.state == "available",
            ModelVersion.grad_cache_sha256.is_not(None),
        )
    ).all()
    for pk, model_id, version, sha in current:
        rewrite = rewritten.get(pk)
        new = rewrite.new_sha if rewrite is not None and rewrite.old_sha == sha else None
        session.execute(
            update(ModelVersion)
            .where(ModelVersion.id == pk)
            .values(grad_cache_sha256=new, grad_cache_rows=ModelVersion.grad_cache_rows if new else None)
        )
        old.append(sha)
        if new is None:
            dropped.append((model_id, version))
        else:
            used.add(new)
    unused = sorted({c.new_sha for c in caches if c.new_sha} - used)
    return old + unused, dropped, len(current) - len(dropped)


def switch(
    session: Session, p: Plan, *, compaction_id: str, to_blob: str, to_size: int, caches: list[CacheRewrite]
) -> dict:
    """The switch transaction (the caller commits). Raises Stale when the plan no longer holds."""
    lock_dataset_row(session, p.dataset_id)
    now_plan = plan(session, p.dataset_id)
    if now_plan is None or now_plan.blob_sha256 != p.blob_sha256:
        raise Stale("the data set's blob changed since the plan")
    if now_plan.blocked or now_plan.models != p.models:
        raise Stale(now_plan.blocked or "the data set's models changed since the plan")
    if not set(p.rows) <= set(now_plan.rows):
        raise Stale("some rows are no longer erasable")
    now = utcnow()
    _hash_rows(session, p, now)
    hashed_requests = _hash_old_requests(session, p.dataset_id)
    old_caches, dropped, rewritten = _point_caches(session, p, caches)
    remaining = plan(session, p.dataset_id)
    dataset = session.get(Dataset, p.dataset_id)
    dataset.blob_sha256 = to_blob
    dataset.blob_size = to_size
    dataset.num_rows = p.num_rows - len(p.rows)
    dataset.erased_rows = (dataset.erased_rows or 0) + len(p.rows)
    dataset.compact_after = now if remaining is not None and remaining.rows else None
    record = session.get(DatasetCompaction, compaction_id)
    record.state = "switched"
    record.old_blobs = [p.blob_sha256, *old_caches]
    session.flush()
    evidence = {
        "from_sha256": p.blob_sha256,
        "to_sha256": to_blob,
        "rows_erased": len(p.rows),
        "rows_remaining": dataset.num_rows,
        "caches_rewritten": rewritten,
        "caches_dropped": len(dropped),
        "requests_hashed": hashed_requests,
    }
    entry = {
        "event_type": "dataset.compacted",
        "tenant_id": p.tenant_id,
        "refs": {"dataset_id": p.dataset_id, "compaction_id": compaction_id},
        "evidence": evidence,
    }
    audit_many(session, [entry])
    return {**evidence, "dropped_caches": dropped}


def finish_erasures(session: Session, *, dataset_id: str, compaction_id: str) -> list[str]:
    """Mark the data set's erasures whose rows are all erased as finished, with ``erasure.completed`` entries
    (the caller commits, once the compaction's old blobs are deleted). Returns their ids."""
    erased = set(row_space(session, dataset_id)[1].tolist())
    tenant_id = session.scalar(select(Dataset.tenant_id).where(Dataset.id == dataset_id))
    now = utcnow()
    finished = []
    for erasure in session.execute(
        select(DatasetErasure).where(DatasetErasure.dataset_id == dataset_id, DatasetErasure.finished_at.is_(None))
    ).scalars():
        if set(erasure.row_indexes) <= erased:
            erasure.finished_at = now
            finished.append(erasure.id)
    session.flush()
    audit_many(
        session,
        [
            {
                "event_type": "erasure.completed",
                "tenant_id": tenant_id,
                "refs": {"erasure_id": erasure_id, "dataset_id": dataset_id, "compaction_id": compaction_id},
                "evidence": {},
            }
            for erasure_id in finished
        ],
    )
    return finished


def clear_due(session: Session, dataset_id: str) -> bool:
    """Under the data set's row lock: clear its due compaction when nothing is erasable now; True if cleared."""
    lock_dataset_row(session, dataset_id)
    now_plan = plan(session, dataset_id)
    if now_plan is None or now_plan.rows:
        return False
    session.execute(update(Dataset).where(Dataset.id == dataset_id).values(compact_after=None))
    return True


def due_datasets(session: Session, *, grace_s: float = 0.0) -> list[str]:
    """Data sets whose compaction is due, or whose last compaction stopped half-way (writing or switched)."""
    now = utcnow()
    due = set(session.execute(select(Dataset.id).where(Dataset.compact_after <= now)).scalars())
    stuck = session.execute(
        select(DatasetCompaction.dataset_id).where(
            DatasetCompaction.state.in_(("writing", "switched")),
            DatasetCompaction.created_at <= now - timedelta(seconds=grace_s),
        )
    ).scalars()
    return sorted(due | set(stuck))


def keep_mask(num_rows: int, drop_positions: Tensor) -> Tensor:
    """BoolTensor (N,): True for the rows a compaction keeps."""
    keep = torch.ones(num_rows, dtype=torch.bool)
    keep[drop_positions] = False
    return keep
