"""What binds a deletion receipt to the audit entries it proves are in the log.

A receipt is signed by the log's key, and so is every entry; a receipt is worth more than the key holder's word
only where its fields equal what the log recorded. ``check_binding`` runs after the entries' hashes, signatures and
inclusion proofs have been checked (unlearn_client.verify.checks.verify_receipt) and refuses any difference:

- the request: ``id``, ``model_id``, ``tenant_id``, ``requester`` (the key id that asked: the entry's actor),
  ``method``, ``sample_count`` and the ids' commitment ``sample_ids_sha256`` equal those of its
  ``deletion.requested`` entry; ``created_at``, ``started_at`` and ``finished_at`` are the times of its
  ``deletion.requested``, first ``deletion.started`` and ``deletion.succeeded``/``deletion.failed`` entries (None
  when there is none); every entry belongs to the request's tenant and model;
- the outcome: ``status`` "succeeded" or "failed" exactly when the matching entry is there (and not the other);
  a failed request's ``error`` is the logged one, a succeeded request has none;
- a succeeded request's ``evidence`` equals its ``deletion.succeeded`` entry's evidence, key for key (an
  unfinished or failed request has none), and ``forget_commitment`` is the one that evidence holds;
- the versions: ``result_version`` is the version that entry names, and its ``version.created`` entry is in the
  receipt with the same ``checkpoint_sha256`` and a ``parent_version`` equal to ``base_version``; every
  ``checkpoint_sha256`` a version entry in the receipt records equals the receipt's;
- the verdict: ``purpose`` is the one the ``deletion.requested`` entry records ("privacy" when it records none,
  as before purposes existed); ``outcome`` is the logged evidence's; ``removed_by`` follows from the logged
  evidence (``retrain_escalated`` when it holds ``escalated_from``, ``retrain`` for method retrain, else ``iau``;
  none before the request succeeded); ``exact_as_of_version`` and ``exact_version`` name one version, at or after
  the result version (the result version itself for a retrain), whose ``version.created`` entry is in the receipt
  and shows a retrain from scratch (its evidence's ``exact`` block covering that version or, for a version
  published before the block existed, method ``retrain`` or ``consolidation``), with the same parent and
  ``checkpoint_sha256``.

Not bound, because the log does not record them: the request's free-text ``reason``, ``issued_at``, and a version's
size, state and row time; an unfinished request's ``error`` (the text of a retried attempt) and ``base_version``.
"""

from collections.abc import Mapping, Sequence
from typing import Any

from unlearn_client.errors import VerificationError
from unlearn_client.verify.canonical import commit_sample_ids

TERMINAL = {"succeeded": "deletion.succeeded", "failed": "deletion.failed"}
# request field -> (event type of the request's entry recording it, path of the value in that entry)
REQUEST_BINDINGS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("id", "deletion.requested", ("refs", "request_id")),
    ("model_id", "deletion.requested", ("refs", "model_id")),
    ("tenant_id", "deletion.requested", ("tenant_id",)),
    ("requester", "deletion.requested", ("actor",)),
    ("method", "deletion.requested", ("evidence", "method")),
    ("sample_count", "deletion.requested", ("evidence", "sample_count")),
    ("sample_ids_sha256", "deletion.requested", ("evidence", "sample_ids_sha256")),
    ("created_at", "deletion.requested", ("created_at",)),
    ("started_at", "deletion.started", ("created_at",)),
)


def _at(entry: Mapping[str, Any] | None, path: tuple[str, ...]) -> Any:
    value: Any = entry
    for key in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def _differs(field: str, value: Any, logged: Any, entry: Mapping[str, Any] | None) -> VerificationError:
    where = f"entry {entry['seq']} ({entry['event_type']})" if entry else "the log (no such entry)"
    return VerificationError(f"{field} in the receipt ({value!r}) differs from {where}: {logged!r}")


def _mapping_or_none(value: Any, what: str) -> Mapping[str, Any] | None:
    if value is not None and not isinstance(value, Mapping):
        raise VerificationError(f"{what} is not a JSON object")
    return value


