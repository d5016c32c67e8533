"""Multipart uploads: form parsing with explicit limits, and files copied in chunks into the blob store's
temporary folder (hashing on the way) so they can be validated before they become blobs."""

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from fastapi import Request
from starlette.datastructures import FormData, UploadFile

from app.core.errors import PayloadTooLarge, Unprocessable
from app.core.storage import CHUNK, BlobStore

MAX_FORM_FILES = 4  # file parts accepted in one upload form
MAX_FORM_FIELDS = 8  # text parts accepted in one upload form


@dataclass
class TempUpload:
    """An uploaded file written to the store's tmp folder, not yet a blob."""

    path: Path
    sha256: str
    size: int

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)


async def read_form(request: Request, *, max_part_size: int) -> FormData:
    content_type = request.headers.get("content-type", "")
    if not content_type.lower().startswith("multipart/form-data"):
        raise Unprocessable("expected a multipart/form-data body")
    return await request.form(max_files=MAX_FORM_FILES, max_fields=MAX_FORM_FIELDS, max_part_size=max_part_size)


def form_text(form: FormData, name: str, *, required: bool = True, limit: int = 1024 * 1024) -> str | None:
    """A form part as text, whether it was sent as a plain field or as a file part."""
    value = form.get(name)
    if value is None:
        if required:
            raise Unprocessable(f"missing form field '{name}'", field=name)
        return None
    if isinstance(value, UploadFile):
        value.file.seek(0)
        data = value.file.read(limit + 1)
        if len(data) > limit:
            raise PayloadTooLarge(f"form field '{name}' exceeds the limit of {limit} bytes", limit=limit)
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise Unprocessable(f"form field '{name}' is not valid UTF-8 text", field=name) from None
    return value


def form_file(form: FormData, name: str) -> UploadFile:
    value = form.get(name)
    if not isinstance(value, UploadFile):
        raise Unprocessable(f"missing file part '{name}' (send it as a file in the multipart form)", field=name)
    return value


def spool_upload(upload: UploadFile, *, store: BlobStore, limit: int) -> TempUpload:
    """Copy an uploaded file in chunks into the store's tmp folder; 413 past `limit` bytes."""
    fh, path = store.temp_file()
    digest = hashlib.sha256()
    size = 0
    try:
        with fh:
            upload.file.seek(0)
            while chunk := upload.file.read(CHUNK):
                size += len(chunk)
                if size > limit:
                    raise PayloadTooLarge(f"upload exceeds the limit of {limit} bytes", limit=limit)
                digest.update(chunk)
                fh.write(chunk)
            fh.flush()
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return TempUpload(path=path, sha256=digest.hexdigest(), size=size)


def keep_upload(temp: TempUpload, *, store: BlobStore) -> str:
    """Move a validated upload into place as a content-addressed blob (fsynced); returns its sha256."""
    with open(temp.path, "rb+") as fh:
        os.fsync(fh.fileno())
    return store.commit_temp(temp.path, temp.sha256)
