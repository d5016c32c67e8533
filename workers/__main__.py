"""Start one worker process: `python -m workers [--device cpu|cuda:N] [--burst]`.

One process per device. Jobs run inside this process (RQ's SimpleWorker: no fork, so CUDA is only ever
initialised in the process that uses it). A background thread reconciles the queue with the database on start
and every Settings.reconcile_interval_s, and moves retries whose backoff has elapsed onto the queue.

Every line the process logs is one JSON object on stderr, RQ's own lines included (app.core.logging); the lines
logged while a job runs carry that job's `job_id`. Each job's duration and outcome go to the metrics
(PROMETHEUS_MULTIPROC_DIR: see app.core.metrics).
"""

from __future__ import annotations

import argparse
import logging
import threading
import time

from rq import SimpleWorker
from rq.job import Job
from rq.registry import ScheduledJobRegistry

from app.core.config import get_settings
from app.core.logging import configure_logging, job_id_var, log_event
from app.core.metrics import JOB_DURATION, record_failures
from workers.queue import get_queue, get_redis

log = logging.getLogger("workers")

SCHEDULE_POLL_S = 1.0  # seconds between checks for retries whose backoff has elapsed


def enqueue_due_retries() -> int:
    """Move scheduled jobs whose time has come onto the queue (each job claimed by exactly one process)."""
    queue = get_queue()
    registry = ScheduledJobRegistry(queue=queue)
    moved = 0
    for job_id in registry.get_jobs_to_schedule():
        if not get_redis().zrem(registry.key, job_id):
            continue  # another worker claimed it
        try:
            job = Job.fetch(job_id, connection=get_redis())
        except Exception:  # a job that vanished is rebuilt by the reconciler
            continue
        queue.enqueue_job(job)
        moved += 1
    return moved


class Maintenance(threading.Thread):
    """Reconciles every `interval` seconds; enqueues due retries and chains the audit outbox (events the API
    recorded) every SCHEDULE_POLL_S."""

    def __init__(self, interval: float) -> None:
        super().__init__(name="maintenance", daemon=True)
        self.interval = interval
        self.stopped = threading.Event()

    def run(self) -> None:
        from app.audit.outbox import sequence_committed
        from app.core.db import get_sessionmaker
        from workers.reconciler import reconcile

        waited = 0.0
        while not self.stopped.wait(SCHEDULE_POLL_S):
            waited += SCHEDULE_POLL_S
            try:
                enqueue_due_retries()
                sequence_committed(get_sessionmaker())
                if waited >= self.interval:
                    waited = 0.0
                    reconcile()
            except Exception:  # keep the thread alive across database or Redis outages
                log_event(log, "maintenance.failed", level=logging.ERROR, exc_info=True)


JOB_KINDS = {
    "workers.jobs.deletions.apply_deletions": "deletion",
    "workers.jobs.train.train_model": "train",
    "workers.jobs.cache.refresh_cache": "cache",
    "workers.jobs.consolidate.consolidate_model": "consolidation",
    "workers.jobs.compact.compact_dataset": "compaction",
}


def job_kind(job: Job) -> str:
    """The metrics label of a job: deletion, train, cache, compaction, consolidation (other for anything else)."""
    try:
        return JOB_KINDS.get(job.func_name, "other")
    except Exception:  # a job whose function cannot be read still runs (and fails) through RQ
        return "other"


class ServiceWorker(SimpleWorker):
    """SimpleWorker that binds the job id to the service's log lines and times each job."""

    def perform_job(self, job: Job, queue, *args, **kwargs) -> bool:
        kind = job_kind(job)
        token = job_id_var.set(job.id)
        started = time.perf_counter()
        ok = False
        log_event(log, "job.started", job=kind)
        try:
            ok = super().perform_job(job, queue, *args, **kwargs)
            return ok
        finally:
            seconds = time.perf_counter() - started
            JOB_DURATION.labels(job=kind, outcome="ok" if ok else "error").observe(seconds)
            if not ok:
                record_failures(kind, "unhandled")
            log_event(
                log,
                "job.finished" if ok else "job.errored",
                level=logging.INFO if ok else logging.ERROR,
                job=kind,
                seconds=round(seconds, 3),
            )
            job_id_var.reset(token)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workers", description=__doc__.splitlines()[0])
    parser.add_argument("--device", help="torch device for this worker: auto, cpu, cuda, cuda:N")
    parser.add_argument("--burst", action="store_true", help="work until the queue is empty, then exit")
    parser.add_argument("--name", help="worker name (default: random)")
    args = parser.parse_args(argv)

    settings = get_settings()
    # RQ adds a plain-text handler of its own only when no handler would print its lines: the JSON one does.
    configure_logging(settings.log_level)
    from workers.engine import DeviceError
    from workers.jobs.common import device, set_device

    set_device(args.device)

    try:
        chosen = device()  # fail fast on a device this process cannot use
    except DeviceError as exc:
        log_event(log, "worker.bad_device", level=logging.ERROR, error=str(exc))
        return 2

    from workers.reconciler import reconcile

    log_event(log, "worker.starting", queue=settings.queue_name, device=str(chosen))
    reconcile()
    enqueue_due_retries()
    maintenance = None
    if not args.burst:
        maintenance = Maintenance(settings.reconcile_interval_s)
        maintenance.start()
    worker = ServiceWorker([get_queue()], connection=get_redis(), name=args.name)
    try:
        worker.work(burst=args.burst, logging_level=settings.log_level.upper())
    finally:
        if maintenance is not None:
            maintenance.stopped.set()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
