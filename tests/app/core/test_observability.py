"""JSON log lines (job id binding, secret masking, other libraries' lines as fields), the metrics read at scrape
time (queue depth, open deletion requests), /metrics behind its token and labels of bounded cardinality,
without worker processes."""

import json
import logging
import subprocess
import sys

import pytest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr, ValidationError

from app.core.config import Settings
from app.core.deps import JobQueue
from app.core.logging import JsonFormatter, configure_logging, job_id_var, request_id_var
from app.core.metrics import LiveCollector, record_update, render_metrics
from tests.conftest import auth

METRICS_TOKEN = "metrics-token-of-the-tests"


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


def test_another_librarys_printf_line_keeps_its_values_as_fields():
    """RQ and uvicorn log printf-style: the template is the event, the values are a list, colours are dropped."""
    record = logging.LogRecord(
        "rq.worker",
        logging.INFO,
        __file__,
        1,
        "Worker %s: %s: %s (%s)",
        ("w1", "\x1b[32munlearn\x1b[39;49;00m", 3, None),
        None,
    )
    entry = json.loads(JsonFormatter().format(record))
    assert entry["event"] == "Worker %s: %s: %s (%s)" and entry["args"] == ["w1", "unlearn", 3, None]
    assert entry["logger"] == "rq.worker" and entry["level"] == "info" and isinstance(entry["pid"], int)
    mapping = logging.LogRecord("lib", logging.WARNING, __file__, 1, "%(n)d rows", ({"n": 5},), None)
    assert json.loads(JsonFormatter().format(mapping))["args"] == {"n": 5}
    plain = logging.LogRecord("uvicorn.error", logging.INFO, __file__, 1, "Application startup complete.", None, None)
    plain.color_message = "Application \x1b[1mstartup\x1b[0m complete."
    plain.task = "lifespan"
    entry = json.loads(JsonFormatter().format(plain))
    assert entry["event"] == "Application startup complete." and "args" not in entry
    assert entry["task"] == "lifespan" and "color_message" not in entry


def test_every_logger_and_warnings_write_json_lines_to_stderr():
    """configure_logging in a fresh process: the service's events, another library's lines, a Python warning
    and an uncaught exception each come out as one JSON object on stderr, and nothing else is written."""
    code = """
import logging, warnings
from app.core.logging import configure_logging, log_event
logging.basicConfig()  # a plain-text handler some library might add: replaced
configure_logging("INFO")
log_event(logging.getLogger("app.demo"), "demo.happened", rows=3)
logging.getLogger("some.library").warning("retrying %s in %d s", "redis://u:pw@h:1/0", 2)
logging.getLogger("app.demo").debug("not at INFO")
warnings.warn("a library warning")
raise RuntimeError("boom")
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and result.stdout == ""
    lines = [json.loads(line) for line in result.stderr.splitlines()]
    events = {e["event"]: e for e in lines}
    assert events["demo.happened"]["rows"] == 3 and events["demo.happened"]["logger"] == "app.demo"
    retry = events["retrying %s in %d s"]
    assert retry["args"] == ["redis://u:***@h:1/0", 2] and retry["level"] == "warning"
    assert any(e["logger"] == "py.warnings" and "a library warning" in e["event"] for e in lines)
    crash = events["process.uncaught_exception"]
    assert crash["level"] == "critical" and crash["exc_type"] == "RuntimeError" and "boom" in crash["traceback"]
    assert len(lines) == 4


def test_configure_logging_is_idempotent():
    configure_logging("INFO")
    configure_logging("INFO")
    ours = [h for h in logging.getLogger().handlers if isinstance(h.formatter, JsonFormatter)]
    assert len(ours) == 1 and logging.getLogger("app").level == logging.INFO


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


@pytest.fixture
def metrics_headers(app) -> dict[str, str]:
    """The app's settings with a metrics token, and the header that sends it."""
    app.state.settings = app.state.settings.model_copy(update={"metrics_token": SecretStr(METRICS_TOKEN)})
    return auth(METRICS_TOKEN)


