"""The markdown report: results against the targets, the CPU table, and the analysis under it."""

from __future__ import annotations

from typing import Any

from bench.service.fixtures import CLASSES, FEATURES


def _cpu_row(label: str, cpu: dict[str, float]) -> str:
    wall = cpu["wall_s"] or 1.0
    cols = ["api", "workers", "postgres", "redis_server", "load_generator", "everything_else", "machine_busy"]
    cells = " | ".join(f"{cpu[c]:.1f} ({100 * cpu[c] / wall:.0f}%)" for c in cols)
    return f"| {label} | {wall:.1f} | {cells} |"


def render_markdown(res: dict[str, Any], notes: str) -> str:
    v = res["verdicts"]
    post, dl = res["post"], res["download"]
    co, single = res["e2e"]["coalesced"], res["e2e"]["one_per_request"]
    m = res["machine"]

    def pf(ok: bool) -> str:
        return "PASS" if ok else "FAIL"

    lines = [
        "# Service benchmark",
        "",
        "The whole service as deployed: `python -m app.serve` (uvicorn) and `python -m workers` processes on",
        "the real PostgreSQL and Redis, driven over loopback. Produced by",
        "",
        "```bash",
        f".venv/bin/python -m bench.service {res['command_args']}".rstrip(),
        "```",
        "",
        "which writes this file and `docs/bench/service.json` (raw numbers). Options: `--concurrency`, `--requests`,",
        "`--e2e-requests`, `--single-requests`, `--api-workers` (default: one per core), `--server` (`serve` or",
        "`uvicorn`), `--workers`, `--json`, `--md`; `--quick` is a smoke run that writes nothing unless `--write` is",
        f"given; `--from-json` rewrites this file from the raw numbers. This run took {res['duration_s']:.0f} s.",
        "",
        "## Machine",
        "",
        f"- {m['nproc']} CPU cores (`nproc`), {m['cpu_model']}; Python {m['python']}, Linux {m['kernel']}.",
        f"- Run at {res['started_at']} for {res['duration_s']:.0f} s. Load average (1, 5, 15 min) before: "
        f"{res['load_before']}, after: {res['load_after']}.",
        "- CPU speed probe (CPU ms of one fixed pure-Python loop on one core; lower is faster; on this shared virtual "
        "machine it moves by up to 2x within minutes): "
        + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in res.get("cpu_probe_ms", {}).items())
        + ".",
        "- The machine is shared: other jobs ran on the same cores during the run (the `everything else` column",
        "  below is CPU they took). Figures on an idle machine would be higher; treat these as a floor.",
        f"- API: {res['config']['api_workers']} uvicorn process(es) started by "
        + (
            "`python -m app.serve` (uvloop, httptools, a listening socket each), "
            if res["config"].get("server", "serve") == "serve"
            else "`uvicorn --workers` (uvloop, httptools, one shared listening socket), "
        )
        + "log level INFO, "
        "rate limit disabled",
        f"  (`UNLEARN_RATE_LIMIT_PER_S=0`). Workers: {res['config']['workers']} `python -m workers --device cpu` "
        "processes.",
        "",
        "## Results",
        "",
        "| measure | figure | target | verdict |",
        "| --- | --- | --- | --- |",
        f"| POST deletion requests accepted, concurrency {post['concurrency']} | {post['accepted_per_s']} /s "
        f"| >= 300 /s | {pf(v['post_per_s']['pass'])} |",
        f"| POST latency p50 / p99 | {post['latency_ms']['p50']} / {post['latency_ms']['p99']} ms | p99 < 100 ms | "
        f"{pf(v['post_p99_ms']['pass'])} |",
        f"| end to end, coalesced (default), {co['accepted']} requests | {co['deletions_per_s']} deletions/s "
        f"({co['elapsed_s']} s, {co['updates']} updates) | | |",
        f"| end to end, one update per request (`UNLEARN_MAX_COALESCE=1`), {single['accepted']} requests | "
        f"{single['deletions_per_s']} deletions/s ({single['elapsed_s']} s, {single['updates']} updates) | | |",
        f"| coalesced vs one update per request | {v['coalesce_speedup']['value']}x | >= 10x | "
        f"{pf(v['coalesce_speedup']['pass'])} |",
        f"| checkpoint download ({dl['checkpoint_bytes'] / 1e6:.1f} MB), blob not in the page cache | "
        f"{dl['http_download_cold']['median_mb_per_s']} MB/s | | |",
        f"| reading the same blob from disk (page cache dropped) | {dl['disk_read_cold']['median_mb_per_s']} MB/s "
        "| | |",
        f"| download / disk read | {dl['ratio_from_disk']} | >= 0.5 | {pf(v['download_vs_disk']['pass'])} |",
        f"| checkpoint download, blob in the page cache | {dl['http_download_minimal_client']['median_mb_per_s']} "
        "MB/s | | |",
        f"| reading the blob from the page cache | {dl['disk_read']['median_mb_per_s']} MB/s | | |",
        f"| download / page-cache read | {dl['ratio_minimal_client']} | (not a target) | |",
        f"| ceiling: `sendfile(2)` of the cached blob over loopback TCP, no HTTP | "
        f"{dl['loopback_sendfile']['median_mb_per_s']} MB/s ({dl['ratio_sendfile_ceiling']} of the page-cache read) "
        "| | |",
        "",
    ]
    if not v["coalesce_speedup"]["one_update_per_request_honoured"]:
        lines += [
            f"**One update per request was not honoured**: {single['accepted']} requests were applied in "
            f"{single['updates']} updates with `UNLEARN_MAX_COALESCE=1`, so the comparison above is not the one the "
            "target asks for.",
            "",
        ]
    requested = post.get("requested", post["accepted"])
    capped = ""
    if post["accepted"] < requested:
        capped = f" ({requested} were asked for; sending stops after {post.get('max_s', 60):g} s)"
    lines += [
        "Detail:",
        "",
        f"- POST phase: {post['accepted']} requests measured after {post['warmup']['requests']} warm-up requests"
        f"{capped}, statuses {post['statuses']}, wall {post['wall_s']} s; latency p50 {post['latency_ms']['p50']}, "
        f"p90 {post['latency_ms']['p90']}, p99 {post['latency_ms']['p99']}, max {post['latency_ms']['max']} ms.",
        f"- End to end, coalesced: POSTs took {co['post_wall_s']} s while the workers ran; batch sizes mean "
        f"{co['batch_size']['mean']}, max {co['batch_size']['max']}.",
        f"- End to end, one per request: N = {single['accepted']} (not 1,000: at this rate 1,000 updates would "
        f"take about {1000 / max(single['deletions_per_s'] or 1e-9, 1e-9):.0f} s); the rate is per second either "
        f"way. Mean time from `running` to `succeeded` per request: {single['mean_running_to_succeeded_s']} s.",
        f"- Download: median of {dl['passes']} passes each (best pass from disk: download "
        f"{dl['http_download_cold']['best_mb_per_s']} MB/s, read {dl['disk_read_cold']['best_mb_per_s']} MB/s; "
        f"from the page cache: download {dl['http_download_minimal_client']['best_mb_per_s']} MB/s, read "
        f"{dl['disk_read']['best_mb_per_s']} MB/s); "
        "the minimal client receives into a reused buffer. "
        f"With httpx (`iter_raw`, 1 MiB chunks, as a Python client would) the download ran at "
        f"{dl['http_download_httpx']['median_mb_per_s']} MB/s (ratio {dl['ratio_httpx']}).",
        "",
        "## Where the time goes",
        "",
        "CPU seconds per phase (share of one core over the phase's wall time; 2 cores = 200%). `postgres` is the",
        "backends serving the benchmark database; `redis` the whole Redis server; `everything else` the rest of the",
        "machine's busy time (other jobs on the shared machine, kernel threads).",
        "",
        "| phase | wall s | api | workers | postgres | redis | load generator | everything else | machine busy |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        _cpu_row("POST (no workers)", post["cpu_s"]),
        _cpu_row("end to end, coalesced", co["cpu_s"]),
        _cpu_row("end to end, one per request", single["cpu_s"]),
        "",
        notes.strip(),
        "",
        "## Method",
        "",
        "- Two fresh PostgreSQL databases (`unlearn_bench_<random>_api`, `..._e2e`) migrated with Alembic "
        "(`app.core.migrate.upgrade`), an empty Redis database number with queue names of the run's own, a "
        "temporary blob folder; all removed at the end.",
        f"- Data set: {res['config']['rows']} synthetic rows x {FEATURES} float32 features, {CLASSES} classes, "
        "1,000 holdout rows, ids `s-0`...; logreg models fitted to it in the benchmark (softmax regression, numpy) and "
        "registered by uploading the checkpoint (no training job).",
        "- POST phase: API processes only, no worker consuming the queue (jobs are enqueued, as in production, "
        'to a queue nobody reads). Each request deletes a distinct sample id (`{"sample_ids": [id]}`), so every '
        "answer is a 202. Closed loop: the given number of connections each send the next request as soon as "
        "the previous answer arrived. Throughput = 202 answers / (first request sent to last answer received).",
        "- End to end: API + workers on a second database; the requests are POSTed at the same concurrency while "
        "the workers run; time from the first POST to the `finished_at` of the last request to succeed "
        "(read from the database, polled every 0.1 s). Coalesced mode first, then the workers are restarted "
        "with `UNLEARN_MAX_COALESCE=1` and a second model of the same data set is used.",
        "- Download: an mlp checkpoint registered by upload on the first database; one warm-up read of the "
        "blob file and one warm-up download, then passes of: drop the blob from the page cache "
        "(`posix_fadvise(POSIX_FADV_DONTNEED)`), `readinto` a 1 MiB buffer from the blob file (from disk); drop "
        "it again, download it on a fresh connection (from disk); then, cached, the same read, the same download, "
        "a download with httpx, and the blob sent by `os.sendfile` over a loopback socket with no HTTP (the "
        "ceiling for any server here). The target compares the two reads from disk, as the issue states it; "
        "the page-cache figures are reported beside it.",
        "- The load generator is a minimal asyncio HTTP/1.1 client (pre-built requests on keep-alive "
        "connections), so that it takes little CPU from the service on a 2-core machine; its CPU time is in "
        "the table above.",
        "",
    ]
    return "\n".join(lines)


