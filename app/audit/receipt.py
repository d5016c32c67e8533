"""Deletion receipts: a signed JSON document binding a deletion request to its audit entries.

A receipt holds the request (its sample count and the salted commitment to its sample ids, with the salt that
opens it; never the ids), the salted commitment to the forgotten rows, the base and result versions with
checkpoint hashes, the verdict (`outcome`), which path removed the rows and the version retrained from scratch
that made the removal exact (`exact_version`, once there is one), the evidence, every audit entry that concerns
the request with its inclusion proof, and the signed tree head those proofs lead to. The whole body is signed.
Built from plain mappings so that it does not depend on how the rows were loaded.
"""

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from app.audit.canonical import commit_sample_ids, format_timestamp, normalize, sanitize_floats
from app.audit.signing import RECEIPT_DOMAIN, Signer
from app.core.idhash import is_hashed

RECEIPT_FORMAT = "unlearn-receipt/v1"
REQUEST_FIELDS = (
    "id",
    "model_id",
    "tenant_id",
    "status",
    "method",
    "purpose",
    "reason",
    "requester",
    "error",
    "created_at",
    "started_at",
    "finished_at",
    "removed_by",
    "exact_as_of_version",
)
VERSION_FIELDS = ("version", "parent_version", "checkpoint_sha256", "checkpoint_size", "state", "created_at")


def _plain(value: Any) -> Any:
    return format_timestamp(value) if isinstance(value, datetime) else value


def request_summary(request: Mapping[str, Any]) -> dict[str, Any]:
    """The request's fields; its ids only as ``sample_ids_sha256`` (salted, opened with ``commitment_salt``).

    A request made before salted commitments has none recorded: its unsalted commitment is computed from its
    plain ids while it still has them."""
    ids = list(request.get("sample_ids") or [])
    commitment = request.get("sample_ids_sha256")
    if commitment is None and ids and not any(is_hashed(i) for i in ids):
        commitment = commit_sample_ids(ids)
    summary = {f: _plain(request.get(f)) for f in REQUEST_FIELDS}
    summary.update(sample_count=len(ids), sample_ids_sha256=commitment, commitment_salt=request.get("commitment_salt"))
    return summary


def version_summary(version: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if version is None:
        return None
    return {f: _plain(version.get(f)) for f in VERSION_FIELDS}


def build_receipt(
    *,
    request: Mapping[str, Any],
    base_version: Mapping[str, Any] | None,
    result_version: Mapping[str, Any] | None,
    audit: Sequence[Mapping[str, Any]],
    tree_head: Mapping[str, Any],
    signer: Signer,
    issued_at: datetime,
    exact_version: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The signed receipt. ``audit`` items are ``{"entry": ..., "inclusion_proof": ...}`` against ``tree_head``."""
    evidence = request.get("evidence") or {}
    body = {
        "receipt_format": RECEIPT_FORMAT,
        "issued_at": format_timestamp(issued_at),
        "request": request_summary(request),
        "forget_commitment": evidence.get("forget_commitment"),
        "base_version": version_summary(base_version),
        "result_version": version_summary(result_version),
        "outcome": evidence.get("outcome"),
        "exact_version": version_summary(exact_version),
        "evidence": request.get("evidence"),
        "audit": list(audit),
        "tree_head": dict(tree_head),
    }
    return signer.sign(RECEIPT_DOMAIN, normalize(sanitize_floats(body)))
