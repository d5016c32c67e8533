"""With the real job queue (Redis + RQ, the session's unique queue), accepted requests are enqueued after
commit and their job id is recorded; no worker runs here."""

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
    assert job_id in queue.job_ids
    queue.remove(job_id)
