"""Request and response bodies for deletion requests."""

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class DeletionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # External sample ids of the training rows to forget. Duplicates are removed (first occurrence kept).
    sample_ids: list[str] = Field(max_length=100_000)
    reason: str | None = Field(default=None, max_length=2000)
    # iau: approximate unlearning (default); retrain: exact, retrains from scratch on the remaining rows.
    method: Literal["iau", "retrain"] = "iau"


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
    reason: str | None
    sample_count: int
    attempts: int
    # Salted commitment to the request's sample ids, as in the audit log (app.audit.commitments), and the hex
    # salt that opens it with the ids. Neither is stored next to the other; a replayed POST omits the salt.
    sample_ids_sha256: str | None = None
    commitment_salt: str | None = None
