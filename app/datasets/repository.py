"""SQL for data sets and their rows."""

from datetime import datetime

from sqlalchemy import Row, delete, distinct, func, insert, select, update
from sqlalchemy.orm import Session

from app.core.pagination import PageParams, time_ordered
from app.datasets.orm import Dataset, DatasetRow
from app.deletions.orm import Tombstone
from app.models.orm import Model

INSERT_CHUNK = 5000  # rows per multi-row INSERT
LOOKUP_CHUNK = 900  # values per IN (...) lookup (below SQLite's bound-parameter limit)


def get_dataset(session: Session, *, dataset_id: str, tenant_id: str) -> Dataset | None:
    return session.scalar(select(Dataset).where(Dataset.id == dataset_id, Dataset.tenant_id == tenant_id))


def add_dataset(session: Session, *, dataset: Dataset, sample_ids: list[str]) -> Dataset:
    session.add(dataset)
    session.flush()
    connection = session.connection()
    if connection.dialect.name == "postgresql" and connection.dialect.driver == "psycopg":
        # COPY in the session's own transaction: several times faster than multi-row INSERTs for 100k+ rows.
        with connection.connection.driver_connection.cursor() as cursor:
            with cursor.copy("COPY dataset_rows (dataset_id, row_index, sample_id) FROM STDIN") as copy:
                for index, sample_id in enumerate(sample_ids):
                    copy.write_row((dataset.id, index, sample_id))
        return dataset
    for start in range(0, len(sample_ids), INSERT_CHUNK):
        rows = [
            {"dataset_id": dataset.id, "row_index": start + i, "sample_id": sid}
            for i, sid in enumerate(sample_ids[start : start + INSERT_CHUNK])
        ]
        session.execute(insert(DatasetRow), rows)
    return dataset


def deleted_row_count(session: Session, *, dataset_id: str) -> int:
    """Distinct rows of the data set deleted (published) from at least one of its models."""
    stmt = (
        select(func.count(distinct(Tombstone.row_index)))
        .join(Model, Model.id == Tombstone.model_id)
        .where(Model.dataset_id == dataset_id, Tombstone.state == "deleted")
    )
    return int(session.scalar(stmt) or 0)


def count_rows(session: Session, *, dataset_id: str) -> int:
    return int(session.scalar(select(func.count()).where(DatasetRow.dataset_id == dataset_id)) or 0)


def list_datasets(session: Session, *, tenant_id: str, params: PageParams) -> tuple[list[Dataset], str | None]:
    """One page of the tenant's data sets, newest first, and the cursor of the next."""
    return time_ordered(session, select(Dataset).where(Dataset.tenant_id == tenant_id), entity=Dataset, params=params)


def rows_for_ids(session: Session, *, dataset_id: str, sample_ids: list[str]) -> dict[str, int]:
    """Stored sample id -> row number, for the given ids that the data set holds (plain, or keyed hashes)."""
    out: dict[str, int] = {}
    for start in range(0, len(sample_ids), LOOKUP_CHUNK):
        chunk = sample_ids[start : start + LOOKUP_CHUNK]
        found = session.execute(
            select(DatasetRow.sample_id, DatasetRow.row_index).where(
                DatasetRow.dataset_id == dataset_id, DatasetRow.sample_id.in_(chunk)
            )
        )
        out.update((sample_id, row_index) for sample_id, row_index in found)
    return out


def erased_rows(session: Session, *, dataset_id: str, row_indexes: list[int]) -> list[int]:
    """The given row numbers that compaction has erased."""
    out: list[int] = []
    for start in range(0, len(row_indexes), LOOKUP_CHUNK):
        chunk = row_indexes[start : start + LOOKUP_CHUNK]
        out += session.execute(
            select(DatasetRow.row_index).where(
                DatasetRow.dataset_id == dataset_id, DatasetRow.row_index.in_(chunk), DatasetRow.erased_at.is_not(None)
            )
        ).scalars()
    return out


def erased_count(session: Session, *, dataset_id: str, row_indexes: list[int]) -> int:
    return len(erased_rows(session, dataset_id=dataset_id, row_indexes=row_indexes))


def lock_dataset(session: Session, *, dataset_id: str, tenant_id: str) -> Row | None:
    """Write the data set's row (a no-op update) so the transaction holds it; (blob_sha256, num_rows,
    num_holdout), or None when the tenant has no such data set."""
    return session.execute(
        update(Dataset)
        .where(Dataset.id == dataset_id, Dataset.tenant_id == tenant_id)
        .values(name=Dataset.name)
        .returning(Dataset.blob_sha256, Dataset.num_rows, Dataset.num_holdout)
        .execution_options(synchronize_session=False)
    ).first()


def model_ids(session: Session, *, dataset_id: str) -> list[str]:
    """Models trained on the data set, oldest first."""
    stmt = select(Model.id).where(Model.dataset_id == dataset_id).order_by(Model.created_at, Model.id)
    return list(session.scalars(stmt))


def delete_dataset_rows(session: Session, *, dataset_id: str) -> None:
    """Delete the data set's rows (sample ids) and the data set itself."""
    session.execute(delete(DatasetRow).where(DatasetRow.dataset_id == dataset_id))
    session.execute(delete(Dataset).where(Dataset.id == dataset_id).execution_options(synchronize_session=False))


def mark_compaction_due(session: Session, *, dataset_id: str, at: datetime) -> None:
    """The data set's compaction is due at ``at`` (an earlier due time is kept): the reconciler then runs it."""
    session.execute(
        update(Dataset)
        .where(Dataset.id == dataset_id)
        .values(compact_after=func.coalesce(Dataset.compact_after, at))
        .execution_options(synchronize_session=False)
    )
