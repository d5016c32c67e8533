"""Deletion request bodies the service refuses before it looks anything up: sample ids and reasons holding text
no database column can store (lone surrogates, NUL and other control characters). JSON bodies are parsed by the
standard library, which turns a `\\ud800` escape into a lone surrogate: each such request is a 422 problem that
writes nothing."""

import json

import pytest

from tests.app.fakes import RecordingJobs
from tests.app.written import snapshot
from tests.helpers import register_uploaded_model, upload_digits


@pytest.fixture
def model(client, app) -> dict:
    app.state.jobs = RecordingJobs()
    ds = upload_digits(client, rows=20)
    return register_uploaded_model(client, ds["id"])


def post_raw(client, model: dict, body: str):
    """POST a JSON text as is (json.dumps would escape a lone surrogate the same way, \\ud800)."""
    return client.post(
        f"/v1/models/{model['id']}/deletions", content=body.encode(), headers={"content-type": "application/json"}
    )


def refused(client, app, model: dict, body: str) -> dict:
    before = snapshot(app)
    resp = post_raw(client, model, body)
    assert resp.status_code == 422, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    assert snapshot(app) == before
    assert app.state.jobs.deletions == []
    return resp.json()


@pytest.mark.parametrize("escape", ["\\ud800", "\\udfff", "\\udc00x", "x\\ud83d"])
def test_lone_surrogate_in_sample_ids_is_422(client, app, model, escape):
    body = refused(client, app, model, '{"sample_ids": ["user-1", "user-' + escape + '"]}')
    assert "sample_ids" in body["detail"] and "surrogate" in body["detail"]
    assert [e["loc"] for e in body["errors"]] == [["body", "sample_ids"]] and "sample_ids[1]" in body["detail"]


@pytest.mark.parametrize("char", ["\\u0000", "\\u001f", "\\u007f", "\\u0085", "\\t"])
def test_control_characters_in_sample_ids_are_422(client, app, model, char):
    body = refused(client, app, model, '{"sample_ids": ["user-' + char + '1"]}')
    assert "control character" in body["detail"]


def test_lone_surrogate_in_reason_is_422(client, app, model):
    body = refused(client, app, model, '{"sample_ids": ["user-1"], "reason": "closed \\ud800"}')
    assert [e["loc"] for e in body["errors"]] == [["body", "reason"]]


def test_nul_in_reason_is_422_but_line_breaks_are_fine(client, app, model):
    refused(client, app, model, '{"sample_ids": ["user-1"], "reason": "a\\u0000b"}')
    resp = post_raw(client, model, json.dumps({"sample_ids": ["user-1"], "reason": "line one\nline two\ttab"}))
    assert resp.status_code == 202, resp.text


def test_a_valid_surrogate_pair_is_an_ordinary_unknown_id(client, app, model):
    body = refused(client, app, model, '{"sample_ids": ["user-\\ud83d\\ude00"]}')
    assert body["unknown_ids"] == ["user-\U0001f600"]


def test_a_long_list_with_one_bad_id_names_it(client, app, model):
    ids = [f"user-{i}" for i in range(2000)] + ["bad-\\ud800"]
    body = refused(client, app, model, '{"sample_ids": [' + ", ".join(f'"{i}"' for i in ids) + "]}")
    assert "sample_ids[2000] contains a lone surrogate (U+D800)" in body["detail"]
