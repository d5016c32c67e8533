"""SQL for data sets and their rows."""

from collections.abc import Sequence

from sqlalchemy import Row, delete, distinct, func, insert, select, update
from sqlalchemy.orm import Session

from app.datasets.orm import Dataset, DatasetRow
from app.deletions.orm import Tombstone
from app.models.orm import Model

INSERT_CHUNK = 5000  # rows per multi-row INSERT


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


def list_datasets(session: Session, *, tenant_id: str) -> Sequence[Dataset]:
    return session.scalars(select(Dataset).where(Dataset.tenant_id == tenant_id).order_by(Dataset.created_at)).all()


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
