"""Client behaviour that the running service rarely shows: problem parsing, retries with idempotency keys, paging,
checksum failures. Answers come from httpx.MockTransport; the user path against the real service is in
test_cli_service.py.
"""

import hashlib
import json

import httpx
import pytest
from unlearn_client import ChecksumError, ClientError, UnlearnClient, WaitTimeout

PAYLOAD = b"\x08\x00\x00\x00\x00\x00\x00\x00{}      " * 100
SHA = hashlib.sha256(PAYLOAD).hexdigest()


def problem(status: int, detail: str, **extra) -> httpx.Response:
    body = {"type": "about:blank", "title": "Conflict", "status": status, "detail": detail, **extra}
    return httpx.Response(status, json=body, headers={"content-type": "application/problem+json"})


def client_for(handler) -> UnlearnClient:
    return UnlearnClient("http://svc", "key-1", transport=httpx.MockTransport(handler))


@pytest.fixture(autouse=True)
def no_sleep(monkeypatch):
    monkeypatch.setattr("unlearn_client.client.time.sleep", lambda s: None)


def test_problem_details_become_client_error():
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.headers["Authorization"] == "Bearer key-1"
        return problem(409, "ids already deleted: u1", conflicts=[{"sample_id": "u1", "deletion_id": "r0"}])

    with client_for(handler) as client, pytest.raises(ClientError) as err:
        client.request_deletion("m1", ["u1"])
    assert (err.value.status, err.value.title, err.value.detail) == (409, "Conflict", "ids already deleted: u1")
    assert err.value.problem["conflicts"][0]["deletion_id"] == "r0"
    assert str(err.value) == "409 Conflict: ids already deleted: u1"


def test_non_problem_error_keeps_status_and_text():
    with client_for(lambda r: httpx.Response(502, text="bad gateway from proxy")) as client:
        with pytest.raises(ClientError) as err:
            client.get_model("m1")
    assert err.value.status == 502 and "proxy" in err.value.detail


def test_posts_carry_an_idempotency_key_and_repeat_it_after_503_and_lost_answers():
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append((request.method, request.headers.get("Idempotency-Key")))
        if len(calls) == 1:
            return problem(503, "database not answering")
        if len(calls) == 2:
            raise httpx.ReadError("connection reset after the request was sent")
        assert json.loads(request.content) == {"sample_ids": ["u1"], "reason": "gdpr", "method": "retrain"}
        return httpx.Response(202, json={"id": "d1", "status": "queued"})

    with client_for(handler) as client:
        got = client.request_deletion("m1", ["u1"], reason="gdpr", method="retrain")
    assert got["id"] == "d1"
    keys = {key for _, key in calls}
    assert len(calls) == 3 and len(keys) == 1 and next(iter(keys)).startswith("unlearn-client-")

    calls.clear()
    with client_for(handler) as client:
        client.request_deletion("m1", ["u1"], reason="gdpr", method="retrain", idempotency_key="mine-1")
    assert calls == [("POST", "mine-1")] * 3
    # Two calls never share a generated key: the service would answer the second with the first's result.
    with client_for(lambda r: calls.append(r.headers["Idempotency-Key"]) or httpx.Response(201, json={})) as client:
        client.create_tenant("a")
        client.create_tenant("b")
    assert calls[-1] != calls[-2]


def test_uploads_are_sent_again_whole(tmp_path):
    (tmp_path / "d.safetensors").write_bytes(PAYLOAD)
    bodies = []

    def handler(request: httpx.Request) -> httpx.Response:
        bodies.append((request.headers["Idempotency-Key"], request.read()))
        return problem(503, "busy") if len(bodies) == 1 else httpx.Response(201, json={"id": "ds1"})

    with client_for(handler) as client:
        assert client.upload_dataset("d", tmp_path / "d.safetensors", ids=["a", "b"])["id"] == "ds1"
    assert len(bodies) == 2 and bodies[0][0] == bodies[1][0]
    for _key, body in bodies:  # the file is read again from its start for the second attempt
        assert PAYLOAD in body and b"a\nb\n" in body


