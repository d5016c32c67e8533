"""Liveness, readiness (database, Redis, blob storage) and Prometheus metrics (behind a bearer token)."""

import logging

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import func, select, text

from app.core.errors import problem_responses
from app.core.logging import log_event
from app.core.metrics import LiveCollector, check_metrics_token, render_metrics

router = APIRouter(tags=["health"])


class Readiness(BaseModel):
    # ok, or unavailable when any check failed.
    status: str
    # database, redis and storage: ok or error.
    checks: dict[str, str]


log = logging.getLogger("app.health")


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """Liveness: the process answers."""
    return {"status": "ok"}


def _check_database(request: Request) -> None:
    with request.app.state.engine.connect() as conn:
        conn.execute(text("SELECT 1"))


def _check_redis(request: Request) -> None:
    if not request.app.state.jobs.ping():
        raise ConnectionError("redis did not answer")


def _check_storage(request: Request) -> None:
    request.app.state.store.check()


@router.get(
    "/readyz",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "not ready: the checks say which dependency failed"}},
)
def readyz(request: Request) -> JSONResponse:
    """Readiness: the database, Redis and the blob store answer (503 when any does not)."""
    checks: dict[str, str] = {}
    for name, check in (("database", _check_database), ("redis", _check_redis), ("storage", _check_storage)):
        try:
            check(request)
            checks[name] = "ok"
        except Exception as exc:  # noqa: BLE001 - every failure is a "not ready"
            checks[name] = "error"
            log_event(log, "readyz.failed", level=logging.WARNING, check=name, error=type(exc).__name__)
    ready = all(v == "ok" for v in checks.values())
    return JSONResponse(
        {"status": "ok" if ready else "unavailable", "checks": checks}, status_code=200 if ready else 503
    )


def _queue_counts(request: Request) -> dict[str, int]:
    """Jobs of the unlearn queue by state, read from Redis now."""
    from rq import Queue
    from rq.registry import FailedJobRegistry, ScheduledJobRegistry, StartedJobRegistry

    queue = Queue(request.app.state.settings.queue_name, connection=request.app.state.jobs.redis)
    return {
        "queued": queue.count,
        "scheduled": ScheduledJobRegistry(queue=queue).count,
        "started": StartedJobRegistry(queue=queue).count,
        "failed": FailedJobRegistry(queue=queue).count,
    }


def _request_counts(request: Request) -> dict[str, int]:
    """Open deletion requests (all tenants) by status, read from the database now."""
    from app.deletions.orm import DeletionRequest

    counts = {"queued": 0, "running": 0}
    with request.app.state.engine.connect() as conn:
        rows = conn.execute(
            select(DeletionRequest.status, func.count())
            .where(DeletionRequest.status.in_(tuple(counts)))
            .group_by(DeletionRequest.status)
        ).all()
    counts.update({status: int(n) for status, n in rows})
    return counts


@router.get(
    "/metrics",
    response_class=Response,
    openapi_extra={"security": [{"metricsToken": []}]},
    responses={
        200: {"content": {"text/plain": {"schema": {"type": "string"}}}, "description": "Prometheus text"},
        **problem_responses(401, 403),
    },
)
def metrics(request: Request) -> Response:
    """Prometheus text exposition: every process's metrics plus queue depth and open requests read now.
    Needs `Authorization: Bearer <UNLEARN_METRICS_TOKEN>` (401 without it; 403 when no token is set)."""
    token = request.app.state.settings.metrics_token
    check_metrics_token(token.get_secret_value() if token else None, request.headers.get("authorization"))
    live = LiveCollector(
        queue=request.app.state.settings.queue_name,
        queue_counts=lambda: _queue_counts(request),
        request_counts=lambda: _request_counts(request),
    )
    body, content_type = render_metrics(extra=[live])
    return Response(body, media_type=content_type)
