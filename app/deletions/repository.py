"""SQL for deletion requests and the tombstones that claim rows for them."""

from collections.abc import Iterable

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from app.deletions.orm import DeletionRequest, Tombstone

LOOKUP_CHUNK = 900  # row indexes per IN (...) lookup (below SQLite's bound-parameter limit)
INSERT_CHUNK = 5000


def get_request(session: Session, *, request_id: str, tenant_id: str) -> DeletionRequest | None:
    return session.scalar(
        select(DeletionRequest).where(DeletionRequest.id == request_id, DeletionRequest.tenant_id == tenant_id)
    )


def add_request(session: Session, *, request: DeletionRequest, rows: dict[str, int]) -> DeletionRequest:
    """Insert the request and a pending tombstone per row; a row already claimed fails on the tombstone
    primary key (IntegrityError at flush)."""
    session.add(request)
    session.flush()
    items = [
        {"model_id": request.model_id, "row_index": idx, "sample_id": sid, "request_id": request.id, "state": "pending"}
        for sid, idx in rows.items()
    ]
    for start in range(0, len(items), INSERT_CHUNK):
        session.execute(insert(Tombstone), items[start : start + INSERT_CHUNK])
    return request


def claimed_rows(session: Session, *, model_id: str, row_indexes: Iterable[int]) -> list[Tombstone]:
    """Tombstones (pending or deleted) already covering any of these rows of the model."""
    indexes = list(row_indexes)
    found: list[Tombstone] = []
    for start in range(0, len(indexes), LOOKUP_CHUNK):
        chunk = indexes[start : start + LOOKUP_CHUNK]
        stmt = select(Tombstone).where(Tombstone.model_id == model_id, Tombstone.row_index.in_(chunk))
        found.extend(session.scalars(stmt))
    return found