def test_deletes_are_repeated_only_when_the_service_refused():
    statuses = iter([503, 502])
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.method)
        return problem(next(statuses), "try later")

    with client_for(handler) as client, pytest.raises(ClientError) as err:
        client.delete_model("m1")
    # 503 says nothing was done: sent again; 502 may come after the removal happened: reported.
    assert seen == ["DELETE", "DELETE"] and err.value.status == 502


def test_lists_follow_next_cursor_with_the_same_filters():
    pages = {
        None: {"items": [{"id": "d3"}, {"id": "d2"}], "next_cursor": "c1", "limit": 2},
        "c1": {"items": [{"id": "d1"}], "next_cursor": None, "limit": 2},
    }
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        params = dict(request.url.params)
        seen.append(params)
        assert request.url.raw_path.split(b"?")[0] == b"/v1/models/m%201/deletions"
        return httpx.Response(200, json=pages[params.get("cursor")])

    with client_for(handler) as client:
        ids = [d["id"] for d in client.iterate(client.list_deletions, model_id="m 1", status="succeeded", limit=2)]
        first = client.list_deletions(model_id="m 1", status="succeeded", limit=2)
    assert ids == ["d3", "d2", "d1"]
    assert first["next_cursor"] == "c1"
    assert seen[:2] == [
        {"status": "succeeded", "limit": "2"},
        {"status": "succeeded", "limit": "2", "cursor": "c1"},
    ]


def test_wait_reports_every_state_and_times_out():
    states = iter(["queued", "running", "running", "succeeded"])

    def handler(request: httpx.Request) -> httpx.Response:
        status = next(states)
        return httpx.Response(200, json={"id": "d1", "status": status, "progress": 0.5, "stage": "gradients"})

    seen = []
    with client_for(handler) as client:
        done = client.wait_for_deletion("d1", on_progress=lambda d: seen.append(d["status"]))
    assert done["status"] == "succeeded" and seen == ["queued", "running", "running", "succeeded"]

    with client_for(lambda r: httpx.Response(200, json={"id": "d2", "status": "running"})) as client:
        with pytest.raises(WaitTimeout):
            client.wait_for_deletion("d2", timeout=0.0)


@pytest.mark.parametrize("etag", [f'"{SHA}"', f'W/"{SHA}"'])
def test_download_checks_the_etag(tmp_path, etag):
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/v1/models/m1/versions/3/checkpoint"
        return httpx.Response(200, content=PAYLOAD, headers={"ETag": etag})

    with client_for(handler) as client:
        result = client.download_checkpoint("m1", 3, tmp_path / "m.safetensors")
    assert result.sha256 == SHA and result.size == len(PAYLOAD)
    assert (tmp_path / "m.safetensors").read_bytes() == PAYLOAD
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.safetensors"]


def test_download_with_a_wrong_sha_leaves_nothing(tmp_path):
    handler = lambda r: httpx.Response(200, content=PAYLOAD, headers={"ETag": '"' + "0" * 64 + '"'})  # noqa: E731
    with client_for(handler) as client, pytest.raises(ChecksumError):
        client.download_checkpoint("m1", 1, tmp_path / "m.safetensors")
    assert list(tmp_path.iterdir()) == []


def test_download_of_a_purged_version_is_410(tmp_path):
    with client_for(lambda r: problem(410, "version 1 was purged")) as client, pytest.raises(ClientError) as err:
        client.download_checkpoint("m1", 1, tmp_path / "m.safetensors")
    assert err.value.status == 410 and list(tmp_path.iterdir()) == []


def test_download_skips_a_file_that_is_already_the_checkpoint(tmp_path):
    (tmp_path / "m.safetensors").write_bytes(PAYLOAD)

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.headers["If-None-Match"] == f'"{SHA}"'
        return httpx.Response(304, headers={"ETag": f'"{SHA}"'})

    with client_for(handler) as client:
        result = client.download_checkpoint("m1", 1, tmp_path / "m.safetensors")
    assert not result.transferred and result.sha256 == SHA and result.size == len(PAYLOAD)
