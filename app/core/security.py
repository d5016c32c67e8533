"""API keys and roles.

Keys are `unl_` + 32 random bytes (secrets.token_urlsafe), shown once at creation and stored as sha256 hex.

Roles form a hierarchy; each role may do everything the roles below it may do:

    admin      keys and tenants (within its tenant; admins of the default tenant manage every tenant)
    operator   data sets and models (register, train, upload checkpoints)
    requester  deletion requests and their status, audit receipts
    reader     models, versions and checkpoint downloads, data set metadata
"""

import hashlib
import secrets
from dataclasses import dataclass

ROLES = ("reader", "requester", "operator", "admin")  # lowest to highest
ROLE_RANK = {role: rank for rank, role in enumerate(ROLES)}
KEY_PREFIX = "unl_"
DEFAULT_TENANT_ID = "00000000-0000-0000-0000-000000000000"  # created at start-up with the bootstrap key
DEFAULT_TENANT_NAME = "default"


@dataclass(frozen=True)
class Principal:
    """The authenticated caller: an API key, its tenant and role."""

    key_id: str
    tenant_id: str
    role: str

    @property
    def is_platform_admin(self) -> bool:
        return self.role == "admin" and self.tenant_id == DEFAULT_TENANT_ID

    def has_role(self, needed: str) -> bool:
        return ROLE_RANK[self.role] >= ROLE_RANK[needed]


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(raw: str) -> str:
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


def key_prefix(raw: str) -> str:
    """The first characters of a key, safe to show in listings."""
    return raw[:12]
