"""JSON log lines (job id binding, secret masking) and the metrics read at scrape time (queue depth, open
deletion requests), without worker processes."""

import json
import logging

import pytest
from prometheus_client.parser import text_string_to_metric_families

from app.core.deps import JobQueue
from app.core.logging import JsonFormatter, job_id_var, request_id_var
from app.core.metrics import LiveCollector, render_metrics


def _line(msg: str = "x.happened", **fields) -> dict:
    record = logging.LogRecord("workers.jobs", logging.INFO, __file__, 1, msg, None, None)
    record.fields = fields
    return json.loads(JsonFormatter().format(record))


def test_a_line_logged_while_a_job_runs_carries_its_id():
    assert "job_id" not in _line()
    token = job_id_var.set("del-abc-1234")
    try:
        entry = _line("deletion.applied", rows=3)
    finally:
        job_id_var.reset(token)
    assert entry["job_id"] == "del-abc-1234" and entry["event"] == "deletion.applied" and entry["rows"] == 3
    assert "job_id" not in _line()


def test_a_line_carries_the_http_request_id_in_the_api():
    token = request_id_var.set("req-1")
    try:
        assert _line()["http_request_id"] == "req-1" and "request_id" not in _line()
    finally:
        request_id_var.reset(token)


def test_url_passwords_are_masked():
    entry = _line(
        "db.failed",
        error="could not connect to postgresql+psycopg://unlearn:s3cr3t@db:5432/unlearn",
        redis="redis://:hunter2@redis:6379/0",
        plain="postgresql://postgres@127.0.0.1:5432/postgres",
    )
    text = json.dumps(entry)
    assert "s3cr3t" not in text and "hunter2" not in text
    assert entry["error"].endswith("postgresql+psycopg://unlearn:***@db:5432/unlearn")
    assert entry["redis"] == "redis://:***@redis:6379/0"
    assert entry["plain"] == "postgresql://postgres@127.0.0.1:5432/postgres"


def _samples(body: bytes) -> dict:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
    }


def test_live_collector_reports_its_sources_and_survives_one_that_fails():
    def down() -> dict[str, int]:
        raise ConnectionError("redis is down")

    live = LiveCollector(queue="q", queue_counts=down, request_counts=lambda: {"queued": 4, "running": 1})
    samples = _samples(render_metrics(extra=[live])[0])
    assert samples[("unlearn_metrics_source_up", (("source", "redis"),))] == 0
    assert samples[("unlearn_metrics_source_up", (("source", "database"),))] == 1
    assert samples[("unlearn_deletion_requests_open", (("status", "queued"),))] == 4
    assert not any(name == "unlearn_queue_jobs" for name, _ in samples)


@pytest.mark.parametrize("backend", ["postgresql"])
def test_metrics_reads_queue_depth_and_open_requests_now(client, app):
    from workers.queue import get_queue

    queue = get_queue()
    before = _samples(client.get("/metrics").content)
    key = ("unlearn_queue_jobs", (("queue", queue.name), ("state", "queued")))
    assert before[("unlearn_metrics_source_up", (("source", "redis"),))] == 1
    job = queue.enqueue("builtins.print", "never run", job_id=f"obs-test-{id(before)}")
    try:
        after = _samples(client.get("/metrics").content)
    finally:
        job.delete(remove_from_queue=True)
    assert after[key] == before[key] + 1
    assert ("unlearn_deletion_requests_open", (("status", "running"),)) in after
    app.state.jobs = JobQueue("redis://127.0.0.1:1/0")  # nothing listens there
    assert b'unlearn_metrics_source_up{source="redis"} 0.0' in client.get("/metrics").content
