"""Model endpoints: register (train or upload), list, read, versions, checkpoint downloads, remove."""

from typing import Annotated, Literal

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from app.core.deps import DB, Jobs, Operator, Reader, SettingsDep, Store, after_commit_enqueue
from app.core.errors import COMMON_ERRORS, Unprocessable, problem_responses
from app.core.pagination import Page, Paging
from app.core.uploads import form_file, form_text, read_form, spool_upload
from app.keys.idempotency import Created, fingerprint, run_create
from app.models import removal, service
from app.models.download import checkpoint_response
from app.models.schemas import ModelOut, ModelSpec, ModelTrain, VersionOut

router = APIRouter(prefix="/v1", tags=["models"], responses=COMMON_ERRORS)
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key")]
MAX_SPEC_BYTES = 64 * 1024  # the multipart `spec` part
BINARY = {"type": "string", "format": "binary"}

REGISTER_SCHEMA = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/ModelTrain"}},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["spec", "checkpoint"],
                    "properties": {
                        "spec": {"type": "string", "description": "JSON: {name, dataset_id, architecture}"},
                        "checkpoint": {"type": "string", "format": "binary", "description": "safetensors"},
                    },
                }
            },
        },
    },
}


def openapi_components() -> dict:
    """Schemas the hand-written request body above refers to (added to the OpenAPI document's components)."""
    schema = ModelTrain.model_json_schema(ref_template="#/components/schemas/{model}")
    defs = schema.pop("$defs", {})
    return {"ModelTrain": schema, **defs}


def _parse(model, raw: bytes | str, *, loc: str):
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise RequestValidationError(
            [{**e, "loc": (loc, *e["loc"])} for e in exc.errors(include_url=False, include_input=False)]
        ) from None


@router.post(
    "/models",
    status_code=201,
    response_model=ModelOut,
    openapi_extra=REGISTER_SCHEMA,
    responses={202: {"model": ModelOut, "description": "training job queued"}, **problem_responses(409, 413)},
)
async def register_model(
    request: Request,
    db: DB,
    principal: Operator,
    settings: SettingsDep,
    store: Store,
    jobs: Jobs,
    idempotency_key: IdempotencyKey = None,
):
    """Register a model: JSON with `train` (202, trained by a job) or multipart `spec` + `checkpoint` (201)."""
    content_type = request.headers.get("content-type", "").lower()
    scope = f"POST {request.url.path}"
    if content_type.startswith("application/json"):
        body = _parse(ModelTrain, await request.body(), loc="body")

        def work_train() -> Created:
            model = service.register_for_training(
                db, principal=principal, body=body, max_parameters=settings.max_model_parameters
            )
            out = service.model_out(model).model_dump(mode="json")
            enqueue = lambda: after_commit_enqueue(  # noqa: E731
                jobs.enqueue_training, model.id, event="model.enqueue_failed"
            )
            return Created(202, out, {"Location": f"/v1/models/{model.id}"}, after_commit=enqueue)

        fp = fingerprint(body.model_dump(mode="json"))
        return await run_in_threadpool(
            run_create,
            db,
            tenant_id=principal.tenant_id,
            idempotency_key=idempotency_key,
            scope=scope,
            fp=fp,
            settings=settings,
            work=work_train,
        )
    if not content_type.startswith("multipart/form-data"):
        raise Unprocessable("send application/json (train) or multipart/form-data (spec + checkpoint)")

    form = await read_form(request, max_part_size=MAX_SPEC_BYTES)
    try:
        spec = _parse(ModelSpec, form_text(form, "spec", limit=MAX_SPEC_BYTES), loc="spec")
        file = form_file(form, "checkpoint")

        def run():
            upload = spool_upload(file, store=store, limit=settings.max_checkpoint_bytes)
            try:

                def work_upload() -> Created:
                    model = service.register_uploaded(
                        db,
                        principal=principal,
                        spec=spec,
                        upload=upload,
                        store=store,
                        max_parameters=settings.max_model_parameters,
                    )
                    out = service.model_out(model).model_dump(mode="json")
                    return Created(201, out, {"Location": f"/v1/models/{model.id}"})

                return run_create(
                    db,
                    tenant_id=principal.tenant_id,
                    idempotency_key=idempotency_key,
                    scope=scope,
                    fp=fingerprint({"spec": spec.model_dump(mode="json"), "checkpoint": upload.sha256}),
                    settings=settings,
                    work=work_upload,
                )
            finally:
                upload.discard()

        return await run_in_threadpool(run)
    finally:
        await form.close()


@router.get("/models", response_model=Page[ModelOut])
def list_models(
    db: DB,
    principal: Reader,
    paging: Paging,
    dataset_id: Annotated[str | None, Query(max_length=36, description="only models trained on this data set")] = None,
    status: Annotated[Literal["training", "ready", "failed"] | None, Query(description="only models in it")] = None,
) -> Page[ModelOut]:
    """The tenant's models, newest first."""
    return service.list_models(db, principal=principal, dataset_id=dataset_id, status=status, params=paging)


@router.get("/models/{model_id}", response_model=ModelOut)
def get_model(model_id: str, db: DB, principal: Reader) -> ModelOut:
    """A model with its status and latest version."""
    return service.model_out(service.get_model(db, principal=principal, model_id=model_id))


@router.delete("/models/{model_id}", status_code=204, response_class=Response)
def delete_model(model_id: str, db: DB, principal: Operator, store: Store) -> Response:
    """Remove a model: every version's checkpoint and gradient cache, its deletion requests and its rows."""
    removal.remove_model(db, principal=principal, model_id=model_id, store=store)
    db.commit()
    return Response(status_code=204)


@router.get("/models/{model_id}/versions", response_model=Page[VersionOut])
def list_versions(model_id: str, db: DB, principal: Reader, paging: Paging) -> Page[VersionOut]:
    """A model's versions, newest first."""
    return service.list_versions(db, principal=principal, model_id=model_id, params=paging)


@router.get("/models/{model_id}/versions/{n}", response_model=VersionOut)
def get_version(model_id: str, n: str, db: DB, principal: Reader) -> VersionOut:
    """One version (`n` an integer or `latest`)."""
    return service.version_out(service.get_version(db, principal=principal, model_id=model_id, n=n))


@router.get(
    "/models/{model_id}/versions/{n}/checkpoint",
    response_class=Response,
    responses={
        200: {"content": {"application/octet-stream": {"schema": BINARY}}, "description": "the safetensors checkpoint"},
        206: {"content": {"application/octet-stream": {"schema": BINARY}}, "description": "a byte range of it"},
        304: {"description": "not modified (If-None-Match names its ETag)"},
        **problem_responses(410, 416),
    },
)
def download_checkpoint(model_id: str, n: str, request: Request, db: DB, principal: Reader, store: Store):
    """The version's safetensors bytes; ETag is the quoted sha256; supports Range and If-None-Match."""
    version = service.get_version(db, principal=principal, model_id=model_id, n=n)
    db.close()  # release the connection before streaming
    return checkpoint_response(request, version=version, store=store)
