"""Escalation: what happens when an approximate (IAU) update misses its target (docs/outcomes.md).

The engine's evidence carries a verdict, `outcome: {target, met, measured, reason}`. When `met` is false the
model's policy (app/models/policy.py) decides:

- `report`: the update is published as usual; the request succeeds, its verdict says `met: false`, and the
  evidence says that the policy reported it (`escalation: {policy: "report", ...}`).
- `retrain`: the approximate result is NOT published. In one transaction the update's requests go back to
  `queued` with `escalated_at` set, their evidence holds the missed verdict (`escalated_from`) and each gets a
  `deletion.escalated` audit entry. The job that holds the model's lock then applies them (with every other
  escalation waiting for the model) as one exact retrain, published as the next version with
  `removed_by: retrain_escalated`. A worker that dies in between leaves the requests queued (or running) in the
  database, and the reconciler re-enqueues them like any other.

Why the approximate result is not published first: its own measurement says the rows are still told apart from
unseen ones, so handing it out as the deletion's result would publish a checkpoint the service knows falls short;
each request keeps one result version (the one its receipt names); and every extra version is one more pair of
consecutive checkpoints whose difference points at the removed rows. The price is that the previous version stays
`latest` for the length of one retrain, and the request's stage says `escalated` meanwhile.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from app.core.db import session_scope, utcnow
from app.deletions.orm import DeletionRequest
from app.models import policy
from app.models.orm import Model
from workers.jobs.common import audit_many, event

ESCALATED_STAGE = "escalated"  # stage of a request waiting for its escalated retrain
# Evidence of the missed attempt kept on the request (the rest of the engine's evidence is not needed to judge it).
KEPT = ("method", "update", "purpose", "outcome", "before", "after", "steps", "stop_reason", "param_distance")


def review(evidence: dict[str, Any], model_info: dict[str, Any]) -> bool:
    """True when the update must not be published and an exact retrain is owed instead. With policy `report`
    and a missed target, the evidence is annotated in place. An update without a verdict is not judged."""
    outcome = evidence.get("outcome")
    if not isinstance(outcome, dict) or outcome.get("met") is not False:
        return False
    rules = policy.resolve(model_info["unlearn_defaults"], has_recipe=bool(model_info["train_recipe"]))
    if rules.escalate == "retrain":
        return True
    evidence["escalation"] = {
        "policy": "report",
        "note": "the target was not met; the model's policy reports it instead of retraining",
    }
    return False


def escalate(*, model_id: str, request_ids: list[str], evidence: dict[str, Any], job_id: str | None) -> list[str]:
    """Record that the requests' update missed its target and an exact retrain is owed; returns the requests
    recorded (those still running under this job's update)."""
    missed = {k: evidence[k] for k in KEPT if k in evidence}
    missed["base_version"] = evidence.get("base_version")
    now = utcnow()
    with session_scope() as session:
        model = session.get(Model, model_id)
        requests = list(
            session.execute(
                select(DeletionRequest).where(DeletionRequest.id.in_(request_ids), DeletionRequest.status == "running")
            ).scalars()
        )
        for r in requests:
            r.status = "queued"
            r.stage = ESCALATED_STAGE
            r.progress = 0.0
            r.attempts = 0  # the exact retrain gets its own attempts
            r.escalated_at = now
            r.evidence = {"escalated_from": missed}
            if job_id:
                r.job_id = job_id
        audit_many(
            session,
            [
                {
                    "event_type": "deletion.escalated",
                    "tenant_id": model.tenant_id,
                    "refs": {"request_id": r.id, "model_id": model_id, "base_version": missed["base_version"]},
                    "evidence": {"policy": "retrain", "outcome": missed.get("outcome")},
                }
                for r in requests
            ],
        )
    event(
        "deletion.escalated",
        model_id=model_id,
        requests=len(requests),
        reason=str((missed.get("outcome") or {}).get("reason", ""))[:200],
    )
    return [r.id for r in requests]


def missed_outcomes(request_ids: list[str]) -> dict[str, dict[str, Any]]:
    """`escalated_from` of each escalated request (the missed attempt kept when it was escalated)."""
    with session_scope() as session:
        rows = session.execute(
            select(DeletionRequest.id, DeletionRequest.evidence).where(DeletionRequest.id.in_(request_ids))
        ).all()
    return {rid: (evidence or {}).get("escalated_from") or {} for rid, evidence in rows}
