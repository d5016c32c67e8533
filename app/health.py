"""Liveness, readiness (database, Redis, blob storage) and Prometheus metrics."""

import logging
import os
import tempfile

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy import text

from app.core.logging import log_event
from app.core.metrics import render_metrics

router = APIRouter(tags=["health"])
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
    fd, name = tempfile.mkstemp(dir=request.app.state.store.tmp, prefix="readyz-")
    try:
        os.write(fd, b"ok")
    finally:
        os.close(fd)
        os.unlink(name)


@router.get("/readyz")
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


@router.get("/metrics")
def metrics() -> Response:
    """Prometheus text exposition."""
    body, content_type = render_metrics()
    return Response(body, media_type=content_type)
