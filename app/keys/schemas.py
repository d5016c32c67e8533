"""Request and response bodies for tenants and API keys."""

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Role = Literal["admin", "operator", "requester", "reader"]


class TenantCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)


class TenantOut(BaseModel):
    id: str
    name: str
    created_at: datetime


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    role: Role
    # Tenant the key acts for; default the caller's. Only admins of the default tenant may name another.
    tenant_id: str | None = Field(default=None, max_length=36)


class KeyOut(BaseModel):
    id: str
    tenant_id: str
    name: str
    role: Role
    prefix: str
    created_at: datetime
    revoked_at: datetime | None = None


class KeyCreated(KeyOut):
    # The raw key, shown once; only its sha256 is stored (null in an idempotent replay).
    key: str | None
