"""Row counts of every table, to show that a refused request changed nothing."""

from sqlalchemy import func, select

from app.core.db import Base

# The sequencer moves events from the outbox into the chain at any moment: they are counted together, in one
# statement (one snapshot).
AUDIT_TABLES = ("audit_entries", "audit_outbox")


def row_counts(app) -> dict[str, int]:
    tables = {t.name: t for t in Base.metadata.sorted_tables}
    with app.state.engine.connect() as conn:
        counts = {
            name: conn.scalar(select(func.count()).select_from(t))
            for name, t in tables.items()
            if name not in AUDIT_TABLES
        }
        audit = [select(func.count()).select_from(tables[name]).scalar_subquery() for name in AUDIT_TABLES]
        counts["audit events"] = conn.scalar(select(audit[0] + audit[1]))
    return counts
