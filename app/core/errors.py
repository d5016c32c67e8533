"""Domain exceptions carrying their HTTP status, rendered as RFC 9457 problem details by one set of handlers.

Every error response of the API is `application/problem+json` with `type`, `title`, `status`, `detail`
and, where useful, extra members (`unknown_ids`, `conflicts`, `errors`, ...).
"""

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from sqlalchemy.exc import DataError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("app.errors")

PROBLEM_TYPE_BASE = "https://unlearn.dev/problems/"
DB_RETRY_AFTER_S = 5  # Retry-After sent with 503 when the database does not answer


class Problem(BaseModel):
    """RFC 9457 problem details (extra members such as unknown_ids or conflicts may follow)."""

    model_config = ConfigDict(extra="allow")
    type: str
    title: str
    status: int
    detail: str


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` entries for error statuses, all answered as application/problem+json."""
    return {
        status: {
            "description": HTTPStatus(status).phrase,
            "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
        for status in statuses
    }


# Statuses any authenticated endpoint may answer.
COMMON_ERRORS = problem_responses(401, 403, 404, 422, 429, 503)


class AppError(Exception):
    """Base of every domain error. Subclasses set `status` (and optionally a problem `code`)."""

    status: int = 500
    code: str = "internal-error"

    def __init__(self, detail: str, *, headers: dict[str, str] | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers = headers or {}
        self.extra = extra


class BadRequest(AppError):
    status, code = 400, "bad-request"


class Unauthorized(AppError):
    status, code = 401, "unauthorized"

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": "Bearer"}, **extra)


class Forbidden(AppError):
    status, code = 403, "forbidden"


class NotFound(AppError):
    status, code = 404, "not-found"


class Conflict(AppError):
    status, code = 409, "conflict"


class Gone(AppError):
    status, code = 410, "gone"


class PayloadTooLarge(AppError):
    status, code = 413, "payload-too-large"


class RangeNotSatisfiable(AppError):
    status, code = 416, "range-not-satisfiable"


class Unprocessable(AppError):
    status, code = 422, "validation-error"


class TooManyRequests(AppError):
    status, code = 429, "rate-limited"

    def __init__(self, detail: str, *, retry_after_s: int, **extra: Any) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after_s)}, **extra)


class ServiceUnavailable(AppError):
    status, code = 503, "service-unavailable"

    def __init__(self, detail: str, *, retry_after_s: int = 5, **extra: Any) -> None:
        super().__init__(detail, headers={"Retry-After": str(retry_after_s)}, **extra)


def problem(
    status: int,
    detail: str,
    *,
    code: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    """An RFC 9457 problem details response."""
    title = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error"
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_BASE + code if code else "about:blank",
        "title": title,
        "status": status,
        "detail": detail,
    }
    body.update(jsonable_encoder(extra))
    return JSONResponse(body, status_code=status, headers=headers, media_type="application/problem+json")


async def _app_error(_request: Request, exc: AppError) -> JSONResponse:
    return problem(exc.status, exc.detail, code=exc.code, headers=exc.headers, **exc.extra)


async def _http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
    detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
    return problem(exc.status_code, detail, headers=getattr(exc, "headers", None))


def _clean_error(err: dict[str, Any]) -> dict[str, Any]:
    # Pydantic puts the raw input and exception objects in errors; keep only what is safe and serialisable.
    return {"loc": list(err.get("loc", ())), "msg": str(err.get("msg", "")), "type": str(err.get("type", ""))}


async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = [_clean_error(e) for e in exc.errors()]
    parts = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in errors[:5]]
    return problem(422, "request validation failed: " + "; ".join(parts), code="validation-error", errors=errors)


async def _db_unavailable(_request: Request, exc: OperationalError) -> JSONResponse:
    log.error("db.unavailable", extra={"fields": {"error": type(exc.orig).__name__ if exc.orig else "unknown"}})
    return problem(
        503,
        "the database is not answering; retry later",
        code="service-unavailable",
        headers={"Retry-After": str(DB_RETRY_AFTER_S)},
    )


async def _data_error(_request: Request, exc: DataError) -> JSONResponse:
    # PostgreSQL text cannot hold NUL; psycopg refuses such a value before it is sent. Any other DataError is a
    # server fault and stays a 500.
    if "NUL (0x00)" not in str(exc.orig):
        raise exc
    return problem(422, "text values must not contain NUL (0x00) characters", code="validation-error")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(AppError, _app_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(OperationalError, _db_unavailable)
    app.add_exception_handler(DataError, _data_error)


def internal_error_response() -> JSONResponse:
    """The 500 body for an unexpected exception: no stack trace, no exception text."""
    return problem(500, "an unexpected error occurred; it has been logged", code="internal-error")
