"""Content-addressed blob stores: a folder (local disk or a shared volume) or an S3-compatible object store.

A blob's name is the sha256 of its bytes, so a blob never changes once written and a reader never needs to
ask whether its copy is current. Every write goes through a temporary file in a local folder (`tmp`), hashed on
the way, then becomes the blob in one atomic step: a rename within the folder store, a single PUT or a completed
multipart upload in an object store (app.core.s3store). A reader never sees a partial blob, and a crash leaves at
most a stray temporary file (and, in an object store, an incomplete multipart upload), which `sweep` removes.

`UNLEARN_STORAGE_URL` picks the store (`open_store`): unset or `file://PATH` is the folder store,
`s3://BUCKET/PREFIX` the object store. Readers that need a local file (safetensors reads files or bytes) call
`local_path`; the folder store hands out the blob itself, the object store a verified copy in its scratch cache.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Protocol

if TYPE_CHECKING:
    from app.core.config import Settings

CHUNK = 1024 * 1024  # bytes read or written at a time


class BlobTooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"upload exceeds the limit of {limit} bytes")
        self.limit = limit


class CorruptBlob(Exception):
    """A stored blob whose bytes do not hash to its name."""


def check_name(sha256: str) -> str:
    if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
        raise ValueError("not a sha256 hex digest")
    return sha256


class RangeReader(Protocol):
    """Bytes start..end of a blob, read in steps: `read(n)` returns at most n bytes, b"" at the end."""

    def read(self, n: int) -> bytes: ...

    def close(self) -> None: ...


class BlobStore(ABC):
    """What the API and the workers need of a blob store. `tmp` is a local folder for files being written."""

    tmp: Path

    def temp_file(self) -> tuple[BinaryIO, Path]:
        """An open temporary file in the local `tmp` folder (the folder store's own filesystem)."""
        fd, name = tempfile.mkstemp(dir=self.tmp, prefix="upload-")
        return os.fdopen(fd, "w+b"), Path(name)

    def put_stream(self, chunks: Iterable[bytes], *, limit: int | None = None) -> tuple[str, int]:
        """Write chunks to a new blob; returns (sha256, size). Raises BlobTooLarge past `limit` bytes."""
        fh, tmp = self.temp_file()
        try:
            digest = hashlib.sha256()
            size = 0
            with fh:
                for chunk in chunks:
                    size += len(chunk)
                    if limit is not None and size > limit:
                        raise BlobTooLarge(limit)
                    digest.update(chunk)
                    fh.write(chunk)
                fh.flush()
                os.fsync(fh.fileno())
            return self.commit_temp(tmp, digest.hexdigest()), size
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def put_bytes(self, data: bytes) -> tuple[str, int]:
        return self.put_stream([data])

    def put_file(self, src: Path) -> tuple[str, int]:
        """Store a fully written, fsynced file of this store's `tmp` folder (it is moved, not copied)."""
        digest = hashlib.sha256()
        size = 0
        with open(src, "rb") as fh:
            while chunk := fh.read(CHUNK):
                digest.update(chunk)
                size += len(chunk)
        return self.commit_temp(src, digest.hexdigest()), size

    @abstractmethod
    def commit_temp(self, tmp: Path, sha256: str) -> str:
        """Make the temporary file `tmp` (whose bytes hash to `sha256`) the blob `sha256`; `tmp` is gone after."""

    @abstractmethod
    def exists(self, sha256: str) -> bool: ...

    @abstractmethod
    def local_path(self, sha256: str) -> Path:
        """A local file holding the blob's bytes, to read (never to write); FileNotFoundError when there is none."""

    def read_bytes(self, sha256: str) -> bytes:
        return self.local_path(sha256).read_bytes()

    @abstractmethod
    def open_range(self, sha256: str, start: int, end: int) -> RangeReader:
        """Bytes [start, end] inclusive of the blob (FileNotFoundError when there is none), for a download."""

    def iter_range(self, sha256: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """Yield bytes [start, end] inclusive (end None = to the end of the blob)."""
        reader = self.open_range(sha256, start, end if end is not None else -1)
        try:
            while chunk := reader.read(CHUNK):
                yield chunk
        finally:
            reader.close()

    @abstractmethod
    def delete(self, sha256: str) -> None:
        """Delete the blob (and any local copy of it); a blob that does not exist is not an error."""

    def cached(self) -> list[str]:
        """Blobs this process keeps local copies of, beside the store itself (none for the folder store)."""
        return []

    def drop_cached(self, sha256: str) -> None:
        """Forget the local copy of a blob, leaving the stored blob alone."""
        return None  # the folder store keeps no copies

    def check(self) -> None:
        """Raise when the store cannot be written (readiness)."""
        fd, name = tempfile.mkstemp(dir=self.tmp, prefix="readyz-")
        try:
            os.write(fd, b"ok")
        finally:
            os.close(fd)
            os.unlink(name)

    def sweep(self, *, max_age_s: float) -> int:
        """Delete what crashed writers left behind, untouched for `max_age_s` seconds; returns how many."""
        return self.sweep_tmp(max_age_s=max_age_s)

    def sweep_tmp(self, *, max_age_s: float) -> int:
        """Delete the local temporary files untouched for `max_age_s` seconds; returns how many."""
        cutoff = time.time() - max_age_s
        removed = 0
        for path in self.tmp.iterdir():
            try:
                if path.is_file() and path.stat().st_mtime < cutoff:
                    path.unlink()
                    removed += 1
            except FileNotFoundError:  # another process removed it first
                continue
        return removed


class _FileRange:
    """Bytes start..end of an open file, read with pread (no shared file position), sequential read-ahead advised."""

    def __init__(self, fh: BinaryIO, start: int, end: int) -> None:
        self.fh, self.offset, self.remaining = fh, start, max(0, end - start + 1)
        with contextlib.suppress(OSError, AttributeError):  # advice only; not on every platform
            os.posix_fadvise(fh.fileno(), start, self.remaining, os.POSIX_FADV_SEQUENTIAL)

    def read(self, n: int) -> bytes:
        if self.remaining <= 0:
            return b""
        chunk = os.pread(self.fh.fileno(), min(n, self.remaining), self.offset)
        self.offset += len(chunk)
        self.remaining = self.remaining - len(chunk) if chunk else 0
        return chunk

    def close(self) -> None:
        self.fh.close()


class FileBlobStore(BlobStore):
    """Blobs in a folder: ROOT/ab/abcdef... (the first two hex digits name a subfolder), temporary files in
    ROOT/tmp, so the final rename is atomic and fsynced with its folder."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.tmp = self.root / "tmp"
        self.root.mkdir(parents=True, exist_ok=True)
        self.tmp.mkdir(parents=True, exist_ok=True)

    def path(self, sha256: str) -> Path:
        check_name(sha256)
        return self.root / sha256[:2] / sha256

    def exists(self, sha256: str) -> bool:
        return self.path(sha256).exists()

    def local_path(self, sha256: str) -> Path:
        path = self.path(sha256)
        if not path.is_file():
            raise FileNotFoundError(f"blob {sha256} does not exist")
        return path

    def commit_temp(self, tmp: Path, sha256: str) -> str:
        dest = self.path(sha256)
        dest.parent.mkdir(parents=True, exist_ok=True)
        if dest.exists():
            tmp.unlink(missing_ok=True)
        else:
            os.replace(tmp, dest)
            dir_fd = os.open(dest.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        return sha256

    def open_range(self, sha256: str, start: int, end: int) -> RangeReader:
        fh = open(self.path(sha256), "rb")  # noqa: SIM115 - closed by the reader
        if end < 0:
            end = os.fstat(fh.fileno()).st_size - 1
        return _FileRange(fh, start, end)

    def delete(self, sha256: str) -> None:
        self.path(sha256).unlink(missing_ok=True)


def parse_storage_url(url: str) -> tuple[str, str]:
    """("file", PATH) or ("s3", URL) for a UNLEARN_STORAGE_URL; ValueError saying what is wrong otherwise."""
    url = url.strip()
    if url.startswith("file://"):
        path = url.removeprefix("file://")
        if not path:
            raise ValueError("UNLEARN_STORAGE_URL file:// needs a folder, e.g. file:///var/lib/unlearn/blobs")
        return "file", path
    if url.startswith("s3://"):
        from app.core.s3store import S3Location

        S3Location.parse(url)  # raises on a malformed URL
        return "s3", url
    raise ValueError("UNLEARN_STORAGE_URL must start with file:// (a folder) or s3:// (an S3-compatible bucket)")


def open_store(settings: Settings) -> BlobStore:
    """The blob store the settings name: UNLEARN_STORAGE_URL, else the folder UNLEARN_STORAGE_DIR."""
    if not settings.storage_url:
        return FileBlobStore(settings.storage_dir)
    kind, where = parse_storage_url(settings.storage_url)
    if kind == "file":
        return FileBlobStore(Path(where))
    from app.core.s3store import S3BlobStore, S3Location

    return S3BlobStore(S3Location.parse(where), scratch=settings.scratch_dir, cache_bytes=settings.scratch_cache_bytes)
