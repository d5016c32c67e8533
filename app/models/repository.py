"""SQL for models and their versions, and for removing a model with everything that hangs off it."""

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Row, delete, func, select, update
from sqlalchemy.orm import Session

from app.core.pagination import PageParams, keyset_page, time_ordered
from app.datasets.orm import Dataset
from app.deletions.orm import DeletionRequest, Tombstone
from app.models.orm import Model, ModelVersion


def get_model(session: Session, *, model_id: str, tenant_id: str) -> Model | None:
    return session.scalar(select(Model).where(Model.id == model_id, Model.tenant_id == tenant_id))


def add_model(session: Session, *, model: Model) -> Model:
    session.add(model)
    session.flush()
    return model


def add_version(session: Session, *, version: ModelVersion) -> ModelVersion:
    session.add(version)
    session.flush()
    return version


def list_models(
    session: Session, *, tenant_id: str, dataset_id: str | None, status: str | None, params: PageParams
) -> tuple[list[Model], str | None]:
    """One page of the tenant's models, newest first (optionally of one data set, or in one status)."""
    stmt = select(Model).where(Model.tenant_id == tenant_id)
    if dataset_id is not None:
        stmt = stmt.where(Model.dataset_id == dataset_id)
    if status is not None:
        stmt = stmt.where(Model.status == status)
    return time_ordered(session, stmt, entity=Model, params=params)


def page_versions(session: Session, *, model_id: str, params: PageParams) -> tuple[list[ModelVersion], str | None]:
    """One page of a model's versions, newest first."""
    return keyset_page(
        session,
        select(ModelVersion).where(ModelVersion.model_id == model_id),
        columns=[ModelVersion.version],
        kinds=[int],
        params=params,
        key_of=lambda v: (v.version,),
    )


def list_versions(session: Session, *, model_id: str) -> Sequence[ModelVersion]:
    stmt = select(ModelVersion).where(ModelVersion.model_id == model_id).order_by(ModelVersion.version.desc())
    return session.scalars(stmt).all()


def get_version(session: Session, *, model_id: str, version: int) -> ModelVersion | None:
    return session.scalar(
        select(ModelVersion).where(ModelVersion.model_id == model_id, ModelVersion.version == version)
    )


def lock_model(session: Session, *, model_id: str, tenant_id: str, at: datetime) -> Row | None:
    """Write the model's row (updated_at) so the transaction holds it: a publication (which locks the row) waits
    for this transaction or has committed before it. On SQLite the write takes the database's write lock.
    Returns (dataset_id, status, latest_version), or None when the tenant has no such model."""
    return session.execute(
        update(Model)
        .where(Model.id == model_id, Model.tenant_id == tenant_id)
        .values(updated_at=at)
        .returning(Model.dataset_id, Model.status, Model.latest_version)
        .execution_options(synchronize_session=False)
    ).first()


def delete_model_rows(session: Session, *, model_id: str) -> tuple[list[tuple[int, str, str | None]], int, int]:
    """Delete the model's tombstones, deletion requests, versions and row. Returns the versions as deleted
    (version, checkpoint sha256, gradient cache sha256: read by the DELETE itself, so a cache recorded a moment
    before is included), the number of deletion requests and how many of them were still waiting or running."""
    requests = session.execute(
        select(func.count(), func.count().filter(DeletionRequest.status.in_(("queued", "running")))).where(
            DeletionRequest.model_id == model_id
        )
    ).one()
    session.execute(delete(Tombstone).where(Tombstone.model_id == model_id))
    session.execute(delete(DeletionRequest).where(DeletionRequest.model_id == model_id))
    versions = session.execute(
        delete(ModelVersion)
        .where(ModelVersion.model_id == model_id)
        .returning(ModelVersion.version, ModelVersion.checkpoint_sha256, ModelVersion.grad_cache_sha256)
        .execution_options(synchronize_session=False)
    ).all()
    session.execute(delete(Model).where(Model.id == model_id).execution_options(synchronize_session=False))
    return sorted((v, c, g) for v, c, g in versions), int(requests[0]), int(requests[1])


def blob_in_use(session: Session, *, sha256: str) -> bool:
    """True when an available version (of any model), a gradient cache or a data set still names the blob (blobs
    are content-addressed: two uploads of the same bytes share one)."""
    versions = session.scalar(
        select(func.count())
        .select_from(ModelVersion)
        .where(
            ModelVersion.state == "available",
            (ModelVersion.checkpoint_sha256 == sha256) | (ModelVersion.grad_cache_sha256 == sha256),
        )
    )
    datasets = session.scalar(select(func.count()).select_from(Dataset).where(Dataset.blob_sha256 == sha256))
    return bool(versions or datasets)
