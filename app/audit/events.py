"""Audit event types and the content rules every entry must pass before it is written.

The log is append-only and can never be edited, so nothing that may have to be erased or kept secret goes in:
no raw training rows, feature values or labels, no external sample ids (they can name people: the log holds
``sample_ids_sha256`` instead), no API keys or other secrets. These rules are a second line of defence behind the
callers, which pass only identifiers, counts, hashes and measured figures.
"""

import enum
import json
from collections.abc import Mapping
from typing import Any

from app.audit.canonical import canonical_json, sanitize_floats
from app.audit.exceptions import AuditContentError, CanonicalError


class EventType(enum.StrEnum):
    DATASET_REGISTERED = "dataset.registered"
    DATASET_COMPACTED = "dataset.compacted"
    ERASURE_REQUESTED = "erasure.requested"
    ERASURE_COMPLETED = "erasure.completed"
    DATASET_DELETED = "dataset.deleted"
    MODEL_REGISTERED = "model.registered"
    MODEL_TRAINED = "model.trained"
    MODEL_TRAINING_FAILED = "model.training_failed"
    MODEL_DELETED = "model.deleted"
    DELETION_REQUESTED = "deletion.requested"
    DELETION_STARTED = "deletion.started"
    DELETION_SUCCEEDED = "deletion.succeeded"
    DELETION_FAILED = "deletion.failed"
    DELETION_ESCALATED = "deletion.escalated"
    VERSION_CREATED = "version.created"
    VERSION_PURGED = "version.purged"
    MODEL_CONSOLIDATED = "model.consolidated"
    APIKEY_CREATED = "apikey.created"
    APIKEY_REVOKED = "apikey.revoked"
    TENANT_CREATED = "tenant.created"


# Keys refused whatever their value: secrets.
SECRET_KEYS = frozenset({"api_key", "apikey", "raw_key", "secret", "password", "token", "private_key"})
SECRET_SUBSTRINGS = ("secret", "password", "private_key", "api_key")
# Keys refused when they hold an array: raw data (a count or a summary object under these names is fine).
DATA_KEYS = frozenset(
    {"features", "labels", "rows", "holdout_features", "holdout_labels", "sample_ids", "data", "x", "y"}
)
MAX_ENCODED_BYTES = 256 * 1024  # canonical JSON size limit of refs + evidence together


def _walk(value: Any, path: str) -> None:
    if isinstance(value, Mapping):
        for key, item in value.items():
            lowered = str(key).lower()
            where = f"{path}.{key}"
            if lowered in SECRET_KEYS or any(s in lowered for s in SECRET_SUBSTRINGS):
                raise AuditContentError(f"{where}: secrets never go into the audit log")
            if lowered in DATA_KEYS and isinstance(value[key], list | tuple):
                raise AuditContentError(f"{where}: raw rows or sample ids never go into the audit log")
            _walk(item, where)
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _walk(item, f"{path}[{i}]")
    elif isinstance(value, bytes | bytearray | memoryview):
        raise AuditContentError(f"{path}: binary data never goes into the audit log")


def check_content(
    event_type: str, refs: Mapping[str, Any], evidence: Mapping[str, Any], *, encoded_size: int | None = None
) -> EventType:
    """Validate an entry's event type, refs and evidence; return the event type. Raises AuditContentError.
    ``encoded_size``: the length of their canonical encoding, when the caller already has it."""
    try:
        kind = EventType(event_type)
    except ValueError as exc:
        raise AuditContentError(f"unknown audit event type {event_type!r}") from exc
    for name, part in (("refs", refs), ("evidence", evidence)):
        if not isinstance(part, Mapping):
            raise AuditContentError(f"{name} must be a JSON object")
        _walk(part, name)
    if encoded_size is not None:
        size = encoded_size
    else:
        try:
            size = len(canonical_json({"refs": refs, "evidence": evidence}))
        except CanonicalError as exc:
            raise AuditContentError(str(exc)) from exc
    if size > MAX_ENCODED_BYTES:
        raise AuditContentError(f"refs and evidence take {size} bytes; the limit is {MAX_ENCODED_BYTES}")
    return kind


def prepare_entry(
    actor: str, event_type: str, refs: Mapping[str, Any] | None, evidence: Mapping[str, Any] | None
) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """(event type, refs, evidence) as they are hashed: NaN and infinities as strings, normalised, checked."""
    if not actor or not isinstance(actor, str):
        raise ValueError("actor must be a non-empty string (an API key id or a worker name)")
    # One canonical encoding of both parts: it checks them, gives their size, and reads back as they are stored.
    encoded = canonical_json(
        {"refs": sanitize_floats(dict(refs or {})), "evidence": sanitize_floats(dict(evidence or {}))}
    )
    parts = json.loads(encoded)
    kind = check_content(str(event_type), parts["refs"], parts["evidence"], encoded_size=len(encoded))
    return kind.value, parts["refs"], parts["evidence"]
