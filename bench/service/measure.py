"""The three measurements (POST throughput, checkpoint download, end-to-end deletions) and their verdicts."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Engine, text

from bench.service.common import log
from bench.service.fixtures import CLASSES, FEATURES, Api, mlp_checkpoint
from bench.service.loadgen import disk_read, drop_cached, httpx_download, loopback_sendfile, post_load, raw_download
from bench.service.machine import CpuMeter
from bench.service.stack import Stack

TARGETS = {"post_per_s": 300.0, "post_p99_ms": 100.0, "coalesce_speedup": 10.0, "download_vs_disk": 0.5}


def measure_posts(stack: Stack, url: str, model_id: str, cpu: CpuMeter, args) -> dict[str, Any]:
    ids = [f"s-{i}" for i in range(args.warmup + args.requests)]
    log(f"POST phase: {args.warmup} warm-up requests, then {args.requests} at concurrency {args.concurrency}")
    warm = post_load(url, stack.bootstrap_key, model_id, ids[: args.warmup], args.concurrency, args.max_post_s)
    before = cpu.snapshot()
    res = post_load(url, stack.bootstrap_key, model_id, ids[args.warmup :], args.concurrency, args.max_post_s)
    after = cpu.snapshot()
    out = res.summary()
    out["warmup"] = {"requests": args.warmup, "accepted": len(warm.latencies_s)}
    out["requested"], out["max_s"] = args.requests, args.max_post_s
    out["concurrency"] = args.concurrency
    out["cpu_s"] = CpuMeter.diff(before, after)
    log(
        f"POST: {out['accepted_per_s']}/s, p50 {out['latency_ms']['p50']} ms, p99 {out['latency_ms']['p99']} ms, "
        f"statuses {out['statuses']}"
    )
    return out


def measure_download(stack: Stack, url: str, api: Api, blobs: Path, dataset_id: str, args) -> dict[str, Any]:
    from app.core.storage import FileBlobStore

    arch = {"name": "mlp", "config": {"in_features": FEATURES, "hidden": args.mlp_hidden, "num_classes": CLASSES}}
    ckpt = mlp_checkpoint(args.mlp_hidden)
    log(f"download phase: registering an mlp checkpoint of {len(ckpt) / 1e6:.1f} MB")
    model_id = api.register(dataset_id, arch, ckpt, "bench-download")
    del ckpt
    version = api.http.get(f"/v1/models/{model_id}/versions/latest").json()
    sha, size = version["checkpoint_sha256"], version["checkpoint_size"]
    blob = FileBlobStore(blobs).path(sha)
    path = f"/v1/models/{model_id}/versions/latest/checkpoint"
    buf = bytearray(1024 * 1024)
    big = bytearray(4 * 1024 * 1024)
    # Warm-up: both read the same blob once.
    disk_read(blob, buf)
    raw_download(url, stack.bootstrap_key, path, big)
    httpx_download(api.http, path)
    times: dict[str, list[float]] = {k: [] for k in ("disk_cold", "http_cold", "disk", "http", "httpx", "sendfile")}

    def timed(name: str, result: tuple[int, float]) -> None:
        assert result[0] == size, (name, result[0], size)
        times[name].append(result[1])

    for _ in range(args.downloads):
        # From disk: the blob's pages are dropped from the page cache before each of the two timed reads.
        drop_cached(blob)
        timed("disk_cold", disk_read(blob, buf))
        drop_cached(blob)
        timed("http_cold", raw_download(url, stack.bootstrap_key, path, big))
        # From the page cache (the previous download left the blob cached).
        timed("disk", disk_read(blob, buf))
        timed("http", raw_download(url, stack.bootstrap_key, path, big))
        timed("httpx", httpx_download(api.http, path))
        timed("sendfile", loopback_sendfile(blob, big))

    def rate(samples: list[float]) -> dict[str, float]:
        return {
            "median_mb_per_s": round(size / float(np.median(samples)) / 1e6, 1),
            "best_mb_per_s": round(size / min(samples) / 1e6, 1),
            "median_s": round(float(np.median(samples)), 4),
        }

    out = {
        "checkpoint_bytes": size,
        "architecture": arch,
        "passes": args.downloads,
        "disk_read_cold": rate(times["disk_cold"]),
        "http_download_cold": rate(times["http_cold"]),
        "disk_read": rate(times["disk"]),
        "http_download_minimal_client": rate(times["http"]),
        "http_download_httpx": rate(times["httpx"]),
        "loopback_sendfile": rate(times["sendfile"]),
    }

    def ratio(a: str, b: str) -> float:
        return round(out[a]["median_mb_per_s"] / out[b]["median_mb_per_s"], 3)

    out["ratio_from_disk"] = ratio("http_download_cold", "disk_read_cold")
    out["ratio_minimal_client"] = ratio("http_download_minimal_client", "disk_read")
    out["ratio_httpx"] = ratio("http_download_httpx", "disk_read")
    out["ratio_sendfile_ceiling"] = ratio("loopback_sendfile", "disk_read")
    log(
        f"download from disk: read {out['disk_read_cold']['median_mb_per_s']} MB/s, HTTP "
        f"{out['http_download_cold']['median_mb_per_s']} MB/s, ratio {out['ratio_from_disk']}; from the page "
        f"cache: read {out['disk_read']['median_mb_per_s']} MB/s, HTTP "
        f"{out['http_download_minimal_client']['median_mb_per_s']} MB/s (httpx "
        f"{out['http_download_httpx']['median_mb_per_s']}, sendfile ceiling "
        f"{out['loopback_sendfile']['median_mb_per_s']}), ratio {out['ratio_minimal_client']}"
    )
    return out


def _progress(engine: Engine, model_id: str) -> tuple[int, int, int]:
    with engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT count(*) FILTER (WHERE status = 'succeeded'), count(*) FILTER (WHERE status = 'failed'), "
                "count(*) FROM deletion_requests WHERE model_id = :m"
            ),
            {"m": model_id},
        ).one()
    return int(row[0]), int(row[1]), int(row[2])


def measure_e2e(
    stack: Stack, url: str, engine: Engine, model_id: str, n: int, cpu: CpuMeter, timeout_s: float, args
) -> dict[str, Any]:
    ids = [f"s-{i}" for i in range(n)]
    before = cpu.snapshot()
    posted = post_load(url, stack.bootstrap_key, model_id, ids, args.concurrency, timeout_s)
    post_done = time.time()
    accepted = len(posted.latencies_s)
    deadline = posted.sent_at + timeout_s
    succeeded = failed = 0
    while time.time() < deadline:
        succeeded, failed, _ = _progress(engine, model_id)
        if succeeded + failed >= accepted:
            break
        time.sleep(0.1)
    after = cpu.snapshot()
    completed = succeeded + failed >= accepted
    with engine.connect() as conn:
        last = conn.execute(
            text("SELECT max(finished_at) FROM deletion_requests WHERE model_id = :m AND status = 'succeeded'"),
            {"m": model_id},
        ).scalar()
        batches = conn.execute(
            text(
                "SELECT result_version, count(*) FROM deletion_requests WHERE model_id = :m AND status = 'succeeded' "
                "GROUP BY result_version ORDER BY result_version"
            ),
            {"m": model_id},
        ).all()
        phases = conn.execute(
            text(
                "SELECT avg(extract(epoch FROM finished_at - started_at)) FROM deletion_requests "
                "WHERE model_id = :m AND status = 'succeeded'"
            ),
            {"m": model_id},
        ).scalar()
    end = last.timestamp() if completed and last is not None else time.time()
    elapsed = end - posted.sent_at
    sizes = [int(c) for _, c in batches]
    out = {
        "requests": n,
        "accepted": accepted,
        "post_statuses": posted.summary()["statuses"],
        "post_wall_s": round(post_done - posted.sent_at, 3),
        "succeeded": succeeded,
        "failed": failed,
        "completed": completed,
        "elapsed_s": round(elapsed, 3),
        "deletions_per_s": round(succeeded / elapsed, 2) if elapsed > 0 else None,
        "updates": len(sizes),
        "batch_size": {
            "mean": round(float(np.mean(sizes)), 2) if sizes else None,
            "max": max(sizes) if sizes else None,
            "min": min(sizes) if sizes else None,
        },
        "mean_running_to_succeeded_s": round(float(phases), 3) if phases is not None else None,
        "cpu_s": CpuMeter.diff(before, after),
    }
    if not completed:
        out["note"] = f"stopped after {timeout_s:g} s with {succeeded + failed} of {accepted} done"
    log(
        f"e2e: {succeeded}/{accepted} succeeded in {elapsed:.1f} s = {out['deletions_per_s']}/s over "
        f"{len(sizes)} updates (batch mean {out['batch_size']['mean']})"
    )
    return out


def verdicts(res: dict[str, Any]) -> dict[str, Any]:
    post = res["post"]
    co, single = res["e2e"]["coalesced"], res["e2e"]["one_per_request"]
    speedup = None
    if co.get("deletions_per_s") and single.get("deletions_per_s"):
        speedup = round(co["deletions_per_s"] / single["deletions_per_s"], 1)
    honoured = single.get("updates") == single.get("succeeded")
    return {
        "post_per_s": {"value": post["accepted_per_s"], "target": ">= 300", "pass": post["accepted_per_s"] >= 300},
        "post_p99_ms": {
            "value": post["latency_ms"]["p99"],
            "target": "< 100",
            "pass": post["latency_ms"]["p99"] is not None and post["latency_ms"]["p99"] < 100,
        },
        "coalesce_speedup": {
            "value": speedup,
            "target": ">= 10x",
            "pass": bool(speedup and speedup >= 10 and honoured),
            "one_update_per_request_honoured": honoured,
        },
        "download_vs_disk": {
            "value": res["download"]["ratio_from_disk"],
            "target": ">= 0.5",
            "pass": res["download"]["ratio_from_disk"] >= 0.5,
            "page_cache_ratio": res["download"]["ratio_minimal_client"],
            "httpx_ratio": res["download"]["ratio_httpx"],
        },
    }
