"""Exceptions of the audit package."""


class VerificationError(ValueError):
    """A signature, hash, chain or proof did not verify; the message says which check failed and why."""


class CanonicalError(ValueError):
    """A value cannot be encoded canonically (non-finite float, non-string key, unsupported type)."""


class AuditContentError(ValueError):
    """An audit entry was refused before it was written (unknown event type, forbidden key, too large)."""
