"""Every operation of the HTTP API as a `Call`: method, path, query, body and whether it is safe to repeat.

The sync and the async client send the same calls, so a path or a parameter is written once, here.
POSTs carry an Idempotency-Key (the caller's, or a fresh random one): the service answers a repeat of the same key
and body with the original response, so a POST whose answer was lost can be sent again without doing it twice.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    params: dict[str, Any] = field(default_factory=dict)
    json: Any = None
    data: dict[str, str] | None = None
    files: tuple[tuple[str, Path], ...] = ()  # (form field, file) pairs, opened anew for every attempt
    headers: dict[str, str] = field(default_factory=dict)
    repeatable: bool = True  # the same call sent twice has the effect of one (GET, or a POST with a key)


def _p(value: str | int) -> str:
    return quote(str(value), safe="")


def _query(**params: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in params.items():
        if value is None:
            continue
        out[name] = value.isoformat() if isinstance(value, datetime) else value
    return out


def _keyed(idempotency_key: str | None) -> dict[str, str]:
    return {"Idempotency-Key": idempotency_key or f"unlearn-client-{uuid.uuid4().hex}"}


def page(path: str, *, limit: int | None, cursor: str | None, **filters: Any) -> Call:
    """One page of a list endpoint (`items`, `next_cursor`, `limit`)."""
    return Call("GET", path, params=_query(limit=limit, cursor=cursor, **filters))


# --- data sets ------------------------------------------------------------------------------------------------


def upload_dataset(name: str, path: Path, *, ids_text: str | None, idempotency_key: str | None) -> Call:
    data = {"name": name} | ({"ids": ids_text} if ids_text is not None else {})
    return Call("POST", "/v1/datasets", data=data, files=(("file", path),), headers=_keyed(idempotency_key))


def get_dataset(dataset_id: str) -> Call:
    return Call("GET", f"/v1/datasets/{_p(dataset_id)}")


def delete_dataset(dataset_id: str) -> Call:
    return Call("DELETE", f"/v1/datasets/{_p(dataset_id)}", repeatable=False)


def erase_samples(
    dataset_id: str, sample_ids: Iterable[str], *, reason: str | None, method: str | None, idempotency_key: str | None
) -> Call:
    body: dict[str, Any] = {"sample_ids": list(sample_ids)}
    if reason is not None:
        body["reason"] = reason
    if method is not None:
        body["method"] = method
    return Call("POST", f"/v1/datasets/{_p(dataset_id)}/erasures", json=body, headers=_keyed(idempotency_key))


def get_erasure(erasure_id: str) -> Call:
    return Call("GET", f"/v1/erasures/{_p(erasure_id)}")


# --- models ---------------------------------------------------------------------------------------------------


def create_model(spec: Mapping[str, Any], checkpoint: Path, *, idempotency_key: str | None) -> Call:
    data = {"spec": json.dumps(dict(spec))}
    return Call("POST", "/v1/models", data=data, files=(("checkpoint", checkpoint),), headers=_keyed(idempotency_key))


def train_model(body: Mapping[str, Any], *, idempotency_key: str | None) -> Call:
    return Call("POST", "/v1/models", json=dict(body), headers=_keyed(idempotency_key))


def list_architectures() -> Call:
    return Call("GET", "/v1/architectures")


def get_model(model_id: str) -> Call:
    return Call("GET", f"/v1/models/{_p(model_id)}")


def delete_model(model_id: str) -> Call:
    return Call("DELETE", f"/v1/models/{_p(model_id)}", repeatable=False)


def get_version(model_id: str, version: int | str) -> Call:
    return Call("GET", f"/v1/models/{_p(model_id)}/versions/{_p(version)}")


def checkpoint_path(model_id: str, version: int | str) -> str:
    return f"/v1/models/{_p(model_id)}/versions/{_p(version)}/checkpoint"


# --- deletions ------------------------------------------------------------------------------------------------


def request_deletion(
    model_id: str,
    sample_ids: Iterable[str],
    *,
    reason: str | None,
    method: str | None,
    purpose: str | None,
    idempotency_key: str | None,
    extra: Mapping[str, Any] | None = None,
) -> Call:
    body: dict[str, Any] = {"sample_ids": list(sample_ids)}
    for name, value in (("reason", reason), ("method", method), ("purpose", purpose)):
        if value is not None:
            body[name] = value
    body.update(extra or {})
    return Call("POST", f"/v1/models/{_p(model_id)}/deletions", json=body, headers=_keyed(idempotency_key))


def get_deletion(deletion_id: str) -> Call:
    return Call("GET", f"/v1/deletions/{_p(deletion_id)}")


def deletions_path(model_id: str | None) -> str:
    return f"/v1/models/{_p(model_id)}/deletions" if model_id else "/v1/deletions"


def get_receipt(deletion_id: str) -> Call:
    return Call("GET", f"/v1/deletions/{_p(deletion_id)}/receipt")


# --- tenants and keys -----------------------------------------------------------------------------------------


def create_tenant(name: str, *, idempotency_key: str | None) -> Call:
    return Call("POST", "/v1/tenants", json={"name": name}, headers=_keyed(idempotency_key))


def create_key(name: str, role: str, *, tenant_id: str | None, idempotency_key: str | None) -> Call:
    body = {"name": name, "role": role} | ({"tenant_id": tenant_id} if tenant_id else {})
    return Call("POST", "/v1/keys", json=body, headers=_keyed(idempotency_key))


def revoke_key(key_id: str) -> Call:
    return Call("DELETE", f"/v1/keys/{_p(key_id)}", repeatable=False)


# --- audit log ------------------------------------------------------------------------------------------------


def audit_entry(seq: int) -> Call:
    return Call("GET", f"/v1/audit/{int(seq)}")


def tree_head(size: int | None) -> Call:
    return Call("GET", "/v1/audit/tree-head", params=_query(size=size))


def consistency(first: int, second: int | None) -> Call:
    return Call("GET", "/v1/audit/consistency", params=_query(**{"from": first, "to": second}))


def checkpoint() -> Call:
    return Call("GET", "/v1/audit/checkpoint", headers={"Accept": "text/plain"})


def public_key() -> Call:
    return Call("GET", "/v1/audit/public-key")
