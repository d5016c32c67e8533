"""The web console, served by the API itself: one HTML page and its static scripts and styles (no build step).

The page is a client of the JSON API like any other, signed in with an API key, so it can show and do exactly what
the key's role allows. It sends a strict Content-Security-Policy: scripts, styles and requests only to this origin,
nothing inline, no framing. docs/console.md explains the design.
"""

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send

STATIC = Path(__file__).parent / "static"
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",  # revalidated on each load: a new release's scripts replace the old at once
}


class ConsoleFiles(StaticFiles):
    """The console's scripts and styles, with the console's security headers."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def with_headers(message):
            if message["type"] == "http.response.start":
                message["headers"] = [
                    *message["headers"],
                    *((k.lower().encode(), v.encode()) for k, v in HEADERS.items()),
                ]
            await send(message)

        await super().__call__(scope, receive, with_headers)


def install_console(app: FastAPI) -> None:
    app.mount("/console/static", ConsoleFiles(directory=STATIC), name="console-static")

    @app.get("/console", include_in_schema=False)
    def console() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html", headers=HEADERS)
