"""The async client sends the same calls as the sync one: retries with one idempotency key, paging, waiting,
checked downloads."""

import asyncio
import hashlib
import json

import httpx
import pytest
from unlearn_client import AsyncUnlearnClient, ChecksumError, ClientError

PAYLOAD = b"checkpoint bytes " * 64
SHA = hashlib.sha256(PAYLOAD).hexdigest()


def client_for(handler) -> AsyncUnlearnClient:
    return AsyncUnlearnClient("http://svc", "key-1", transport=httpx.MockTransport(handler))


@pytest.fixture(autouse=True)
def no_sleep(monkeypatch):
    async def instant(_seconds):
        return None

    monkeypatch.setattr("unlearn_client.aio.asyncio.sleep", instant)


def test_retried_post_keeps_its_key_and_waits_until_done():
    keys = []
    states = iter(["queued", "running", "succeeded"])

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            keys.append(request.headers["Idempotency-Key"])
            if len(keys) == 1:
                return httpx.Response(429, headers={"Retry-After": "1"}, json={"title": "Too Many", "detail": "slow"})
            assert json.loads(request.content)["sample_ids"] == ["u1", "u2"]
            return httpx.Response(202, json={"id": "d1", "status": "queued"})
        assert request.url.path == "/v1/deletions/d1"
        return httpx.Response(200, json={"id": "d1", "status": next(states), "progress": 0.5})

    async def run():
        async with client_for(handler) as client:
            deletion = await client.request_deletion("m1", ["u1", "u2"], purpose="privacy")
            seen = []
            done = await client.wait_for_deletion(deletion["id"], on_progress=lambda d: seen.append(d["status"]))
            return done, seen

    done, seen = asyncio.run(run())
    assert done["status"] == "succeeded" and seen == ["queued", "running", "succeeded"]
    assert len(keys) == 2 and keys[0] == keys[1]


def test_async_iteration_walks_every_page():
    def handler(request: httpx.Request) -> httpx.Response:
        cursor = request.url.params.get("cursor")
        if cursor is None:
            return httpx.Response(200, json={"items": [{"seq": 1}, {"seq": 2}], "next_cursor": "2", "limit": 2})
        assert cursor == "2" and request.url.params["deletion_id"] == "d1"
        return httpx.Response(200, json={"items": [{"seq": 3}], "next_cursor": None, "limit": 2})

    async def run():
        async with client_for(handler) as client:
            return [e["seq"] async for e in client.iterate(client.list_audit, deletion_id="d1", limit=2)]

    assert asyncio.run(run()) == [1, 2, 3]


def test_async_download_checks_the_sha(tmp_path):
    def good(request):
        return httpx.Response(200, content=PAYLOAD, headers={"ETag": f'"{SHA}"'})

    def bad(request):
        return httpx.Response(200, content=PAYLOAD + b"!", headers={"ETag": f'"{SHA}"'})

    async def run(handler, name):
        async with client_for(handler) as client:
            return await client.download_checkpoint("m1", 2, tmp_path / name)

    assert asyncio.run(run(good, "ok.safetensors")).sha256 == SHA
    with pytest.raises(ChecksumError):
        asyncio.run(run(bad, "bad.safetensors"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ok.safetensors"]


def test_async_problem_becomes_client_error():
    def handler(request):
        return httpx.Response(404, json={"title": "Not Found", "status": 404, "detail": "model m9 not found"})

    async def run():
        async with client_for(handler) as client:
            await client.get_model("m9")

    with pytest.raises(ClientError) as err:
        asyncio.run(run())
    assert err.value.status == 404 and "m9" in err.value.detail