def check_binding(receipt: Mapping[str, Any], entries: Sequence[Mapping[str, Any]]) -> None:
    """Raise VerificationError unless every field of the receipt that the log records equals the logged value.
    ``entries`` are the receipt's audit entries, already verified, in increasing seq order."""
    request = receipt["request"]
    request_id = request.get("id")
    first: dict[str, Mapping[str, Any]] = {}
    for entry in entries:
        if entry.get("tenant_id") != request.get("tenant_id"):
            raise _differs("request.tenant_id", request.get("tenant_id"), entry.get("tenant_id"), entry)
        if (entry.get("refs") or {}).get("request_id") == request_id:
            first.setdefault(entry["event_type"], entry)
    if "deletion.requested" not in first:
        raise VerificationError("receipt lacks the deletion.requested entry")
    for field, event_type, path in REQUEST_BINDINGS:
        entry = first.get(event_type)
        logged = _at(entry, path)
        if request.get(field) != logged:
            raise _differs(f"request.{field}", request.get(field), logged, entry)
    ids = request.get("sample_ids")
    if ids is not None:
        if not isinstance(ids, list) or commit_sample_ids(ids) != request.get("sample_ids_sha256"):
            raise VerificationError("request's sample_ids do not match its sample_ids_sha256")
        if len(ids) != request.get("sample_count"):
            raise VerificationError("request's sample_ids are not sample_count ids")

    status = request.get("status")
    outcomes = {t for t in TERMINAL.values() if t in first}
    expected = {TERMINAL[status]} if status in TERMINAL else set()
    if outcomes != expected:
        logged = ", ".join(sorted(outcomes)) or "no outcome entry"
        raise VerificationError(f"request.status {status!r} differs from the log: {logged}")
    ended = first.get(TERMINAL.get(status, ""))
    if request.get("finished_at") != _at(ended, ("created_at",)):
        raise _differs("request.finished_at", request.get("finished_at"), _at(ended, ("created_at",)), ended)
    if status in TERMINAL:
        logged_error = _at(ended, ("evidence", "error")) if status == "failed" else None
        if request.get("error") != logged_error:
            raise _differs("request.error", request.get("error"), logged_error, ended)

    succeeded = first.get("deletion.succeeded")
    logged_evidence = _mapping_or_none(_at(succeeded, ("evidence",)), "logged evidence")
    evidence = _mapping_or_none(receipt.get("evidence"), "evidence")
    if evidence != logged_evidence:
        mine, logged = dict(evidence or {}), dict(logged_evidence or {})
        keys = sorted(k for k in set(mine) | set(logged) if k not in mine or k not in logged or mine[k] != logged[k])
        where = f"entry {succeeded['seq']} (deletion.succeeded)" if succeeded else "the log (no deletion.succeeded)"
        detail = f"fields {keys}" if evidence is not None and logged_evidence is not None else "presence"
        raise VerificationError(f"evidence in the receipt differs from {where}: {detail}")
    logged_commitment = (logged_evidence or {}).get("forget_commitment")
    if receipt.get("forget_commitment") != logged_commitment:
        raise _differs("forget_commitment", receipt.get("forget_commitment"), logged_commitment, succeeded)
    _check_versions(receipt, entries, succeeded)
    _check_verdict(receipt, entries, first, logged_evidence)


def _check_versions(
    receipt: Mapping[str, Any], entries: Sequence[Mapping[str, Any]], succeeded: Mapping[str, Any] | None
) -> None:
    base = _mapping_or_none(receipt.get("base_version"), "base_version") or {}
    result = _mapping_or_none(receipt.get("result_version"), "result_version") or {}
    created = {(e.get("refs") or {}).get("version"): e for e in entries if e.get("event_type") == "version.created"}
    if succeeded is not None:
        logged = (succeeded.get("refs") or {}).get("version")
        if result.get("version") != logged:
            raise _differs("result_version", result.get("version"), logged, succeeded)
        made = created.get(logged)
        if made is None:
            raise VerificationError(f"result_version {logged}: the receipt lacks its version.created entry")
        parent = (made.get("refs") or {}).get("parent_version")
        if base.get("version") != parent:
            raise _differs("base_version", base.get("version"), parent, made)
        if result.get("parent_version") != parent:
            raise _differs("result_version.parent_version", result.get("parent_version"), parent, made)
    elif result:
        raise VerificationError("result_version in the receipt, but the log holds no deletion.succeeded")
    for name, version in (("base_version", base), ("result_version", result)):
        for e in entries:
            refs = e.get("refs") or {}
            if e.get("event_type") in ("version.created", "version.purged") and refs.get("version") == version.get(
                "version"
            ):
                logged = refs.get("checkpoint_sha256", (e.get("evidence") or {}).get("checkpoint_sha256"))
                if logged is not None and logged != version.get("checkpoint_sha256"):
                    raise _differs(f"{name}.checkpoint_sha256", version.get("checkpoint_sha256"), logged, e)


