"""Tenants and API keys (admin)."""

from typing import Annotated

from fastapi import APIRouter, Header, Request, Response

from app.core.deps import DB, Admin, Reader, SettingsDep
from app.core.errors import COMMON_ERRORS, problem_responses
from app.core.pagination import Page, Paging
from app.keys import service
from app.keys.idempotency import Created, fingerprint, run_create
from app.keys.orm import ApiKey
from app.keys.schemas import KeyCreate, KeyCreated, KeyOut, TenantCreate, TenantOut

router = APIRouter(prefix="/v1", tags=["keys"], responses=COMMON_ERRORS)
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key")]


def _key_out(key: ApiKey) -> KeyOut:
    return KeyOut.model_validate(key, from_attributes=True)


@router.post("/tenants", status_code=201, response_model=TenantOut, responses=problem_responses(409))
def create_tenant(
    body: TenantCreate, request: Request, db: DB, principal: Admin, settings: SettingsDep, key: IdempotencyKey = None
):
    """Create a tenant (admins of the default tenant only)."""

    def work() -> Created:
        tenant = service.create_tenant(db, principal=principal, name=body.name)
        return Created(201, TenantOut.model_validate(tenant, from_attributes=True).model_dump(mode="json"))

    return run_create(
        db,
        tenant_id=principal.tenant_id,
        idempotency_key=key,
        scope=f"POST {request.url.path}",
        fp=fingerprint(body.model_dump(mode="json")),
        settings=settings,
        work=work,
    )


@router.post("/keys", status_code=201, response_model=KeyCreated, responses=problem_responses(409))
def create_key(
    body: KeyCreate, request: Request, db: DB, principal: Admin, settings: SettingsDep, key: IdempotencyKey = None
):
    """Create an API key. The raw key is in this response only (an idempotent replay answers `key: null`)."""

    def work() -> Created:
        api_key, raw = service.create_key(
            db, principal=principal, name=body.name, role=body.role, tenant_id=body.tenant_id
        )
        out = KeyCreated(**_key_out(api_key).model_dump(), key=raw)
        shown = out.model_dump(mode="json")
        return Created(201, shown, replay_body={**shown, "key": None})

    return run_create(
        db,
        tenant_id=principal.tenant_id,
        idempotency_key=key,
        scope=f"POST {request.url.path}",
        fp=fingerprint(body.model_dump(mode="json")),
        settings=settings,
        work=work,
    )


@router.get("/keys/current", response_model=KeyOut)
def get_current_key(db: DB, principal: Reader) -> KeyOut:
    """The key this request is signed with: its name, role and tenant (what a client may do with it)."""
    return _key_out(service.get_key(db, key_id=principal.key_id))


@router.get("/keys", response_model=Page[KeyOut])
def list_keys(db: DB, principal: Admin, paging: Paging, tenant_id: str | None = None) -> Page[KeyOut]:
    """The API keys of the caller's tenant (or of `tenant_id`, for admins of the default tenant), newest first."""
    keys, cursor = service.list_keys(db, principal=principal, tenant_id=tenant_id, params=paging)
    return Page[KeyOut](items=[_key_out(k) for k in keys], next_cursor=cursor, limit=paging.limit)


@router.delete("/keys/{key_id}", status_code=204, response_class=Response, responses=problem_responses(409))
def revoke_key(key_id: str, db: DB, principal: Admin) -> Response:
    """Revoke an API key; requests with it are refused from now on."""
    service.revoke_key(db, principal=principal, key_id=key_id)
    db.commit()
    return Response(status_code=204)
