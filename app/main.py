"""The API application: create_app() wires settings, database, blob store, queue, middleware and routers."""

import logging
from contextlib import asynccontextmanager

import anyio.to_thread
from fastapi import FastAPI
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import sessionmaker

from app import health
from app.architectures.router import router as architectures_router
from app.audit.router import init_signer
from app.audit.router import router as audit_router
from app.console.router import install_console
from app.core.config import Settings, get_settings
from app.core.db import make_engine
from app.core.deps import JobQueue
from app.core.errors import install_error_handlers
from app.core.logging import configure_logging, log_event
from app.core.middleware import BodySizeLimitMiddleware, RequestContextMiddleware
from app.core.openapi import complete, install_docs, operation_id
from app.core.storage import open_store
from app.datasets.router import router as datasets_router
from app.deletions.router import router as deletions_router
from app.keys import service as keys_service
from app.keys.ratelimit import RateLimiter
from app.keys.router import router as keys_router
from app.models.router import openapi_components
from app.models.router import router as models_router

log = logging.getLogger("app.main")
MULTIPART_OVERHEAD = 1024 * 1024  # bytes allowed on top of the file limit for form fields and boundaries


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings.log_level)
    engine = make_engine(settings.database_url)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        anyio.to_thread.current_default_thread_limiter().total_tokens = settings.api_threads
        if settings.bootstrap_admin_key:
            try:
                with app.state.sessionmaker() as session:
                    keys_service.ensure_bootstrap_admin(session, raw_key=settings.bootstrap_admin_key)
            except OperationalError:  # the database is down: serve 503s (readyz says why) rather than crash
                log_event(log, "apikey.bootstrap_failed", level=logging.ERROR, reason="database unavailable")
        # Uploads a crashed API process left in its temporary folder (the workers' reconciler sweeps a shared
        # folder; with an object store the API's scratch folder is its own).
        app.state.store.sweep_tmp(max_age_s=settings.tmp_max_age_s)
        init_signer(app)  # load or generate the audit signing key before the first request
        log_event(log, "app.started")
        yield
        close = getattr(app.state.jobs, "close", None)
        if close is not None:
            close()  # send the enqueues still waiting
        engine.dispose()

    app = FastAPI(
        title="Unlearning service",
        version="1",
        description="Deletion requests against registered PyTorch classifiers, applied with Influence "
        "Approximation Unlearning; versioned checkpoints and an audit trail. Errors are RFC 9457 problem details. "
        "Lists answer {items, next_cursor, limit}: pass next_cursor back as cursor for the next page.",
        lifespan=lifespan,
        docs_url=None,  # served from local assets by install_docs
        redoc_url=None,
        generate_unique_id_function=operation_id,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.sessionmaker = sessionmaker(bind=engine, expire_on_commit=False)
    app.state.store = open_store(settings)
    app.state.jobs = JobQueue(settings.redis_url)
    app.state.rate_limiter = RateLimiter(
        rate_per_s=settings.rate_limit_per_s, burst=settings.rate_limit_burst, redis_url=settings.redis_url
    )

    install_error_handlers(app)
    app.add_middleware(
        BodySizeLimitMiddleware,
        json_limit=settings.max_json_bytes,
        upload_limit=max(settings.max_dataset_bytes, settings.max_checkpoint_bytes) + MULTIPART_OVERHEAD,
    )
    app.add_middleware(RequestContextMiddleware)  # outermost: sees every response, including 413 and 500

    app.include_router(health.router)
    app.include_router(keys_router)
    app.include_router(datasets_router)
    app.include_router(architectures_router)
    app.include_router(models_router)
    app.include_router(deletions_router)
    app.include_router(audit_router)
    install_docs(app)
    install_console(app)
    _extend_openapi(app)
    return app


def _extend_openapi(app: FastAPI) -> None:
    generate = app.openapi

    def openapi() -> dict:
        if app.openapi_schema is None:
            app.openapi_schema = complete(generate(), openapi_components())
        return app.openapi_schema

    app.openapi = openapi
