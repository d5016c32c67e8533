"""Idempotency-Key for POSTs that create something (IETF draft-ietf-httpapi-idempotency-key-header).

- The first request with a key claims it (a committed IdempotencyRecord without a response), does its work,
  and stores its response in the same transaction as the objects it created.
- Same key, same body (fingerprint): the stored response (status, body, Location) is replayed, with
  `Idempotent-Replayed: true`.
- Same key, different body: 422. Same key while the first request is still in flight: 409.
- A request that fails releases its claim, so a retry runs again. Keys expire `idempotency_ttl_s` after first
  use (24 h by default); a claim left by a crashed process is taken over after `idempotency_inflight_s`.
Keys are scoped per tenant and per method + path.
"""

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from fastapi.responses import JSONResponse
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.core.config import Settings
from app.core.db import utcnow
from app.core.errors import BadRequest, Conflict, Unprocessable
from app.core.logging import log_event
from app.keys import repository
from app.keys.orm import IdempotencyRecord

log = logging.getLogger("app.idempotency")
MAX_KEY_LENGTH = 255


@dataclass
class Created:
    """What a create operation answers, plus the work to do once its transaction has committed."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    after_commit: Callable[[], None] | None = None
    # What a replay answers, when it must differ from `body` (a secret shown once is not stored).
    replay_body: dict[str, Any] | None = None


def fingerprint(payload: Any) -> str:
    """sha256 of a canonical JSON encoding of the request's meaning (not its raw bytes)."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _response(status: int, body: dict[str, Any], headers: dict[str, str]) -> JSONResponse:
    return JSONResponse(body, status_code=status, headers=headers)


def _replay(record: IdempotencyRecord) -> JSONResponse:
    headers = json.loads(record.response_headers or "{}")
    headers["Idempotent-Replayed"] = "true"
    return _response(record.status_code or 200, json.loads(record.response_body or "{}"), headers)


def _claim(
    session: Session, *, tenant_id: str, scope: str, key: str, fp: str, settings: Settings
) -> IdempotencyRecord | JSONResponse:
    for _attempt in range(3):
        now = utcnow()
        existing = repository.get_idempotency(session, tenant_id=tenant_id, scope=scope, key=key)
        if existing is not None:
            expired = existing.created_at < now - timedelta(seconds=settings.idempotency_ttl_s)
            abandoned = existing.status_code is None and existing.created_at < now - timedelta(
                seconds=settings.idempotency_inflight_s
            )
            if expired or abandoned:
                repository.delete_idempotency(session, record_id=existing.id)
                session.commit()
                continue
            if existing.body_hash != fp:
                raise Unprocessable(
                    "this Idempotency-Key was already used with a different request body", idempotency_key=key
                )
            if existing.status_code is None:
                raise Conflict(
                    "a request with this Idempotency-Key is still being processed; retry later",
                    headers={"Retry-After": "1"},
                    idempotency_key=key,
                )
            session.rollback()
            return _replay(existing)
        record = IdempotencyRecord(tenant_id=tenant_id, scope=scope, key=key, body_hash=fp, created_at=now)
        try:
            repository.add_idempotency(session, record=record)
            session.commit()
            return record
        except IntegrityError:
            session.rollback()  # another request claimed it first: decide again against its record
    raise Conflict("a request with this Idempotency-Key is still being processed; retry later", idempotency_key=key)


def run_create(
    session: Session,
    *,
    tenant_id: str,
    idempotency_key: str | None,
    scope: str,
    fp: str,
    settings: Settings,
    work: Callable[[], Created],
) -> JSONResponse:
    """Run `work` (which only flushes) in the request's transaction, commit, then run its after-commit hook."""
    if idempotency_key is None:
        created = work()
        session.commit()
        if created.after_commit:
            created.after_commit()
        return _response(created.status, created.body, created.headers)

    if not 0 < len(idempotency_key) <= MAX_KEY_LENGTH or not idempotency_key.isprintable():
        raise BadRequest(f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} printable characters")
    claimed = _claim(session, tenant_id=tenant_id, scope=scope, key=idempotency_key, fp=fp, settings=settings)
    if isinstance(claimed, JSONResponse):
        return claimed
    record_id = claimed.id
    try:
        created = work()
        repository.complete_idempotency(
            session,
            record_id=record_id,
            status_code=created.status,
            body=json.dumps(created.body if created.replay_body is None else created.replay_body),
            headers=json.dumps(created.headers),
        )
        session.commit()
    except BaseException:
        session.rollback()
        try:
            repository.delete_idempotency(session, record_id=record_id)
            session.commit()
        except Exception:  # the claim then expires after idempotency_inflight_s
            session.rollback()
            log_event(log, "idempotency.release_failed", level=logging.WARNING, record_id=record_id)
        raise
    if created.after_commit:
        created.after_commit()
    return _response(created.status, created.body, created.headers)
