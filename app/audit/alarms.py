"""Alarms raised when the stored log or the outbox is not what the service wrote: a log event at ERROR level
(``audit.integrity_alarm kind=... detail=...``) and the counter ``unlearn_audit_integrity_alarms_total{kind}``.

Kinds: ``entry_hash`` (an entry's content does not reproduce its hash), ``chain`` (an entry does not chain to the
one before), ``signature`` (an entry without a valid signature by the log's key), ``gap`` (a missing seq),
``rewritten`` (an entry this process verified before changed or vanished), ``inconsistent_head`` (the log no
longer reproduces a tree head the service signed), ``outbox_signature`` (an outbox event without a valid
signature: refused), ``outbox_replay`` (a copy of an event already chained: dropped), ``checkpoint_file`` (the
published checkpoint file cannot be read or is not the service's).
"""

import logging

from prometheus_client import Counter

from app.core import metrics as _metrics  # noqa: F401 - multi-process metric values are set up before ours
from app.core.errors import ServiceUnavailable
from app.core.logging import log_event

log = logging.getLogger("app.audit")

INTEGRITY_ALARMS = Counter(
    "unlearn_audit_integrity_alarms_total",
    "Audit log integrity alarms: stored entries or outbox events that are not what the service wrote, by kind",
    ["kind"],
)
KINDS = (
    "entry_hash",
    "chain",
    "signature",
    "gap",
    "rewritten",
    "inconsistent_head",
    "outbox_signature",
    "outbox_replay",
    "checkpoint_file",
)


def alarm(kind: str, detail: str, **fields: object) -> None:
    """Log the alarm and count it."""
    if kind not in KINDS:
        raise ValueError(f"unknown alarm kind {kind!r}")
    INTEGRITY_ALARMS.labels(kind=kind).inc()
    log_event(log, "audit.integrity_alarm", level=logging.ERROR, kind=kind, detail=detail, **fields)


class LogIntegrityError(ServiceUnavailable):
    """The stored log is not what the service wrote: the service signs nothing over it (503 on audit endpoints)."""

    code = "audit-log-integrity"

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(
            f"the audit log failed its integrity check ({kind}): {detail}; the service signs no tree head, proof or "
            "receipt until an operator has looked into it",
            retry_after_s=60,
            alarm=kind,
        )
        self.kind = kind


def integrity_failure(kind: str, detail: str, **fields: object) -> LogIntegrityError:
    """Raise the alarm and return the error to raise."""
    alarm(kind, detail, **fields)
    return LogIntegrityError(kind, detail)
