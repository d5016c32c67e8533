"""Canonical JSON and the hash of an audit entry.

Canonical encoding: UTF-8 JSON, object keys sorted by Unicode code point, no insignificant whitespace, non-ASCII
characters written as themselves, integers in decimal, floats as Python's shortest round-trip ``repr`` (finite
only). Only objects with string keys, arrays, strings, integers, floats, booleans and null are accepted.

An entry's hash is ``sha256(canonical(entry))`` over exactly the fields in ``ENTRY_FIELDS``, plus ``event_id`` and
``signature`` when the entry is signed (``SIGNED_ENTRY_FIELDS``; entries written before per-entry signatures have
neither); ``prev_hash`` is the hex hash of the previous entry (``GENESIS_HASH`` for the first), which chains every
entry to all before it. The signature itself covers the event (``EVENT_FIELDS``: what the process that created it
knew, before the entry had a place in the chain; keys.py).
"""

import hashlib
import json
import math
from collections.abc import Iterable, Mapping
from typing import Any

GENESIS_HASH = "0" * 64
ENTRY_FIELDS = ("seq", "created_at", "tenant_id", "actor", "event_type", "refs", "evidence", "prev_hash")
SIGNED_ENTRY_FIELDS = (*ENTRY_FIELDS, "event_id", "signature")
EVENT_FIELDS = ("event_id", "created_at", "tenant_id", "actor", "event_type", "refs", "evidence")
_MAX_DEPTH = 32


class CanonicalError(ValueError):
    """A value cannot be encoded canonically (non-finite float, non-string key, unsupported type)."""


def _check(value: Any, depth: int = 0) -> Any:
    """Return ``value`` with tuples turned into lists; raise CanonicalError on anything not canonical."""
    if depth > _MAX_DEPTH:
        raise CanonicalError("value nested too deeply")
    if value is None or isinstance(value, bool | int | str):
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise CanonicalError("string is not valid Unicode (lone surrogate)") from exc
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise CanonicalError("non-finite float")
        return value
    if isinstance(value, list | tuple):
        return [_check(v, depth + 1) for v in value]
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise CanonicalError(f"object key {k!r} is not a string")
            _check(k)
            out[k] = _check(v, depth + 1)
        return out
    raise CanonicalError(f"type {type(value).__name__} has no canonical JSON form")


def canonical_json(value: Any) -> bytes:
    """The canonical UTF-8 JSON bytes of ``value``."""
    checked = _check(value)
    text = json.dumps(checked, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return text.encode("utf-8")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def hashed_fields(entry: Mapping[str, Any]) -> tuple[str, ...]:
    """The fields an entry's hash covers: ``SIGNED_ENTRY_FIELDS`` when it carries a signature, else ``ENTRY_FIELDS``."""
    return SIGNED_ENTRY_FIELDS if entry.get("signature") is not None else ENTRY_FIELDS


def compute_entry_hash(entry: Mapping[str, Any]) -> str:
    """Hex sha256 of the canonical encoding of the entry's hashed fields (``created_at`` as a string)."""
    fields = hashed_fields(entry)
    missing = [f for f in fields if f not in entry]
    if missing:
        raise CanonicalError(f"entry lacks fields {missing}")
    return sha256_hex(canonical_json({f: entry[f] for f in fields}))


def commit_sample_ids(sample_ids: Iterable[str]) -> str:
    """Hex sha256 naming a set of sample ids without listing them (a log entry holds this, never the ids).

    The bytes hashed are the JSON array of the ids sorted by code point, written as Python's ``json.dumps``
    writes it by default: ``", "`` between items and non-ASCII characters as ``\\uXXXX`` escapes, e.g.
    ``["u-1", "u-9"]``. (The service records ``deletion.requested`` with the same definition.)
    """
    return sha256_hex(json.dumps(sorted(sample_ids)).encode("ascii"))
