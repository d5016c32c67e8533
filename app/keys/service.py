"""Tenants and API keys: creation (the raw key is returned once), listing, revocation, start-up bootstrap."""

import logging
import uuid

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.core.audit_hook import audit
from app.core.db import utcnow
from app.core.errors import Conflict, Forbidden, NotFound
from app.core.logging import log_event
from app.core.pagination import PageParams
from app.core.security import (
    DEFAULT_TENANT_ID,
    DEFAULT_TENANT_NAME,
    Principal,
    generate_key,
    hash_key,
    key_prefix,
)
from app.keys import repository
from app.keys.orm import ApiKey, Tenant

log = logging.getLogger("app.keys")


def create_tenant(session: Session, *, principal: Principal, name: str) -> Tenant:
    if not principal.is_platform_admin:
        raise Forbidden("only admins of the default tenant may create tenants")
    if repository.get_tenant_by_name(session, name=name) is not None:
        raise Conflict(f"a tenant named {name!r} already exists")
    tenant = repository.add_tenant(session, tenant=Tenant(id=str(uuid.uuid4()), name=name, created_at=utcnow()))
    audit(
        session,
        actor=principal.key_id,
        event_type="tenant.created",
        tenant_id=tenant.id,
        refs={"tenant_id": tenant.id},
    )
    log_event(log, "tenant.created", tenant_id=tenant.id)
    return tenant


def _target_tenant(session: Session, *, principal: Principal, tenant_id: str | None) -> str:
    if tenant_id is None or tenant_id == principal.tenant_id:
        return principal.tenant_id
    if not principal.is_platform_admin or repository.get_tenant(session, tenant_id=tenant_id) is None:
        raise NotFound(f"tenant {tenant_id} not found")
    return tenant_id


def create_key(
    session: Session, *, principal: Principal, name: str, role: str, tenant_id: str | None
) -> tuple[ApiKey, str]:
    """A new key and its raw value (returned to the caller once, never stored)."""
    target = _target_tenant(session, principal=principal, tenant_id=tenant_id)
    raw = generate_key()
    key = ApiKey(
        id=str(uuid.uuid4()),
        tenant_id=target,
        name=name,
        role=role,
        key_hash=hash_key(raw),
        prefix=key_prefix(raw),
        created_at=utcnow(),
    )
    repository.add_key(session, key=key)
    audit(
        session,
        actor=principal.key_id,
        event_type="apikey.created",
        tenant_id=target,
        refs={"key_id": key.id, "role": role},
    )
    log_event(log, "apikey.created", key_id=key.id, tenant_id=target, role=role)
    return key, raw


def list_keys(
    session: Session, *, principal: Principal, tenant_id: str | None, params: PageParams
) -> tuple[list[ApiKey], str | None]:
    target = _target_tenant(session, principal=principal, tenant_id=tenant_id)
    return repository.list_keys(session, tenant_id=target, params=params)


def get_key(session: Session, *, key_id: str) -> ApiKey:
    key = repository.get_key(session, key_id=key_id, tenant_id=None)
    if key is None:
        raise NotFound(f"API key {key_id} not found")
    return key


def revoke_key(session: Session, *, principal: Principal, key_id: str) -> None:
    """Revoke a key; 409 for the last platform admin key (admin of the default tenant), whose loss would leave
    no one able to create tenants or keys."""
    scope = None if principal.is_platform_admin else principal.tenant_id
    key = repository.get_key(session, key_id=key_id, tenant_id=scope)
    if key is None:
        raise NotFound(f"API key {key_id} not found")
    if key.revoked_at is not None:
        return
    platform_admin = key.role == "admin" and key.tenant_id == DEFAULT_TENANT_ID
    if platform_admin:
        # Two admins revoking each other at once: the second waits here, then counts after the first committed.
        repository.lock_tenant(session, tenant_id=DEFAULT_TENANT_ID)
    repository.revoke_key(session, key_id=key.id, at=utcnow())
    if platform_admin and repository.count_active_keys(session, tenant_id=DEFAULT_TENANT_ID, role="admin") == 0:
        raise Conflict(
            "this is the last platform admin key (an admin key of the default tenant): create another one before "
            "revoking it",
            key_id=key.id,
        )
    audit(
        session,
        actor=principal.key_id,
        event_type="apikey.revoked",
        tenant_id=key.tenant_id,
        refs={"key_id": key.id},
    )
    log_event(log, "apikey.revoked", key_id=key.id, tenant_id=key.tenant_id)


def ensure_bootstrap_admin(session: Session, *, raw_key: str) -> None:
    """Make sure the default tenant and an admin key with this value exist. Idempotent, safe across processes:
    both rows have deterministic ids, so a concurrent insert fails on the primary key and is ignored."""
    if repository.get_tenant(session, tenant_id=DEFAULT_TENANT_ID) is None:
        try:
            repository.add_tenant(session, tenant=Tenant(id=DEFAULT_TENANT_ID, name=DEFAULT_TENANT_NAME))
            session.commit()
        except IntegrityError:
            session.rollback()
    key_hash = hash_key(raw_key)
    existing = repository.get_key_by_hash(session, key_hash=key_hash)
    if existing is not None:
        if existing.revoked_at is not None:
            log_event(log, "apikey.bootstrap_revoked", level=logging.WARNING, key_id=existing.id)
        return
    key = ApiKey(
        id=str(uuid.uuid5(uuid.NAMESPACE_URL, "unlearn-bootstrap-admin:" + key_hash)),
        tenant_id=DEFAULT_TENANT_ID,
        name="bootstrap admin",
        role="admin",
        key_hash=key_hash,
        prefix=key_prefix(raw_key),
        created_at=utcnow(),
    )
    try:
        repository.add_key(session, key=key)
        session.commit()
        log_event(log, "apikey.bootstrapped", key_id=key.id)
    except IntegrityError:
        session.rollback()
