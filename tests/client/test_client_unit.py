"""Client behaviour that the running service rarely shows: problem parsing, retries, checksum failures, exit codes.

Answers come from httpx.MockTransport; the whole user path against the real service is in test_cli_service.py.
"""

import hashlib
import json

import httpx
import pytest

from app import cli
from app.client import ChecksumError, ClientError, UnlearnClient, WaitTimeout

PAYLOAD = b"\x08\x00\x00\x00\x00\x00\x00\x00{}      " * 100
SHA = hashlib.sha256(PAYLOAD).hexdigest()


def problem(status: int, detail: str, **extra) -> httpx.Response:
    body = {"type": "about:blank", "title": "Conflict", "status": status, "detail": detail, **extra}
    return httpx.Response(status, json=body, headers={"content-type": "application/problem+json"})


def client_for(handler) -> UnlearnClient:
    return UnlearnClient("http://svc", "key-1", transport=httpx.MockTransport(handler))


def test_problem_details_become_client_error():
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.headers["Authorization"] == "Bearer key-1"
        return problem(409, "ids already deleted: u1", conflicts=[{"id": "u1", "request_id": "r0"}])

    with client_for(handler) as client, pytest.raises(ClientError) as err:
        client.request_deletion("m1", ["u1"])
    assert (err.value.status, err.value.title, err.value.detail) == (409, "Conflict", "ids already deleted: u1")
    assert err.value.problem["conflicts"][0]["request_id"] == "r0"
    assert str(err.value) == "409 Conflict: ids already deleted: u1"


def test_non_problem_error_keeps_status_and_text():
    with client_for(lambda r: httpx.Response(502, text="bad gateway from proxy")) as client:
        with pytest.raises(ClientError) as err:
            client.request_deletion("m1", ["u1"])  # no idempotency key: not repeated
    assert err.value.status == 502 and "proxy" in err.value.detail


def test_gets_and_keyed_posts_are_retried_after_503(monkeypatch):
    monkeypatch.setattr("app.client.time.sleep", lambda s: None)
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append((request.method, request.headers.get("Idempotency-Key")))
        if len(calls) % 2 == 1:
            return problem(503, "database not answering")
        if request.method == "POST":
            assert json.loads(request.content) == {"sample_ids": ["u1"], "reason": "gdpr", "method": "retrain"}
            return httpx.Response(202, json={"id": "d1", "status": "queued"})
        return httpx.Response(200, json={"id": "m1", "status": "ready"})

    with client_for(handler) as client:
        assert client.get_model("m1")["status"] == "ready"
        got = client.request_deletion("m1", ["u1"], reason="gdpr", method="retrain", idempotency_key="k-1")
    assert got["id"] == "d1"
    assert calls == [("GET", None), ("GET", None), ("POST", "k-1"), ("POST", "k-1")]


def test_wait_reports_every_state_and_times_out(monkeypatch):
    monkeypatch.setattr("app.client.time.sleep", lambda s: None)
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


# --- the command line: exit statuses and messages ------------------------------------------------------------


@pytest.fixture
def run_cli(monkeypatch, capsys):
    """Run `unlearn ARGS` against a handler; returns (exit status, stdout, stderr)."""

    def run(handler, *args: str):
        transport = httpx.MockTransport(handler)
        monkeypatch.setattr(cli, "UnlearnClient", lambda url, key, **kw: UnlearnClient(url, key, transport=transport))
        monkeypatch.setattr("app.client.time.sleep", lambda s: None)
        try:
            code = cli.main(["--url", "http://svc", "--api-key", "k", *args])
        except SystemExit as exc:
            code = exc.code
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


def test_cli_reports_problem_and_exits_1(run_cli):
    code, out, err = run_cli(lambda r: problem(422, "unknown sample ids: x9", unknown_ids=["x9"]), "delete", "m1", "x9")
    assert code == 1 and out == ""
    assert "error: 422 Conflict: unknown sample ids: x9" in err and '"x9"' in err


def test_cli_wait_shows_progress_and_exits_3_on_failure(run_cli):
    answers = iter(
        [
            httpx.Response(202, json={"id": "d1", "status": "queued"}),
            httpx.Response(200, json={"id": "d1", "status": "running", "stage": "gradients", "progress": 0.4}),
            httpx.Response(200, json={"id": "d1", "status": "failed", "error": "out of memory"}),
        ]
    )
    code, out, err = run_cli(lambda r: next(answers), "delete", "m1", "u1", "--wait")
    assert code == 3
    assert "[############..................]  40% running: gradients" in err
    assert "deletion d1 failed: out of memory" in err
    assert json.loads(out)["status"] == "failed"


def test_cli_download_mismatch_exits_4(run_cli, tmp_path):
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/latest"):
            return httpx.Response(200, json={"version": 2, "checkpoint_sha256": SHA})
        return httpx.Response(200, content=PAYLOAD + b"x", headers={"ETag": f'"{SHA}"'})

    code, _out, err = run_cli(handler, "download", "m1", "-o", str(tmp_path / "m.st"))
    assert code == 4 and "differs from the ETag sha256" in err
    assert list(tmp_path.iterdir()) == []


def test_cli_usage_errors_exit_2(run_cli, monkeypatch):
    assert run_cli(lambda r: httpx.Response(500), "delete", "m1")[0] == 2  # no sample ids
    assert run_cli(lambda r: httpx.Response(500), "datasets", "upload", "n", "/nonexistent")[0] == 2
    monkeypatch.delenv("UNLEARN_API_KEY", raising=False)
    with pytest.raises(SystemExit) as exc:
        cli.main(["models", "get", "m1"])
    assert exc.value.code == 2


def test_cli_unreachable_service_exits_1(capsys, monkeypatch):
    monkeypatch.setattr("app.client.time.sleep", lambda s: None)
    code = cli.main(["--url", "http://127.0.0.1:9", "--api-key", "k", "status", "d1"])
    assert code == 1 and "service unreachable" in capsys.readouterr().err


def test_download_skips_a_file_that_is_already_the_checkpoint(tmp_path):
    (tmp_path / "m.safetensors").write_bytes(PAYLOAD)

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.headers["If-None-Match"] == f'"{SHA}"'
        return httpx.Response(304, headers={"ETag": f'"{SHA}"'})

    with client_for(handler) as client:
        result = client.download_checkpoint("m1", 1, tmp_path / "m.safetensors")
    assert not result.transferred and result.sha256 == SHA and result.size == len(PAYLOAD)
