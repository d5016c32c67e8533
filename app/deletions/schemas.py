"""Request and response bodies for deletion requests."""

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from app.core.text import first_bad_identifiers, text_problem


class DeletionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # External sample ids of the training rows to forget. Duplicates are removed (first occurrence kept).
    sample_ids: list[str] = Field(max_length=100_000)
    reason: str | None = Field(default=None, max_length=2000)
    # iau: approximate unlearning (default); retrain: exact, retrains from scratch on the remaining rows.
    method: Literal["iau", "retrain"] = "iau"
    # privacy: the forgotten rows must become indistinguishable from rows the model never saw (membership target);
    # poison: the behaviour the rows taught must go (a fixed removal budget, then forget-set accuracy checked).
    purpose: Literal["privacy", "poison"] = "privacy"

    @field_validator("sample_ids")
    @classmethod
    def _storable_ids(cls, ids: list[str]) -> list[str]:
        # No control characters nor lone surrogates: no data set holds such an id, and no database can store one.
        if bad := first_bad_identifiers(ids, limit=5):
            raise ValueError("; ".join(f"sample_ids[{index}] {problem}" for index, problem in bad))
        return ids

    @field_validator("reason")
    @classmethod
    def _storable_reason(cls, reason: str | None) -> str | None:
        if reason is not None and (problem := text_problem(reason)) is not None:
            raise ValueError(f"reason {problem}")
        return reason


class DeletionOut(BaseModel):
    id: str
    model_id: str
    # queued | running | succeeded | failed
    status: Literal["queued", "running", "succeeded", "failed"]
    stage: str | None
    progress: float
    base_version: int | None
    result_version: int | None
    evidence: dict[str, Any] | None
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    method: str
    purpose: str
    reason: str | None
    sample_count: int
    attempts: int
    # The verdict: {target, met, measured, reason} (evidence.outcome); for an exact retrain the exact outcome.
    outcome: dict[str, Any] | None
    # Which path removed the rows: iau | retrain | retrain_escalated (null until succeeded).
    removed_by: Literal["iau", "retrain", "retrain_escalated"] | None
    # The first version retrained from scratch without the rows; null while the removal is only approximate.
    exact_as_of_version: int | None
    # Salted commitment to the request's sample ids, as in the audit log (app.audit.commitments), and the hex
    # salt that opens it with the ids. Neither is stored next to the other; a replayed POST omits the salt.
    sample_ids_sha256: str | None = None
    commitment_salt: str | None = None
