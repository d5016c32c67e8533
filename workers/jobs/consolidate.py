"""Consolidation: retrain a model from scratch on its live rows so that every approximate removal becomes exact.

A model with a training recipe is due once K requests were removed approximately (by IAU) and are not yet
covered by a version trained from scratch, or once the oldest of them has stood T hours (workers.consolidation,
app/models/policy.py). The check runs after every deletion job that published something, and in every worker's
periodic maintenance (workers.reconciler), which is what bounds the time T.

The job takes the model's lock (so it is ordered with the model's deletions), checks again that the model is
due, trains with the recorded recipe on every live row (rows of requests still waiting are live: they are applied
afterwards, on top of the new version), and publishes it as the next version like a deletion update: the
superseded version is purged (410), and in the same transaction every covered request gets
`exact_as_of_version` and the log gets `model.consolidated`. A failed consolidation is retried by the
maintenance no sooner than RETRY_AFTER_S after it failed.
"""

from __future__ import annotations

import contextlib
import time
from datetime import timedelta

import torch
from rq.job import JobStatus
from sqlalchemy import select

from app.core.db import session_scope, utcnow
from app.deletions.orm import DeletionRequest, Tombstone
from app.models.orm import Model, ModelVersion
from workers.consolidation import due_models
from workers.datastore import live_mask, load_dataset, positions, row_space
from workers.engine import TrainConfig, param_distance, sha256_state_dict, train
from workers.engine.evidence import retained_sample_index, snapshot
from workers.engine.zoo import load_model
from workers.jobs.common import (
    arch_spec,
    current_job_id,
    device,
    event,
    phase,
    read_checkpoint,
    short_error,
    write_checkpoint,
)
from workers.jobs.updates import config_from, measured_exact_outcome
from workers.locks import LockUnavailable, model_lock
from workers.publish import delete_blob_if_unused, model_exists, publish_version

RETRY_AFTER_S = 900.0  # least seconds between a failed consolidation and the next try
COVERED_SAMPLE = 4096  # rows of the covered requests measured before and after (a fixed seeded sample)
RETAINED_SAMPLE = 512  # retained rows measured before and after
SEED = 0


def job_id(model_id: str) -> str:
    return f"consolidate-{model_id}"


def consolidate_model(model_id: str) -> dict:
    """RQ job: retrain the model from scratch on its live rows if it is (still) due for consolidation."""

    def not_due() -> bool:  # asked while the lock is busy: an escalation or retrain may have covered them
        return not due_models(model_id)

    try:
        with model_lock(model_id, give_up=not_due):
            due = due_models(model_id)
            if not due:
                return {"model_id": model_id, "skipped": True}
            try:
                version = _consolidate(model_id, trigger=due[0][1])
            except Exception as exc:
                if model_exists(model_id):
                    raise  # the job fails; the maintenance tries again after RETRY_AFTER_S
                event("model.removed_while_consolidating", model_id=model_id, error=short_error(exc))
                return {"model_id": model_id, "skipped": True}
    except LockUnavailable:
        return {"model_id": model_id, "skipped": True}
    from workers.jobs.deletions import _after_publish

    _after_publish(model_id, version)
    return {"model_id": model_id, "version": version}


