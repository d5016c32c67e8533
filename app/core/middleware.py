"""ASGI middleware: request id + access log + metrics + last-resort 500, and the request body size limit."""

import logging
import re
import time
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.errors import internal_error_response, problem
from app.core.logging import log_event, request_id_var
from app.core.metrics import observe_request

log = logging.getLogger("app.http")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class RequestContextMiddleware:
    """Binds X-Request-ID (taken from the request when well formed, else generated), echoes it on the response,
    logs `http.request` per request, records metrics by route template, and turns an unexpected exception into
    a problem-details 500 without a stack trace (the trace goes to the log)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status = 500
        response_started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            log_event(log, "http.unhandled_error", level=logging.ERROR, exc_info=True, path=scope.get("path"))
            if not response_started:
                await internal_error_response()(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            observe_request(method=scope["method"], route=route, status=status, seconds=elapsed)
            log_event(
                log,
                "http.request",
                method=scope["method"],
                route=route,
                status=status,
                duration_ms=round(elapsed * 1000, 2),
            )
            request_id_var.reset(token)


class BodySizeLimitMiddleware:
    """413 for request bodies over the limit: multipart uploads get `upload_limit`, everything else `json_limit`.
    Checks Content-Length up front and counts streamed bytes for chunked bodies."""

    def __init__(self, app: ASGIApp, *, json_limit: int, upload_limit: int) -> None:
        self.app = app
        self.json_limit = json_limit
        self.upload_limit = upload_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        content_type = headers.get(b"content-type", b"").decode("latin-1").lower()
        limit = self.upload_limit if content_type.startswith("multipart/") else self.json_limit
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            await problem(
                413, f"request body exceeds the limit of {limit} bytes", code="payload-too-large", limit=limit
            )(scope, receive, send)
            return
        received = 0
        too_large = False

        async def counting_receive() -> Message:
            # Past the limit the app sees a disconnect, and whatever it answers is replaced by the 413.
            nonlocal received, too_large
            if too_large:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    too_large = True
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            if not too_large:
                await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except Exception:
            if not too_large:
                raise
        if too_large:
            await problem(
                413, f"request body exceeds the limit of {limit} bytes", code="payload-too-large", limit=limit
            )(scope, receive, send)
