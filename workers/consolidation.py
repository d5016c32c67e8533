"""Which approximate removals an exact retrain covers, and when a model is due for a consolidation retrain.

A request removed by IAU (`removed_by = 'iau'`) is approximate: the model was moved away from its rows, not
trained without them. Any version trained from scratch on the model's live rows (a `retrain` request, an
escalation, a consolidation) no longer carries any row deleted up to it, so it makes every earlier approximate
removal of the model exact: `mark_covered` sets their `exact_as_of_version` in the publishing transaction and
audits it (`model.consolidated`, with the number of requests covered and a sha256 over their ids; never sample
ids).

A model with a training recipe is due for consolidation once K requests are approximate
(`consolidate_after_deletions`) or the oldest of them was applied T hours ago (`consolidate_after_hours`);
app/models/policy.py holds the defaults and why.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from app.core.db import session_scope, utcnow
from app.deletions.orm import DeletionRequest
from app.models import policy
from app.models.orm import Model
from workers.jobs.common import audit


def _approximate(*where):
    return (
        DeletionRequest.removed_by == "iau",
        DeletionRequest.exact_as_of_version.is_(None),
        DeletionRequest.status == "succeeded",
        *where,
    )


def mark_covered(session: Session, *, model: Model, version: int, trigger: str) -> int:
    """In the publishing transaction of `version` (trained from scratch on the live rows): every approximate
    removal applied before it becomes exact as of `version`. Audits `model.consolidated` when any was covered or
    the retrain was a consolidation. Returns how many requests were covered."""
    covered = list(
        session.execute(
            update(DeletionRequest)
            .where(*_approximate(DeletionRequest.model_id == model.id, DeletionRequest.result_version < version))
            .values(exact_as_of_version=version)
            .returning(DeletionRequest.id)
            .execution_options(synchronize_session=False)
        ).scalars()
    )
    if covered or trigger in ("deletions", "hours"):
        audit(
            session,
            event_type="model.consolidated",
            tenant_id=model.tenant_id,
            refs={"model_id": model.id, "version": version},
            evidence={
                "trigger": trigger,
                "covered_requests": len(covered),
                "covered_requests_sha256": hashlib.sha256("\n".join(sorted(covered)).encode()).hexdigest(),
                "covers_requests_through_version": version,
            },
        )
    return len(covered)


@dataclass(frozen=True)
class Standing:
    """A model's approximate removals not yet covered by an exact retrain."""

    model_id: str
    count: int
    oldest: datetime  # when the oldest of them was applied


def due_reason(model: Model, item: Standing | None, *, now: datetime | None = None) -> str | None:
    """Why the model is due for consolidation now ("deletions" or "hours"), or None."""
    if item is None or model.status != "ready" or model.train_recipe is None:
        return None
    rules = policy.resolve(model.unlearn_defaults, has_recipe=True)
    if item.count >= rules.consolidate_after_deletions:
        return "deletions"
    now = now or utcnow()
    if item.oldest is not None and now - item.oldest >= timedelta(hours=rules.consolidate_after_hours):
        return "hours"
    return None


def due_models(model_id: str | None = None) -> list[tuple[str, str]]:
    """(model id, reason) of every model (or of `model_id`) due for consolidation now: one grouped scan of the
    approximate removals (an index range), joined to their models."""
    counts = (
        select(
            DeletionRequest.model_id.label("model_id"),
            func.count().label("n"),
            func.min(DeletionRequest.finished_at).label("oldest"),
        )
        .where(*_approximate(*([DeletionRequest.model_id == model_id] if model_id is not None else [])))
        .group_by(DeletionRequest.model_id)
        .subquery()
    )
    query = select(Model, counts.c.n, counts.c.oldest).join(counts, counts.c.model_id == Model.id)
    now = utcnow()
    with session_scope() as session:
        due = [
            (model.id, due_reason(model, Standing(model.id, int(n), _aware(oldest)), now=now))
            for model, n, oldest in session.execute(query).all()
        ]
    return [(m, reason) for m, reason in due if reason]


def _aware(value: datetime | str | None) -> datetime | None:
    """MIN() over a timestamp column, as a UTC datetime (SQLite hands the aggregate back as stored text)."""
    if value is None or isinstance(value, datetime):
        return value if value is None or value.tzinfo else value.replace(tzinfo=UTC)
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
