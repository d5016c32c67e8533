"""Imports every ORM module so that Base.metadata knows all tables (for Alembic and tests)."""

from app.datasets import orm as datasets_orm  # noqa: F401
from app.deletions import orm as deletions_orm  # noqa: F401
from app.keys import orm as keys_orm  # noqa: F401
from app.models import orm as models_orm  # noqa: F401

try:  # the audit log's table lives in its own module
    from app.audit import orm as audit_orm  # noqa: F401
except ImportError:  # pragma: no cover - during early development only
    pass
