"""Blob store on an S3-compatible object store (AWS S3, MinIO, SeaweedFS, Ceph RGW, ...) through boto3.

Objects are named PREFIX/ab/abcdef... (the sha256 of the bytes, as in the folder store). The S3 operations used
are those of the Amazon S3 API reference: PutObject and the multipart upload (CreateMultipartUpload, UploadPart,
CompleteMultipartUpload, AbortMultipartUpload, ListMultipartUploads), HeadObject, GetObject with a `Range` header
(RFC 9110 section 14.2), DeleteObject and HeadBucket. An object becomes visible whole when its PutObject or its
CompleteMultipartUpload returns, never in part, so a blob is written as a file in the local scratch folder (hashed
on the way, which names it) and then uploaded; files larger than one part go up in parts, several at once.

Workers read blobs as local files (safetensors reads a file or bytes): `local_path` downloads a blob once into the
scratch cache, checks that its bytes hash to its name, and keeps the newest copies up to a byte budget. A copy of
a blob that nothing names any more (a purged version, a compacted data set) is removed by the process that
deletes the object and, on every other host, by that host's reconciler (workers.reconciler.prune_scratch).

Credentials come from boto3's usual chain (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, a credentials file, an
instance role), never from UNLEARN_STORAGE_URL, which is logged and shown in settings.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from app.core.storage import CHUNK, BlobStore, CorruptBlob, RangeReader, check_name

PART_BYTES = 16 * 1024 * 1024  # multipart part size; a blob larger than this is uploaded in parts
UPLOAD_THREADS = 4  # parts of one blob uploaded at once
IN_USE_S = 120.0  # a cached copy read within this many seconds is never evicted (a reader may still open it)
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")  # S3 bucket naming rules (general purpose buckets)
_QUERY = {"endpoint", "region", "addressing"}
_MISSING = {"404", "NoSuchKey", "NotFound"}


@dataclass(frozen=True)
class S3Location:
    """Where blobs go: s3://BUCKET[/PREFIX][?endpoint=URL&region=NAME&addressing=path|virtual]."""

    bucket: str
    prefix: str  # "" or ending in "/"
    endpoint: str | None  # None: AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL, else AWS S3 itself
    region: str | None  # None: AWS_REGION / AWS_DEFAULT_REGION, else us-east-1
    addressing: str  # "path" (the default with an endpoint), "virtual" or "auto"

    @classmethod
    def parse(cls, url: str) -> S3Location:
        parts = urlsplit(url.strip())
        if parts.scheme != "s3":
            raise ValueError("an object store URL starts with s3://")
        if "@" in parts.netloc:
            raise ValueError(
                "UNLEARN_STORAGE_URL must not carry credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
            )
        bucket = parts.netloc
        if not _BUCKET.match(bucket):
            raise ValueError(f"{bucket!r} is not an S3 bucket name (3 to 63 of a-z, 0-9, '.', '-')")
        query = parse_qs(parts.query, keep_blank_values=True)
        unknown = set(query) - _QUERY
        if unknown:
            raise ValueError(f"unknown UNLEARN_STORAGE_URL parameters {sorted(unknown)}; known: {sorted(_QUERY)}")
        if any(len(v) > 1 for v in query.values()):
            raise ValueError("each UNLEARN_STORAGE_URL parameter may be given once")
        endpoint = query.get("endpoint", [None])[0] or None
        if endpoint is not None and not endpoint.startswith(("http://", "https://")):
            raise ValueError("the endpoint of UNLEARN_STORAGE_URL must be an http:// or https:// URL")
        addressing = query.get("addressing", [None])[0] or ("path" if endpoint else "auto")
        if addressing not in ("path", "virtual", "auto"):
            raise ValueError("addressing must be path, virtual or auto")
        prefix = parts.path.strip("/")
        return cls(
            bucket=bucket,
            prefix=f"{prefix}/" if prefix else "",
            endpoint=endpoint,
            region=query.get("region", [None])[0] or None,
            addressing=addressing,
        )


def _missing(exc: Exception) -> bool:
    from botocore.exceptions import ClientError

    return isinstance(exc, ClientError) and str(exc.response.get("Error", {}).get("Code")) in _MISSING


class _ObjectRange:
    """The body of a ranged GetObject, read in steps (urllib3 under botocore; its length is checked at the end)."""

    def __init__(self, body) -> None:
        self.body = body

    def read(self, n: int) -> bytes:
        return self.body.read(n)

    def close(self) -> None:
        self.body.close()


