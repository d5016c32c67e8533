"""Models: register for training (a job makes version 1) or from an uploaded checkpoint (version 1 at once),
and read models and versions."""

import logging
import uuid

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.core.audit_hook import audit
from app.core.db import utcnow
from app.core.errors import NotFound, Unprocessable
from app.core.logging import log_event
from app.core.pagination import Page, PageParams
from app.core.security import Principal
from app.core.storage import BlobStore
from app.core.uploads import TempUpload, keep_upload
from app.datasets import repository as datasets_repository
from app.datasets.orm import Dataset
from app.models import policy, repository
from app.models.checks import check_architecture, check_checkpoint
from app.models.orm import Model, ModelVersion
from app.models.schemas import ModelOut, ModelSpec, ModelTrain, VersionOut

log = logging.getLogger("app.models")


def _dataset(session: Session, *, principal: Principal, dataset_id: str) -> Dataset:
    dataset = datasets_repository.get_dataset(session, dataset_id=dataset_id, tenant_id=principal.tenant_id)
    if dataset is None:
        raise NotFound(f"data set {dataset_id} not found")
    return dataset


def _add_model(session: Session, *, model: Model) -> Model:
    try:
        return repository.add_model(session, model=model)
    except IntegrityError:  # the data set was removed after it was read (its foreign key is gone)
        raise NotFound(f"data set {model.dataset_id} not found") from None


def _new_model(principal: Principal, spec: ModelSpec, *, status: str, recipe: dict | None) -> Model:
    now = utcnow()
    return Model(
        id=str(uuid.uuid4()),
        tenant_id=principal.tenant_id,
        name=spec.name,
        dataset_id=spec.dataset_id,
        architecture=spec.architecture.model_dump(),
        train_recipe=recipe,
        unlearn_defaults=spec.unlearn.model_dump(exclude_none=True),
        status=status,
        created_at=now,
        updated_at=now,
    )


def _plugin(arch) -> dict:
    """Which installed code provides the architecture (recorded with the registration)."""
    return {"version": arch.version, "source": arch.source}


def _audit_registered(session: Session, *, principal: Principal, model: Model, evidence: dict) -> None:
    audit(
        session,
        actor=principal.key_id,
        event_type="model.registered",
        tenant_id=principal.tenant_id,
        refs={"model_id": model.id, "dataset_id": model.dataset_id},
        evidence={"architecture": model.architecture, **evidence},
    )


def register_for_training(session: Session, *, principal: Principal, body: ModelTrain, max_parameters: int) -> Model:
    """A model in status `training`; the caller enqueues its training job after commit."""
    dataset = _dataset(session, principal=principal, dataset_id=body.dataset_id)
    arch = check_architecture(architecture=body.architecture, dataset=dataset, max_parameters=max_parameters)
    model = _add_model(session, model=_new_model(principal, body, status="training", recipe=body.train.model_dump()))
    evidence = {"source": "train", **body.train.model_dump(), "plugin": _plugin(arch)}
    _audit_registered(session, principal=principal, model=model, evidence=evidence)
    log_event(log, "model.registered", model_id=model.id, source="train")
    return model


def _check_policy(spec: ModelSpec, *, has_recipe: bool) -> None:
    reason = policy.refusal(spec.unlearn.model_dump(exclude_none=True), has_recipe=has_recipe)
    if reason:
        raise Unprocessable(reason)


def register_uploaded(
    session: Session,
    *,
    principal: Principal,
    spec: ModelSpec,
    upload: TempUpload,
    store: BlobStore,
    max_parameters: int,
) -> Model:
    """A `ready` model whose version 1 is the uploaded checkpoint, validated against the architecture."""
    dataset = _dataset(session, principal=principal, dataset_id=spec.dataset_id)
    arch = check_architecture(architecture=spec.architecture, dataset=dataset, max_parameters=max_parameters)
    _check_policy(spec, has_recipe=False)
    if upload.size == 0:
        raise Unprocessable("checkpoint is empty")
    check_checkpoint(spec=arch, path=upload.path)
    model = _new_model(principal, spec, status="ready", recipe=None)
    model.latest_version = 1
    _add_model(session, model=model)
    repository.add_version(
        session,
        version=ModelVersion(
            model_id=model.id,
            version=1,
            parent_version=None,
            checkpoint_sha256=upload.sha256,
            checkpoint_size=upload.size,
            applied_requests=[],
            state="available",
            created_at=utcnow(),
        ),
    )
    evidence = {"source": "upload", "checkpoint_sha256": upload.sha256, "plugin": _plugin(arch)}
    _audit_registered(session, principal=principal, model=model, evidence=evidence)
    keep_upload(upload, store=store)
    log_event(log, "model.registered", model_id=model.id, source="upload", sha256=upload.sha256)
    return model


def get_model(session: Session, *, principal: Principal, model_id: str) -> Model:
    model = repository.get_model(session, model_id=model_id, tenant_id=principal.tenant_id)
    if model is None:
        raise NotFound(f"model {model_id} not found")
    return model


def parse_version(n: str) -> int | None:
    """An integer version, or None for `latest`."""
    if n == "latest":
        return None
    if not n.isdigit() or int(n) < 1 or len(n) > 9:
        raise Unprocessable(f"version must be a positive integer or 'latest', got {n[:20]!r}")
    return int(n)


def get_version(session: Session, *, principal: Principal, model_id: str, n: str) -> ModelVersion:
    number = parse_version(n)
    model = get_model(session, principal=principal, model_id=model_id)
    if number is None:
        if model.latest_version is None:
            raise NotFound(f"model {model_id} has no version yet (status {model.status})")
        number = model.latest_version
    version = repository.get_version(session, model_id=model.id, version=number)
    if version is None:
        raise NotFound(f"model {model_id} has no version {number}")
    return version


def list_models(
    session: Session, *, principal: Principal, dataset_id: str | None, status: str | None, params: PageParams
) -> Page[ModelOut]:
    rows, cursor = repository.list_models(
        session, tenant_id=principal.tenant_id, dataset_id=dataset_id, status=status, params=params
    )
    return Page[ModelOut](items=[model_out(m) for m in rows], next_cursor=cursor, limit=params.limit)


def list_versions(session: Session, *, principal: Principal, model_id: str, params: PageParams) -> Page[VersionOut]:
    model = get_model(session, principal=principal, model_id=model_id)
    rows, cursor = repository.page_versions(session, model_id=model.id, params=params)
    return Page[VersionOut](items=[version_out(v) for v in rows], next_cursor=cursor, limit=params.limit)


def model_out(model: Model) -> ModelOut:
    return ModelOut(
        id=model.id,
        name=model.name,
        dataset_id=model.dataset_id,
        architecture=model.architecture,
        train=model.train_recipe,
        unlearn=model.unlearn_defaults or {},
        policy=policy.resolve(model.unlearn_defaults, has_recipe=model.train_recipe is not None).as_dict(),
        status=model.status,
        error=model.error,
        latest_version=model.latest_version,
        created_at=model.created_at,
        updated_at=model.updated_at,
    )


def version_out(version: ModelVersion) -> VersionOut:
    return VersionOut(
        model_id=version.model_id,
        version=version.version,
        parent_version=version.parent_version,
        checkpoint_sha256=version.checkpoint_sha256,
        checkpoint_size=version.checkpoint_size,
        applied_requests=list(version.applied_requests or []),
        evidence_summary=version.evidence_summary,
        state=version.state,
        created_at=version.created_at,
        purged_at=version.purged_at,
        checkpoint_url=f"/v1/models/{version.model_id}/versions/{version.version}/checkpoint",
    )
