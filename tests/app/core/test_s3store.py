"""The object-store blob store (app.core.s3store) against a real S3-compatible server (SeaweedFS, tests/objectstore.py):
multipart uploads, ranged reads, the verified scratch cache, deletes, the sweep of abandoned uploads, and the
storage URL that selects it."""

import hashlib
import os
import secrets
import time

import pytest
from pydantic import ValidationError

from app.core import s3store
from app.core.config import Settings
from app.core.s3store import PART_BYTES, S3BlobStore, S3Location
from app.core.storage import CorruptBlob, FileBlobStore, open_store, parse_storage_url


@pytest.fixture
def prefix() -> str:
    return f"store-{secrets.token_hex(6)}"


@pytest.fixture
def store(object_store, prefix, tmp_path, monkeypatch) -> S3BlobStore:
    for name, value in object_store.env(prefix, tmp_path / "scratch").items():
        monkeypatch.setenv(name, value)
    return S3BlobStore(S3Location.parse(object_store.url(prefix)), scratch=tmp_path / "scratch", cache_bytes=1 << 30)


def test_storage_urls_select_the_store_and_bad_ones_are_refused(tmp_path, object_store, monkeypatch):
    assert parse_storage_url("file:///var/lib/blobs") == ("file", "/var/lib/blobs")
    assert parse_storage_url("file://./var/blobs") == ("file", "./var/blobs")
    location = S3Location.parse("s3://my-bucket/some/prefix/?endpoint=http://127.0.0.1:9000&region=eu-west-1")
    assert (location.bucket, location.prefix, location.endpoint, location.region, location.addressing) == (
        "my-bucket",
        "some/prefix/",
        "http://127.0.0.1:9000",
        "eu-west-1",
        "path",
    )
    assert S3Location.parse("s3://my-bucket").addressing == "auto" and S3Location.parse("s3://my-bucket").prefix == ""
    refused = {
        "s3://KEY:SECRET@my-bucket/p": "must not carry credentials",
        "s3://ab/p": "not an S3 bucket name",
        "s3://my-bucket/p?endpoint=ftp://x": "http:// or https://",
        "s3://my-bucket/p?colour=blue": "unknown UNLEARN_STORAGE_URL parameters",
        "gs://my-bucket": r"must start with file:// \(a folder\) or s3://",
        "file://": "needs a folder",
    }
    for url, message in refused.items():
        with pytest.raises(ValidationError, match=message):
            Settings(_env_file=None, UNLEARN_STORAGE_URL=url)
    secret_url = "s3://AKIDEXAMPLE:wJalrXUtnFEMIK7MDENG@my-bucket/p"
    with pytest.raises(ValidationError) as info:
        Settings(_env_file=None, UNLEARN_STORAGE_URL=secret_url)
    assert "wJalrXUtnFEMIK7MDENG" not in str(info.value), "a refused value (here a secret) is not repeated"

    folder = open_store(Settings(_env_file=None, UNLEARN_STORAGE_URL=f"file://{tmp_path / 'b'}"))
    assert isinstance(folder, FileBlobStore) and folder.root == tmp_path / "b"
    default = open_store(Settings(_env_file=None, UNLEARN_STORAGE_DIR=str(tmp_path / "dir")))
    assert isinstance(default, FileBlobStore) and default.root == tmp_path / "dir"
    for name, value in object_store.env("x", tmp_path / "scratch").items():
        monkeypatch.setenv(name, value)
    s3 = open_store(Settings(_env_file=None))
    assert isinstance(s3, S3BlobStore) and s3.prefix == "x/" and s3.tmp == tmp_path / "scratch" / "tmp"


def test_a_large_blob_goes_up_in_parts_and_reads_back_by_range(store, object_store, prefix):
    data = os.urandom(2 * PART_BYTES + 12345)
    sha, size = store.put_stream(data[i : i + 1000003] for i in range(0, len(data), 1000003))
    assert (sha, size) == (hashlib.sha256(data).hexdigest(), len(data))
    head = object_store.client().head_object(Bucket=object_store.bucket, Key=f"{prefix}/{sha[:2]}/{sha}")
    assert head["ContentLength"] == len(data)
    assert head["ETag"].strip('"').endswith("-3"), "uploaded as a three-part multipart upload"
    assert list(store.tmp.iterdir()) == [], "the local temporary file is gone"
    assert store.exists(sha) and not store.exists("0" * 64)

    for start, end in [(0, 0), (10, 99), (PART_BYTES - 5, PART_BYTES + 5), (len(data) - 7, len(data) - 1)]:
        reader = store.open_range(sha, start, end)
        got = b"".join(iter(lambda r=reader: r.read(4096), b""))
        reader.close()
        assert got == data[start : end + 1], (start, end)
    assert b"".join(store.iter_range(sha, len(data) - 3)) == data[-3:]

    path = store.local_path(sha)
    assert path.read_bytes() == data and path.parent.parent == store.cache
    assert store.cached() == [sha]
    assert store.read_bytes(sha) == data
    assert store.put_bytes(data) == (sha, len(data)), "an existing blob is not uploaded again"


