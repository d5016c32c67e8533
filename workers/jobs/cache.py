"""Refresh a version's gradient cache G = sum over its live rows of grad l at its own parameters.

Stored as a safetensors blob (one float64 tensor per parameter, plus the BoolTensor of rows it covers) and
recorded on the version only while that version is still the model's latest and available; otherwise the
blob is dropped again. Runs without the model's lock: an update that starts first uses no cache (exact).

The ``covered`` mask is indexed by position in the data set's blob, so the cache is recorded only while the data
set still names the blob it was computed from: the check holds the data set's row (FOR SHARE) until the commit,
and a compaction switching the blob holds it FOR UPDATE, so a cache is either recorded before the switch (which
then rewrites it) or not at all.
"""

from __future__ import annotations

from sqlalchemy import exists, select, update

from app.core.db import session_scope
from app.datasets.orm import Dataset
from app.models.orm import Model, ModelVersion
from workers.datastore import DatasetChanged, live_mask, load_dataset
from workers.engine import UnlearnConfig, build_cache
from workers.jobs.common import arch_spec, device, event, phase, read_checkpoint, write_grad_cache
from workers.jobs.updates import config_from
from workers.publish import delete_blob_if_unused


def _current(session, model_id: str, version: int) -> tuple[Model, ModelVersion] | None:
    model = session.get(Model, model_id)
    if model is None or model.latest_version != version:
        return None
    row = (
        session.query(ModelVersion)
        .filter(ModelVersion.model_id == model_id, ModelVersion.version == version)
        .one_or_none()
    )
    if row is None or row.state != "available" or row.grad_cache_sha256:
        return None
    return model, row


def _same_blob(session, dataset_id: str, blob_sha256: str) -> bool:
    """Whether the data set still names the blob, holding its row (FOR SHARE on PostgreSQL) until the commit."""
    current = session.scalar(select(Dataset.blob_sha256).where(Dataset.id == dataset_id).with_for_update(read=True))
    return current == blob_sha256


def refresh_cache(model_id: str, version: int) -> dict:
    """RQ job: compute and record G for (model, version); a no-op when superseded or already present."""
    with session_scope() as session:
        found = _current(session, model_id, version)
        if found is None:
            return {"model_id": model_id, "version": version, "skipped": True}
        model, row = found
        spec = arch_spec(model.architecture)
        cfg = config_from(UnlearnConfig, model.unlearn_defaults or {})
        dataset_id = model.dataset_id
        try:
            with phase("cache", "load"):
                data = load_dataset(session, dataset_id)
                live = live_mask(session, model_id, data.num_rows, as_of_version=version)
        except DatasetChanged:  # compacted while read: a later refresh computes it (deletions stream exactly)
            return {"model_id": model_id, "version": version, "skipped": True}
        checkpoint_sha = row.checkpoint_sha256
    try:
        with phase("cache", "load_checkpoint"):
            state = read_checkpoint(checkpoint_sha)
    except FileNotFoundError:  # superseded and purged while this job waited
        return {"model_id": model_id, "version": version, "skipped": True}
    with phase("cache", "compute"):
        cache = build_cache(spec, state, data.features, data.labels, live, version, device(), chunk_size=cfg.chunk_size)
    with phase("cache", "write"):
        sha, _ = write_grad_cache(cache.grad_sum, live, version=version)
    with session_scope() as session:
        same_rows = _same_blob(session, dataset_id, data.blob_sha256)
        still_latest = same_rows and _current(session, model_id, version) is not None
        updated = 0
        if still_latest:
            updated = session.execute(
                update(ModelVersion)
                .where(
                    ModelVersion.model_id == model_id,
                    ModelVersion.version == version,
                    ModelVersion.state == "available",
                    ModelVersion.grad_cache_sha256.is_(None),
                    exists().where(Dataset.id == dataset_id, Dataset.blob_sha256 == data.blob_sha256),
                )
                .values(grad_cache_sha256=sha, grad_cache_rows=cache.rows)
            ).rowcount
    if not updated:
        delete_blob_if_unused(sha)
        return {"model_id": model_id, "version": version, "skipped": True}
    event("cache.refreshed", model_id=model_id, version=version, rows=cache.rows, grad_cache_sha256=sha)
    return {"model_id": model_id, "version": version, "rows": cache.rows}
