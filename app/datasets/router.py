"""Data set endpoints: register (multipart upload), list, read metadata, remove, erase samples (from every
model and the stored file)."""

from typing import Annotated

from fastapi import APIRouter, Header, Request, Response
from starlette.concurrency import run_in_threadpool

from app.core.deps import DB, Jobs, Operator, Reader, Requester, SettingsDep, Store, after_commit_enqueue
from app.core.errors import COMMON_ERRORS, problem_responses
from app.core.idhash import get_id_hasher
from app.core.pagination import Page, Paging
from app.core.uploads import form_file, form_text, read_form, spool_upload
from app.datasets import erasures, removal, service
from app.datasets.schemas import DatasetOut, ErasureCreate, ErasureOut
from app.deletions.router import with_salt
from app.keys.idempotency import Created, fingerprint, run_create

router = APIRouter(prefix="/v1", tags=["datasets"], responses=COMMON_ERRORS)

UPLOAD_SCHEMA = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["name", "file"],
                    "properties": {
                        "name": {"type": "string", "maxLength": 200},
                        "file": {
                            "type": "string",
                            "format": "binary",
                            "description": "safetensors: features (float [N, ...]), labels (int64 [N], >= 0), "
                            "optional holdout_features and holdout_labels (both or neither)",
                        },
                        "ids": {
                            "type": "string",
                            "description": "one sample id per line, N unique non-empty lines; default 0..N-1",
                        },
                    },
                }
            }
        },
    }
}


@router.post(
    "/datasets",
    status_code=201,
    response_model=DatasetOut,
    openapi_extra=UPLOAD_SCHEMA,
    responses=problem_responses(409, 413),
)
async def register_dataset(
    request: Request,
    db: DB,
    principal: Operator,
    settings: SettingsDep,
    store: Store,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
):
    """Register a data set (multipart: name, file, optional ids)."""
    form = await read_form(request, max_part_size=settings.max_ids_bytes)
    try:
        name = form_text(form, "name")
        ids_text = form_text(form, "ids", required=False, limit=settings.max_ids_bytes)
        file = form_file(form, "file")

        def run():
            upload = spool_upload(file, store=store, limit=settings.max_dataset_bytes)
            try:
                fp = fingerprint({"name": name, "file": upload.sha256, "ids": fingerprint(ids_text)})

                def work() -> Created:
                    dataset = service.register_dataset(
                        db, principal=principal, name=name, upload=upload, ids_text=ids_text, store=store
                    )
                    body = service.dataset_out(db, dataset=dataset).model_dump(mode="json")
                    return Created(201, body, {"Location": f"/v1/datasets/{dataset.id}"})

                return run_create(
                    db,
                    tenant_id=principal.tenant_id,
                    idempotency_key=idempotency_key,
                    scope=f"POST {request.url.path}",
                    fp=fp,
                    settings=settings,
                    work=work,
                )
            finally:
                upload.discard()  # no-op once the upload became a blob

        return await run_in_threadpool(run)
    finally:
        await form.close()


@router.get("/datasets", response_model=Page[DatasetOut])
def list_datasets(db: DB, principal: Reader, paging: Paging) -> Page[DatasetOut]:
    """The tenant's data sets, newest first."""
    return service.list_datasets(db, principal=principal, params=paging)


@router.get("/datasets/{dataset_id}", response_model=DatasetOut)
def get_dataset(dataset_id: str, db: DB, principal: Reader) -> DatasetOut:
    """Data set metadata: counts, shapes, classes, sha256, deleted rows."""
    dataset = service.get_dataset(db, principal=principal, dataset_id=dataset_id)
    return service.dataset_out(db, dataset=dataset)


@router.delete("/datasets/{dataset_id}", status_code=204, response_class=Response, responses=problem_responses(409))
def delete_dataset(dataset_id: str, db: DB, principal: Operator, store: Store) -> Response:
    """Remove a data set: its blob and its rows. 409 while models trained on it exist (remove them first)."""
    removal.remove_dataset(db, principal=principal, dataset_id=dataset_id, store=store)
    db.commit()
    return Response(status_code=204)


@router.post(
    "/datasets/{dataset_id}/erasures", status_code=202, response_model=ErasureOut, responses=problem_responses(409)
)
def create_erasure(
    dataset_id: str,
    body: ErasureCreate,
    request: Request,
    db: DB,
    principal: Requester,
    settings: SettingsDep,
    jobs: Jobs,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
):
    """Erase samples from every model trained on the data set, then from the stored data set itself."""
    jobs.require()  # 503 before anything is written when Redis does not answer

    def work() -> Created:
        erasure, children = erasures.create_erasure(
            db, principal=principal, dataset_id=dataset_id, body=body, max_ids=settings.max_ids_per_request
        )
        db.flush()
        out = erasures.erasure_out(db, erasure=erasure).model_dump(mode="json")

        def enqueue() -> None:
            for child in children:
                after_commit_enqueue(jobs.enqueue_deletion, *child, event="deletion.enqueue_failed")
            if not children:
                after_commit_enqueue(jobs.enqueue_compaction, dataset_id, event="compaction.enqueue_failed")

        location = {"Location": f"/v1/erasures/{erasure.id}"}
        replay = {**out, "commitment_salt": None}  # never stored; with_salt puts it back on a replay
        return Created(202, out, location, after_commit=enqueue, replay_body=replay)

    response = run_create(
        db,
        tenant_id=principal.tenant_id,
        idempotency_key=idempotency_key,
        scope=f"POST {request.url.path}",
        fp=get_id_hasher().fingerprint(principal.tenant_id, body.model_dump(mode="json")),
        settings=settings,
        work=work,
    )
    return with_salt(response) if response.headers.get("Idempotent-Replayed") else response


@router.get("/erasures/{erasure_id}", response_model=ErasureOut)
def get_erasure(erasure_id: str, db: DB, principal: Requester) -> ErasureOut:
    """Combined status of an erasure: its deletions, then the compaction of the data set."""
    return erasures.erasure_out(db, erasure=erasures.get_erasure(db, principal=principal, erasure_id=erasure_id))
