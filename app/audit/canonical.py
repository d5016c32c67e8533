"""The service's side of canonical JSON: what it stores, timestamps as entries spell them, and an entry as the
API returns it.

The encoding itself, the entry hash and the sample-id commitment are unlearn_client.verify.canonical, the module
receipt verifiers run: the service writes its log with the code that checks it.
"""

import json
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from unlearn_client.verify.canonical import (
    ENTRY_FIELDS,
    EVENT_FIELDS,
    GENESIS_HASH,
    SIGNED_ENTRY_FIELDS,
    canonical_json,
    commit_sample_ids,
    compute_entry_hash,
    hashed_fields,
    sha256_hex,
)

__all__ = [
    "ENTRY_FIELDS",
    "EVENT_FIELDS",
    "GENESIS_HASH",
    "SIGNED_ENTRY_FIELDS",
    "canonical_json",
    "commit_sample_ids",
    "compute_entry_hash",
    "entry_document",
    "format_timestamp",
    "hashed_fields",
    "normalize",
    "sanitize_floats",
    "sha256_hex",
]


def normalize(value: Any) -> Any:
    """``value`` as it reads back after a canonical round trip (what the database stores and returns)."""
    return json.loads(canonical_json(value))


def sanitize_floats(value: Any) -> Any:
    """``value`` with NaN and infinities replaced by the strings "NaN", "Infinity", "-Infinity" (JSON has none)."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, list | tuple):
        return [sanitize_floats(v) for v in value]
    if isinstance(value, Mapping):
        return {k: sanitize_floats(v) for k, v in value.items()}
    return value


def format_timestamp(value: datetime) -> str:
    """UTC, microseconds, ``Z`` suffix: ``2026-01-31T12:00:00.000000Z``."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def entry_document(entry: Any) -> dict[str, Any]:
    """A stored entry (ORM object or row) as the API returns it; ``compute_entry_hash`` of it is its entry_hash.
    ``event_id`` and ``signature`` are None for entries written before per-entry signatures."""
    return {
        "seq": entry.seq,
        "created_at": format_timestamp(entry.created_at),
        "tenant_id": entry.tenant_id,
        "actor": entry.actor,
        "event_type": entry.event_type,
        "refs": entry.refs,
        "evidence": entry.evidence,
        "prev_hash": entry.prev_hash,
        "entry_hash": entry.entry_hash,
        "event_id": entry.event_id,
        "signature": entry.signature,
    }
