"""SQL for deletion requests and the tombstones that claim rows for them."""

from datetime import datetime
from typing import Any

from sqlalchemy import and_, bindparam, insert, select
from sqlalchemy.orm import Session

from app.core.pagination import PageParams, time_ordered
from app.datasets.orm import DatasetRow
from app.deletions.orm import DeletionRequest, Tombstone
from app.models.orm import Model

LOOKUP_CHUNK = 900  # row indexes per IN (...) lookup (below SQLite's bound-parameter limit)
INSERT_CHUNK = 5000


def get_request(session: Session, *, deletion_id: str, tenant_id: str) -> DeletionRequest | None:
    return session.scalar(
        select(DeletionRequest).where(DeletionRequest.id == deletion_id, DeletionRequest.tenant_id == tenant_id)
    )


def list_requests(
    session: Session,
    *,
    tenant_id: str,
    model_id: str | None,
    status: str | None,
    since: datetime | None,
    until: datetime | None,
    params: PageParams,
) -> tuple[list[DeletionRequest], str | None]:
    """One page of the tenant's deletion requests (of one model when given), newest first; ``status`` and the
    creation time (``since`` inclusive, ``until`` exclusive) filter them."""
    stmt = select(DeletionRequest).where(DeletionRequest.tenant_id == tenant_id)
    if model_id is not None:
        stmt = stmt.where(DeletionRequest.model_id == model_id)
    if status is not None:
        stmt = stmt.where(DeletionRequest.status == status)
    if since is not None:
        stmt = stmt.where(DeletionRequest.created_at >= since)
    if until is not None:
        stmt = stmt.where(DeletionRequest.created_at < until)
    return time_ordered(session, stmt, entity=DeletionRequest, params=params)


def model_exists(session: Session, *, model_id: str, tenant_id: str) -> bool:
    return session.scalar(select(Model.id).where(Model.id == model_id, Model.tenant_id == tenant_id)) is not None


# The POST path's statements, built once: executing a prebuilt statement with parameters hits SQLAlchemy's
# compiled cache directly, without rebuilding and re-keying the statement on every request.
_m, _r, _t = Model.__table__, DatasetRow.__table__, Tombstone.__table__
_ROWS_AND_CLAIMS = (
    select(_r.c.sample_id, _r.c.row_index, _t.c.request_id, _t.c.state)
    .select_from(_r.outerjoin(_t, and_(_t.c.model_id == bindparam("model_id"), _t.c.row_index == _r.c.row_index)))
    .where(_r.c.dataset_id == bindparam("dataset_id"), _r.c.sample_id.in_(bindparam("ids", expanding=True)))
)
# The model and the first chunk of requested rows with their tombstones, in one statement: the model's row,
# left-joined to the data set's rows named in the request, left-joined to the tombstones covering them.
_MODEL_ROWS_AND_CLAIMS = (
    select(_m.c.status, _m.c.dataset_id, _r.c.sample_id, _r.c.row_index, _t.c.request_id, _t.c.state)
    .select_from(
        _m.outerjoin(
            _r, and_(_r.c.dataset_id == _m.c.dataset_id, _r.c.sample_id.in_(bindparam("ids", expanding=True)))
        ).outerjoin(_t, and_(_t.c.model_id == _m.c.id, _t.c.row_index == _r.c.row_index))
    )
    .where(_m.c.id == bindparam("model_id"), _m.c.tenant_id == bindparam("tenant_id"))
)
_INSERT_REQUEST = insert(DeletionRequest.__table__)
_INSERT_TOMBSTONES = insert(_t)


def model_rows_and_claims(
    session: Session, *, model_id: str, tenant_id: str, sample_ids: list[str]
) -> tuple[str, str, dict[str, int], list[dict[str, Any]]] | None:
    """(status, dataset_id, rows, claims) of the tenant's model for the requested ids, or None when there is no
    such model. rows: sample id -> row index for the ids that exist in the data set; claims: the tombstones
    (pending or deleted) already covering any of those rows. The first LOOKUP_CHUNK ids come with the model in
    one statement; the rest (only for a model that is ready) in one statement per chunk."""
    first = sample_ids[:LOOKUP_CHUNK]
    params = {"model_id": model_id, "tenant_id": tenant_id, "ids": first}
    result = session.connection().execute(_MODEL_ROWS_AND_CLAIMS, params).all()
    if not result:
        return None
    status, dataset_id = result[0][0], result[0][1]
    rows: dict[str, int] = {}
    claimed: list[dict[str, Any]] = []
    _collect((r[2:] for r in result if r[2] is not None), rows, claimed)
    if status == "ready" and len(sample_ids) > LOOKUP_CHUNK:
        more_rows, more_claimed = rows_and_claims(
            session, dataset_id=dataset_id, model_id=model_id, sample_ids=sample_ids[LOOKUP_CHUNK:]
        )
        rows.update(more_rows)
        claimed.extend(more_claimed)
    return status, dataset_id, rows, claimed


def rows_and_claims(
    session: Session, *, dataset_id: str, model_id: str, sample_ids: list[str]
) -> tuple[dict[str, int], list[dict[str, Any]]]:
    """For the ids that exist in the data set: sample id -> row index, and the tombstones (pending or deleted)
    of the model already covering any of those rows, in one statement per chunk (rows left-joined to
    tombstones on the tombstones' primary key)."""
    conn = session.connection()
    rows: dict[str, int] = {}
    claimed: list[dict[str, Any]] = []
    for start in range(0, len(sample_ids), LOOKUP_CHUNK):
        params = {"model_id": model_id, "dataset_id": dataset_id, "ids": sample_ids[start : start + LOOKUP_CHUNK]}
        _collect(conn.execute(_ROWS_AND_CLAIMS, params), rows, claimed)
    return rows, claimed


def _collect(found, rows: dict[str, int], claimed: list[dict[str, Any]]) -> None:
    """Add (sample_id, row_index, tombstone's deletion id, tombstone state) results to ``rows`` and ``claimed``."""
    for sample_id, row_index, deletion_id, state in found:
        rows[sample_id] = row_index
        if deletion_id is not None:
            claimed.append({"sample_id": sample_id, "deletion_id": deletion_id, "state": state})


def insert_request(session: Session, *, values: dict[str, Any], rows: dict[str, int]) -> None:
    """Insert the request and a pending tombstone per row with Core statements (no unit of work); a row already
    claimed fails on the tombstone primary key (IntegrityError). ``rows``: the stored (keyed-hash) sample id of
    each row -> its row number."""
    conn = session.connection()
    conn.execute(_INSERT_REQUEST, values)
    items = [
        {"model_id": values["model_id"], "row_index": idx, "sample_id": sid, "request_id": values["id"],
         "state": "pending"}
        for sid, idx in rows.items()
    ]  # fmt: skip
    for start in range(0, len(items), INSERT_CHUNK):
        conn.execute(_INSERT_TOMBSTONES, items[start : start + INSERT_CHUNK])
