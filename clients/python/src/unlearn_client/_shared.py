"""What the sync and the async client share: headers, the retry policy, and the checked download file."""

from __future__ import annotations

import hashlib
import os
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from unlearn_client.calls import Call
from unlearn_client.errors import ChecksumError, ClientError

DEFAULT_URL = "http://localhost:8000"
DEFAULT_TIMEOUT_S = 60.0  # per HTTP request
CHUNK_BYTES = 1024 * 1024  # download read size
RETRY_STATUSES = {429, 502, 503, 504}  # answered with a wait, for calls that are safe to repeat
REFUSED_STATUSES = {429, 503}  # the service did nothing: even a call that is not repeatable may be sent again
MAX_TRIES = 4
MAX_RETRY_WAIT_S = 10.0  # cap on a server's Retry-After
TERMINAL = {"succeeded", "failed"}  # deletion states that do not change any more
USER_AGENT = f"unlearn-client/0.1 httpx/{httpx.__version__}"


def headers(api_key: str | None) -> dict[str, str]:
    out = {"Accept": "application/json, application/problem+json", "User-Agent": USER_AGENT}
    if api_key:
        out["Authorization"] = f"Bearer {api_key}"
    return out


def request_kwargs(call: Call, stack: ExitStack) -> dict[str, Any]:
    """httpx arguments for one attempt (upload files are opened again each time, on `stack`)."""
    kwargs: dict[str, Any] = {"params": call.params or None, "headers": call.headers or None}
    if call.json is not None:
        kwargs["json"] = call.json
    if call.data is not None:
        kwargs["data"] = call.data
    if call.files:
        kwargs["files"] = {
            name: (path.name, stack.enter_context(open(path, "rb")), "application/octet-stream")
            for name, path in call.files
        }
    return kwargs


def retry_on_error(call: Call, exc: httpx.TransportError, attempt: int) -> bool:
    """A connection never made can always be tried again; a lost answer only for a repeatable call."""
    if attempt >= MAX_TRIES:
        return False
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
        return True
    return call.repeatable and isinstance(exc, httpx.ReadError | httpx.RemoteProtocolError | httpx.ReadTimeout)


def retry_on_status(call: Call, response: httpx.Response, attempt: int) -> bool:
    if attempt >= MAX_TRIES:
        return False
    statuses = RETRY_STATUSES if call.repeatable else REFUSED_STATUSES
    return response.status_code in statuses


def retry_wait(response: httpx.Response | None, attempt: int) -> float:
    """The server's Retry-After (capped), else a growing pause."""
    try:
        wait = float(response.headers.get("Retry-After", "")) if response is not None else 0.5 * attempt
    except ValueError:
        wait = 0.5 * attempt
    return min(max(wait, 0.0), MAX_RETRY_WAIT_S)


def transport_error(call: Call, base_url: str, exc: httpx.TransportError) -> ClientError:
    title = "service unreachable" if isinstance(exc, httpx.ConnectError) else "request failed"
    detail = f"{call.method} {base_url}{call.path}: {type(exc).__name__} {exc}".rstrip()
    return ClientError(0, title, detail)


def body(response: httpx.Response) -> Any:
    return None if response.status_code == 204 or not response.content else response.json()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def etag_sha256(value: str | None) -> str | None:
    if not value:
        return None
    return value.removeprefix("W/").strip('"').lower() or None


@dataclass(frozen=True)
class Download:
    path: Path
    sha256: str
    size: int  # bytes
    transferred: bool = True  # False when the file on disk was already this checkpoint (304)


class CheckedFile:
    """The destination of a download: bytes go to `<dest>.part`, hashed as they come; `finish` renames it into
    place only when the sha256 equals the announced one (and the expected one); anything else leaves no file."""

    def __init__(self, dest: Path, expected_sha256: str | None) -> None:
        self.dest = dest
        self.partial = dest.with_name(dest.name + ".part")
        self.expected = expected_sha256.lower() if expected_sha256 else None
        self.existing = file_sha256(dest) if dest.is_file() else None
        self.digest = hashlib.sha256()
        self.size = 0
        self._out: Any = None

    def if_none_match(self) -> dict[str, str]:
        return {"If-None-Match": f'"{self.existing}"'} if self.existing else {}

    def unchanged(self) -> Download:
        """The service answered 304: the file on disk is the checkpoint."""
        assert self.existing is not None
        if self.expected is not None and self.expected != self.existing:
            raise ChecksumError(0, "checksum mismatch", f"{self.dest} has sha256 {self.existing}, not {self.expected}")
        return Download(path=self.dest, sha256=self.existing, size=self.dest.stat().st_size, transferred=False)

    def write(self, chunk: bytes) -> None:
        if self._out is None:
            self._out = open(self.partial, "wb")
        self.digest.update(chunk)
        self.size += len(chunk)
        self._out.write(chunk)

    def discard(self) -> None:
        if self._out is not None:
            self._out.close()
        self.partial.unlink(missing_ok=True)

    def finish(self, announced: str | None) -> Download:
        if self._out is None:
            self._out = open(self.partial, "wb")
        self._out.flush()
        os.fsync(self._out.fileno())
        self._out.close()
        actual = self.digest.hexdigest()
        for label, wanted in (("ETag", announced), ("expected", self.expected)):
            if wanted is not None and wanted.lower() != actual:
                self.partial.unlink(missing_ok=True)
                detail = f"checkpoint sha256 {actual} differs from the {label} sha256 {wanted}; file discarded"
                raise ChecksumError(0, "checksum mismatch", detail)
        if announced is None and self.expected is None:
            self.partial.unlink(missing_ok=True)
            raise ChecksumError(0, "checksum unknown", "the service announced no sha256 for this checkpoint")
        os.replace(self.partial, self.dest)
        return Download(path=self.dest, sha256=actual, size=self.size)


def ids_text(ids_path: str | os.PathLike[str] | None, ids: Any) -> str | None:
    if ids_path is not None and ids is not None:
        raise ValueError("give ids_path or ids, not both")
    if ids_path is not None:
        return Path(ids_path).read_text(encoding="utf-8")
    if ids is not None:
        return "\n".join(ids) + "\n"
    return None
