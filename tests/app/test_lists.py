"""Every list endpoint follows one convention ({items, next_cursor, limit}, newest first; the audit log oldest first):
walked page by page with the cursor, each item comes exactly once, filters hold on every page, rows added while a
client pages do not shift the pages, and bad cursors or limits are 422 problems."""

from datetime import datetime, timedelta

import pytest
from sqlalchemy import update

from app.deletions.orm import DeletionRequest
from app.models.orm import ModelVersion
from tests.app.fakes import RecordingJobs
from tests.conftest import auth
from tests.helpers import register_uploaded_model, upload_digits

PAGE = 2  # small pages, so every list below has several


def walk(client, path: str, **params) -> list[dict]:
    """Every item of a list, page by page; checks each page's shape and that the first page was not the last."""
    items, cursor, pages = [], None, 0
    while True:
        query = params | {"limit": PAGE} | ({"cursor": cursor} if cursor else {})
        resp = client.get(path, params=query)
        assert resp.status_code == 200, resp.text
        page = resp.json()
        assert set(page) == {"items", "next_cursor", "limit"} and page["limit"] == PAGE
        assert len(page["items"]) <= PAGE
        items += page["items"]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            return items
        assert len(page["items"]) == PAGE, "only the last page may be short"


def ids(items: list[dict], key: str = "id") -> list:
    return [item[key] for item in items]


@pytest.fixture
def objects(app, client, make_key):
    """Three data sets, three models (two on the first data set), a model with versions 1..3, four deletions (one
    failed), and two more keys, all in this test's tenant."""
    app.state.jobs = RecordingJobs()
    datasets = [upload_digits(client, rows=30) for _ in range(3)]
    models = [
        register_uploaded_model(client, datasets[0]["id"], name="a"),
        register_uploaded_model(client, datasets[0]["id"], name="b"),
        register_uploaded_model(client, datasets[1]["id"], name="c"),
    ]
    first = models[0]["id"]
    with app.state.sessionmaker() as s:
        for v in (2, 3):
            s.add(ModelVersion(model_id=first, version=v, parent_version=v - 1, checkpoint_sha256=f"{v}" * 64,
                               checkpoint_size=10, state="purged" if v == 2 else "available"))  # fmt: skip
        s.commit()
    deletions = []
    for model_id, sample in ((first, "user-1"), (first, "user-2"), (first, "user-3"), (models[2]["id"], "user-1")):
        resp = client.post(f"/v1/models/{model_id}/deletions", json={"sample_ids": [sample]})
        assert resp.status_code == 202, resp.text
        deletions.append(resp.json())
    with app.state.sessionmaker() as s:
        s.execute(update(DeletionRequest).where(DeletionRequest.id == deletions[1]["id"]).values(status="failed"))
        s.commit()
    keys = [make_key("reader"), make_key("requester")]
    return {"datasets": datasets, "models": models, "deletions": deletions, "keys": keys}


def test_every_list_walks_past_its_first_page(client, objects):
    newest_first = lambda xs: [x["id"] for x in reversed(xs)]  # noqa: E731
    assert ids(walk(client, "/v1/datasets")) == newest_first(objects["datasets"])
    assert ids(walk(client, "/v1/models")) == newest_first(objects["models"])
    first = objects["models"][0]["id"]
    versions = walk(client, f"/v1/models/{first}/versions")
    assert ids(versions, "version") == [3, 2, 1] and versions[1]["state"] == "purged"
    assert ids(walk(client, f"/v1/models/{first}/deletions")) == newest_first(objects["deletions"][:3])
    assert ids(walk(client, "/v1/deletions")) == newest_first(objects["deletions"])
    keys = walk(client, "/v1/keys")
    assert len(keys) == 3 and {k["role"] for k in keys} == {"admin", "reader", "requester"}
    entries = walk(client, "/v1/audit")
    seqs = ids(entries, "seq")
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs) and len(seqs) > PAGE
    deletion_id = objects["deletions"][0]["id"]
    about = walk(client, "/v1/audit", deletion_id=deletion_id)
    assert about and all(e["refs"]["request_id"] == deletion_id for e in about)


