"""A model's removal policy: what happens when a deletion's target is not met, and when approximate removals are
made exact by retraining from scratch (docs/outcomes.md).

The policy fields live with the engine overrides in the model's `unlearn` settings (the engine ignores them);
omitted fields resolve here, at the time they are used, so a model registered before a default changed follows
the new default.

- `escalate`: `retrain` (an unmet target is followed by an exact retrain of the request's rows, published as the
  next version) or `report` (the request succeeds and its verdict says `met: false`). Default `retrain` for a
  model the service trained (it has the recipe), `report` for an uploaded one, which cannot be retrained.
- `consolidate_after_deletions` (K) and `consolidate_after_hours` (T): a model with a recipe is retrained from
  scratch on its live rows once K requests were removed approximately and not yet covered by an exact retrain,
  or once the oldest of them has stood for T hours. Consolidation cannot be switched off; a large K and T make it
  rare.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Escalate = Literal["retrain", "report"]

# One consolidation costs one full retrain R. Spread over K approximate deletions it adds R/K to each; a targeted
# single-row deletion costs about R/100 or less on the benchmark's tasks, so K = 100 at most doubles what an
# approximate deletion costs and keeps it tens of times cheaper than retraining for every request.
CONSOLIDATE_AFTER_DELETIONS = 100
# How long an approximate removal may stand before an exact retrain covers it (plus the retrain's own time and at
# most one maintenance interval). For a model with few deletions this means at most one retrain a day.
CONSOLIDATE_AFTER_HOURS = 24.0
POLICY_FIELDS = ("escalate", "consolidate_after_deletions", "consolidate_after_hours")


@dataclass(frozen=True)
class Policy:
    escalate: Escalate
    consolidate_after_deletions: int | None  # None: the model has no recipe, it is never consolidated
    consolidate_after_hours: float | None

    def as_dict(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in POLICY_FIELDS}


def resolve(unlearn: dict[str, Any] | None, *, has_recipe: bool) -> Policy:
    """The policy of a model from its stored `unlearn` settings."""
    given = unlearn or {}
    if not has_recipe:
        return Policy(escalate="report", consolidate_after_deletions=None, consolidate_after_hours=None)
    return Policy(
        escalate=given.get("escalate") or "retrain",
        consolidate_after_deletions=int(given.get("consolidate_after_deletions") or CONSOLIDATE_AFTER_DELETIONS),
        consolidate_after_hours=float(given.get("consolidate_after_hours") or CONSOLIDATE_AFTER_HOURS),
    )


def refusal(unlearn: dict[str, Any], *, has_recipe: bool) -> str | None:
    """Why these settings cannot apply to the model (None when they can)."""
    if has_recipe:
        return None
    if unlearn.get("escalate") == "retrain":
        return "escalate 'retrain' needs the model's training recipe; an uploaded model can only 'report'"
    named = [f for f in ("consolidate_after_deletions", "consolidate_after_hours") if unlearn.get(f) is not None]
    if named:
        return f"{', '.join(named)}: consolidation retrains from scratch and needs the model's training recipe"
    return None
