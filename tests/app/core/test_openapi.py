"""The OpenAPI document is good enough to generate clients from: bearer security, readable unique operation ids,
every error declared as an RFC 9457 problem, binary downloads declared as binary, one list convention; /docs and
/redoc load with no external URL."""

import re

import pytest

PROBLEM = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
PUBLIC = {"/healthz", "/readyz", "/metrics", "/v1/audit/public-key", "/v1/audit/checkpoint"}  # no API key
LISTS = {
    ("/v1/datasets", "list_datasets"),
    ("/v1/models", "list_models"),
    ("/v1/models/{model_id}/versions", "list_versions"),
    ("/v1/models/{model_id}/deletions", "list_model_deletions"),
    ("/v1/deletions", "list_deletions"),
    ("/v1/keys", "list_keys"),
    ("/v1/audit", "list_audit_entries"),
}


@pytest.fixture
def doc(client):
    return client.get("/openapi.json").json()


def operations(doc):
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            yield path, method, operation


def test_bearer_scheme_on_every_operation_that_needs_a_key(doc):
    assert doc["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "An API key: `Authorization: Bearer unl_...`",
    }
    assert doc["components"]["securitySchemes"]["metricsToken"]["scheme"] == "bearer"
    for path, method, operation in operations(doc):
        secured = operation.get("security") == [{"bearerAuth": []}]
        assert secured == (path not in PUBLIC), (method, path)
    assert doc["paths"]["/metrics"]["get"]["security"] == [{"metricsToken": []}]


def test_operation_ids_are_readable_and_unique(doc):
    ids = [operation["operationId"] for _, _, operation in operations(doc)]
    assert len(ids) == len(set(ids))
    assert all(re.fullmatch(r"[a-z][a-z0-9_]*", i) and "v1" not in i for i in ids), ids
    named = {(path, method): operation["operationId"] for path, method, operation in operations(doc)}
    assert named[("/v1/models/{model_id}/deletions", "post")] == "create_deletion"
    assert named[("/v1/deletions/{deletion_id}", "get")] == "get_deletion"
    assert named[("/v1/deletions/{deletion_id}/receipt", "get")] == "get_receipt"
    assert named[("/v1/models/{model_id}/versions/{n}/checkpoint", "get")] == "download_checkpoint"
    assert named[("/v1/audit/tree-head", "get")] == "get_tree_head"


def test_every_error_is_a_declared_problem(doc):
    assert set(doc["components"]["schemas"]["Problem"]["required"]) == {"type", "title", "status", "detail"}
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    for path, method, operation in operations(doc):
        responses = operation["responses"]
        for status, response in responses.items():
            if int(status) >= 400 and not (path == "/readyz" and status == "503"):
                assert response["content"] == PROBLEM, (method, path, status)
        expected = {"500", "503"}
        if path not in PUBLIC:
            expected |= {"401", "403", "429"}
        if operation.get("parameters") or operation.get("requestBody"):
            expected.add("422")
        assert expected <= set(responses), (method, path, expected - set(responses))
    conflict = {(p, m) for p, m, o in operations(doc) if "409" in o["responses"]}
    assert {("/v1/models/{model_id}/deletions", "post"), ("/v1/datasets/{dataset_id}", "delete")} <= conflict
    assert ("/v1/datasets", "get") not in conflict


def test_checkpoint_download_is_declared_binary(doc):
    responses = doc["paths"]["/v1/models/{model_id}/versions/{n}/checkpoint"]["get"]["responses"]
    for status in ("200", "206"):
        assert responses[status]["content"] == {
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
        }
    assert "content" not in responses["304"]
    assert responses["410"]["content"] == PROBLEM and responses["416"]["content"] == PROBLEM


def test_every_list_declares_the_page_convention(doc):
    schemas = doc["components"]["schemas"]
    for path, operation_id in LISTS:
        operation = doc["paths"][path]["get"]
        assert operation["operationId"] == operation_id
        params = {p["name"]: p for p in operation["parameters"]}
        assert params["limit"]["in"] == "query" and params["cursor"]["in"] == "query"
        ref = operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
        page = schemas[ref.rsplit("/", 1)[1]]
        assert set(page["required"]) == {"items", "next_cursor", "limit"}, path
        assert page["properties"]["items"]["type"] == "array"


def test_the_answers_match_what_is_declared(client, doc):
    unauthenticated = client.get("/v1/datasets", headers={"Authorization": ""})
    assert unauthenticated.status_code == 401
    assert unauthenticated.headers["content-type"] == "application/problem+json"
    bad = client.get("/v1/deletions", params={"status": "lost"})
    assert bad.status_code == 422 and bad.headers["content-type"] == "application/problem+json"
    assert "422" in doc["paths"]["/v1/deletions"]["get"]["responses"]


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_name_no_external_url(client, page):
    resp = client.get(page)
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/html")
    assert not re.search(r"(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}", resp.text, re.IGNORECASE), resp.text
    assets = re.findall(r"""(?:src|href)=["']([^"']+)["']""", resp.text)
    assert any(a.endswith(".js") for a in assets)
    for asset in assets:
        assert asset.startswith("/"), asset
        loaded = client.get(asset)
        assert loaded.status_code == 200 and len(loaded.content) > 1000, asset
    if page == "/docs":
        assert 'validatorUrl": null' in resp.text  # no call to the public validator either