def test_filters_hold_on_every_page(app, client, objects):
    first, dataset = objects["models"][0]["id"], objects["datasets"][0]["id"]
    assert ids(walk(client, "/v1/models", dataset_id=dataset)) == [objects["models"][1]["id"], first]
    assert walk(client, "/v1/models", status="training") == []
    queued = walk(client, "/v1/deletions", status="queued")
    assert len(queued) == 3 and {d["status"] for d in queued} == {"queued"}
    assert ids(walk(client, "/v1/deletions", status="failed")) == [objects["deletions"][1]["id"]]
    assert len(walk(client, "/v1/deletions", model_id=first)) == 3

    created = [datetime.fromisoformat(d["created_at"]) for d in objects["deletions"]]
    since = walk(client, "/v1/deletions", since=created[1].isoformat())
    assert ids(since) == [d["id"] for d in reversed(objects["deletions"][1:])]
    until = walk(client, f"/v1/models/{first}/deletions", until=created[2].isoformat())
    assert ids(until) == [objects["deletions"][1]["id"], objects["deletions"][0]["id"]]
    naive = (created[0] - timedelta(days=1)).replace(tzinfo=None).isoformat()  # no zone: UTC
    assert len(walk(client, "/v1/deletions", since=naive)) == 4


def test_pages_do_not_shift_when_rows_are_added(client, objects):
    page = client.get("/v1/datasets", params={"limit": PAGE}).json()
    upload_digits(client, rows=30)  # newer than everything: it belongs before the first page
    rest = client.get("/v1/datasets", params={"limit": 10, "cursor": page["next_cursor"]}).json()
    seen = ids(page["items"]) + ids(rest["items"])
    assert seen == [d["id"] for d in reversed(objects["datasets"])] and rest["next_cursor"] is None


def test_bad_cursors_and_limits_are_problems(client, objects):
    versions_cursor = client.get(f"/v1/models/{objects['models'][0]['id']}/versions", params={"limit": 1}).json()
    for path, params in [
        ("/v1/datasets", {"cursor": "not a cursor"}),
        ("/v1/datasets", {"cursor": versions_cursor["next_cursor"]}),  # another list's cursor
        ("/v1/deletions", {"cursor": "W10"}),  # valid base64 of "[]"
        ("/v1/models", {"limit": 0}),
        ("/v1/models", {"limit": 201}),
        ("/v1/audit", {"limit": 1001}),
        ("/v1/deletions", {"status": "lost"}),
        ("/v1/deletions", {"since": "yesterday"}),
        ("/v1/deletions", {"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"}),
    ]:
        resp = client.get(path, params=params)
        assert resp.status_code == 422, (path, params, resp.text)
        assert resp.headers["content-type"].startswith("application/problem+json") and resp.json()["detail"]


def test_lists_show_only_the_callers_tenant(root_client, client, objects):
    other = root_client.post("/v1/tenants", json={"name": "lists-" + objects["models"][0]["id"][:8]}).json()
    key = root_client.post("/v1/keys", json={"name": "o", "role": "admin", "tenant_id": other["id"]}).json()["key"]
    headers = auth(key)
    for path in ["/v1/datasets", "/v1/models", "/v1/deletions"]:
        assert client.get(path, headers=headers).json()["items"] == [], path
    assert len(client.get("/v1/keys", headers=headers).json()["items"]) == 1
    first = objects["models"][0]["id"]
    for path in [f"/v1/models/{first}/deletions", f"/v1/models/{first}/versions"]:
        assert client.get(path, headers=headers).status_code == 404, path
    reader = client.get(f"/v1/models/{first}/deletions", headers=auth(objects["keys"][0]))
    assert reader.status_code == 403  # deletions are for the requester role and above
