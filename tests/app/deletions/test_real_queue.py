"""With the real job queue (Redis + RQ, the session's unique queue), accepted requests are enqueued after
commit by the queue's background sender and their job id is recorded; no worker runs here."""

import time

from rq import Queue

from app.deletions.orm import DeletionRequest
from tests.helpers import register_uploaded_model, upload_digits


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
