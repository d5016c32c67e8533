"""SQL for tenants, API keys and idempotency records."""

from datetime import datetime

from sqlalchemy import bindparam, delete, func, select, update
from sqlalchemy.orm import Session

from app.core.pagination import PageParams, time_ordered
from app.keys.orm import ApiKey, IdempotencyRecord, Tenant


def get_tenant(session: Session, *, tenant_id: str) -> Tenant | None:
    return session.get(Tenant, tenant_id)


def get_tenant_by_name(session: Session, *, name: str) -> Tenant | None:
    return session.scalar(select(Tenant).where(Tenant.name == name))


def add_tenant(session: Session, *, tenant: Tenant) -> Tenant:
    session.add(tenant)
    session.flush()
    return tenant


def get_key_by_hash(session: Session, *, key_hash: str) -> ApiKey | None:
    return session.scalar(select(ApiKey).where(ApiKey.key_hash == key_hash))


_keys = ApiKey.__table__
_KEY_BY_HASH = select(_keys.c.id, _keys.c.tenant_id, _keys.c.role, _keys.c.revoked_at).where(
    _keys.c.key_hash == bindparam("key_hash")
)


def key_principal_by_hash(session: Session, *, key_hash: str):
    """(id, tenant_id, role, revoked_at) of the key with this hash, or None: one indexed read, no ORM object."""
    return session.connection().execute(_KEY_BY_HASH, {"key_hash": key_hash}).first()


def get_key(session: Session, *, key_id: str, tenant_id: str | None) -> ApiKey | None:
    stmt = select(ApiKey).where(ApiKey.id == key_id)
    if tenant_id is not None:
        stmt = stmt.where(ApiKey.tenant_id == tenant_id)
    return session.scalar(stmt)


def list_keys(session: Session, *, tenant_id: str, params: PageParams) -> tuple[list[ApiKey], str | None]:
    """One page of a tenant's keys, newest first."""
    return time_ordered(session, select(ApiKey).where(ApiKey.tenant_id == tenant_id), entity=ApiKey, params=params)


def add_key(session: Session, *, key: ApiKey) -> ApiKey:
    session.add(key)
    session.flush()
    return key


def lock_tenant(session: Session, *, tenant_id: str) -> None:
    """Hold the tenant's row until the transaction ends (PostgreSQL; SQLite serialises writers anyway)."""
    session.execute(select(Tenant.id).where(Tenant.id == tenant_id).with_for_update())


def count_active_keys(session: Session, *, tenant_id: str, role: str) -> int:
    """Keys of the tenant with this role that are not revoked."""
    stmt = select(func.count()).where(ApiKey.tenant_id == tenant_id, ApiKey.role == role, ApiKey.revoked_at.is_(None))
    return int(session.scalar(stmt) or 0)


def revoke_key(session: Session, *, key_id: str, at: datetime) -> None:
    session.execute(update(ApiKey).where(ApiKey.id == key_id, ApiKey.revoked_at.is_(None)).values(revoked_at=at))


def get_idempotency(session: Session, *, tenant_id: str, scope: str, key: str) -> IdempotencyRecord | None:
    return session.scalar(
        select(IdempotencyRecord).where(
            IdempotencyRecord.tenant_id == tenant_id,
            IdempotencyRecord.scope == scope,
            IdempotencyRecord.key == key,
        )
    )


def add_idempotency(session: Session, *, record: IdempotencyRecord) -> IdempotencyRecord:
    session.add(record)
    session.flush()
    return record


def delete_idempotency(session: Session, *, record_id: int) -> None:
    session.execute(delete(IdempotencyRecord).where(IdempotencyRecord.id == record_id))


def delete_idempotency_scope(session: Session, *, tenant_id: str, scope: str) -> None:
    """Forget the Idempotency-Keys used on one path (e.g. a removed model's deletions)."""
    session.execute(
        delete(IdempotencyRecord).where(IdempotencyRecord.tenant_id == tenant_id, IdempotencyRecord.scope == scope)
    )


def complete_idempotency(session: Session, *, record_id: int, status_code: int, body: str, headers: str) -> None:
    session.execute(
        update(IdempotencyRecord)
        .where(IdempotencyRecord.id == record_id)
        .values(status_code=status_code, response_body=body, response_headers=headers)
    )


def purge_idempotency_before(session: Session, *, before: datetime) -> int:
    result = session.execute(delete(IdempotencyRecord).where(IdempotencyRecord.created_at < before))
    return result.rowcount or 0
