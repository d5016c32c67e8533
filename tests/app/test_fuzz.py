"""A bounded, seeded fuzz run over every operation of the app's OpenAPI document: random path parameters,
JSON bodies, multipart parts and headers. No answer may be a 500, and every error must be a problem document."""

import json
import os
import random
import re
from urllib.parse import quote

import pytest

from tests.app.fakes import RecordingJobs
from tests.helpers import digits_safetensors, logreg_checkpoint, register_uploaded_model, upload_digits

ROUNDS = int(os.environ.get("FUZZ_ROUNDS", "12"))  # requests per operation; FUZZ_SEED varies the run

SCALARS = [None, True, 0, -1, 1, 2**63, 1.5, float("1e308"), "", "x", "latest", "é\u0001", "a" * 300, [], {}]


def _hostile_files() -> list[bytes]:
    """Well-formed safetensors holding what the service refuses: NaN features, labels past int32, zero-size rows,
    non-finite checkpoint weights."""
    import numpy as np
    from safetensors.numpy import save

    x, y = np.zeros((3, 64), np.float32), np.arange(3, dtype=np.int64)
    nan_x = x.copy()
    nan_x[1, 5] = np.nan
    nan_w = {"linear.weight": np.full((10, 64), np.inf, np.float32), "linear.bias": np.zeros(10, np.float32)}
    return [
        save({"features": nan_x, "labels": y}),
        save({"features": x, "labels": y + 2**40}),
        save({"features": np.zeros((3, 0), np.float32), "labels": y}),
        save(nan_w),
    ]


# Raw JSON bodies the standard library parses into text no database can store (lone surrogates, NUL).
HOSTILE_JSON = [
    b'{"sample_ids": ["a\\ud800"], "reason": "\\udfff"}',
    b'{"sample_ids": ["user-1\\u0000"]}',
    b'{"name": "\\ud800", "role": "admin"}',
    b'{"name": "m", "dataset_id": "\\ud800", "architecture": {"name": "mlp", "config": {"hidden": [1000000000]}}}',
]


def _value(rng: random.Random, depth: int = 0):
    kind = rng.random()
    if depth > 2 or kind < 0.6:
        return rng.choice(SCALARS)
    if kind < 0.8:
        return [_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    return {
        rng.choice(["name", "role", "sample_ids", "method", "train", "x"]): _value(rng, depth + 1) for _ in range(3)
    }


def _body(rng: random.Random, valid: dict):
    body = dict(valid)
    for _ in range(rng.randint(1, 3)):
        key = rng.choice([*valid, "extra"])
        if rng.random() < 0.2:
            body.pop(key, None)
        else:
            body[key] = _value(rng)
    return body


@pytest.mark.parametrize("backend", ["sqlite"])
def test_fuzz_every_operation(client, app):
    app.state.jobs = RecordingJobs()
    ds = upload_digits(client, rows=40)
    model = register_uploaded_model(client, ds["id"])
    known = {"dataset_id": ds["id"], "model_id": model["id"], "n": "1", "key_id": "x", "deletion_id": "x", "seq": "1"}
    valid_bodies = {
        "/v1/tenants": {"name": "t"},
        "/v1/keys": {"name": "k", "role": "reader"},
        "/v1/models": {"name": "m", "dataset_id": ds["id"], "architecture": {"name": "logreg", "config": {}}},
        "/v1/models/{model_id}/deletions": {"sample_ids": ["user-1"], "method": "iau"},
    }
    hostile = _hostile_files()
    rng = random.Random(int(os.environ.get("FUZZ_SEED", "1234")))
    doc = client.get("/openapi.json").json()
    failures = []
    # Removals last, so the known model and data set serve every other operation first.
    operations = sorted(((p, m) for p, ops in doc["paths"].items() for m in ops), key=lambda op: op[1] == "delete")
    for path, method in operations:
        for _ in range(ROUNDS):
            names = re.findall(r"{(\w+)}", path)
            params = {name: known.get(name, "x") if rng.random() < 0.5 else str(_value(rng)) or "x" for name in names}
            url = path.format(**{k: quote(v, safe="") for k, v in params.items()})
            headers = {}
            if rng.random() < 0.3:
                headers["Idempotency-Key"] = rng.choice(["k", "", "x" * 300, "k k"])
            if rng.random() < 0.2:
                headers["Range"] = rng.choice(["bytes=0-", "bytes=-0", "bytes=9-1", "items=1-2", "bytes=1-2,4-5"])
            kwargs = {"headers": headers}
            if method == "post":
                choice = rng.random()
                if path in ("/v1/datasets", "/v1/models") and choice < 0.5:
                    files = {
                        rng.choice(["file", "checkpoint", "ids"]): (
                            "f",
                            rng.choice(
                                [
                                    digits_safetensors(rows=3)[: rng.randint(0, 200)],
                                    logreg_checkpoint(),
                                    b"",
                                    *hostile,
                                ]
                            ),
                        )
                    }
                    data = {rng.choice(["name", "spec", "ids"]): rng.choice([json.dumps(_value(rng)), "a\x00\nb"])}
                    kwargs.update(files=files, data=data)
                elif choice < 0.8:
                    kwargs["json"] = _body(rng, valid_bodies.get(path, {}))
                else:
                    kwargs["content"] = rng.choice([b"{", b"null", b"[]", b"\xff\xfe", b"{}", *HOSTILE_JSON])
                    headers["content-type"] = rng.choice(["application/json", "text/plain", "multipart/form-data"])
            try:
                resp = client.request(method.upper(), url, **kwargs)
            except Exception as exc:  # noqa: BLE001 - report, do not stop the run
                failures.append((method, url, repr(exc)))
                continue
            if resp.status_code >= 500 or (
                resp.status_code >= 400 and not resp.headers["content-type"].startswith("application/problem+json")
            ):
                failures.append((method, url, resp.status_code, resp.text[:200]))
    assert not failures, failures[:10]
