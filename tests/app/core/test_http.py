"""Cross-cutting HTTP behaviour: health, metrics, request ids, problem details, limits, OpenAPI."""

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from tests.app.fakes import RecordingJobs
from tests.conftest import auth


def test_healthz_and_readyz(client, app):
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"] == {"database": "ok", "redis": "ok", "storage": "ok"}
    app.state.jobs = RecordingJobs(redis_up=False)
    down = client.get("/readyz")
    assert down.status_code == 503 and down.json()["checks"]["redis"] == "error"


def test_metrics_by_route_template(client, app):
    app.state.settings = app.state.settings.model_copy(update={"metrics_token": SecretStr("t" * 16)})
    client.get("/v1/models/abc")
    text = client.get("/metrics", headers=auth("t" * 16)).text
    assert 'route="/v1/models/{model_id}"' in text
    assert "unlearn_http_request_duration_seconds_bucket" in text


def test_request_id_echoed_or_generated(client):
    resp = client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert resp.headers["x-request-id"] == "abc-123"
    generated = client.get("/healthz", headers={"X-Request-ID": "bad id with spaces"}).headers["x-request-id"]
    assert generated != "bad id with spaces" and len(generated) == 32


def test_unknown_route_and_method_are_problems(client):
    resp = client.get("/v1/nothing-here")
    assert resp.status_code == 404 and resp.headers["content-type"].startswith("application/problem+json")
    assert client.put("/v1/keys").status_code == 405


def test_validation_errors_are_problems(client):
    resp = client.post("/v1/keys", json={"name": "k", "role": "emperor"})
    assert resp.status_code == 422
    body = resp.json()
    assert body["status"] == 422 and body["title"] and body["detail"] and body["errors"][0]["loc"]


def test_unexpected_error_is_a_500_problem_without_trace(app, client, monkeypatch):
    from app.keys import service

    def boom(*args, **kwargs):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(service, "list_keys", boom)
    resp = client.get("/v1/keys")
    assert resp.status_code == 500
    assert resp.headers["content-type"].startswith("application/problem+json")
    assert "secret internals" not in resp.text and "Traceback" not in resp.text
    assert resp.headers["x-request-id"]


def test_json_body_limit_is_413(client, app, settings):
    big = {"name": "x" * 5000, "role": "reader"}
    small_app_settings = settings.model_copy(update={"max_json_bytes": 1000})
    from app.main import create_app

    with TestClient(create_app(small_app_settings), headers=client.headers) as small:
        resp = small.post("/v1/keys", json=big)
        assert resp.status_code == 413 and resp.headers["content-type"].startswith("application/problem+json")

        def chunks():
            yield b'{"name": "'
            yield b"x" * 5000
            yield b'", "role": "reader"}'

        resp = small.post("/v1/keys", content=chunks(), headers={"content-type": "application/json"})
        assert resp.status_code == 413


def test_rate_limit_is_429_with_retry_after(settings, tenant):
    from app.main import create_app

    limited = create_app(settings.model_copy(update={"rate_limit_per_s": 0.5, "rate_limit_burst": 3}))
    with TestClient(limited, headers=auth(tenant["admin_key"])) as c:
        codes = [c.get("/v1/keys").status_code for _ in range(5)]
        assert codes[:3] == [200, 200, 200] and codes[3] == 429
        resp = c.get("/v1/keys")
        assert int(resp.headers["retry-after"]) >= 1
        assert resp.headers["content-type"].startswith("application/problem+json")


@pytest.mark.parametrize("backend", ["sqlite"], indirect=False)
def test_openapi_document_lists_the_contract(client):
    doc = client.get("/openapi.json").json()
    paths = doc["paths"]
    for path in (
        "/v1/datasets",
        "/v1/datasets/{dataset_id}",
        "/v1/models",
        "/v1/models/{model_id}",
        "/v1/models/{model_id}/versions",
        "/v1/models/{model_id}/versions/{n}",
        "/v1/models/{model_id}/versions/{n}/checkpoint",
        "/v1/models/{model_id}/deletions",
        "/v1/deletions",
        "/v1/deletions/{deletion_id}",
        "/healthz",
        "/readyz",
        "/metrics",
    ):
        assert path in paths, path
    assert "multipart/form-data" in paths["/v1/models"]["post"]["requestBody"]["content"]
