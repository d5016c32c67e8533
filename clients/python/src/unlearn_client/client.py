"""The synchronous client (examples in clients/python/README.md).

Every error answer becomes a ClientError carrying the RFC 9457 problem. GETs, and POSTs (which carry an
Idempotency-Key), are repeated after 429/502/503/504 or a lost connection; DELETEs only after 429/503.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import ExitStack
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from unlearn_client import _shared, calls
from unlearn_client._shared import DEFAULT_TIMEOUT_S, DEFAULT_URL, CheckedFile, Download
from unlearn_client.errors import ClientError, WaitTimeout
from unlearn_client.types import (
    ApiKey,
    AuditEntry,
    Dataset,
    Deletion,
    Erasure,
    Model,
    ModelVersion,
    Page,
    PublicKey,
    Tenant,
    TreeHead,
)

Time = datetime | str | None


class UnlearnClient:
    """One connection pool to the service. Use as a context manager, or call close()."""

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        api_key: str | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT_S,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.base_url, headers=_shared.headers(api_key), timeout=timeout, transport=transport
        )

    @classmethod
    def from_env(cls, **kwargs: Any) -> UnlearnClient:
        """Configured by UNLEARN_URL and UNLEARN_API_KEY."""
        return cls(os.environ.get("UNLEARN_URL", DEFAULT_URL), os.environ.get("UNLEARN_API_KEY"), **kwargs)

    def __enter__(self) -> UnlearnClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # --- plumbing ---------------------------------------------------------------------------------------------

    def send(self, call: calls.Call) -> httpx.Response:
        """Send one call, repeating it as the retry policy allows; raise ClientError for an error answer."""
        attempt = 0
        while True:
            attempt += 1
            try:
                with ExitStack() as stack:
                    response = self._http.request(call.method, call.path, **_shared.request_kwargs(call, stack))
            except httpx.TransportError as exc:
                if _shared.retry_on_error(call, exc, attempt):
                    time.sleep(_shared.retry_wait(None, attempt))
                    continue
                raise _shared.transport_error(call, self.base_url, exc) from exc
            if response.is_error and _shared.retry_on_status(call, response, attempt):
                time.sleep(_shared.retry_wait(response, attempt))
                continue
            if response.is_error:
                raise ClientError.from_response(response)
            return response

    def _call(self, call: calls.Call) -> Any:
        return _shared.body(self.send(call))

    def iterate(self, list_method: Callable[..., Page[Any]], /, **filters: Any) -> Iterator[Any]:
        """Every item of a list, page after page: `for d in client.iterate(client.list_deletions, status="failed")`.
        `filters` (and `limit`, the page size) go to every call of `list_method`."""
        cursor = None
        while True:
            page = list_method(**filters, cursor=cursor)
            yield from page["items"]
            cursor = page.get("next_cursor")
            if not cursor:
                return

    def _poll(self, fetch: Callable[[], Any], done: Callable[[Any], bool], what: str, timeout, interval, on_progress):
        """Call `fetch` until `done` says the state is final; `on_progress` sees every state; WaitTimeout past
        `timeout` seconds (the job keeps going on the service)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            state = fetch()
            if on_progress is not None:
                on_progress(state)
            if done(state):
                return state
            if deadline is not None and time.monotonic() >= deadline:
                detail = f"{what} is still {state.get('status')} after {timeout:g} s"
                raise WaitTimeout(0, "timed out", detail, state)
            time.sleep(interval)

    # --- data sets --------------------------------------------------------------------------------------------

    def upload_dataset(
        self,
        name: str,
        path: str | os.PathLike[str],
        *,
        ids_path: str | os.PathLike[str] | None = None,
        ids: Iterable[str] | None = None,
        idempotency_key: str | None = None,
    ) -> Dataset:
        """POST /v1/datasets: a safetensors file (`features`, `labels`, optional holdout) and optional sample ids,
        one per line (from `ids_path` or `ids`); without ids the service numbers rows 0..N-1."""
        text = _shared.ids_text(ids_path, ids)
        return self._call(calls.upload_dataset(name, Path(path), ids_text=text, idempotency_key=idempotency_key))

    def get_dataset(self, dataset_id: str) -> Dataset:
        return self._call(calls.get_dataset(dataset_id))

    def list_datasets(self, *, limit: int | None = None, cursor: str | None = None) -> Page[Dataset]:
        """One page of the tenant's data sets, newest first."""
        return self._call(calls.page("/v1/datasets", limit=limit, cursor=cursor))

    def delete_dataset(self, dataset_id: str) -> None:
        self._call(calls.delete_dataset(dataset_id))

    def erase_samples(
        self,
        dataset_id: str,
        sample_ids: Iterable[str],
        *,
        reason: str | None = None,
        method: str | None = None,
        idempotency_key: str | None = None,
    ) -> Erasure:
        """POST /v1/datasets/{id}/erasures (202): remove the samples from every model trained on the data set,
        then from the stored data set itself."""
        call = calls.erase_samples(
            dataset_id, sample_ids, reason=reason, method=method, idempotency_key=idempotency_key
        )
        return self._call(call)

    def get_erasure(self, erasure_id: str) -> Erasure:
        return self._call(calls.get_erasure(erasure_id))

    def wait_for_erasure(
        self,
        erasure_id: str,
        *,
        timeout: float | None = None,
        poll_interval: float = 1.0,
        on_progress: Callable[[Erasure], None] | None = None,
    ) -> Erasure:
        """Poll until the erasure is `succeeded` (erased from every model and the stored data) or `failed`."""
        fetch = lambda: self.get_erasure(erasure_id)  # noqa: E731
        done = lambda e: e.get("status") in _shared.TERMINAL  # noqa: E731
        return self._poll(fetch, done, f"erasure {erasure_id}", timeout, poll_interval, on_progress)

    # --- models -----------------------------------------------------------------------------------------------

    def create_model(
        self, spec: Mapping[str, Any], checkpoint_path: str | os.PathLike[str], *, idempotency_key: str | None = None
    ) -> Model:
        """POST /v1/models (multipart): register a trained checkpoint as version 1.
        `spec` is {name, dataset_id, architecture: {name, config}}."""
        return self._call(calls.create_model(spec, Path(checkpoint_path), idempotency_key=idempotency_key))

    def train_model(
        self,
        *,
        name: str,
        dataset_id: str,
        architecture: Mapping[str, Any],
        train: Mapping[str, Any],
        unlearn: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> Model:
        """POST /v1/models (JSON): the service trains version 1 in a job; the model starts as `training`."""
        body = {"name": name, "dataset_id": dataset_id, "architecture": dict(architecture), "train": dict(train)}
        if unlearn is not None:
            body["unlearn"] = dict(unlearn)
        return self._call(calls.train_model(body, idempotency_key=idempotency_key))

    def list_architectures(self) -> dict[str, Any]:
        """The architectures the service can build: {items: [{name, version, config_schema, inputs, ...}]}."""
        return self._call(calls.list_architectures())

    def get_model(self, model_id: str) -> Model:
        return self._call(calls.get_model(model_id))

    def list_models(
        self, *, dataset_id: str | None = None, limit: int | None = None, cursor: str | None = None
    ) -> Page[Model]:
        """One page of the tenant's models, newest first (those trained on `dataset_id` when given)."""
        return self._call(calls.page("/v1/models", limit=limit, cursor=cursor, dataset_id=dataset_id))

    def delete_model(self, model_id: str) -> None:
        self._call(calls.delete_model(model_id))

    def list_versions(
        self, model_id: str, *, limit: int | None = None, cursor: str | None = None
    ) -> Page[ModelVersion]:
        """One page of a model's versions, newest first."""
        return self._call(calls.page(f"/v1/models/{calls._p(model_id)}/versions", limit=limit, cursor=cursor))

    def get_version(self, model_id: str, version: int | str = "latest") -> ModelVersion:
        return self._call(calls.get_version(model_id, version))

    def wait_for_model(
        self,
        model_id: str,
        *,
        timeout: float | None = None,
        poll_interval: float = 0.5,
        on_progress: Callable[[Model], None] | None = None,
    ) -> Model:
        """Poll until the model leaves `training`; returns it (`ready` or `failed`)."""
        fetch = lambda: self.get_model(model_id)  # noqa: E731
        done = lambda m: m.get("status") != "training"  # noqa: E731
        return self._poll(fetch, done, f"model {model_id}", timeout, poll_interval, on_progress)

    # --- deletions --------------------------------------------------------------------------------------------

    def request_deletion(
        self,
        model_id: str,
        sample_ids: Iterable[str],
        *,
        reason: str | None = None,
        method: str | None = None,
        purpose: str | None = None,
        idempotency_key: str | None = None,
        **extra: Any,
    ) -> Deletion:
        """POST /v1/models/{id}/deletions (202): `method` iau (default) or retrain, `purpose` privacy (default) or
        poison. The Idempotency-Key (`idempotency_key`, else a random one) makes a repeat after a lost answer return
        the original request. `extra` holds further body fields."""
        call = calls.request_deletion(
            model_id,
            sample_ids,
            reason=reason,
            method=method,
            purpose=purpose,
            idempotency_key=idempotency_key,
            extra=extra,
        )
        return self._call(call)

    def get_deletion(self, deletion_id: str) -> Deletion:
        return self._call(calls.get_deletion(deletion_id))

    def list_deletions(
        self,
        *,
        model_id: str | None = None,
        status: str | None = None,
        since: Time = None,
        until: Time = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Page[Deletion]:
        """One page of deletion requests, newest first: the tenant's, or one model's; filtered by `status` and by
        creation time (`since` inclusive, `until` exclusive)."""
        path = calls.deletions_path(model_id)
        return self._call(calls.page(path, limit=limit, cursor=cursor, status=status, since=since, until=until))

    def wait_for_deletion(
        self,
        deletion_id: str,
        *,
        timeout: float | None = None,
        poll_interval: float = 0.5,
        on_progress: Callable[[Deletion], None] | None = None,
    ) -> Deletion:
        """Poll until the request is `succeeded` or `failed`; `on_progress` sees every polled state.
        Raises WaitTimeout past `timeout` seconds (the request keeps going on the service)."""
        fetch = lambda: self.get_deletion(deletion_id)  # noqa: E731
        done = lambda d: d.get("status") in _shared.TERMINAL  # noqa: E731
        return self._poll(fetch, done, f"deletion {deletion_id}", timeout, poll_interval, on_progress)

    # --- checkpoints ------------------------------------------------------------------------------------------

    def download_checkpoint(
        self,
        model_id: str,
        version: int | str,
        dest: str | os.PathLike[str],
        *,
        expected_sha256: str | None = None,
    ) -> Download:
        """Stream a checkpoint to `dest`, hashing as it goes; the file appears only when its sha256 equals the
        ETag (and `expected_sha256` when given). A mismatch raises ChecksumError and leaves nothing behind.
        When `dest` already holds that checkpoint the service answers 304 and nothing is transferred."""
        file = CheckedFile(Path(dest), expected_sha256)
        path = calls.checkpoint_path(model_id, version)
        try:
            with self._http.stream("GET", path, headers=file.if_none_match()) as response:
                if response.status_code == 304 and file.existing is not None:
                    return file.unchanged()
                if response.is_error:
                    response.read()
                    raise ClientError.from_response(response)
                announced = _shared.etag_sha256(response.headers.get("ETag"))
                for chunk in response.iter_bytes(_shared.CHUNK_BYTES):
                    file.write(chunk)
        except httpx.TransportError as exc:
            file.discard()
            raise ClientError(0, "download interrupted", f"GET {self.base_url}{path}: {exc}") from exc
        except BaseException:
            file.discard()
            raise
        if announced is None:
            announced = self.get_version(model_id, version).get("checkpoint_sha256")
        return file.finish(announced)

    # --- tenants and keys -------------------------------------------------------------------------------------

    def create_tenant(self, name: str, *, idempotency_key: str | None = None) -> Tenant:
        return self._call(calls.create_tenant(name, idempotency_key=idempotency_key))

    def create_key(
        self, name: str, role: str, *, tenant_id: str | None = None, idempotency_key: str | None = None
    ) -> ApiKey:
        """A new API key; the raw key is in `key` of this answer only."""
        return self._call(calls.create_key(name, role, tenant_id=tenant_id, idempotency_key=idempotency_key))

    def list_keys(
        self, *, tenant_id: str | None = None, limit: int | None = None, cursor: str | None = None
    ) -> Page[ApiKey]:
        return self._call(calls.page("/v1/keys", limit=limit, cursor=cursor, tenant_id=tenant_id))

    def revoke_key(self, key_id: str) -> None:
        self._call(calls.revoke_key(key_id))

    # --- audit log and receipts -------------------------------------------------------------------------------

    def list_audit(
        self,
        *,
        model_id: str | None = None,
        deletion_id: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Page[AuditEntry]:
        """One page of audit entries, oldest first (the caller's tenant; platform admins see all)."""
        filters = {"model_id": model_id, "deletion_id": deletion_id}
        return self._call(calls.page("/v1/audit", limit=limit, cursor=cursor, **filters))

    def get_audit_entry(self, seq: int) -> dict[str, Any]:
        """{entry, inclusion_proof, tree_head}."""
        return self._call(calls.audit_entry(seq))

    def get_tree_head(self, size: int | None = None) -> TreeHead:
        return self._call(calls.tree_head(size))

    def get_consistency(self, first: int, second: int | None = None) -> dict[str, Any]:
        """Proof that the log of `first` entries is a prefix of the log of `second` (default: now)."""
        return self._call(calls.consistency(first, second))

    def get_checkpoint(self) -> str:
        """The log's newest tree head as a C2SP checkpoint (a signed note, text)."""
        return (self.send(calls.checkpoint())).text

    def get_public_key(self) -> PublicKey:
        """The audit log's public key document {algorithm, key_id, public_key_pem, public_key_raw_b64}."""
        return self._call(calls.public_key())

    def get_receipt(self, deletion_id: str) -> dict[str, Any]:
        """The signed deletion receipt (request, versions, evidence, audit entries with inclusion proofs)."""
        return self._call(calls.get_receipt(deletion_id))

    def verify_receipt(self, receipt: Mapping[str, Any], public_key: Any = None) -> str:
        """Check the receipt offline; returns the key id it was checked against.

        `public_key` is the PEM, base64 raw key or public-key document obtained out of band. Without it the
        service's published key is used, which shows the receipt is consistent and signed by that service, not
        which service it was."""
        from unlearn_client.verify import verify_receipt_with

        return verify_receipt_with(receipt, public_key if public_key is not None else self.get_public_key())
