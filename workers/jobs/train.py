"""Train a model's version 1 with its recipe (gradient restriction included) and publish it.

The model's lock is held while training, so the reconciler can tell a live training job (lock held) from one a
dead worker left behind. Attempts are counted in Redis; past Settings.max_attempts the model is marked failed.
"""

from __future__ import annotations

import contextlib
import time

from app.core.config import get_settings
from app.core.db import session_scope, utcnow
from app.core.metrics import observe_phase, record_failures
from app.models.orm import Model, ModelVersion
from workers.datastore import load_dataset
from workers.engine import TrainConfig, evaluate, train
from workers.jobs.common import audit, device, event, phase, short_error, write_checkpoint
from workers.jobs.updates import config_from
from workers.locks import model_lock
from workers.publish import ModelRemoved, delete_blob_if_unused, model_exists

ATTEMPTS_TTL_S = 7 * 24 * 3600  # seconds the per-model training attempt counter is kept


def _count_attempt(model_id: str) -> int:
    from workers.queue import get_redis

    key = f"unlearn:{get_settings().queue_name}:train-attempts:{model_id}"
    redis = get_redis()
    attempts = int(redis.incr(key))
    redis.expire(key, ATTEMPTS_TTL_S)
    return attempts


def train_model(model_id: str) -> dict:
    """RQ job: train version 1 of a model in status `training`; a no-op for any other status."""
    with model_lock(model_id):
        with session_scope() as session:
            model = session.get(Model, model_id)
            if model is None or model.status != "training":
                return {"model_id": model_id, "skipped": True}
            attempts = _count_attempt(model_id)
            if attempts > get_settings().max_attempts:
                _fail(model_id, f"gave up after {attempts - 1} attempts (the worker stopped during training)")
                return {"model_id": model_id, "failed": True}
            spec_arch, recipe, dataset_id = model.architecture, dict(model.train_recipe or {}), model.dataset_id
            with phase("train", "load"):
                data = load_dataset(session, dataset_id)
        try:
            version = _train_and_publish(model_id, spec_arch, recipe, data)
        except Exception as exc:  # recorded on the model; a training failure is final
            if not model_exists(model_id):  # removed while it trained: nothing to record it on
                event("model.removed_while_training", model_id=model_id, error=short_error(exc))
                return {"model_id": model_id, "skipped": True}
            event("model.training_failed", model_id=model_id, error=short_error(exc))
            _fail(model_id, short_error(exc))
            return {"model_id": model_id, "failed": True}
    from workers.queue import enqueue_cache_refresh

    try:
        enqueue_cache_refresh(model_id, version)
    except Exception as exc:  # the reconciler enqueues it later
        event("cache.enqueue_failed", model_id=model_id, version=version, error=short_error(exc))
    return {"model_id": model_id, "version": version}


def _train_and_publish(model_id: str, architecture: dict, recipe: dict, data) -> int:
    from workers.jobs.common import arch_spec

    spec = arch_spec(architecture)
    cfg: TrainConfig = config_from(TrainConfig, recipe)
    dev = device()
    started = time.perf_counter()
    state = train(spec, data.features, data.labels, cfg, dev)
    train_seconds = time.perf_counter() - started
    observe_phase("train", "train", train_seconds)
    evaluate_started = time.perf_counter()
    summary = {
        "method": "train",
        "recipe": {k: getattr(cfg, k) for k in ("epochs", "batch_size", "lr", "alpha", "seed")},
        "device": str(dev),
        "train": evaluate(spec, state, data.features, data.labels, dev),
        "holdout": evaluate(spec, state, *data.holdout, dev) if data.holdout is not None else None,
        "timings_s": {"train": round(train_seconds, 3)},
    }
    observe_phase("train", "evaluate", time.perf_counter() - evaluate_started)
    with phase("train", "write"):
        sha, size = write_checkpoint(state)
    publish_started = time.perf_counter()
    try:
        _publish(model_id, sha, size, summary)
    except BaseException:
        with contextlib.suppress(Exception):  # nothing was published: drop the unreferenced blob if we can
            delete_blob_if_unused(sha)
        raise
    observe_phase("train", "publish", time.perf_counter() - publish_started)
    event("model.trained", model_id=model_id, version=1, checkpoint_sha256=sha)
    return 1


def _publish(model_id: str, sha: str, size: int, summary: dict) -> None:
    """Version 1 and the model's `ready` status in one transaction, with their audit entries."""
    with session_scope() as session:
        model = session.get(Model, model_id)
        if model is None:
            raise ModelRemoved(f"model {model_id} was removed while it trained")
        if model.status != "training":
            raise RuntimeError(f"model {model_id} left status training while it trained")
        session.add(
            ModelVersion(
                model_id=model_id,
                version=1,
                parent_version=None,
                checkpoint_sha256=sha,
                checkpoint_size=size,
                applied_requests=[],
                evidence_summary=summary,
                state="available",
                created_at=utcnow(),
            )
        )
        model.status = "ready"
        model.error = None
        model.latest_version = 1
        session.flush()
        refs = {"model_id": model_id, "version": 1, "checkpoint_sha256": sha}
        audit(session, event_type="model.trained", tenant_id=model.tenant_id, refs=refs, evidence=summary)
        audit(session, event_type="version.created", tenant_id=model.tenant_id, refs=refs, evidence=summary)


def _fail(model_id: str, error: str) -> None:
    with session_scope() as session:
        model = session.get(Model, model_id)
        if model is None or model.status != "training":
            return
        model.status = "failed"
        model.error = error
        session.flush()
        audit(
            session,
            event_type="model.training_failed",
            tenant_id=model.tenant_id,
            refs={"model_id": model_id},
            evidence={"error": error},
        )
    record_failures("train", "permanent")
