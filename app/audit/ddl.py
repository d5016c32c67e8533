"""Triggers that make the audit table append-only in the database itself.

Shared by the migration (0002_audit_log) and by tests that build the schema without Alembic.

PostgreSQL: one statement-level trigger refuses UPDATE, DELETE and TRUNCATE (also when no row matches).
SQLite: BEFORE UPDATE and BEFORE DELETE triggers abort, and a BEFORE INSERT trigger refuses an entry that would
replace an existing one (``INSERT OR REPLACE`` deletes rows without firing delete triggers) or fork the chain.
A database superuser or the table owner can still drop the triggers; the hash chain and signed tree heads make
such an edit detectable, not impossible.
"""

TABLE = "audit_entries"

_PG_UP = [
    f"""
    CREATE OR REPLACE FUNCTION {TABLE}_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION '{TABLE} is append-only: % refused', TG_OP USING ERRCODE = 'restrict_violation';
    END
    $$
    """,
    f"""
    CREATE TRIGGER {TABLE}_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON {TABLE}
    FOR EACH STATEMENT EXECUTE FUNCTION {TABLE}_append_only()
    """,
]
_PG_DOWN = [
    f"DROP TRIGGER IF EXISTS {TABLE}_append_only ON {TABLE}",
    f"DROP FUNCTION IF EXISTS {TABLE}_append_only()",
]
_SQLITE_UP = [
    f"""
    CREATE TRIGGER {TABLE}_no_update BEFORE UPDATE ON {TABLE}
    BEGIN SELECT RAISE(ABORT, '{TABLE} is append-only: UPDATE refused'); END
    """,
    f"""
    CREATE TRIGGER {TABLE}_no_delete BEFORE DELETE ON {TABLE}
    BEGIN SELECT RAISE(ABORT, '{TABLE} is append-only: DELETE refused'); END
    """,
    f"""
    CREATE TRIGGER {TABLE}_no_replace BEFORE INSERT ON {TABLE}
    WHEN EXISTS (SELECT 1 FROM {TABLE} WHERE seq = NEW.seq OR prev_hash = NEW.prev_hash)
    BEGIN SELECT RAISE(ABORT, '{TABLE} is append-only: an entry with this seq or prev_hash exists'); END
    """,
]
_SQLITE_DOWN = [f"DROP TRIGGER IF EXISTS {TABLE}_{name}" for name in ("no_update", "no_delete", "no_replace")]


def append_only_ddl(dialect: str) -> list[str]:
    """Statements that install the triggers on a database of this dialect ("postgresql" or "sqlite")."""
    return {"postgresql": _PG_UP, "sqlite": _SQLITE_UP}[dialect]


def drop_append_only_ddl(dialect: str) -> list[str]:
    return {"postgresql": _PG_DOWN, "sqlite": _SQLITE_DOWN}[dialect]
