"""Content-addressed blob store on a folder (local disk or a shared volume).

A blob's name is the sha256 of its bytes. Writes go to a temporary file in the same folder, are fsynced,
then renamed into place, so a reader never sees a partial blob and a crash leaves at most a stray temp file.
"""

import hashlib
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

CHUNK = 1024 * 1024  # bytes read or written at a time


class BlobTooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"upload exceeds the limit of {limit} bytes")
        self.limit = limit


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.tmp = self.root / "tmp"
        self.root.mkdir(parents=True, exist_ok=True)
        self.tmp.mkdir(parents=True, exist_ok=True)

    def path(self, sha256: str) -> Path:
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            raise ValueError("not a sha256 hex digest")
        return self.root / sha256[:2] / sha256

    def exists(self, sha256: str) -> bool:
        return self.path(sha256).exists()

    def temp_file(self) -> tuple[BinaryIO, Path]:
        """An open temporary file inside the store (same filesystem, so the final rename is atomic)."""
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
        """Move a fully written, fsynced file (inside this store's tmp folder) into place."""
        digest = hashlib.sha256()
        size = 0
        with open(src, "rb") as fh:
            while chunk := fh.read(CHUNK):
                digest.update(chunk)
                size += len(chunk)
        return self.commit_temp(src, digest.hexdigest()), size

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

    def read_bytes(self, sha256: str) -> bytes:
        return self.path(sha256).read_bytes()

    def iter_range(self, sha256: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """Yield bytes [start, end] inclusive (end None = to the end of the blob)."""
        with open(self.path(sha256), "rb") as fh:
            fh.seek(start)
            remaining = None if end is None else end - start + 1
            while remaining is None or remaining > 0:
                chunk = fh.read(CHUNK if remaining is None else min(CHUNK, remaining))
                if not chunk:
                    break
                if remaining is not None:
                    remaining -= len(chunk)
                yield chunk

    def delete(self, sha256: str) -> None:
        self.path(sha256).unlink(missing_ok=True)
