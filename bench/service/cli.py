"""The command line: options, one run of the three measurements on a fresh stack, and the outputs."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine
from sqlalchemy.engine import make_url

from bench import service as package
from bench.service.common import ROOT, log
from bench.service.fixtures import CLASSES, FEATURES, Api, dataset_bytes, logreg_checkpoint
from bench.service.machine import CpuMeter, cpu_probe, loadavg, machine
from bench.service.measure import measure_download, measure_e2e, measure_posts, verdicts
from bench.service.report import render_markdown, where_time_goes
from bench.service.stack import Stack


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="python -m bench.service",
        description=package.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--quick", action="store_true", help="smoke run: small counts; writes nothing unless --write")
    ap.add_argument("--write", action="store_true", help="with --quick: write the outputs anyway")
    ap.add_argument("--concurrency", type=int, default=16, help="connections of the POST load (default 16)")
    ap.add_argument("--requests", type=int, default=None, help="measured POSTs (default 4000; --quick 1000)")
    ap.add_argument("--warmup", type=int, default=None, help="warm-up POSTs (default 300; --quick 100)")
    ap.add_argument("--max-post-s", type=float, default=60.0, help="stop sending POSTs after this (default 60 s)")
    ap.add_argument("--e2e-requests", type=int, default=None, help="coalesced end to end (default 1000; --quick 200)")
    ap.add_argument("--single-requests", type=int, default=None, help="one per request (default 150; --quick 30)")
    ap.add_argument("--e2e-timeout-s", type=float, default=240.0, help="coalesced mode time limit (default 240 s)")
    ap.add_argument(
        "--single-timeout-s",
        type=float,
        default=None,
        help="one-per-request mode time limit; the rate is taken over what finished (default 150 s; --quick 60)",
    )
    ap.add_argument(
        "--api-workers",
        type=int,
        default=os.cpu_count() or 1,
        help="uvicorn worker processes (default: one per core)",
    )
    ap.add_argument(
        "--server",
        choices=["serve", "uvicorn"],
        default="serve",
        help="API launcher: `python -m app.serve` (default; a listening socket per process) or `uvicorn --workers`",
    )
    ap.add_argument("--workers", type=int, default=2, help="`python -m workers` processes (default 2)")
    ap.add_argument("--rows", type=int, default=20000, help="data set rows (default 20000)")
    ap.add_argument("--downloads", type=int, default=5, help="timed download passes (default 5)")
    ap.add_argument("--json", type=Path, default=ROOT / "docs/bench/service.json", help="raw numbers")
    ap.add_argument("--md", type=Path, default=ROOT / "docs/bench/service.md", help="report")
    ap.add_argument("--keep-logs", action="store_true", help="keep the processes' logs (path printed)")
    ap.add_argument("--from-json", type=Path, help="run nothing: write --md from the raw numbers of an earlier run")
    args = ap.parse_args(argv)
    q = args.quick
    args.requests = args.requests or (1000 if q else 4000)
    args.warmup = args.warmup if args.warmup is not None else (100 if q else 300)
    args.e2e_requests = args.e2e_requests or (200 if q else 1000)
    args.single_requests = args.single_requests or (30 if q else 150)
    args.mlp_hidden = [1024, 1024] if q else [4096, 4096]
    args.single_timeout_s = args.single_timeout_s or (60.0 if q else 150.0)
    need = max(args.warmup + args.requests, args.e2e_requests, args.single_requests)
    if need > args.rows:
        ap.error(f"--rows must be at least {need} (each request deletes a distinct row)")
    return args


def run(args: argparse.Namespace) -> dict[str, Any]:
    started = datetime.now(UTC)
    load_before = loadavg()
    t_start = time.perf_counter()
    stack = Stack(args)
    res: dict[str, Any] = {
        "started_at": started.strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "load_before": load_before,
        "config": {
            "api_workers": args.api_workers,
            "server": args.server,
            "workers": args.workers,
            "rows": args.rows,
            "concurrency": args.concurrency,
            "rate_limit": "disabled (UNLEARN_RATE_LIMIT_PER_S=0)",
            "redis_db": stack.redis_db,
        },
    }
    try:
        log(f"run {stack.run}: Redis db {stack.redis_db}, work folder {stack.tmp}")
        data, ids = dataset_bytes(args.rows)
        ckpt = logreg_checkpoint(data)
        logreg = {"name": "logreg", "config": {"in_features": FEATURES, "num_classes": CLASSES}}

        # 1 and 3: the API alone.
        db_api = stack.create_database("api")
        queue_api = f"unlearn-bench-{stack.run}-api"
        stack.queues.append(queue_api)
        blobs_api = stack.tmp / "blobs-api"
        api_proc, url = stack.start_api(db_api, queue_api, blobs_api, args.api_workers)
        api = Api(url, stack.bootstrap_key)
        dataset_id = api.upload_dataset(data, ids)
        model_a = api.register(dataset_id, logreg, ckpt, "bench-post")
        cpu = CpuMeter(
            api=[api_proc.pid],
            workers=[],
            admin=stack.admin,
            dbname=make_url(db_api).database,
            rds=stack.rds,
        )
        probes = res["cpu_probe_ms"] = {"start": cpu_probe()}
        res["post"] = measure_posts(stack, url, model_a, cpu, args)
        probes["after_post"] = cpu_probe()
        res["download"] = measure_download(stack, url, api, blobs_api, dataset_id, args)
        api.close()
        stack.stop(api_proc)
        stack.empty_queue(queue_api)

        # 2: API and workers.
        db_e2e = stack.create_database("e2e")
        engine = create_engine(db_e2e)
        blobs = stack.tmp / "blobs-e2e"
        res["e2e"] = {}
        api_proc = None
        for mode, n, extra, limit in (
            ("coalesced", args.e2e_requests, {}, args.e2e_timeout_s),
            ("one_per_request", args.single_requests, {"UNLEARN_MAX_COALESCE": "1"}, args.single_timeout_s),
        ):
            queue = f"unlearn-bench-{stack.run}-{mode.replace('_', '')}"
            stack.queues.append(queue)
            api_proc, url = stack.start_api(db_e2e, queue, blobs, args.api_workers)
            api = Api(url, stack.bootstrap_key)
            ds = api.upload_dataset(data, ids)
            model = api.register(ds, logreg, ckpt, f"bench-{mode}")
            workers = stack.start_workers(args.workers, db_e2e, queue, blobs, extra)
            stack.wait_queue_idle(queue, 60)  # the start-up reconcile's gradient-cache refresh of version 1
            cpu = CpuMeter(
                api=[api_proc.pid],
                workers=[w.pid for w in workers],
                admin=stack.admin,
                dbname=make_url(db_e2e).database,
                rds=stack.rds,
            )
            log(f"end to end, {mode}: {n} single-row deletions, {args.workers} workers")
            res["e2e"][mode] = measure_e2e(stack, url, engine, model, n, cpu, limit, args)
            res["e2e"][mode]["worker_env"] = extra
            probes[f"after_{mode}"] = cpu_probe()
            api.close()
            for w in workers:
                stack.stop(w, 5.0)
            stack.stop(api_proc)
            stack.empty_queue(queue)
        engine.dispose()
    finally:
        stack.close()
    res["load_after"] = loadavg()
    res["duration_s"] = round(time.perf_counter() - t_start, 1)
    res["verdicts"] = verdicts(res)
    return res


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.from_json:
        res = json.loads(args.from_json.read_text())
        args.md.write_text(render_markdown(res, where_time_goes(res)))
        log(f"wrote {args.md} from {args.from_json}")
        return 0
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # clean up (processes, databases) on SIGTERM too
    shown = []
    if args.quick:
        shown.append("--quick")
    for flag, value, default in (
        ("--concurrency", args.concurrency, 16),
        ("--api-workers", args.api_workers, os.cpu_count() or 1),
        ("--workers", args.workers, 2),
    ):
        if value != default:
            shown.append(f"{flag} {value}")
    res = run(args)
    res["command_args"] = " ".join(shown)
    text_json = json.dumps(res, indent=2, default=str)
    if args.quick and not args.write:
        print(text_json)
        log("--quick: nothing written (add --write to write the outputs)")
        return 0
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(text_json + "\n")
    args.md.write_text(render_markdown(res, where_time_goes(res)))
    log(f"wrote {args.json} and {args.md}")
    for name, v in res["verdicts"].items():
        log(f"{name}: {v['value']} (target {v['target']}): {'PASS' if v['pass'] else 'FAIL'}")
    return 0
