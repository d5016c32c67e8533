"""Prometheus metrics of the API and the workers, served by the API at /metrics.

Multi-process: when PROMETHEUS_MULTIPROC_DIR is set (in the environment before the process starts), every API
and worker process writes its samples to files in that folder, and /metrics adds them up. The API and the
workers must then share the folder (one host: a local folder or a Docker volume mounted in every container).
Files are named by host name and process id (`counter_<host>-<pid>.db`), so processes of different containers
never share a file even when their pids are equal. Empty the folder only while no process runs (before the
stack starts); files of exited processes keep counting in the totals.

Written by the API: HTTP requests and latency by route template, deletion requests accepted.
Written by the workers: job durations (whole job and by phase), deletions applied and rows deleted, coalesced
batch sizes, failures, the last membership AUC of each model.
Read live at scrape time (no process writes them): queue depth from Redis/RQ and open deletion requests from
the database (`live_collector`).
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable, Iterable, Iterator

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric

from app.core.logging import log_event

log = logging.getLogger("app.metrics")


def _process_identifier() -> str:
    """Unique among the processes sharing the folder: host name (a container's id) and pid, without `_`
    (prometheus_client splits file names on it)."""
    return f"{socket.gethostname().replace('_', '-')}-{os.getpid()}"


if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):  # before any metric below is created
    from prometheus_client import values

    os.makedirs(os.environ["PROMETHEUS_MULTIPROC_DIR"], exist_ok=True)

    values.ValueClass = values.MultiProcessValue(process_identifier=_process_identifier)

HTTP_REQUESTS = Counter("unlearn_http_requests_total", "HTTP requests answered", ["method", "route", "status"])
HTTP_LATENCY = Histogram(
    "unlearn_http_request_duration_seconds",
    "Time to answer an HTTP request, seconds",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
DELETIONS_ACCEPTED = Counter("unlearn_deletion_requests_total", "Deletion requests accepted (202)")

JOB_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
JOB_DURATION = Histogram(
    "unlearn_job_duration_seconds",
    "Wall time of one worker job, seconds (job: deletion, train, cache, compaction; outcome: ok, error)",
    ["job", "outcome"],
    buckets=JOB_BUCKETS,
)
JOB_PHASE_DURATION = Histogram(
    "unlearn_job_phase_duration_seconds",
    "Wall time of one completed phase of a worker job, seconds",
    ["job", "phase"],
    buckets=JOB_BUCKETS,
)
DELETIONS_APPLIED = Counter(
    "unlearn_deletions_applied_total", "Deletion requests applied (succeeded) by the workers", ["method"]
)
ROWS_DELETED = Counter("unlearn_deleted_rows_total", "Training rows removed by applied deletion requests", ["method"])
BATCH_REQUESTS = Histogram(
    "unlearn_update_batch_requests",
    "Deletion requests coalesced into one published model update",
    ["method"],
    buckets=(1, 2, 3, 5, 10, 20, 50, 100, 200, 500, 1000),
)
JOB_FAILURES = Counter(
    "unlearn_job_failures_total",
    "Failures: deletion requests rescheduled after a failed attempt (kind retry) or failed for good (permanent), "
    "trainings failed (permanent), jobs that raised out of the worker (unhandled)",
    ["job", "kind"],
)
# "mostrecent": across processes (live or exited) the value written last wins, so the gauge shows the AUC of
# the latest update of the model whichever worker applied it, and survives a worker restart.
MEMBERSHIP_AUC = Gauge(
    "unlearn_model_membership_auc",
    "Membership-inference AUC of the forgotten rows against holdout after the model's latest update",
    ["model_id"],
    multiprocess_mode="mostrecent",
)


def observe_request(*, method: str, route: str, status: int, seconds: float) -> None:
    HTTP_REQUESTS.labels(method=method, route=route, status=str(status)).inc()
    HTTP_LATENCY.labels(method=method, route=route).observe(seconds)


def observe_phase(job: str, phase: str, seconds: float) -> None:
    JOB_PHASE_DURATION.labels(job=job, phase=phase).observe(max(0.0, float(seconds)))


def record_update(*, model_id: str, method: str, requests: int, rows: int, membership_auc: float | None) -> None:
    """After a deletion update is published: requests and rows applied, batch size, the model's AUC."""
    DELETIONS_APPLIED.labels(method=method).inc(requests)
    ROWS_DELETED.labels(method=method).inc(rows)
    BATCH_REQUESTS.labels(method=method).observe(requests)
    if membership_auc is not None:
        MEMBERSHIP_AUC.labels(model_id=model_id).set(float(membership_auc))


def record_failures(job: str, kind: str, count: int = 1) -> None:
    if count > 0:
        JOB_FAILURES.labels(job=job, kind=kind).inc(count)


class LiveCollector:
    """Gauges read when /metrics is scraped: queue depth (RQ) and open deletion requests (database).

    `queue_counts()` returns {state: jobs} for the unlearn queue; `request_counts()` returns {status: requests}.
    A source that does not answer is reported as `unlearn_metrics_source_up{source} 0` and its gauges left out.
    """

    def __init__(
        self, *, queue: str, queue_counts: Callable[[], dict[str, int]], request_counts: Callable[[], dict[str, int]]
    ) -> None:
        self.queue = queue
        self.queue_counts = queue_counts
        self.request_counts = request_counts

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "unlearn_metrics_source_up", "1 when a source read at scrape time answered, else 0", labels=["source"]
        )
        try:
            jobs = self.queue_counts()
        except Exception as exc:  # noqa: BLE001 - an unreachable Redis must not break the scrape
            log_event(log, "metrics.source_failed", level=logging.WARNING, source="redis", error=type(exc).__name__)
            up.add_metric(["redis"], 0)
        else:
            up.add_metric(["redis"], 1)
            depth = GaugeMetricFamily(
                "unlearn_queue_jobs",
                "RQ jobs of the unlearn queue by state (queued: waiting for a worker; scheduled: retries in backoff; "
                "started: running; failed: kept in the failed registry)",
                labels=["queue", "state"],
            )
            for state, count in sorted(jobs.items()):
                depth.add_metric([self.queue, state], count)
            yield depth
        try:
            requests = self.request_counts()
        except Exception as exc:  # noqa: BLE001 - an unreachable database must not break the scrape
            log_event(log, "metrics.source_failed", level=logging.WARNING, source="database", error=type(exc).__name__)
            up.add_metric(["database"], 0)
        else:
            up.add_metric(["database"], 1)
            open_requests = GaugeMetricFamily(
                "unlearn_deletion_requests_open",
                "Deletion requests not finished yet, by status (queued, running), from the database",
                labels=["status"],
            )
            for status, count in sorted(requests.items()):
                open_requests.add_metric([status], count)
            yield open_requests
        yield up


def render_metrics(extra: Iterable[object] = ()) -> tuple[bytes, str]:
    """The Prometheus text exposition (every process's samples in multi-process mode, plus `extra` collectors)
    and its content type."""
    registry = CollectorRegistry(auto_describe=False)
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(_Forward(REGISTRY))
    for collector in extra:
        registry.register(collector)
    return generate_latest(registry), CONTENT_TYPE_LATEST


class _Forward:
    """This process's default registry, as one collector of a per-scrape registry."""

    def __init__(self, source: CollectorRegistry) -> None:
        self.source = source

    def collect(self) -> Iterator[Metric]:
        yield from self.source.collect()
