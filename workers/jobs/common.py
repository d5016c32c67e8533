"""What every job shares: the device, structured log events bound to the job id, phase timings, the audit
adapter, blobs."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from rq import get_current_job
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from sqlalchemy.exc import StatementError
from sqlalchemy.orm import Session
from torch import Tensor

from app.core import audit_hook, orm_registry  # noqa: F401 - every table known to the ORM
from app.core.config import get_settings
from app.core.logging import job_id_var, log_event
from app.core.metrics import observe_phase
from workers.datastore import get_store
from workers.engine import ArchSpec, ZooError, checkpoint_bytes, load_checkpoint, resolve_device, validate_spec

log = logging.getLogger("workers.jobs")

ACTOR = "worker"  # audit actor for everything a worker does
ERROR_CHARS = 500  # longest error text stored on a row
COVERED_KEY = "__covered__"  # gradient-cache blob entry holding the BoolTensor of rows G sums over


class PermanentError(Exception):
    """A failure that retrying cannot fix (e.g. a method the model does not support)."""


def current_job_id() -> str | None:
    job = get_current_job()
    return job.id if job is not None else None


def event(name: str, *, level: int = logging.INFO, **fields: Any) -> None:
    """Log a structured event (dotted name plus key/value fields); the worker binds the running job's id
    (app.core.logging.job_id_var) to every line; outside the worker the RQ job running now, if any, is named."""
    if job_id_var.get() is None:
        fields.setdefault("job_id", current_job_id())
    log_event(log, name, level=level, **fields)


@contextmanager
def phase(job: str, name: str) -> Iterator[None]:
    """Time one phase of a job into unlearn_job_phase_duration_seconds{job, phase} (when it completes)."""
    started = time.perf_counter()
    yield
    observe_phase(job, name, time.perf_counter() - started)


_device_setting: str | None = None  # this process's --device, when given


def set_device(setting: str | None) -> None:
    """Pin this worker process to a device setting (`python -m workers --device ...`)."""
    global _device_setting
    _device_setting = setting


def device() -> torch.device:
    """The device of this worker process (`--device`, else UNLEARN_DEVICE)."""
    return resolve_device(_device_setting or get_settings().device)


def short_error(exc: BaseException) -> str:
    """The error text stored on a row and logged: for a database error, the driver's message alone (SQLAlchemy's
    text also carries the statement's parameters, e.g. sample ids)."""
    if isinstance(exc, StatementError) and exc.orig is not None:
        text = f"{type(exc).__name__}: {exc.orig}"
    else:
        text = f"{type(exc).__name__}: {exc}"
    return text[:ERROR_CHARS]


def audit(
    session: Session,
    *,
    event_type: str,
    tenant_id: str,
    refs: dict[str, Any],
    evidence: dict[str, Any] | None = None,
) -> None:
    """Append an audit entry inside the caller's transaction, so it commits or rolls back with the change."""
    audit_hook.audit_chained(
        session, actor=ACTOR, event_type=event_type, tenant_id=tenant_id, refs=refs, evidence=evidence or {}
    )


def audit_many(session: Session, entries: list[dict[str, Any]]) -> None:
    """Append several audit entries (event_type, tenant_id, refs, evidence) in order, in the caller's transaction:
    one lock acquisition and one read of the last entry for all of them."""
    audit_hook.audit_many(session, [{"actor": ACTOR, **e} for e in entries])


def arch_spec(architecture: dict[str, Any]) -> ArchSpec:
    """The model's architecture, resolved through the architectures installed in this worker; one that is not
    installed here (or whose config this version refuses) is a permanent failure, named."""
    spec = ArchSpec(name=architecture["name"], config=dict(architecture.get("config") or {}))
    try:
        validate_spec(spec)
    except ZooError as exc:
        raise PermanentError(f"architecture: {exc}") from None
    return spec


def read_checkpoint(sha256: str) -> dict[str, Tensor]:
    return load_checkpoint(get_store().local_path(sha256))


def write_checkpoint(state_dict: dict[str, Tensor]) -> tuple[str, int]:
    """Store a checkpoint blob (temp file, fsync, atomic rename); returns (sha256, size)."""
    return get_store().put_bytes(checkpoint_bytes(state_dict))


def write_grad_cache(grad_sum: dict[str, Tensor], covered: Tensor, *, version: int) -> tuple[str, int]:
    tensors = {k: v.detach().cpu().contiguous() for k, v in grad_sum.items()}
    tensors[COVERED_KEY] = covered.to(torch.bool).cpu().contiguous()
    data = st_save(tensors, metadata={"version": str(version), "rows": str(int(covered.sum()))})
    return get_store().put_bytes(data)


def read_grad_cache(sha256: str) -> tuple[dict[str, Tensor], Tensor]:
    tensors = st_load(get_store().read_bytes(sha256))
    covered = tensors.pop(COVERED_KEY)
    return tensors, covered
