"""Errors the client raises: every error answer of the service becomes a ClientError carrying its RFC 9457 problem."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import httpx


class ClientError(Exception):
    """An error answer from the service (or no answer): status, title and detail of the RFC 9457 problem.

    `status` is 0 when no HTTP answer came (connection refused, interrupted transfer, a wait that timed out)."""

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


class VerificationError(ValueError):
    """A signature, hash, chain or proof did not verify; the message says which check failed and why."""