def _removed_by(status: Any, evidence: Mapping[str, Any] | None) -> str | None:
    if status != "succeeded" or evidence is None:
        return None
    if "escalated_from" in evidence:
        return "retrain_escalated"
    return "retrain" if evidence.get("method") == "retrain" else "iau"


def _retrained_from_scratch(created: Mapping[str, Any], version: int) -> bool:
    evidence = created.get("evidence") or {}
    exact = evidence.get("exact")
    if isinstance(exact, Mapping):
        return exact.get("covers_requests_through_version") == version
    return evidence.get("method") in ("retrain", "consolidation")


def _check_verdict(
    receipt: Mapping[str, Any],
    entries: Sequence[Mapping[str, Any]],
    first: Mapping[str, Mapping[str, Any]],
    logged_evidence: Mapping[str, Any] | None,
) -> None:
    request = receipt["request"]
    requested = first["deletion.requested"]
    logged_purpose = _at(requested, ("evidence", "purpose")) or "privacy"
    if request.get("purpose") != logged_purpose:
        raise _differs("request.purpose", request.get("purpose"), logged_purpose, requested)
    succeeded = first.get("deletion.succeeded")
    logged_outcome = (logged_evidence or {}).get("outcome")
    if receipt.get("outcome") != logged_outcome:
        raise _differs("outcome", receipt.get("outcome"), logged_outcome, succeeded)
    removed_by = _removed_by(request.get("status"), logged_evidence)
    if request.get("removed_by") != removed_by:
        raise _differs("request.removed_by", request.get("removed_by"), removed_by, succeeded)

    exact = request.get("exact_as_of_version")
    exact_version = _mapping_or_none(receipt.get("exact_version"), "exact_version")
    if exact is None:
        if exact_version is not None:
            raise VerificationError("exact_version in the receipt, but request.exact_as_of_version is null")
        return
    result = (_mapping_or_none(receipt.get("result_version"), "result_version") or {}).get("version")
    if not isinstance(exact, int) or isinstance(exact, bool) or not isinstance(result, int) or exact < result:
        raise VerificationError(f"request.exact_as_of_version {exact!r} is not a version at or after the result")
    if removed_by in ("retrain", "retrain_escalated") and exact != result:
        raise VerificationError("request.exact_as_of_version of a retrained request must be its result version")
    if exact_version is None or exact_version.get("version") != exact:
        raise VerificationError("exact_version in the receipt does not name request.exact_as_of_version")
    made = [
        e for e in entries if e.get("event_type") == "version.created" and (e.get("refs") or {}).get("version") == exact
    ]
    if not any(_retrained_from_scratch(e, exact) for e in made):
        raise VerificationError(f"no entry shows version {exact} retrained from scratch (exact_as_of_version)")
    parent = (made[0].get("refs") or {}).get("parent_version")
    if exact_version.get("parent_version") != parent:
        raise _differs("exact_version.parent_version", exact_version.get("parent_version"), parent, made[0])
    for e in entries:
        refs = e.get("refs") or {}
        if e.get("event_type") in ("version.created", "version.purged") and refs.get("version") == exact:
            logged = refs.get("checkpoint_sha256", (e.get("evidence") or {}).get("checkpoint_sha256"))
            if logged is not None and logged != exact_version.get("checkpoint_sha256"):
                raise _differs("exact_version.checkpoint_sha256", exact_version.get("checkpoint_sha256"), logged, e)
