"""Metrics and logs across processes: a real worker subprocess writes to PROMETHEUS_MULTIPROC_DIR, the API's
/metrics adds it up; the worker's JSON log lines carry the job id recorded on the deletion request."""

import json
import re
import socket
from pathlib import Path

import pytest
import torch
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from app.core.config import get_settings
from app.main import create_app
from tests.workers import factories as f
from workers.engine import ArchSpec, build_model, checkpoint_bytes
from workers.queue import enqueue_deletion

ROWS = [3, 4, 5]
DELETION_PHASES = {"load", "load_checkpoint", "evidence_before", "update", "evidence_after", "write", "publish"}

Samples = dict[tuple[str, frozenset], float]


def scrape(api: TestClient) -> Samples:
    resp = api.get("/metrics")
    assert resp.status_code == 200, resp.text
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(resp.text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def moved(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


def log_lines(log_dir: Path) -> list[dict]:
    lines = []
    for path in sorted(log_dir.glob("worker-*.log")):
        for line in path.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                lines.append(json.loads(line))
    return lines


@pytest.fixture
def multiproc_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "prometheus"
    folder.mkdir()
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(folder))
    return folder


@pytest.mark.parametrize("backend", ["postgresql"])
def test_a_deletion_moves_the_metrics_and_its_log_lines_carry_the_job_id(settings, workers, multiproc_dir):
    tenant = f.make_tenant()
    model_id = f.trained_model(tenant, f.make_dataset(tenant), unlearn_defaults=f.MOVING_UPDATE)
    rid = f.make_deletion(tenant, model_id, ROWS)
    enqueue_deletion(rid, model_id)
    queue = get_settings().queue_name

    with TestClient(create_app(get_settings())) as api:
        before = scrape(api)
        # read live from Redis and the database: the cache refresh queued by training, and the deletion
        assert value(before, "unlearn_queue_jobs", queue=queue, state="queued") == 2
        assert value(before, "unlearn_deletion_requests_open", status="queued") == 1
        assert value(before, "unlearn_metrics_source_up", source="redis") == 1
        assert value(before, "unlearn_metrics_source_up", source="database") == 1

        workers.start()
        done = f.wait_for(lambda: (r := f.request(rid)).status in ("succeeded", "failed") and r, what="deletion")
        assert done.status == "succeeded", done.error
        after = f.wait_for(  # the worker records the update right after its commit; the AUC gauge is set last
            lambda: (
                (s := scrape(api)) and ("unlearn_model_membership_auc", frozenset({("model_id", model_id)})) in s and s
            ),
            what="update recorded in /metrics",
        )

        assert moved(before, after, "unlearn_deletions_applied_total", method="iau") == 1
        assert moved(before, after, "unlearn_deleted_rows_total", method="iau") == len(ROWS)
        assert moved(before, after, "unlearn_update_batch_requests_count", method="iau") == 1
        assert moved(before, after, "unlearn_update_batch_requests_sum", method="iau") == 1
        assert moved(before, after, "unlearn_update_batch_requests_bucket", method="iau", le="1.0") == 1
        for phase in DELETION_PHASES:
            assert moved(before, after, "unlearn_job_phase_duration_seconds_count", job="deletion", phase=phase) == 1
            assert value(after, "unlearn_job_phase_duration_seconds_sum", job="deletion", phase=phase) >= 0
        auc = done.evidence["after"]["membership_auc"]
        assert auc is not None
        assert value(after, "unlearn_model_membership_auc", model_id=model_id) == pytest.approx(auc)
        assert value(after, "unlearn_deletion_requests_open", status="queued") == 0
        assert value(after, "unlearn_deletion_requests_open", status="running") == 0
        f.wait_for(lambda: value(scrape(api), "unlearn_job_duration_seconds_count", job="deletion", outcome="ok"))

        # a request that cannot be applied: counted as a permanent failure
        arch = {"name": "logreg", "config": {"in_features": 64, "num_classes": 10}}
        torch.manual_seed(0)
        state = build_model(ArchSpec(arch["name"], arch["config"])).state_dict()
        uploaded = f.make_uploaded_model(tenant, f.make_dataset(tenant), checkpoint_bytes(state), arch)
        bad = f.make_deletion(tenant, uploaded, [7], method="retrain")
        enqueue_deletion(bad, uploaded)
        f.wait_for(lambda: f.request(bad).status == "failed", what="permanent failure")
        failed = f.wait_for(
            lambda: (
                (s := scrape(api)) and value(s, "unlearn_job_failures_total", job="deletion", kind="permanent") and s
            ),
            what="failure counted in /metrics",
        )
        assert moved(before, failed, "unlearn_job_failures_total", job="deletion", kind="permanent") == 1
        assert moved(before, failed, "unlearn_deletions_applied_total", method="iau") == 1  # nothing else applied

    # one file per metric type and process, named by host and pid (unique across containers sharing the folder)
    host = re.escape(socket.gethostname().replace("_", "-"))
    pid = workers.procs[0].pid
    names = sorted(p.name for p in multiproc_dir.iterdir())
    assert {"counter", "histogram", "gauge_mostrecent"} <= {n.rsplit("_", 1)[0] for n in names}
    assert all(re.fullmatch(rf"(counter|histogram|gauge_mostrecent)_{host}-\d+\.db", n) for n in names), names
    assert f"counter_{socket.gethostname().replace('_', '-')}-{pid}.db" in names

    job_id = f.request(rid).job_id
    assert job_id and job_id.startswith(f"del-{rid}-")
    lines = log_lines(workers.log_dir)
    applied = [e for e in lines if e["event"] == "deletion.applied" and e.get("model_id") == model_id]
    assert len(applied) == 1 and applied[0]["job_id"] == job_id
    assert applied[0]["rows"] == len(ROWS) and applied[0]["level"] == "info"
    own = [e for e in lines if e.get("job_id") == job_id]
    assert {"job.started", "deletion.applied", "version.purged", "job.enqueued", "job.finished"} <= {
        e["event"] for e in own
    }
    # the cache refresh queued by this job: logged under this job, naming the new job separately
    enqueued = next(e for e in own if e["event"] == "job.enqueued" and e["kind"] == "cache")
    assert enqueued["enqueued_job_id"] == f"cache-{model_id}-v2"
    # every line between this job's start and finish carries its id
    start = next(i for i, e in enumerate(lines) if e["event"] == "job.started" and e.get("job_id") == job_id)
    end = next(i for i, e in enumerate(lines) if e["event"] == "job.finished" and e.get("job_id") == job_id)
    assert all(e.get("job_id") == job_id for e in lines[start : end + 1] if e["logger"].startswith("workers.jobs"))
    assert not any("features" in e or "labels" in e for e in lines)


def test_a_database_error_is_recorded_and_logged_without_its_parameters():
    from sqlalchemy import create_engine, text

    from workers.jobs.common import short_error

    engine = create_engine("sqlite://")
    with pytest.raises(Exception) as raised, engine.connect() as conn:
        conn.execute(text("SELECT x FROM missing WHERE sample_id = :s"), {"s": "user-42"})
    assert "user-42" in str(raised.value)
    assert short_error(raised.value) == "OperationalError: no such table: missing"
