"""Data set uploads the service refuses: labels outside the int32 range, non-finite or zero-size features, and ids
text that a database cannot hold (NUL, invalid UTF-8). Each is a 422 problem that writes nothing."""

import numpy as np
import pytest
from safetensors.numpy import save

from tests.app.written import snapshot
from tests.helpers import upload_dataset

X = np.zeros((4, 3), np.float32)
Y = np.arange(4, dtype=np.int64)


def refused(client, app, data: bytes, *, ids: str | bytes | None = None, files: dict | None = None) -> dict:
    before = snapshot(app)
    if files is None:
        resp = upload_dataset(client, data, ids=ids)
    else:
        resp = client.post("/v1/datasets", data={"name": "d"}, files={"file": ("d", data), **files})
    assert resp.status_code == 422, resp.text
    assert resp.headers["content-type"].startswith("application/problem+json")
    body = resp.json()
    assert body["status"] == 422 and body["detail"]
    assert snapshot(app) == before
    return body


@pytest.mark.parametrize("label", [2**31 - 1, 2**31, 2**40, 2**63 - 1])
def test_labels_past_int32_are_422(client, app, label):
    y = Y.copy()
    y[2] = label
    body = refused(client, app, save({"features": X, "labels": y}))
    assert "labels" in body["detail"] and str(2**31 - 2) in body["detail"]


def test_largest_label_is_accepted(client):
    y = Y.copy()
    y[1] = 2**31 - 2
    resp = upload_dataset(client, save({"features": X, "labels": y}))
    assert resp.status_code == 201, resp.text
    assert resp.json()["num_classes"] == 2**31 - 1


@pytest.mark.parametrize("label", [-1, -(2**40), -(2**63)])
def test_negative_labels_are_422(client, app, label):
    y = Y.copy()
    y[0] = label
    assert ">= 0" in refused(client, app, save({"features": X, "labels": y}))["detail"]


def test_holdout_labels_are_checked_too(client, app):
    hy = np.array([0, 2**40], np.int64)
    data = save({"features": X, "labels": Y, "holdout_features": X[:2], "holdout_labels": hy})
    assert "labels" in refused(client, app, data)["detail"]


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_non_finite_features_are_422(client, app, bad, dtype):
    x = X.astype(dtype)
    x[3, 1] = bad
    body = refused(client, app, save({"features": x, "labels": Y}))
    assert "features" in body["detail"] and "finite" in body["detail"]
    assert body["non_finite"] == [{"tensor": "features", "row": 3}]


def test_non_finite_holdout_features_are_422(client, app):
    hx = np.ones((2, 3), np.float32)
    hx[1, 0] = np.nan
    data = save({"features": X, "labels": Y, "holdout_features": hx, "holdout_labels": Y[:2]})
    body = refused(client, app, data)
    assert body["non_finite"] == [{"tensor": "holdout_features", "row": 1}]


def test_non_finite_bfloat16_features_are_422(client, app):
    import torch
    from safetensors.torch import save as save_torch

    x = torch.zeros(4, 3, dtype=torch.bfloat16)
    x[2, 2] = float("inf")
    data = save_torch({"features": x, "labels": torch.arange(4)})
    assert refused(client, app, data)["non_finite"] == [{"tensor": "features", "row": 2}]
    x[2, 2] = 1.5
    assert upload_dataset(client, save_torch({"features": x, "labels": torch.arange(4)})).status_code == 201


def test_non_finite_rows_past_the_first_chunk_are_found(client, app, monkeypatch):
    from app.datasets import validation

    monkeypatch.setattr(validation, "ROW_CHUNK_BYTES", 16)  # one row of 3 float32 a chunk
    x = X.copy()
    x[3, 2] = np.nan
    assert refused(client, app, save({"features": x, "labels": Y}))["non_finite"][0]["row"] == 3


@pytest.mark.parametrize("shape", [(4, 0), (4, 3, 0), (4, 0, 5)])
def test_zero_size_feature_dimensions_are_422(client, app, shape):
    body = refused(client, app, save({"features": np.zeros(shape, np.float32), "labels": Y}))
    assert "features" in body["detail"] and "zero" in body["detail"]


def test_zero_size_holdout_rows_are_no_holdout(client):
    data = save({"features": X, "labels": Y, "holdout_features": X[:0], "holdout_labels": Y[:0]})
    resp = upload_dataset(client, data)
    assert resp.status_code == 201, resp.text
    assert resp.json()["num_holdout"] == 0


@pytest.mark.parametrize(
    ("ids", "lines"),
    [
        ("a\nb\x00\nc\nd\n", [1]),
        ("\x00\nb\nc\x01\nd\n", [0, 2]),
        ("a\nb\nc\nd\x7f\n", [3]),
        ("a\nb\x85\nc\nd\n", [1]),
        ("a\r\nb\tc\r\nc\r\nd\r\n", [1]),
    ],
)
def test_ids_with_control_characters_are_422(client, app, ids, lines):
    body = refused(client, app, save({"features": X, "labels": Y}), ids=ids)
    assert "control character" in body["detail"]
    assert body["lines"] == lines


def test_ids_with_crlf_line_ends_are_fine(client):
    resp = upload_dataset(client, save({"features": X, "labels": Y}), ids="a\r\nb\r\nc\r\nd\r\n")
    assert resp.status_code == 201, resp.text


def test_ids_with_nul_sent_as_a_file_part_are_422(client, app):
    body = refused(client, app, save({"features": X, "labels": Y}), files={"ids": ("ids.txt", b"a\nb\x00x\nc\nd\n")})
    assert body["lines"] == [1]


def test_ids_that_are_not_utf8_are_422(client, app):
    data = save({"features": X, "labels": Y})
    body = refused(client, app, data, files={"ids": ("ids.txt", b"a\nb\xff\nc\nd\n")})
    assert "UTF-8" in body["detail"]
    surrogate = "a\nb\ud800\nc\nd\n".encode("utf-8", "surrogatepass")  # UTF-8 forbids encoded surrogates
    assert "UTF-8" in refused(client, app, data, files={"ids": ("ids.txt", surrogate)})["detail"]
