"""The load generator (a minimal asyncio HTTP/1.1 client: pre-built POSTs on keep-alive connections) and the
download timers (HTTP with a minimal client and with httpx, disk reads, sendfile over loopback)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np


class RawConnection:
    """One keep-alive HTTP/1.1 connection: send a pre-built request, read status and body (Content-Length or
    chunked). Enough for this service's answers; not a general client."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        sock = self.writer.get_extra_info("socket")
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    async def request(self, raw: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            await self.open()
        assert self.reader is not None and self.writer is not None
        self.writer.write(raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length, chunked, close = None, False, False
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
            elif name == b"connection" and b"close" in value.lower():
                close = True
        if chunked:
            body = bytearray()
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                body += await self.reader.readexactly(size + 2)
                if size == 0:
                    break
                del body[-2:]
        else:
            body = await self.reader.readexactly(length or 0)
        if close:
            await self.close()
        return status, bytes(body)

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(Exception):
                await self.writer.wait_closed()
        self.reader = self.writer = None


def post_request(host: str, port: int, path: str, key: str, body: dict) -> bytes:
    payload = json.dumps(body).encode()
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
    )
    return head.encode() + payload


@dataclass
class LoadResult:
    sent_at: float  # time.time() when the first request was written
    wall_s: float  # first request sent to last answer received
    latencies_s: list[float] = field(default_factory=list)  # of the 202 answers
    statuses: dict[int, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    location: list[str] = field(default_factory=list)  # deletion ids (when asked to keep them)

    def summary(self) -> dict[str, Any]:
        lat = np.array(self.latencies_s) * 1000.0
        ok = len(self.latencies_s)
        return {
            "accepted": ok,
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "errors": self.errors[:5],
            "wall_s": round(self.wall_s, 3),
            "accepted_per_s": round(ok / self.wall_s, 1) if self.wall_s > 0 else None,
            "latency_ms": {
                "p50": round(float(np.percentile(lat, 50)), 2) if ok else None,
                "p90": round(float(np.percentile(lat, 90)), 2) if ok else None,
                "p99": round(float(np.percentile(lat, 99)), 2) if ok else None,
                "max": round(float(lat.max()), 2) if ok else None,
                "mean": round(float(lat.mean()), 2) if ok else None,
            },
        }


async def _post_load(
    host: str, port: int, key: str, model_id: str, ids: list[str], concurrency: int, max_s: float, keep_ids: bool
) -> LoadResult:
    path = f"/v1/models/{model_id}/deletions"
    requests = [post_request(host, port, path, key, {"sample_ids": [sid], "reason": "bench"}) for sid in ids]
    conns = [RawConnection(host, port) for _ in range(concurrency)]
    await asyncio.gather(*(c.open() for c in conns))
    it = iter(requests)
    result = LoadResult(sent_at=time.time(), wall_s=0.0)
    start = time.perf_counter()
    deadline = start + max_s
    last_end = start

    async def client(conn: RawConnection) -> None:
        nonlocal last_end
        for raw in it:
            if time.perf_counter() > deadline:
                return
            t0 = time.perf_counter()
            try:
                status, body = await conn.request(raw)
            except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                result.errors.append(f"{type(exc).__name__}: {exc}")
                result.statuses[0] = result.statuses.get(0, 0) + 1
                await conn.close()
                continue
            t1 = time.perf_counter()
            last_end = max(last_end, t1)
            result.statuses[status] = result.statuses.get(status, 0) + 1
            if status == 202:
                result.latencies_s.append(t1 - t0)
                if keep_ids:
                    result.location.append(json.loads(body)["id"])
            elif len(result.errors) < 20:
                result.errors.append(f"{status}: {body[:200].decode('utf-8', 'replace')}")

    result.sent_at = time.time()
    start = time.perf_counter()
    await asyncio.gather(*(client(c) for c in conns))
    result.wall_s = last_end - start
    await asyncio.gather(*(c.close() for c in conns))
    return result


def post_load(url: str, key: str, model_id: str, ids: list[str], concurrency: int, max_s: float, keep_ids=False):
    parsed = httpx.URL(url)
    return asyncio.run(_post_load(parsed.host, parsed.port, key, model_id, ids, concurrency, max_s, keep_ids))


def raw_download(url: str, key: str, path: str, buf: bytearray) -> tuple[int, float]:
    """GET `path` on a fresh blocking socket, receiving into `buf` (bytes discarded). (bytes, seconds)."""
    parsed = httpx.URL(url)
    t0 = time.perf_counter()
    with socket.create_connection((parsed.host, parsed.port)) as sock:
        req = f"GET {path} HTTP/1.1\r\nHost: {parsed.host}\r\nAuthorization: Bearer {key}\r\nConnection: close\r\n\r\n"
        sock.sendall(req.encode())
        view = memoryview(buf)
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed before the headers")
            head += chunk
        head, _, rest = head.partition(b"\r\n\r\n")
        if int(head[9:12]) != 200:
            raise RuntimeError(f"download answered {head[:200]!r}")
        length = next(
            int(line.split(b":", 1)[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")
        )
        got = len(rest)
        while got < length:
            n = sock.recv_into(view)
            if n == 0:
                break
            got += n
    return got, time.perf_counter() - t0


def httpx_download(client: httpx.Client, path: str) -> tuple[int, float]:
    t0 = time.perf_counter()
    got = 0
    with client.stream("GET", path) as resp:
        resp.raise_for_status()
        for chunk in resp.iter_raw(1024 * 1024):
            got += len(chunk)
    return got, time.perf_counter() - t0


def drop_cached(path: Path) -> None:
    """Evict the file's pages from the page cache (POSIX_FADV_DONTNEED; the blob is written and fsynced, so its
    pages are clean and are dropped), so that the next read of it comes from the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def loopback_sendfile(path: Path, buf: bytearray) -> tuple[int, float]:
    """The ceiling of any HTTP server here: the file sent with sendfile(2) over a loopback TCP connection (no
    HTTP, no Python between the page cache and the socket), received into `buf`. (bytes, seconds)."""
    size = path.stat().st_size
    with socket.create_server(("127.0.0.1", 0)) as server:

        def serve() -> None:
            conn, _ = server.accept()
            with conn, open(path, "rb") as fh:
                offset = 0
                while offset < size:
                    offset += os.sendfile(conn.fileno(), fh.fileno(), offset, size - offset)

        thread = threading.Thread(target=serve)
        thread.start()
        view, got = memoryview(buf), 0
        t0 = time.perf_counter()
        with socket.create_connection(server.getsockname()) as sock:
            while n := sock.recv_into(view):
                got += n
        elapsed = time.perf_counter() - t0
        thread.join()
    return got, elapsed


def disk_read(path: Path, buf: bytearray) -> tuple[int, float]:
    t0 = time.perf_counter()
    got = 0
    with open(path, "rb", buffering=0) as fh:
        while n := fh.readinto(buf):
            got += n
    return got, time.perf_counter() - t0