def _consolidate(model_id: str, *, trigger: str) -> int:
    started = time.perf_counter()
    with session_scope() as session:
        model = session.get(Model, model_id)
        base = session.execute(
            select(ModelVersion).where(ModelVersion.model_id == model_id, ModelVersion.version == model.latest_version)
        ).scalar_one()
        if base.state != "available":
            raise RuntimeError(f"latest version {base.version} of model {model_id} is not available")
        data = load_dataset(session, model.dataset_id)
        live = live_mask(session, model_id, data.num_rows)
        covered_rows = list(
            session.execute(
                select(Tombstone.row_index)
                .join(DeletionRequest, DeletionRequest.id == Tombstone.request_id)
                .where(
                    Tombstone.model_id == model_id,
                    Tombstone.state == "deleted",
                    DeletionRequest.removed_by == "iau",
                    DeletionRequest.exact_as_of_version.is_(None),
                )
            ).scalars()
        )
        _, erased = row_space(session, model.dataset_id)  # rows erased from the stored data are gone from it
        architecture, recipe = model.architecture, dict(model.train_recipe)
        base_version, base_sha = base.version, base.checkpoint_sha256
    spec = arch_spec(architecture)
    cfg: TrainConfig = config_from(TrainConfig, recipe)
    dev = device()
    state = read_checkpoint(base_sha)
    retain_idx = live.nonzero().flatten()  # (|D|,)
    covered = positions(torch.tensor(sorted(covered_rows), dtype=torch.int64), erased)  # (C,) still stored
    if covered.numel() > COVERED_SAMPLE:
        covered = covered[torch.randperm(covered.numel(), generator=torch.Generator().manual_seed(SEED))]
        covered = covered[:COVERED_SAMPLE].sort().values
    sample = retained_sample_index(retain_idx, RETAINED_SAMPLE, SEED)
    forget = (data.features[covered], data.labels[covered])
    retained = (data.features[sample], data.labels[sample])
    before = snapshot(load_model(spec, state, dev), spec, forget, retained, data.holdout)
    timings = {"evidence_before": time.perf_counter() - started}
    with phase("consolidation", "train"):
        new_state = train(spec, data.features[retain_idx], data.labels[retain_idx], cfg, dev)
    timings["retrain"] = time.perf_counter() - started - timings["evidence_before"]
    after = snapshot(load_model(spec, new_state, dev), spec, forget, retained, data.holdout)
    timings["total"] = time.perf_counter() - started
    summary = {
        "method": "consolidation",
        "hyperparameters": {k: getattr(cfg, k) for k in ("epochs", "batch_size", "lr", "alpha", "seed")},
        "device": str(dev),
        "rows": {"live": int(retain_idx.numel()), "covered": len(covered_rows), "covered_sample": int(covered.numel())},
        "before": before,
        "after": after,
        "param_distance": param_distance(state, new_state),
        "checkpoint_sha256": {"before": sha256_state_dict(state), "after": sha256_state_dict(new_state)},
        "outcome": measured_exact_outcome(after),
        "timings_s": {k: round(v, 6) for k, v in timings.items()},
        "note": "retrained from scratch on every live row with the recorded recipe; 'forget' measures a sample "
        "of the rows of the approximate removals it makes exact (those still in the stored data set)",
    }
    with phase("consolidation", "write"):
        sha, size = write_checkpoint(new_state)
    try:
        version = publish_version(
            model_id=model_id,
            base_version=base_version,
            checkpoint_sha256=sha,
            checkpoint_size=size,
            outcomes=[],
            evidence_summary=summary,
            job_id=current_job_id(),
            exact_trigger=trigger,
        )
    except BaseException:
        with contextlib.suppress(Exception):  # nothing was published: drop the unreferenced blob if we can
            delete_blob_if_unused(sha)
        raise
    event("model.consolidated", model_id=model_id, version=version, trigger=trigger, rows=len(covered_rows))
    return version


def enqueue_if_due(model_id: str | None = None) -> list[str]:
    """Queue a consolidation for every model (or for `model_id`) due now, unless one will run already or the
    last one failed less than RETRY_AFTER_S ago; returns the model ids queued. Never raises: the maintenance
    tries again."""
    from workers.locks import is_locked
    from workers.queue import PENDING_STATUSES, enqueue_consolidation, fetch_job, job_status

    queued = []
    try:
        for mid, reason in due_models(model_id):
            status = job_status(job_id(mid))
            if status in PENDING_STATUSES or (status == JobStatus.STARTED and is_locked(mid)):
                continue
            job = fetch_job(job_id(mid)) if status == JobStatus.FAILED else None
            ended = job.ended_at if job is not None else None
            if ended is not None:
                ended = ended if ended.tzinfo else ended.replace(tzinfo=utcnow().tzinfo)
                if utcnow() - ended < timedelta(seconds=RETRY_AFTER_S):
                    continue
            enqueue_consolidation(mid, force=True)
            queued.append(mid)
            event("consolidation.enqueued", model_id=mid, trigger=reason)
    except Exception as exc:  # the maintenance tries again
        event("consolidation.enqueue_failed", model_id=model_id, error=f"{type(exc).__name__}: {exc}"[:300])
    return queued
