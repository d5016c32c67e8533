"""Typed Python client for the unlearning service's HTTP API (docs/engine.md, docs/api.md).

    from app.client import UnlearnClient

    with UnlearnClient("http://localhost:8000", api_key="...") as client:
        dataset = client.upload_dataset("cohort-a", "train.safetensors", ids_path="ids.txt")
        mlp = {"name": "mlp", "config": {"in_features": 20, "hidden": [64], "num_classes": 2}}
        model = client.train_model(name="m", dataset_id=dataset["id"], architecture=mlp,
                                   train={"epochs": 5, "batch_size": 64, "lr": 1e-3, "alpha": 0.005, "seed": 0})
        client.wait_for_model(model["id"])
        deletion = client.request_deletion(model["id"], ["user-17"], reason="erasure request")
        done = client.wait_for_deletion(deletion["id"], on_progress=print)
        client.download_checkpoint(model["id"], done["result_version"], "model.safetensors")

Every error response becomes a ClientError carrying the RFC 9457 problem (status, title, detail, the whole body).
Only httpx is needed; receipt verification imports the audit verifier (and `cryptography`) when called.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

import httpx

DEFAULT_URL = "http://localhost:8000"
DEFAULT_TIMEOUT_S = 60.0  # per HTTP request
CHUNK_BYTES = 1024 * 1024  # download read size
RETRY_STATUSES = {429, 502, 503, 504}  # answered with a wait, for requests that are safe to repeat
MAX_TRIES = 4
MAX_RETRY_WAIT_S = 10.0  # cap on a server's Retry-After
TERMINAL = {"succeeded", "failed"}  # deletion request states that do not change any more
USER_AGENT = f"unlearn-client/1 httpx/{httpx.__version__}"


class Problem(TypedDict, total=False):
    type: str
    title: str
    status: int
    detail: str


class Dataset(TypedDict, total=False):
    id: str
    name: str
    num_rows: int
    num_holdout: int
    feature_shape: list[int]
    num_classes: int
    deleted_count: int
    sha256: str


class Model(TypedDict, total=False):
    id: str
    name: str
    dataset_id: str
    architecture: dict[str, Any]
    status: str  # training | ready | failed
    latest_version: int | None
    error: str | None


class ModelVersion(TypedDict, total=False):
    version: int
    parent_version: int | None
    checkpoint_sha256: str
    checkpoint_size: int
    state: str  # available | purged
    applied_requests: list[str]
    created_at: str


class Deletion(TypedDict, total=False):
    id: str
    model_id: str
    status: str  # queued | running | succeeded | failed
    stage: str | None
    progress: float | None
    base_version: int | None
    result_version: int | None
    evidence: dict[str, Any] | None
    error: str | None
    created_at: str
    started_at: str | None
    finished_at: str | None


class ClientError(Exception):
    """An error answer from the service (or no answer): status, title and detail of the RFC 9457 problem."""

    def __init__(self, status: int, title: str, detail: str, problem: Mapping[str, Any] | None = None) -> None:
        self.status = status
        self.title = title
        self.detail = detail
        self.problem: dict[str, Any] = dict(problem or {})
        super().__init__(str(self))

    def __str__(self) -> str:
        head = f"{self.status} {self.title}" if self.status else self.title
        return f"{head}: {self.detail}" if self.detail else head

    @classmethod
    def from_response(cls, response: httpx.Response) -> ClientError:
        body: Any = None
        try:
            body = response.json()
        except ValueError:
            pass
        if isinstance(body, dict) and ("detail" in body or "title" in body):
            detail = body.get("detail")
            if not isinstance(detail, str):  # a framework error whose detail is a list of validation errors
                detail = json.dumps(detail) if detail is not None else ""
            return cls(int(body.get("status") or response.status_code), body.get("title") or "", detail, body)
        text = response.text.strip()[:500]
        return cls(response.status_code, response.reason_phrase, text)


class ChecksumError(ClientError):
    """A downloaded checkpoint whose sha256 differs from the one the service announced."""


class WaitTimeout(ClientError):
    """A wait that ran past its time limit; the job may still finish later."""


@dataclass(frozen=True)
class Download:
    path: Path
    sha256: str
    size: int  # bytes
    transferred: bool = True  # False when the file on disk was already this checkpoint (304)


ProgressCallback = Callable[[Deletion], None]


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def _etag_sha256(value: str | None) -> str | None:
    if not value:
        return None
    return value.removeprefix("W/").strip('"').lower() or None


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
        headers = {"Accept": "application/json, application/problem+json", "User-Agent": USER_AGENT}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout, transport=transport)

    def __enter__(self) -> UnlearnClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # --- plumbing ---------------------------------------------------------------------------------------------

    def _send(self, method: str, path: str, *, retry: bool, **kwargs: Any) -> httpx.Response:
        """One request; repeated on 429/502/503/504 and connection failures when `retry` (safe to repeat)."""
        for attempt in range(1, MAX_TRIES + 1):
            try:
                response = self._http.request(method, path, **kwargs)
            except httpx.TransportError as exc:
                if retry and attempt < MAX_TRIES and isinstance(exc, httpx.ConnectError | httpx.ReadError):
                    time.sleep(0.5 * attempt)
                    continue
                title = "service unreachable" if isinstance(exc, httpx.ConnectError) else "request failed"
                detail = f"{method} {self.base_url}{path}: {type(exc).__name__} {exc}".rstrip()
                raise ClientError(0, title, detail) from exc
            if retry and response.status_code in RETRY_STATUSES and attempt < MAX_TRIES:
                time.sleep(self._retry_after(response, attempt))
                continue
            if response.is_error:
                raise ClientError.from_response(response)
            return response
        raise AssertionError("unreachable")

    @staticmethod
    def _retry_after(response: httpx.Response, attempt: int) -> float:
        try:
            wait = float(response.headers.get("Retry-After", ""))
        except ValueError:
            wait = 0.5 * attempt
        return min(max(wait, 0.0), MAX_RETRY_WAIT_S)

    def _get(self, path: str, **kwargs: Any) -> Any:
        return self._send("GET", path, retry=True, **kwargs).json()

    # --- data sets --------------------------------------------------------------------------------------------

    def upload_dataset(
        self,
        name: str,
        path: str | os.PathLike[str],
        *,
        ids_path: str | os.PathLike[str] | None = None,
        ids: Iterable[str] | None = None,
    ) -> Dataset:
        """POST /v1/datasets: a safetensors file (`features`, `labels`, optional holdout) and optional sample ids,
        one per line (from `ids_path` or `ids`); without ids the service numbers rows 0..N-1."""
        if ids_path is not None and ids is not None:
            raise ValueError("give ids_path or ids, not both")
        data = {"name": name}
        if ids_path is not None:
            data["ids"] = Path(ids_path).read_text(encoding="utf-8")
        elif ids is not None:
            data["ids"] = "\n".join(ids) + "\n"
        with open(path, "rb") as fh:
            files = {"file": (Path(path).name, fh, "application/octet-stream")}
            return self._send("POST", "/v1/datasets", retry=False, data=data, files=files).json()

    def get_dataset(self, dataset_id: str) -> Dataset:
        return self._get(f"/v1/datasets/{dataset_id}")

    # --- models -----------------------------------------------------------------------------------------------

    def create_model(self, spec: Mapping[str, Any], checkpoint_path: str | os.PathLike[str]) -> Model:
        """POST /v1/models (multipart): register a trained checkpoint as version 1.
        `spec` is {name, dataset_id, architecture: {name, config}}."""
        with open(checkpoint_path, "rb") as fh:
            files = {"checkpoint": (Path(checkpoint_path).name, fh, "application/octet-stream")}
            data = {"spec": json.dumps(dict(spec))}
            return self._send("POST", "/v1/models", retry=False, data=data, files=files).json()

    def train_model(
        self,
        *,
        name: str,
        dataset_id: str,
        architecture: Mapping[str, Any],
        train: Mapping[str, Any],
    ) -> Model:
        """POST /v1/models (JSON): the service trains version 1 in a job; the model starts as `training`."""
        body = {"name": name, "dataset_id": dataset_id, "architecture": dict(architecture), "train": dict(train)}
        return self._send("POST", "/v1/models", retry=False, json=body).json()

    def get_model(self, model_id: str) -> Model:
        return self._get(f"/v1/models/{model_id}")

    def list_versions(self, model_id: str) -> list[ModelVersion]:
        """All versions, newest first."""
        body = self._get(f"/v1/models/{model_id}/versions")
        return body["items"] if isinstance(body, dict) else body

    def get_version(self, model_id: str, version: int | str = "latest") -> ModelVersion:
        return self._get(f"/v1/models/{model_id}/versions/{version}")

    def wait_for_model(self, model_id: str, *, timeout: float | None = None, poll_interval: float = 0.5) -> Model:
        """Poll until the model leaves `training`; returns it (`ready` or `failed`)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            model = self.get_model(model_id)
            if model.get("status") != "training":
                return model
            if deadline is not None and time.monotonic() >= deadline:
                raise WaitTimeout(0, "timed out", f"model {model_id} still training after {timeout:g} s", model)
            time.sleep(poll_interval)

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
    ) -> Deletion:
        """POST /v1/models/{id}/deletions (202). With an Idempotency-Key a repeat returns the original request,
        so the call is retried on a lost connection or a 503."""
        body: dict[str, Any] = {"sample_ids": list(sample_ids)}
        if reason is not None:
            body["reason"] = reason
        if method is not None:
            body["method"] = method
        if purpose is not None:
            body["purpose"] = purpose
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        path = f"/v1/models/{model_id}/deletions"
        return self._send("POST", path, retry=idempotency_key is not None, json=body, headers=headers).json()

    def get_deletion(self, deletion_id: str) -> Deletion:
        return self._get(f"/v1/deletions/{deletion_id}")

    def wait_for_deletion(
        self,
        deletion_id: str,
        *,
        timeout: float | None = None,
        poll_interval: float = 0.5,
        on_progress: ProgressCallback | None = None,
    ) -> Deletion:
        """Poll until the request is `succeeded` or `failed`; `on_progress` sees every polled state.
        Raises WaitTimeout past `timeout` seconds (the request keeps going on the service)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            deletion = self.get_deletion(deletion_id)
            if on_progress is not None:
                on_progress(deletion)
            if deletion.get("status") in TERMINAL:
                return deletion
            if deadline is not None and time.monotonic() >= deadline:
                detail = f"deletion {deletion_id} is still {deletion.get('status')} after {timeout:g} s"
                raise WaitTimeout(0, "timed out", detail, deletion)
            time.sleep(poll_interval)

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
        dest = Path(dest)
        partial = dest.with_name(dest.name + ".part")
        digest = hashlib.sha256()
        size = 0
        path = f"/v1/models/{model_id}/versions/{version}/checkpoint"
        existing = _file_sha256(dest) if dest.is_file() else None
        headers = {"If-None-Match": f'"{existing}"'} if existing else {}
        try:
            with self._http.stream("GET", path, headers=headers) as response:
                if response.status_code == 304 and existing is not None:
                    if expected_sha256 is not None and expected_sha256.lower() != existing:
                        detail = f"{dest} has sha256 {existing}, not the expected {expected_sha256}"
                        raise ChecksumError(0, "checksum mismatch", detail)
                    return Download(path=dest, sha256=existing, size=dest.stat().st_size, transferred=False)
                if response.is_error:
                    response.read()
                    raise ClientError.from_response(response)
                announced = _etag_sha256(response.headers.get("ETag"))
                with open(partial, "wb") as out:
                    for chunk in response.iter_bytes(CHUNK_BYTES):
                        digest.update(chunk)
                        size += len(chunk)
                        out.write(chunk)
                    out.flush()
                    os.fsync(out.fileno())
        except httpx.TransportError as exc:
            partial.unlink(missing_ok=True)
            raise ClientError(0, "download interrupted", f"GET {self.base_url}{path}: {exc}") from exc
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        actual = digest.hexdigest()
        if announced is None:
            announced = self.get_version(model_id, version).get("checkpoint_sha256")
        for label, wanted in (("ETag", announced), ("expected", expected_sha256)):
            if wanted is not None and wanted.lower() != actual:
                partial.unlink(missing_ok=True)
                detail = f"checkpoint sha256 {actual} differs from the {label} sha256 {wanted}; file discarded"
                raise ChecksumError(0, "checksum mismatch", detail)
        if announced is None and expected_sha256 is None:
            partial.unlink(missing_ok=True)
            raise ChecksumError(0, "checksum unknown", "the service announced no sha256 for this checkpoint")
        os.replace(partial, dest)
        return Download(path=dest, sha256=actual, size=size)

    # --- receipts ---------------------------------------------------------------------------------------------

    def get_receipt(self, deletion_id: str) -> dict[str, Any]:
        """The signed deletion receipt (request, versions, evidence, audit entries with inclusion proofs)."""
        return self._get(f"/v1/deletions/{deletion_id}/receipt")

    def get_public_key(self) -> dict[str, str]:
        """The audit log's public key document {algorithm, key_id, public_key_pem, public_key_raw_b64}."""
        return self._get("/v1/audit/public-key")

    def verify_receipt(self, receipt: Mapping[str, Any], public_key: str | bytes | None = None) -> str:
        """Check the receipt offline with the audit verifier; returns the key id it was checked against.

        `public_key` is the PEM or base64 raw key obtained out of band. Without it the service's published key is
        used, which shows the receipt is consistent and signed by that service, not which service it was."""
        return verify_receipt(receipt, public_key if public_key is not None else self.get_public_key())


def load_public_key_text(value: str | bytes | Mapping[str, Any]) -> str | bytes:
    """PEM / base64 raw key as given, or the key out of a public-key JSON document."""
    if isinstance(value, Mapping):
        return value.get("public_key_pem") or value.get("public_key_raw_b64") or ""
    text = value.decode("utf-8") if isinstance(value, bytes) else value
    if text.lstrip().startswith("{"):
        return load_public_key_text(json.loads(text))
    return value


def verify_receipt(receipt: Mapping[str, Any], public_key: str | bytes | Mapping[str, Any]) -> str:
    """Verify a receipt against a public key (PEM, base64 raw, or the public-key JSON); return the key id.
    Raises app.audit.verify.VerificationError when any check fails."""
    from app.audit.signing import key_id_of, load_public_key
    from app.audit.verify import verify_receipt as check

    key = load_public_key(load_public_key_text(public_key))
    check(receipt, key)
    return key_id_of(key)