class S3BlobStore(BlobStore):
    def __init__(self, location: S3Location, *, scratch: Path, cache_bytes: int) -> None:
        import boto3
        from boto3.s3.transfer import TransferConfig
        from botocore.config import Config

        self.location = location
        self.bucket, self.prefix = location.bucket, location.prefix
        self.scratch = Path(scratch)
        self.tmp = self.scratch / "tmp"
        self.cache = self.scratch / "cache"
        self.tmp.mkdir(parents=True, exist_ok=True)
        self.cache.mkdir(parents=True, exist_ok=True)
        self.cache_bytes = cache_bytes
        region = location.region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
        config = Config(
            s3={"addressing_style": location.addressing},
            retries={"max_attempts": 5, "mode": "standard"},
            # Checksums only where the API requires them: several S3-compatible stores reject the newer default
            # trailers; every blob read into the cache is checked against its sha256 name instead.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            max_pool_connections=2 * UPLOAD_THREADS + 8,
            connect_timeout=10,
            read_timeout=120,
        )
        self.client = boto3.session.Session().client(
            "s3", endpoint_url=location.endpoint, region_name=region, config=config
        )
        self.transfer = TransferConfig(
            multipart_threshold=PART_BYTES, multipart_chunksize=PART_BYTES, max_concurrency=UPLOAD_THREADS
        )

    def key(self, sha256: str) -> str:
        check_name(sha256)
        return f"{self.prefix}{sha256[:2]}/{sha256}"

    def _cached_path(self, sha256: str) -> Path:
        check_name(sha256)
        return self.cache / sha256[:2] / sha256

    def exists(self, sha256: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=self.key(sha256))
        except Exception as exc:
            if _missing(exc):
                return False
            raise
        return True

    def commit_temp(self, tmp: Path, sha256: str) -> str:
        """Upload the file as the object (in parts past PART_BYTES), unless it is there already; `tmp` goes."""
        try:
            if not self.exists(sha256):
                self.client.upload_file(
                    str(tmp),
                    self.bucket,
                    self.key(sha256),
                    ExtraArgs={"ContentType": "application/octet-stream"},
                    Config=self.transfer,
                )
        finally:
            tmp.unlink(missing_ok=True)
        return sha256

    def _get(self, sha256: str, **kwargs):
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self.key(sha256), **kwargs)
        except Exception as exc:
            if _missing(exc):
                raise FileNotFoundError(f"blob {sha256} does not exist") from None
            raise

    def local_path(self, sha256: str) -> Path:
        """The cached copy, downloaded (and checked against its name) on first use; FileNotFoundError when the
        object does not exist."""
        path = self._cached_path(sha256)
        try:
            os.utime(path)  # newest in the cache again
            return path
        except FileNotFoundError:
            pass
        fd, name = tempfile.mkstemp(dir=self.tmp, prefix="download-")
        tmp = Path(name)
        try:
            digest = hashlib.sha256()
            with os.fdopen(fd, "wb") as fh:
                body = self._get(sha256)["Body"]
                try:
                    while chunk := body.read(CHUNK):
                        digest.update(chunk)
                        fh.write(chunk)
                finally:
                    body.close()
            if digest.hexdigest() != sha256:
                raise CorruptBlob(f"object {self.key(sha256)} does not hash to its name")
            path.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        self._trim(keep=path)
        return path

    def open_range(self, sha256: str, start: int, end: int) -> RangeReader:
        if end >= 0:
            response = self._get(sha256, Range=f"bytes={start}-{end}")
        elif start > 0:
            response = self._get(sha256, Range=f"bytes={start}-")
        else:
            response = self._get(sha256)
        return _ObjectRange(response["Body"])

    def delete(self, sha256: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self.key(sha256))  # S3 answers 204 for a missing key
        self.drop_cached(sha256)

    def cached(self) -> list[str]:
        return [p.name for p in self.cache.glob("??/*") if len(p.name) == 64]

    def drop_cached(self, sha256: str) -> None:
        self._cached_path(sha256).unlink(missing_ok=True)

    def _trim(self, *, keep: Path) -> None:
        """Evict the least recently used copies until the cache holds at most `cache_bytes` (copies read within
        IN_USE_S seconds stay: a reader may be about to open one)."""
        files, total = [], 0
        for path in self.cache.glob("??/*"):
            with contextlib.suppress(FileNotFoundError):
                st = path.stat()
                files.append((st.st_mtime, st.st_size, path))
                total += st.st_size
        if total <= self.cache_bytes:
            return
        now = time.time()
        for mtime, size, path in sorted(files):
            if total <= self.cache_bytes:
                break
            if path == keep or now - mtime < IN_USE_S:
                continue
            path.unlink(missing_ok=True)
            total -= size

    def check(self) -> None:
        super().check()
        self.client.head_bucket(Bucket=self.bucket)

    def sweep(self, *, max_age_s: float) -> int:
        """Stale local temporary files, and multipart uploads under the prefix started more than `max_age_s`
        seconds ago and never completed (a writer that crashed mid-upload): their parts are dropped."""
        removed = self.sweep_tmp(max_age_s=max_age_s)
        cutoff = time.time() - max_age_s
        paginator = self.client.get_paginator("list_multipart_uploads")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix):
            for upload in page.get("Uploads", []) or []:
                if upload["Initiated"].timestamp() >= cutoff:
                    continue
                try:
                    self.client.abort_multipart_upload(
                        Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                    )
                    removed += 1
                except Exception as exc:  # another host aborted it first
                    if not _missing(exc) and "NoSuchUpload" not in str(exc):
                        raise
        return removed