@pytest.mark.parametrize("backend", ["postgresql"])
def test_metrics_reads_queue_depth_and_open_requests_now(client, app, metrics_headers):
    from workers.queue import get_queue

    queue = get_queue()
    before = _samples(client.get("/metrics", headers=metrics_headers).content)
    key = ("unlearn_queue_jobs", (("queue", queue.name), ("state", "queued")))
    assert before[("unlearn_metrics_source_up", (("source", "redis"),))] == 1
    job = queue.enqueue("builtins.print", "never run", job_id=f"obs-test-{id(before)}")
    try:
        after = _samples(client.get("/metrics", headers=metrics_headers).content)
    finally:
        job.delete(remove_from_queue=True)
    assert after[key] == before[key] + 1
    assert ("unlearn_deletion_requests_open", (("status", "running"),)) in after
    app.state.jobs = JobQueue("redis://127.0.0.1:1/0")  # nothing listens there
    body = client.get("/metrics", headers=metrics_headers).content
    assert b'unlearn_metrics_source_up{source="redis"} 0.0' in body


@pytest.mark.parametrize("backend", ["sqlite"])
def test_metrics_needs_the_token(client, app, metrics_headers):
    """401 problem without the token or with another one (the API key of an admin is not it either)."""
    for headers in [{"Authorization": ""}, auth("not-the-metrics-token"), {"Authorization": f"Basic {METRICS_TOKEN}"}]:
        resp = client.get("/metrics", headers=headers)
        assert resp.status_code == 401, resp.text
        assert resp.headers["content-type"].startswith("application/problem+json")
        assert resp.headers["www-authenticate"] == "Bearer" and "UNLEARN_METRICS_TOKEN" in resp.json()["detail"]
    assert client.get("/metrics").status_code == 401  # the client's own (admin API key) header
    ok = client.get("/metrics", headers=metrics_headers)
    assert ok.status_code == 200 and ok.headers["content-type"].startswith("text/plain")
    assert b"unlearn_http_requests_total" in ok.content


@pytest.mark.parametrize("backend", ["sqlite"])
def test_metrics_are_closed_without_a_token_setting(client, app):
    """No UNLEARN_METRICS_TOKEN: nobody reads /metrics (403 problem saying how to open it)."""
    assert app.state.settings.metrics_token is None
    for headers in [{}, auth(""), auth("anything-at-all-here")]:
        resp = client.get("/metrics", headers=headers)
        assert resp.status_code == 403 and "UNLEARN_METRICS_TOKEN" in resp.json()["detail"]


def test_metrics_token_setting():
    assert Settings(_env_file=None, UNLEARN_METRICS_TOKEN="").metrics_token is None
    assert Settings(_env_file=None, UNLEARN_METRICS_TOKEN="  ").metrics_token is None
    token = Settings(_env_file=None, UNLEARN_METRICS_TOKEN=METRICS_TOKEN).metrics_token
    assert token.get_secret_value() == METRICS_TOKEN and METRICS_TOKEN not in repr(token)
    with pytest.raises(ValidationError, match="at least 16 characters"):
        Settings(_env_file=None, UNLEARN_METRICS_TOKEN="short")


@pytest.mark.parametrize("backend", ["sqlite"])
def test_labels_take_a_bounded_set_of_values(client, app, metrics_headers):
    """Methods outside the HTTP set count as "other"; updates are recorded without the model's id."""
    for method in ["FOO", "BREW", "X" * 40]:
        client.request(method, "/healthz")
    record_update(model_id="model-of-some-tenant", method="iau", requests=2, rows=7, membership_auc=0.51)
    samples = _samples(client.get("/metrics", headers=metrics_headers).content)
    methods = {dict(labels).get("method") for name, labels in samples if name == "unlearn_http_requests_total"}
    assert "other" in methods and not {"FOO", "BREW", "X" * 40} & methods
    assert not any("model_id" in dict(labels) for _name, labels in samples)
    assert samples[("unlearn_update_membership_auc_bucket", (("le", "0.52"), ("method", "iau")))] >= 1
    text = client.get("/metrics", headers=metrics_headers).text
    assert "model-of-some-tenant" not in text