def test_a_missing_blob_is_file_not_found_and_a_corrupt_one_is_refused(store, object_store, prefix):
    absent = hashlib.sha256(b"never stored").hexdigest()
    with pytest.raises(FileNotFoundError):
        store.local_path(absent)
    with pytest.raises(FileNotFoundError):
        store.open_range(absent, 0, 10)
    # An object whose bytes do not hash to its name (a corrupted or tampered store): never handed to a reader.
    object_store.client().put_object(Bucket=object_store.bucket, Key=f"{prefix}/{absent[:2]}/{absent}", Body=b"x")
    with pytest.raises(CorruptBlob):
        store.local_path(absent)
    assert store.cached() == [] and list(store.tmp.iterdir()) == []


def test_delete_removes_the_object_and_the_local_copy(store, object_store, prefix):
    sha, _ = store.put_bytes(b"checkpoint bytes")
    store.local_path(sha)
    assert object_store.shas(prefix) == {sha} and store.cached() == [sha]
    store.delete(sha)
    assert object_store.shas(prefix) == set() and store.cached() == [] and not store.exists(sha)
    store.delete(sha)  # deleting again is not an error
    with pytest.raises(FileNotFoundError):
        store.local_path(sha)


def test_the_cache_keeps_the_most_recently_used_copies_within_its_budget(store, monkeypatch):
    monkeypatch.setattr(s3store, "IN_USE_S", 0.0)
    blobs = [os.urandom(100_000) for _ in range(3)]
    shas = [store.put_bytes(b)[0] for b in blobs]
    store.cache_bytes = 250_000  # room for two
    store.local_path(shas[0])
    time.sleep(0.02)
    store.local_path(shas[1])
    time.sleep(0.02)
    store.local_path(shas[0])  # used again: now the newest
    time.sleep(0.02)
    store.local_path(shas[2])
    assert sorted(store.cached()) == sorted([shas[0], shas[2]])
    assert store.local_path(shas[1]).read_bytes() == blobs[1], "an evicted copy is downloaded again"


def test_sweep_aborts_abandoned_multipart_uploads_under_the_prefix_only(store, object_store, prefix):
    client = object_store.client()
    mine = client.create_multipart_upload(Bucket=object_store.bucket, Key=f"{prefix}/ab/abandoned")
    client.upload_part(
        Bucket=object_store.bucket, Key=f"{prefix}/ab/abandoned", UploadId=mine["UploadId"], PartNumber=1, Body=b"x"
    )
    other = client.create_multipart_upload(Bucket=object_store.bucket, Key=f"other-{prefix}/ab/not-mine")
    stale_tmp = store.tmp / "upload-stale"
    stale_tmp.write_bytes(b"left by a crash")

    def uploads():
        listed = client.list_multipart_uploads(Bucket=object_store.bucket).get("Uploads", []) or []
        return {u["UploadId"] for u in listed}

    assert store.sweep(max_age_s=3600) == 0, "a recent upload may still be running"
    assert {mine["UploadId"], other["UploadId"]} <= uploads() and stale_tmp.exists()
    time.sleep(2.5)  # the store reports whole seconds
    assert store.sweep(max_age_s=1.0) == 2  # the temporary file and the upload under the prefix
    assert mine["UploadId"] not in uploads() and other["UploadId"] in uploads()
    assert not stale_tmp.exists()
    client.abort_multipart_upload(
        Bucket=object_store.bucket, Key=f"other-{prefix}/ab/not-mine", UploadId=other["UploadId"]
    )


def test_check_fails_for_a_bucket_that_does_not_exist(store, object_store, tmp_path):
    store.check()
    missing = S3BlobStore(
        S3Location.parse(object_store.url("p").replace(object_store.bucket, "no-such-bucket")),
        scratch=tmp_path / "other",
        cache_bytes=0,
    )
    with pytest.raises(Exception, match="404|Not Found|NoSuchBucket"):
        missing.check()
