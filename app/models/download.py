"""Checkpoint downloads: strong ETag (the quoted sha256), If-None-Match (304), a single byte Range (206) with
If-Range, 416 for an unsatisfiable range, 410 once the version is purged. Multi-range requests get the whole
file (RFC 9110 lets a server ignore Range)."""

import asyncio
import contextlib
import re

from fastapi import Request, Response

from app.core.errors import Gone, RangeNotSatisfiable
from app.core.storage import BlobStore, RangeReader
from app.models.orm import ModelVersion

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def _etag_matches(header: str, etag: str) -> bool:
    if header.strip() == "*":
        return True
    return any(tag.strip().removeprefix("W/") == etag for tag in header.split(","))


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(start, end) inclusive for a single satisfiable range; None to send the whole file; raises
    RangeNotSatisfiable for a well-formed range outside the file."""
    if not header:
        return None
    match = _RANGE.match(header.strip().replace(" ", ""))
    if match is None:
        return None  # multiple ranges or another unit: ignored
    first, last = match.groups()
    if first == "" and last == "":
        return None
    if first == "":
        length = int(last)
        if length == 0 or size == 0:
            raise RangeNotSatisfiable("range is empty", headers={"Content-Range": f"bytes */{size}"})
        return max(0, size - length), size - 1
    start = int(first)
    end = size - 1 if last == "" else min(int(last), size - 1)
    if last != "" and int(last) < start:
        return None  # syntactically invalid: ignored
    if start >= size:
        raise RangeNotSatisfiable(
            f"range starts at {start} but the checkpoint has {size} bytes",
            headers={"Content-Range": f"bytes */{size}"},
        )
    return start, end


DOWNLOAD_CHUNK = 8 * 1024 * 1024  # bytes read and sent per step of a download
FIRST_CHUNK = 1024 * 1024  # the first step is small, so that sending starts before 8 MiB are read


class BlobRangeResponse(Response):
    """Sends the bytes of an open blob range (app.core.storage.RangeReader): a 1 MiB first step, then 8 MiB
    steps. The next step is read in a worker thread while the current one is being sent, so a checkpoint streams
    at about the speed of the slower of the two sides (the disk or the object store, and the client) instead of
    both their times added together. From the folder store the reads are preads with sequential read-ahead; from
    an object store they are the body of one ranged GET, proxied: the object store is never exposed to clients."""

    def __init__(self, reader: RangeReader, length: int, *, status_code: int, headers: dict[str, str]) -> None:
        super().__init__(status_code=status_code, headers=headers, media_type="application/octet-stream")
        self.reader, self.length = reader, length

    async def __call__(self, scope, receive, send) -> None:
        try:
            await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
            if scope.get("method") == "HEAD":
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                return
            await self._send_body(send)
        finally:
            await asyncio.get_running_loop().run_in_executor(None, self.reader.close)

    async def _send_body(self, send) -> None:
        loop = asyncio.get_running_loop()
        remaining = self.length
        reading = loop.run_in_executor(None, self.reader.read, min(FIRST_CHUNK, remaining)) if remaining else None
        try:
            while remaining > 0:
                chunk = await reading
                reading = None
                if not chunk:
                    break
                remaining -= len(chunk)
                if remaining > 0:
                    reading = loop.run_in_executor(None, self.reader.read, min(DOWNLOAD_CHUNK, remaining))
                await send({"type": "http.response.body", "body": chunk, "more_body": remaining > 0})
            if remaining > 0 or self.length == 0:
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            if reading is not None:  # the client went away mid-send: let the read finish before the close
                with contextlib.suppress(BaseException):
                    await asyncio.shield(reading)


def checkpoint_response(request: Request, *, version: ModelVersion, store: BlobStore) -> Response:
    gone = Gone(
        f"version {version.version} of model {version.model_id} was purged: it still carried the influence of "
        "rows deleted since; download the latest version",
        purged_at=version.purged_at,
    )
    if version.state == "purged":
        raise gone
    etag = f'"{version.checkpoint_sha256}"'
    size = version.checkpoint_size
    headers = {
        "ETag": etag,
        "Accept-Ranges": "bytes",
        "Cache-Control": "private, no-cache",
        "Content-Disposition": f'attachment; filename="{version.model_id}-v{version.version}.safetensors"',
    }
    if_none_match = request.headers.get("if-none-match")
    if if_none_match and _etag_matches(if_none_match, etag):
        return Response(status_code=304, headers=headers)
    if_range = request.headers.get("if-range")
    byte_range = None
    if if_range is None or if_range.strip() == etag:
        byte_range = parse_range(request.headers.get("range"), size)
    start, end = byte_range if byte_range else (0, size - 1)
    try:
        reader = store.open_range(version.checkpoint_sha256, start, end)
    except FileNotFoundError:
        raise gone from None  # purged between the database read and the open
    length = end - start + 1 if size else 0
    headers["Content-Length"] = str(length)
    status = 200
    if byte_range:
        status = 206
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    return BlobRangeResponse(reader, length, status_code=status, headers=headers)
