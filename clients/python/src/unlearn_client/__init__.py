"""Python client and command line for the unlearning service.

`UnlearnClient` (sync) and `AsyncUnlearnClient` speak the service's HTTP API; `unlearn_client.verify` checks
signed tree heads, inclusion and consistency proofs and deletion receipts offline, with the log's public key;
the `unlearn` command (unlearn_client.cli) drives both from a shell. Needs httpx and cryptography, nothing else.
"""

from unlearn_client._shared import Download
from unlearn_client.aio import AsyncUnlearnClient
from unlearn_client.client import UnlearnClient
from unlearn_client.errors import ChecksumError, ClientError, VerificationError, WaitTimeout
from unlearn_client.types import (
    ApiKey,
    AuditEntry,
    Dataset,
    Deletion,
    Model,
    ModelVersion,
    Page,
    Problem,
    PublicKey,
    Tenant,
    TreeHead,
)

__all__ = [
    "ApiKey",
    "AsyncUnlearnClient",
    "AuditEntry",
    "ChecksumError",
    "ClientError",
    "Dataset",
    "Deletion",
    "Download",
    "Model",
    "ModelVersion",
    "Page",
    "Problem",
    "PublicKey",
    "Tenant",
    "TreeHead",
    "UnlearnClient",
    "VerificationError",
    "WaitTimeout",
]
__version__ = "0.1.0"