def where_time_goes(res: dict[str, Any]) -> str:
    """The analysis under the CPU table. Figures in braces come from this run; the exploratory runs and profiles
    (same machine, same build, separately from the timed run) are summarised as measured."""
    post, dl = res["post"], res["download"]
    co, single = res["e2e"]["coalesced"], res["e2e"]["one_per_request"]
    n = max(post["accepted"], 1)
    api_ms = 1000 * post["cpu_s"]["api"] / n
    pg_ms = 1000 * post["cpu_s"]["postgres"] / n
    workers = res["config"]["api_workers"]
    co_rate = co["accepted"] / co["post_wall_s"] if co["post_wall_s"] else float("nan")
    return f"""
### POST /v1/models/{{id}}/deletions

A POST is one transaction with no lock shared between requests. In one hand-off to a worker thread (at most
`UNLEARN_DELETION_THREADS`, 2, per process at a time) it looks up the key (one indexed read), then the model with
the requested rows left-joined to their tombstones (one statement), inserts the request, its tombstones and its
audit event into the outbox, and commits: six round trips, each a prebuilt SQLAlchemy Core statement (no ORM
unit of work, no statement rebuilt per request). After the commit the request is handed to the queue's
background sender, which sends what gathers within 50 ms to Redis in one round trip, one job per model. The
audit event is chained into the hash-chained log later, in batches, by the workers (docs/audit.md), so no
request waits for the log's append lock, and the API processes run no CPU-bound background work.

- CPU per accepted POST in this run: API {api_ms:.2f} ms (all {workers} processes together), PostgreSQL
  {pg_ms:.2f} ms. One API process was CPU-bound at about 230 POST/s (exploratory runs below), so the target
  needs one process per core: `python -m app.serve --workers 2` here (`WEB_CONCURRENCY`), each process with
  its own listening socket (with `uvicorn --workers 2`'s shared socket, one process took 90% of the
  connections in some exploratory runs).
- Threads per process decide the tail. Exploratory runs of the POST phase alone (the same load generator,
  4,000 requests at concurrency 16, a quiet machine, minutes apart, before the deletion limiter existed, when
  `UNLEARN_API_THREADS` capped the whole thread pool):

  | API processes x threads | POST/s | p50 ms | p99 ms |
  | --- | --- | --- | --- |
  | 1 x 40 (anyio's default) | 220 | 68 | 196 |
  | 1 x 8 | 229 | 68 | 113 |
  | 1 x 2 | 217 | 72 | 99 |
  | 2 x 8 | 308 to 325 | 46 to 52 | 102 to 126 |
  | 2 x 4 | 327 to 391 | 38 to 47 | 91 to 92 |
  | 2 x 2 | 362 to 366 | 42 | 73 to 76 |
  | 2 x 1 | 265 | 59 | 98 |

  With many threads, requests that wait on the database hand the GIL back and forth with requests that run
  Python, and each round trip can wait for the GIL again; two threads per process keep one request's database
  wait overlapping another's CPU without that convoy. Python's switch interval (5 ms or 0.5 ms) made no
  measurable difference.
- Where one POST's API CPU goes (the request's thread work called 1,000 times in one process, without HTTP,
  before the model and row reads were folded into one: 2.47 ms of CPU each; cProfile shares): SQLAlchemy and
  psycopg executing the six statements and the commit about
  half, the audit event's content checks and canonical JSON about a tenth, the rest the session, the
  idempotency plumbing, the response body and a JSON log line. The event loop (HTTP parsing, middleware,
  routing, body validation, the request's JSON log line, metrics) adds about 0.8 ms.
- Background work in the API process costs latency beyond its CPU: while a CPU-bound thread holds the GIL,
  every request waiting for a database answer waits again for the GIL. Chaining the outbox in a thread of each
  API process (four times a second) cost about 15% of the API's CPU and 30 ms of p99 (POST phase alone,
  2 processes x 2 threads: 277 to 333/s with p99 105 to 133 ms with it, 365 to 391/s with p99 73 to 80 ms
  without it, runs minutes apart); the workers chain it now.
- Still possible: the key lookup folded into the model's statement (one round trip fewer, in the API and in
  PostgreSQL), the response built without the ORM row and the pydantic model.

### End to end

- Coalesced: {co["deletions_per_s"]} deletions/s. The {co["accepted"]} POSTs took {co["post_wall_s"]} s while the
  workers ran ({co_rate:.0f}/s); {co["updates"]} updates applied them (batch sizes mean {co["batch_size"]["mean"]},
  max {co["batch_size"]["max"]}). Requests of one model that reach the sender together get one RQ job, so the
  workers run a few jobs instead of one per request: each job applies everything waiting for its model.
- One update per request (`UNLEARN_MAX_COALESCE=1`): {single["deletions_per_s"]} deletions/s; every update is one
  IAU step, its evidence, a checkpoint write and a publication transaction, {single["mean_running_to_succeeded_s"]} s
  from `running` to `succeeded` on average. The workers are busy for all of it (see the CPU table).

### Download

- From disk (the blob's pages dropped before each pass): the download ran at
  {dl["http_download_cold"]["median_mb_per_s"]} MB/s against {dl["disk_read_cold"]["median_mb_per_s"]} MB/s for
  reading the file ({dl["ratio_from_disk"]}). The response sends a 1 MiB first step, then 8 MiB steps, and reads
  the next step in a worker thread while the current one is being sent, with sequential read-ahead advice, so
  disk and socket work overlap. Both sides share the two cores with the client receiving the bytes.
- From the page cache the download is a small fraction of a memory copy ({dl["ratio_minimal_client"]}:
  {dl["http_download_minimal_client"]["median_mb_per_s"]} MB/s against {dl["disk_read"]["median_mb_per_s"]} MB/s),
  and so is any TCP transfer here: `sendfile(2)` of the same cached file over a loopback socket, with no HTTP
  and no Python in the path, ran at {dl["loopback_sendfile"]["median_mb_per_s"]} MB/s in this run
  ({dl["ratio_sendfile_ceiling"]} of the cached read). Loopback TCP copies every byte twice (into the socket
  and out of it), so half the speed of a page-cache read is out of reach for any server on this machine; the
  target is judged on reads from disk, as the issue states it.
- With httpx (`iter_raw`, 1 MiB chunks) the client itself is the limit: {dl["http_download_httpx"]["median_mb_per_s"]}
  MB/s.
"""
