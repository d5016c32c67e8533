"""Request dependencies: settings, database session, blob store, job queue, authentication and roles.

The request owns the transaction: routers commit (through app.keys.idempotency.run_create or explicitly);
services and repositories only flush. A session is rolled back and closed when the request ends.
"""

import logging
import queue
import threading
import time
from collections.abc import Iterator
from typing import Annotated

import redis
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from app.core.config import Settings
from app.core.errors import Forbidden, ServiceUnavailable, Unauthorized
from app.core.logging import log_event
from app.core.security import Principal, hash_key
from app.core.storage import BlobStore
from app.keys import repository as keys_repository

log = logging.getLogger("app.deps")
REDIS_RETRY_AFTER_S = 5  # Retry-After sent with 503 when Redis does not answer
REDIS_ALIVE_TTL_S = 1.0  # seconds a successful PING is trusted before the next request pings again


class JobQueue:
    """Enqueues worker jobs (workers.queue) and checks that Redis answers.

    ``require`` trusts a successful PING for ``alive_ttl_s`` seconds instead of pinging on every request; a
    failed PING or a failed enqueue forgets it, so the next request pings again and gets 503 while Redis is down.

    Deletion requests whose job id is already recorded on their committed row are handed to a background thread
    that sends what gathers within 50 ms in one Redis round trip, one job per model (``enqueue_deletion``;
    workers.queue.enqueue_deletion_batch): a request never waits for Redis after its commit. What is handed over
    but not yet sent when the process dies is still ``queued`` in the database, and the workers' reconciler
    enqueues it again; ``close`` sends what is left.
    """

    BATCH_MAX = 500  # requests per send
    GATHER_S = 0.05  # how long the sender gathers requests after the first before sending them

    def __init__(self, redis_url: str, *, alive_ttl_s: float = REDIS_ALIVE_TTL_S) -> None:
        self.redis = redis.Redis.from_url(redis_url, socket_connect_timeout=1, socket_timeout=2)
        self.alive_ttl_s = alive_ttl_s
        self._alive_until = 0.0
        self._pending: queue.SimpleQueue[tuple[str, str, str] | None] = queue.SimpleQueue()
        self._sender: threading.Thread | None = None
        self._sender_lock = threading.Lock()

    def ping(self) -> bool:
        try:
            return bool(self.redis.ping())
        except redis.RedisError:
            return False

    def require(self) -> None:
        """Raise 503 unless Redis answers (checked before writing anything that must then be enqueued)."""
        if time.monotonic() < self._alive_until:
            return
        if self.ping():
            self._alive_until = time.monotonic() + self.alive_ttl_s
        else:
            self._alive_until = 0.0
            raise ServiceUnavailable(
                "the job queue (Redis) is not answering; retry later", retry_after_s=REDIS_RETRY_AFTER_S
            )

    def enqueue_training(self, model_id: str) -> None:
        from workers.queue import enqueue_training

        enqueue_training(model_id)

    def enqueue_compaction(self, dataset_id: str) -> None:
        from workers.queue import enqueue_compaction

        enqueue_compaction(dataset_id)

    def enqueue_deletion(self, request_id: str, model_id: str | None = None, job_id: str | None = None) -> None:
        """Queue a committed request: with ``model_id`` and ``job_id`` (already stored on its row) through the
        background sender, else now, recording a new job id on the row."""
        if job_id is None or model_id is None:
            from workers.queue import enqueue_deletion

            try:
                enqueue_deletion(request_id, model_id)
            except Exception:
                self._alive_until = 0.0
                raise
            return
        self._pending.put((request_id, model_id, job_id))
        if self._sender is None:
            with self._sender_lock:
                if self._sender is None:
                    self._sender = threading.Thread(target=self._send_loop, name="enqueue-sender", daemon=True)
                    self._sender.start()

    def _send_loop(self) -> None:
        while True:
            item = self._pending.get()
            batch: list[tuple[str, str, str]] = []
            deadline = time.monotonic() + self.GATHER_S
            while item is not None:
                batch.append(item)
                wait = deadline - time.monotonic()
                if len(batch) >= self.BATCH_MAX or wait <= 0:
                    break
                try:
                    item = self._pending.get(timeout=wait)
                except queue.Empty:
                    break
            self._send(batch)
            if item is None:
                return

    def _send(self, batch: list[tuple[str, str, str]]) -> None:
        from workers.queue import enqueue_deletion_batch

        try:
            enqueue_deletion_batch(batch)
        except Exception as exc:  # noqa: BLE001 - the rows are committed: the reconciler enqueues them again
            self._alive_until = 0.0
            log_event(
                log,
                "deletion.enqueue_failed",
                level=logging.ERROR,
                count=len(batch),
                deletion_ids=[request_id for request_id, _, _ in batch][:20],
                error=type(exc).__name__,
            )

    def close(self, timeout_s: float = 10.0) -> None:
        """Send what is waiting, then stop the sender."""
        with self._sender_lock:
            sender, self._sender = self._sender, None
        if sender is not None:
            self._pending.put(None)
            sender.join(timeout=timeout_s)


