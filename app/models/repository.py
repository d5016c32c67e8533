"""SQL for models and their versions."""

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

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


def list_versions(session: Session, *, model_id: str) -> Sequence[ModelVersion]:
    stmt = select(ModelVersion).where(ModelVersion.model_id == model_id).order_by(ModelVersion.version.desc())
    return session.scalars(stmt).all()


def get_version(session: Session, *, model_id: str, version: int) -> ModelVersion | None:
    return session.scalar(
        select(ModelVersion).where(ModelVersion.model_id == model_id, ModelVersion.version == version)
    )
