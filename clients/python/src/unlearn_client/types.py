"""The JSON documents the service answers with, as TypedDicts (every key optional: newer services may add some)."""

from __future__ import annotations

from typing import Any, Generic, TypedDict, TypeVar

T = TypeVar("T")


class Page(TypedDict, Generic[T]):
    """One page of a list: follow `next_cursor` (None on the last page) with the same filters."""

    items: list[T]
    next_cursor: str | None
    limit: int


class Problem(TypedDict, total=False):
    type: str
    title: str
    status: int
    detail: str


class Dataset(TypedDict, total=False):
    id: str
    name: str
    num_rows: int
    num_holdout: int
    feature_shape: list[int]
    num_classes: int
    sha256: str
    size_bytes: int
    deleted_count: int
    created_at: str


class Erasure(TypedDict, total=False):
    id: str
    dataset_id: str
    status: str  # running | succeeded | failed
    stage: str  # deleting | compacting | erased
    error: str | None
    progress: float
    sample_count: int
    rows_erased: int
    sample_ids_sha256: str
    commitment_salt: str
    method: str
    reason: str | None
    deletions: list[dict[str, Any]]
    compaction_due_at: str | None
    created_at: str
    finished_at: str | None


class Model(TypedDict, total=False):
    id: str
    name: str
    dataset_id: str
    architecture: dict[str, Any]
    train: dict[str, Any] | None
    unlearn: dict[str, Any]
    status: str  # training | ready | failed
    error: str | None
    latest_version: int | None
    created_at: str
    updated_at: str


class ModelVersion(TypedDict, total=False):
    model_id: str
    version: int
    parent_version: int | None
    checkpoint_sha256: str
    checkpoint_size: int
    applied_requests: list[str]
    evidence_summary: dict[str, Any] | None
    state: str  # available | purged
    created_at: str
    purged_at: str | None
    checkpoint_url: str


class Deletion(TypedDict, total=False):
    id: str
    model_id: str
    status: str  # queued | running | succeeded | failed
    stage: str | None
    progress: float | None
    base_version: int | None
    result_version: int | None
    evidence: dict[str, Any] | None
    error: str | None
    method: str
    reason: str | None
    sample_count: int
    attempts: int
    created_at: str
    started_at: str | None
    finished_at: str | None


class ApiKey(TypedDict, total=False):
    id: str
    tenant_id: str
    name: str
    role: str  # admin | operator | requester | reader
    prefix: str
    created_at: str
    revoked_at: str | None
    key: str | None  # the raw key: only in the answer that created it


class Tenant(TypedDict, total=False):
    id: str
    name: str
    created_at: str


class AuditEntry(TypedDict, total=False):
    seq: int
    created_at: str
    tenant_id: str | None
    actor: str
    event_type: str
    refs: dict[str, Any]
    evidence: dict[str, Any]
    prev_hash: str
    entry_hash: str
    event_id: str | None
    signature: str | None


class TreeHead(TypedDict, total=False):
    tree_size: int
    root_hash: str
    timestamp: int
    key_id: str
    signature: str


class PublicKey(TypedDict, total=False):
    algorithm: str
    key_id: str
    public_key_pem: str
    public_key_raw_b64: str
    origin: str  # the name the log signs its C2SP checkpoints under
    note_verifier_key: str
