"""The asynchronous client: the same operations as UnlearnClient, awaited; lists are async iterators.

async with AsyncUnlearnClient("http://localhost:8000", api_key="...") as client:
    deletion = await client.request_deletion(model_id, ["user-17"])
    done = await client.wait_for_deletion(deletion["id"])
    async for model in client.iterate(client.list_models):
        ...
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx

from unlearn_client import _shared, calls
from unlearn_client._shared import DEFAULT_TIMEOUT_S, DEFAULT_URL, CheckedFile, Download
from unlearn_client.client import Time
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


class AsyncUnlearnClient:
    """One async connection pool to the service. Use with `async with`, or await aclose()."""

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        api_key: str | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT_S,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.AsyncClient(
            base_url=self.base_url, headers=_shared.headers(api_key), timeout=timeout, transport=transport
        )

    @classmethod
    def from_env(cls, **kwargs: Any) -> AsyncUnlearnClient:
        return cls(os.environ.get("UNLEARN_URL", DEFAULT_URL), os.environ.get("UNLEARN_API_KEY"), **kwargs)

    async def __aenter__(self) -> AsyncUnlearnClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    # --- plumbing (the retry policy of UnlearnClient.send) ----------------------------------------------------

    async def send(self, call: calls.Call) -> httpx.Response:
        attempt = 0
        while True:
            attempt += 1
            try:
                with ExitStack() as stack:
                    kwargs = _shared.request_kwargs(call, stack)
                    response = await self._http.request(call.method, call.path, **kwargs)
            except httpx.TransportError as exc:
                if _shared.retry_on_error(call, exc, attempt):
                    await asyncio.sleep(_shared.retry_wait(None, attempt))
                    continue
                raise _shared.transport_error(call, self.base_url, exc) from exc
            if response.is_error and _shared.retry_on_status(call, response, attempt):
                await asyncio.sleep(_shared.retry_wait(response, attempt))
                continue
            if response.is_error:
                raise ClientError.from_response(response)
            return response

    async def _call(self, call: calls.Call) -> Any:
        return _shared.body(await self.send(call))

    async def iterate(self, list_method: Callable[..., Awaitable[Page[Any]]], /, **filters: Any) -> AsyncIterator[Any]:
        """Every item of a list, page after page: `async for d in client.iterate(client.list_deletions,
        status="failed")`. `filters` (and `limit`, the page size) go to every call of `list_method`."""
        cursor = None
        while True:
            page = await list_method(**filters, cursor=cursor)
            for item in page["items"]:
                yield item
            cursor = page.get("next_cursor")
            if not cursor:
                return

    async def _poll(
        self, fetch: Callable[[], Any], done: Callable[[Any], bool], what: str, timeout, interval, on_progress
    ):
        """Call `fetch` until `done` says the state is final; `on_progress` sees every state; WaitTimeout past
        `timeout` seconds (the job keeps going on the service)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            state = await fetch()
            if on_progress is not None:
                on_progress(state)
            if done(state):
                return state
            if deadline is not None and time.monotonic() >= deadline:
                detail = f"{what} is still {state.get('status')} after {timeout:g} s"
                raise WaitTimeout(0, "timed out", detail, state)
            await asyncio.sleep(interval)

    # --- data sets --------------------------------------------------------------------------------------------

    async def upload_dataset(
        self,
        name: str,
        path: str | os.PathLike[str],
        *,
        ids_path: str | os.PathLike[str] | None = None,
        ids: Iterable[str] | None = None,
        idempotency_key: str | None = None,
    ) -> Dataset:
        text = _shared.ids_text(ids_path, ids)
        return await self._call(calls.upload_dataset(name, Path(path), ids_text=text, idempotency_key=idempotency_key))

    async def get_dataset(self, dataset_id: str) -> Dataset:
        return await self._call(calls.get_dataset(dataset_id))

    async def list_datasets(self, *, limit: int | None = None, cursor: str | None = None) -> Page[Dataset]:
        return await self._call(calls.page("/v1/datasets", limit=limit, cursor=cursor))

    async def delete_dataset(self, dataset_id: str) -> None:
        await self._call(calls.delete_dataset(dataset_id))

    async def erase_samples(
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
        return await self._call(call)

    async def get_erasure(self, erasure_id: str) -> Erasure:
        return await self._call(calls.get_erasure(erasure_id))

    async def wait_for_erasure(
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
        return await self._poll(fetch, done, f"erasure {erasure_id}", timeout, poll_interval, on_progress)

    # --- models -----------------------------------------------------------------------------------------------

    async def create_model(
        self, spec: Mapping[str, Any], checkpoint_path: str | os.PathLike[str], *, idempotency_key: str | None = None
    ) -> Model:
        return await self._call(calls.create_model(spec, Path(checkpoint_path), idempotency_key=idempotency_key))

    async def train_model(
        self,
        *,
        name: str,
        dataset_id: str,
        architecture: Mapping[str, Any],
        train: Mapping[str, Any],
        unlearn: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> Model:
        body = {"name": name, "dataset_id": dataset_id, "architecture": dict(architecture), "train": dict(train)}
        if unlearn is not None:
            body["unlearn"] = dict(unlearn)
        return await self._call(calls.train_model(body, idempotency_key=idempotency_key))

    async def list_architectures(self) -> dict[str, Any]:
        """The architectures the service can build: {items: [{name, version, config_schema, inputs, ...}]}."""
        return await self._call(calls.list_architectures())

    async def get_model(self, model_id: str) -> Model:
        return await self._call(calls.get_model(model_id))

    async def list_models(
        self, *, dataset_id: str | None = None, limit: int | None = None, cursor: str | None = None
    ) -> Page[Model]:
        return await self._call(calls.page("/v1/models", limit=limit, cursor=cursor, dataset_id=dataset_id))

    async def delete_model(self, model_id: str) -> None:
        await self._call(calls.delete_model(model_id))

    async def list_versions(
        self, model_id: str, *, limit: int | None = None, cursor: str | None = None
    ) -> Page[ModelVersion]:
        return await self._call(calls.page(f"/v1/models/{calls._p(model_id)}/versions", limit=limit, cursor=cursor))

    async def get_version(self, model_id: str, version: int | str = "latest") -> ModelVersion:
        return await self._call(calls.get_version(model_id, version))

    async def wait_for_model(
        self,
        model_id: str,
        *,
        timeout: float | None = None,
        poll_interval: float = 0.5,
        on_progress: Callable[[Model], None] | None = None,
    ) -> Model:
        fetch = lambda: self.get_model(model_id)  # noqa: E731
        done = lambda m: m.get("status") != "training"  # noqa: E731
        return await self._poll(fetch, done, f"model {model_id}", timeout, poll_interval, on_progress)

    # --- deletions --------------------------------------------------------------------------------------------

    async def request_deletion(
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
        call = calls.request_deletion(
            model_id,
            sample_ids,
            reason=reason,
            method=method,
            purpose=purpose,
            idempotency_key=idempotency_key,
            extra=extra,
        )
        return await self._call(call)

    async def get_deletion(self, deletion_id: str) -> Deletion:
        return await self._call(calls.get_deletion(deletion_id))

    async def list_deletions(
        self,
        *,
        model_id: str | None = None,
        status: str | None = None,
        since: Time = None,
        until: Time = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Page[Deletion]:
        path = calls.deletions_path(model_id)
        return await self._call(calls.page(path, limit=limit, cursor=cursor, status=status, since=since, until=until))

    async def wait_for_deletion(
        self,
        deletion_id: str,
        *,
        timeout: float | None = None,
        poll_interval: float = 0.5,
        on_progress: Callable[[Deletion], None] | None = None,
    ) -> Deletion:
        fetch = lambda: self.get_deletion(deletion_id)  # noqa: E731
        done = lambda d: d.get("status") in _shared.TERMINAL  # noqa: E731
        return await self._poll(fetch, done, f"deletion {deletion_id}", timeout, poll_interval, on_progress)

    # --- checkpoints ------------------------------------------------------------------------------------------

    async def download_checkpoint(
        self,
        model_id: str,
        version: int | str,
        dest: str | os.PathLike[str],
        *,
        expected_sha256: str | None = None,
    ) -> Download:
        """As UnlearnClient.download_checkpoint."""
        file = CheckedFile(Path(dest), expected_sha256)
        path = calls.checkpoint_path(model_id, version)
        try:
            async with self._http.stream("GET", path, headers=file.if_none_match()) as response:
                if response.status_code == 304 and file.existing is not None:
                    return file.unchanged()
                if response.is_error:
                    await response.aread()
                    raise ClientError.from_response(response)
                announced = _shared.etag_sha256(response.headers.get("ETag"))
                async for chunk in response.aiter_bytes(_shared.CHUNK_BYTES):
                    file.write(chunk)
        except httpx.TransportError as exc:
            file.discard()
            raise ClientError(0, "download interrupted", f"GET {self.base_url}{path}: {exc}") from exc
        except BaseException:
            file.discard()
            raise
        if announced is None:
            announced = (await self.get_version(model_id, version)).get("checkpoint_sha256")
        return file.finish(announced)

    # --- tenants and keys -------------------------------------------------------------------------------------

    async def create_tenant(self, name: str, *, idempotency_key: str | None = None) -> Tenant:
        return await self._call(calls.create_tenant(name, idempotency_key=idempotency_key))

    async def create_key(
        self, name: str, role: str, *, tenant_id: str | None = None, idempotency_key: str | None = None
    ) -> ApiKey:
        return await self._call(calls.create_key(name, role, tenant_id=tenant_id, idempotency_key=idempotency_key))

    async def list_keys(
        self, *, tenant_id: str | None = None, limit: int | None = None, cursor: str | None = None
    ) -> Page[ApiKey]:
        return await self._call(calls.page("/v1/keys", limit=limit, cursor=cursor, tenant_id=tenant_id))

    async def revoke_key(self, key_id: str) -> None:
        await self._call(calls.revoke_key(key_id))

    # --- audit log and receipts -------------------------------------------------------------------------------

    async def list_audit(
        self,
        *,
        model_id: str | None = None,
        deletion_id: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Page[AuditEntry]:
        filters = {"model_id": model_id, "deletion_id": deletion_id}
        return await self._call(calls.page("/v1/audit", limit=limit, cursor=cursor, **filters))

    async def get_audit_entry(self, seq: int) -> dict[str, Any]:
        return await self._call(calls.audit_entry(seq))

    async def get_tree_head(self, size: int | None = None) -> TreeHead:
        return await self._call(calls.tree_head(size))

    async def get_consistency(self, first: int, second: int | None = None) -> dict[str, Any]:
        return await self._call(calls.consistency(first, second))

    async def get_checkpoint(self) -> str:
        """The log's newest tree head as a C2SP checkpoint (a signed note, text)."""
        return (await self.send(calls.checkpoint())).text

    async def get_public_key(self) -> PublicKey:
        return await self._call(calls.public_key())

    async def get_receipt(self, deletion_id: str) -> dict[str, Any]:
        return await self._call(calls.get_receipt(deletion_id))

    async def verify_receipt(self, receipt: Mapping[str, Any], public_key: Any = None) -> str:
        from unlearn_client.verify import verify_receipt_with

        return verify_receipt_with(receipt, public_key if public_key is not None else await self.get_public_key())
