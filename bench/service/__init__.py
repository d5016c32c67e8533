"""Service benchmark: the real API (uvicorn) and workers (`python -m workers`) on PostgreSQL and Redis.

    .venv/bin/python -m bench.service [--quick] [--concurrency 16] [--requests 4000] [--api-workers 1]
                                      [--json docs/bench/service.json] [--md docs/bench/service.md]

Measures, in one run (issue 6, "Service benchmark"):

1. POST /v1/models/{id}/deletions accepted per second and p50/p99 latency at a fixed concurrency, with no
   worker consuming the queue (the API alone: validation, tombstones, audit entry, commit, enqueue);
2. end-to-end single-row deletions per second against one model: requests coalesced (the default) vs one
   update per request (UNLEARN_MAX_COALESCE=1 in the workers' environment), from the first POST to the last
   request `succeeded`;
3. checkpoint download throughput (GET .../versions/latest/checkpoint of a ~68 MB mlp) vs reading the same
   blob file from disk, both from the page cache.

Everything runs on this host over loopback. The run creates two PostgreSQL databases `unlearn_bench_<random>_api`
and `..._e2e` (migrated with Alembic), uses an empty Redis database number with queues of its own, a temporary
blob folder, and removes all of it at the end. The per-key rate limit is disabled (UNLEARN_RATE_LIMIT_PER_S=0) so
the load test measures the service, not the limiter.

The load generator is a minimal asyncio HTTP/1.1 client (keep-alive connections, pre-built requests) so that its
own CPU use, on a machine whose cores it shares with the service, stays small; its CPU seconds are reported.
--quick is a smoke run (smaller counts) that writes nothing unless --write is given.
"""
