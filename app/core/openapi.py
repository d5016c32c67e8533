"""The OpenAPI document and its browsers, made for client generators and offline networks.

- Operation ids are the route functions' names (``list_datasets``, ``create_deletion``): stable, readable, and
  what a generated client calls its functions.
- Bearer authentication is the ``bearerAuth`` security scheme (app.core.deps.bearer); operations that need a key
  declare it, the public ones (health, the audit log's key and checkpoint) do not; ``/metrics`` takes its own
  token (``metricsToken``).
- Every error a route can answer is declared as ``application/problem+json`` with the ``Problem`` schema: each
  router declares its own (404, 409, 410, ...); here every operation gets 500 and 503, secured ones 401, 403 and
  429, and those with parameters or a body 422 (FastAPI's default 422, a JSON validation document the service
  never sends, is replaced).
- ``/docs`` (Swagger UI) and ``/redoc`` load their scripts and styles from this service: the files come from the
  ``fastapi-offline`` package, which ships the Swagger UI 5 and ReDoc 2 bundles, so the pages work with no internet
  access and name no external URL. ReDoc's bundle draws its maker's logo from their CDN in the menu footer; the
  bundle is served with that one address pointed at the local favicon, so no request leaves the service.
"""

from pathlib import Path
from typing import Any

import fastapi_offline
from fastapi import FastAPI, Response
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles

from app.core.errors import Problem, problem_responses

ASSETS = Path(fastapi_offline.__file__).parent / "static"
ASSETS_URL = "/static/api-docs"
SCHEME = "bearerAuth"
REDOC_LOGO_URL = b"https://cdn.redoc.ly/redoc/logo-mini.svg"
METHODS = ("get", "put", "post", "delete", "patch")


def operation_id(route: APIRoute) -> str:
    """The route function's name: one id per operation (a test checks they are unique)."""
    return route.name


def install_docs(app: FastAPI) -> None:
    """Serve Swagger UI at /docs and ReDoc at /redoc from local assets."""
    title = app.title
    redoc_js = (
        (ASSETS / "redoc.standalone.js").read_bytes().replace(REDOC_LOGO_URL, f"{ASSETS_URL}/favicon.png".encode())
    )

    @app.get(f"{ASSETS_URL}/redoc.standalone.js", include_in_schema=False)
    def redoc_bundle() -> Response:
        return Response(redoc_js, media_type="text/javascript", headers={"Cache-Control": "public, max-age=86400"})

    app.mount(ASSETS_URL, StaticFiles(directory=ASSETS), name="api-docs-assets")  # after the route above

    @app.get("/docs", include_in_schema=False)
    def swagger_ui():
        return get_swagger_ui_html(
            openapi_url=app.openapi_url,
            title=f"{title}: API",
            swagger_js_url=f"{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS_URL}/favicon.png",
            # No call to the public validator service; keep the key entered in "Authorize" across reloads.
            swagger_ui_parameters={"validatorUrl": None, "persistAuthorization": True},
        )

    @app.get("/redoc", include_in_schema=False)
    def redoc():
        return get_redoc_html(
            openapi_url=app.openapi_url,
            title=f"{title}: API",
            redoc_js_url=f"{ASSETS_URL}/redoc.standalone.js",
            redoc_favicon_url=f"{ASSETS_URL}/favicon.png",
            with_google_fonts=False,
        )


def _has_input(operation: dict[str, Any]) -> bool:
    return bool(operation.get("parameters") or operation.get("requestBody"))


def complete(schema: dict[str, Any], extra_schemas: dict[str, Any]) -> dict[str, Any]:
    """Add the Problem schema and the error responses every operation can answer."""
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas.update(extra_schemas)
    schemas["Problem"] = Problem.model_json_schema()
    components.setdefault("securitySchemes", {})["metricsToken"] = {
        "type": "http",
        "scheme": "bearer",
        "description": "The metrics token (UNLEARN_METRICS_TOKEN), not an API key: GET /metrics only",
    }
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)  # the service answers validation errors as problems
    for item in schema.get("paths", {}).values():
        for method in METHODS:
            operation = item.get(method)
            if operation is None:
                continue
            responses = operation.setdefault("responses", {})
            statuses = [500, 503]
            if {SCHEME: []} in operation.get("security", []):
                statuses += [401, 403, 429]
            if _has_input(operation):
                statuses.append(422)
            for status, response in problem_responses(*statuses).items():
                if str(status) == "503" and "503" in responses:
                    continue  # a route that documents its own 503 (readiness)
                responses[str(status)] = response
    return schema
