"""Row counts of every table, to show that a refused request changed nothing."""

from sqlalchemy import func, select

from app.core.db import Base


def row_counts(app) -> dict[str, int]:
    with app.state.engine.connect() as conn:
        return {t.name: conn.scalar(select(func.count()).select_from(t)) for t in Base.metadata.sorted_tables}
