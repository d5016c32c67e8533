"""With the real job queue (Redis + RQ, the session's unique queue), accepted requests are enqueued after
commit by the queue's background sender and their job id is recorded; no worker runs here."""

import time

from rq import Queue

from app.core.config import get_settings
from app.deletions.orm import DeletionRequest
from tests.app.fakes import RecordingJobs
from tests.helpers import register_uploaded_model, upload_digits
from workers.queue import enqueue_deletion_batch


def test_deletion_job_lands_in_the_queue(client, app, queue_name):
    ds = upload_digits(client, rows=50)
    model = register_uploaded_model(client, ds["id"])
    resp = client.post(f"/v1/models/{model['id']}/deletions", json={"sample_ids": ["user-3"]})
    assert resp.status_code == 202, resp.text
    request_id = resp.json()["id"]
    with app.state.sessionmaker() as s:
        job_id = s.get(DeletionRequest, request_id).job_id
    assert job_id
    queue = Queue(queue_name, connection=app.state.jobs.redis)
    deadline = time.monotonic() + 5
    while job_id not in queue.job_ids and time.monotonic() < deadline:
        time.sleep(0.01)
    assert job_id in queue.job_ids
    queue.remove(job_id)


def test_many_requests_are_enqueued_together_and_none_is_lost(client, app, queue_name):
    """Requests accepted back to back are sent to Redis in batches; every one lands under its recorded job id,
    and closing the queue sends whatever is still waiting."""
    ds = upload_digits(client, rows=80)
    model = register_uploaded_model(client, ds["id"])
    ids = []
    for i in range(40):
        resp = client.post(f"/v1/models/{model['id']}/deletions", json={"sample_ids": [f"user-{i}"]})
        assert resp.status_code == 202, resp.text
        ids.append(resp.json()["id"])
    app.state.jobs.close()
    with app.state.sessionmaker() as s:
        job_ids = {s.get(DeletionRequest, request_id).job_id for request_id in ids}
    queue = Queue(queue_name, connection=app.state.jobs.redis)
    assert job_ids <= set(queue.job_ids)
    for job_id in job_ids:
        queue.remove(job_id)


def test_requests_sent_together_share_one_job_per_model(client, app, queue_name):
    """The sender's batch: several requests of one model get one job (their rows point at it); a model with a
    single request keeps the job id recorded with it."""
    assert get_settings().queue_name == queue_name
    ds = upload_digits(client, rows=60)
    model_a = register_uploaded_model(client, ds["id"])
    model_b = register_uploaded_model(client, ds["id"])
    app.state.jobs, real = RecordingJobs(), app.state.jobs  # hold the enqueues back; sent below in one batch
    ids_a = []
    for i in range(5):
        resp = client.post(f"/v1/models/{model_a['id']}/deletions", json={"sample_ids": [f"user-{i}"]})
        assert resp.status_code == 202, resp.text
        ids_a.append(resp.json()["id"])
    resp = client.post(f"/v1/models/{model_b['id']}/deletions", json={"sample_ids": ["user-0"]})
    id_b = resp.json()["id"]
    app.state.jobs = real
    with app.state.sessionmaker() as s:
        rows = {r: s.get(DeletionRequest, r) for r in [*ids_a, id_b]}
    b_job = rows[id_b].job_id
    sent = enqueue_deletion_batch([(r, row.model_id, row.job_id) for r, row in rows.items()])
    assert len(sent) == 2 and b_job in sent
    with app.state.sessionmaker() as s:
        a_jobs = {s.get(DeletionRequest, r).job_id for r in ids_a}
        assert s.get(DeletionRequest, id_b).job_id == b_job
    assert len(a_jobs) == 1 and a_jobs <= set(sent)
    queue = Queue(queue_name, connection=real.redis)
    assert set(sent) <= set(queue.job_ids)
    for job_id in sent:
        queue.remove(job_id)
