"""Exceptions of the audit package (the verification ones are the client's: the service checks with its code)."""

from unlearn_client.errors import VerificationError
from unlearn_client.verify.canonical import CanonicalError

__all__ = ["AuditContentError", "CanonicalError", "VerificationError"]


class AuditContentError(ValueError):
    """An audit entry was refused before it was written (unknown event type, forbidden key, too large)."""
