"""Rows the API would write, written straight through the ORM, so worker tests do not depend on the routers."""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Callable

import pytest
from safetensors.numpy import save
from sqlalchemy import select

from app.core.db import session_scope, utcnow
from app.datasets.orm import Dataset, DatasetRow
from app.deletions.orm import DeletionRequest, Tombstone
from app.keys.orm import Tenant
from app.models.orm import Model, ModelVersion
from tests.helpers import digits_arrays
from workers.datastore import get_store

SMALL_MLP = {"name": "mlp", "config": {"in_features": 64, "hidden": [16], "num_classes": 10}}
# Unlearning defaults that always take at least one step (no utility guard undoing it on a tiny model).
# The targeted default, made to move the weights: these models generalise, so without stage1_without_signal it
# would rightly leave them unchanged, and a target of 0.5 with no band keeps the never-worse rule from undoing it.
MOVING_UPDATE = {
    "max_accuracy_drop": 1.0,
    "max_steps": 3,
    "stage1_without_signal": True,
    "row_targets": False,
    "auc_noise_z": 0.0,
    "anchor_weight": 0.0,  # the anchor would hold this generalising model where it is (and the verdict escalate)
}
FAST_RECIPE = {"epochs": 3, "batch_size": 64, "lr": 0.01, "alpha": 0.005, "seed": 0}


def make_tenant() -> str:
    with session_scope() as session:
        tenant = Tenant(id=str(uuid.uuid4()), name=f"workers-{secrets.token_hex(6)}")
        session.add(tenant)
    return tenant.id


def make_dataset(tenant_id: str, *, rows: int | None = None) -> str:
    x, y, hx, hy = digits_arrays()
    if rows is not None:
        x, y = x[:rows], y[:rows]
    store = get_store()
    data = save({"features": x, "labels": y, "holdout_features": hx, "holdout_labels": hy})
    sha, size = store.put_bytes(data)
    dataset_id = str(uuid.uuid4())
    with session_scope() as session:
        session.add(
            Dataset(
                id=dataset_id,
                tenant_id=tenant_id,
                name="digits",
                num_rows=len(y),
                num_holdout=len(hy),
                feature_shape=[64],
                num_classes=10,
                blob_sha256=sha,
                blob_size=size,
            )
        )
        session.flush()
        session.add_all(DatasetRow(dataset_id=dataset_id, row_index=i, sample_id=f"user-{i}") for i in range(len(y)))
    return dataset_id


def make_training_model(
    tenant_id: str, dataset_id: str, *, recipe: dict | None = FAST_RECIPE, unlearn_defaults: dict | None = None
) -> str:
    model_id = str(uuid.uuid4())
    with session_scope() as session:
        session.add(
            Model(
                id=model_id,
                tenant_id=tenant_id,
                name="m",
                dataset_id=dataset_id,
                architecture=SMALL_MLP,
                train_recipe=recipe,
                unlearn_defaults=unlearn_defaults or {},
                status="training",
            )
        )
    return model_id


def make_uploaded_model(tenant_id: str, dataset_id: str, checkpoint: bytes, architecture: dict) -> str:
    """A ready model with version 1 from an uploaded checkpoint (no training recipe)."""
    store = get_store()
    sha, size = store.put_bytes(checkpoint)
    model_id = str(uuid.uuid4())
    with session_scope() as session:
        session.add(
            Model(
                id=model_id,
                tenant_id=tenant_id,
                name="uploaded",
                dataset_id=dataset_id,
                architecture=architecture,
                train_recipe=None,
                unlearn_defaults={},
                status="ready",
                latest_version=1,
            )
        )
        session.flush()
        session.add(ModelVersion(model_id=model_id, version=1, checkpoint_sha256=sha, checkpoint_size=size))
    return model_id


def make_deletion(
    tenant_id: str,
    model_id: str,
    rows: list[int],
    *,
    method: str = "iau",
    purpose: str = "privacy",
    escalated: bool = False,
) -> str:
    """A queued request and its pending tombstones, committed together as the API does (`escalated`: as the
    worker leaves a request whose update missed its target)."""
    request_id = str(uuid.uuid4())
    with session_scope() as session:
        session.add(
            DeletionRequest(
                id=request_id,
                tenant_id=tenant_id,
                model_id=model_id,
                sample_ids=[f"user-{i}" for i in rows],
                method=method,
                purpose=purpose,
                status="queued",
                stage="escalated" if escalated else None,
                escalated_at=utcnow() if escalated else None,
                created_at=utcnow(),
            )
        )
        session.flush()
        session.add_all(
            Tombstone(model_id=model_id, row_index=i, sample_id=f"user-{i}", request_id=request_id, state="pending")
            for i in rows
        )
    return request_id


def request(request_id: str) -> DeletionRequest:
    with session_scope() as session:
        return session.get(DeletionRequest, request_id)


def model(model_id: str) -> Model:
    with session_scope() as session:
        return session.get(Model, model_id)


def versions(model_id: str) -> list[ModelVersion]:
    with session_scope() as session:
        return list(
            session.execute(
                select(ModelVersion).where(ModelVersion.model_id == model_id).order_by(ModelVersion.version)
            ).scalars()
        )


def tombstones(model_id: str) -> list[Tombstone]:
    with session_scope() as session:
        return list(
            session.execute(
                select(Tombstone).where(Tombstone.model_id == model_id).order_by(Tombstone.row_index)
            ).scalars()
        )


def wait_for(predicate: Callable[[], object], *, timeout: float = 60.0, every: float = 0.2, what: str = "") -> object:
    """Poll `predicate` until it returns a truthy value; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(every)


def trained_model(tenant_id: str, dataset_id: str, *, unlearn_defaults: dict | None = None) -> str:
    """A ready model: version 1 trained in this process by the real training job (its cache refresh is queued)."""
    from workers.jobs.train import train_model

    model_id = make_training_model(tenant_id, dataset_id, unlearn_defaults=unlearn_defaults)
    result = train_model(model_id)
    assert result.get("version") == 1, (result, model(model_id).error)
    return model_id


def set_unlearn_defaults(model_id: str, defaults: dict) -> None:
    with session_scope() as session:
        session.get(Model, model_id).unlearn_defaults = defaults


def verify_audit_log() -> int:
    """Check the whole audit log (sequence, hash chain, entry hashes); returns its length."""
    from unlearn_client.verify.checks import verify_log

    from app.audit.orm import AuditEntry
    from app.audit.outbox import sequence
    from app.audit.service import entry_document

    with session_scope() as session:
        sequence(session)
    with session_scope() as session:
        entries = [entry_document(e) for e in session.execute(select(AuditEntry).order_by(AuditEntry.seq)).scalars()]
    verify_log(entries)
    return len(entries)


def audit_events(model_id: str) -> list[tuple[str, dict]]:
    from app.audit.orm import AuditEntry
    from app.audit.outbox import sequence

    with session_scope() as session:
        sequence(session)
    with session_scope() as session:
        rows = session.execute(
            select(AuditEntry.event_type, AuditEntry.refs)
            .where(AuditEntry.model_id == model_id)
            .order_by(AuditEntry.seq)
        ).all()
    return [(e, r) for e, r in rows]