def after_commit_enqueue(fn, *args: str, event: str) -> None:
    """Run an enqueue after commit; a failure is logged, never raised (the reconciler re-enqueues)."""
    try:
        fn(*args)
    except Exception as exc:  # noqa: BLE001 - any queue failure is recoverable from the database
        log_event(log, event, level=logging.ERROR, ids=list(args), error=type(exc).__name__)


async def get_settings_dep(request: Request) -> Settings:
    return request.app.state.settings


def get_db(request: Request) -> Iterator[Session]:
    session: Session = request.app.state.sessionmaker()
    try:
        yield session
    finally:
        session.close()  # rolls back whatever the router did not commit


async def get_store(request: Request) -> BlobStore:
    return request.app.state.store


async def get_jobs(request: Request) -> JobQueue:
    return request.app.state.jobs


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
DB = Annotated[Session, Depends(get_db)]
Store = Annotated[BlobStore, Depends(get_store)]
Jobs = Annotated[JobQueue, Depends(get_jobs)]


# The OpenAPI security scheme of every authenticated operation ("bearerAuth"); authenticate() reads the header.
bearer = HTTPBearer(
    auto_error=False, scheme_name="bearerAuth", description="An API key: `Authorization: Bearer unl_...`"
)
BearerDoc = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


def authenticate(request: Request, db: DB, _scheme: BearerDoc = None) -> Principal:
    """The caller's principal from its Bearer API key (401 when missing, unknown or revoked; 429 past its rate)."""
    header = request.headers.get("authorization", "")
    scheme, _, raw = header.partition(" ")
    if scheme.lower() != "bearer" or not raw.strip():
        raise Unauthorized("missing API key: send Authorization: Bearer <key>")
    key = keys_repository.key_principal_by_hash(db, key_hash=hash_key(raw.strip()))
    if key is None or key.revoked_at is not None:
        raise Unauthorized("invalid or revoked API key")
    request.app.state.rate_limiter.check(key.id)
    return Principal(key_id=key.id, tenant_id=key.tenant_id, role=key.role)


def check_role(principal: Principal, role: str) -> Principal:
    if not principal.has_role(role):
        raise Forbidden(f"this operation needs the {role} role or higher; the key has {principal.role}")
    return principal


def require(role: str):
    """A dependency that authenticates the caller and checks it holds `role` or a higher one."""

    async def dependency(principal: Annotated[Principal, Depends(authenticate)]) -> Principal:
        return check_role(principal, role)

    return dependency


Admin = Annotated[Principal, Depends(require("admin"))]
Operator = Annotated[Principal, Depends(require("operator"))]
Requester = Annotated[Principal, Depends(require("requester"))]
Reader = Annotated[Principal, Depends(require("reader"))]
