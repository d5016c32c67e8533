"""One list convention for every collection: `GET ...?limit=&cursor=` answers `{items, next_cursor, limit}`.

Keyset pagination: a page is the rows after a position in a fixed order (newest first by (created_at, id) for data
sets, models, deletions and keys; version number for versions; sequence number for the audit log). The cursor is
that position, the last item's sort key, encoded as URL-safe base64 of a small JSON array, so it is opaque to
clients yet needs no server state: rows added while a client pages through never shift the pages it has not read
yet, and a cursor keeps working across processes and restarts. `next_cursor` is null on the last page. Filters
are not part of the cursor: a client sends the same filters with every page.
"""

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Depends, Query
from pydantic import BaseModel
from sqlalchemy import Select, and_, or_
from sqlalchemy.orm import InstrumentedAttribute, Session

from app.core.errors import Unprocessable

T = TypeVar("T")
DEFAULT_LIMIT = 50  # items per page when the client names none
MAX_LIMIT = 200  # most items a page may hold (the audit log allows more: app.audit.router)
MAX_CURSOR_CHARS = 512


class Page(BaseModel, Generic[T]):
    """One page of a list."""

    # The items of this page, in the list's order.
    items: list[T]
    # Pass it back as `cursor` (with the same filters) for the next page; null on the last page.
    next_cursor: str | None
    # The page size this answer used.
    limit: int


class PageParams(BaseModel):
    limit: int
    cursor: str | None


def page_params(
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="items per page")] = DEFAULT_LIMIT,
    cursor: Annotated[
        str | None, Query(max_length=MAX_CURSOR_CHARS, description="next_cursor of the previous page")
    ] = None,
) -> PageParams:
    return PageParams(limit=limit, cursor=cursor)


Paging = Annotated[PageParams, Depends(page_params)]


def encode_cursor(*key: Any) -> str:
    values = [v.isoformat() if isinstance(v, datetime) else v for v in key]
    raw = json.dumps(values, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, kinds: Sequence[type]) -> list[Any]:
    """The sort key a cursor holds, each value checked against ``kinds`` (datetime, int or str); 422 for a cursor
    this service did not issue for this list."""
    try:
        values = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(values, list) or len(values) != len(kinds):
            raise ValueError("wrong shape")
        out: list[Any] = []
        for value, kind in zip(values, kinds, strict=True):
            if kind is datetime:
                parsed = datetime.fromisoformat(value)
                if parsed.tzinfo is None:
                    raise ValueError("naive time")
                out.append(parsed.astimezone(UTC))
            elif kind is int and isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**62:
                out.append(value)
            elif kind is str and isinstance(value, str) and len(value) <= 255:
                out.append(value)
            else:
                raise ValueError("wrong type")
        return out
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        raise Unprocessable(
            "cursor is not one this list issued: pass next_cursor from the previous page unchanged"
        ) from None


def after(columns: Sequence[InstrumentedAttribute], key: Sequence[Any], *, descending: bool):
    """The SQL condition "comes after ``key``" in the order by ``columns`` (lexicographic keyset)."""
    terms = []
    for i, column in enumerate(columns):
        equal = [c == v for c, v in zip(columns[:i], key[:i], strict=True)]
        beyond = column < key[i] if descending else column > key[i]
        terms.append(and_(*equal, beyond))
    return or_(*terms)


def keyset_page(
    session: Session,
    stmt: Select,
    *,
    columns: Sequence[InstrumentedAttribute],
    kinds: Sequence[type],
    params: PageParams,
    descending: bool = True,
    key_of: Callable[[Any], Sequence[Any]],
) -> tuple[list[Any], str | None]:
    """Run ``stmt`` for one page ordered by ``columns``; return the rows and the next cursor (None at the end).

    ``key_of(row)`` gives a row's values of ``columns``. One row more than the page is read to know whether
    another page follows."""
    if params.cursor is not None:
        stmt = stmt.where(after(columns, decode_cursor(params.cursor, kinds), descending=descending))
    order = [c.desc() if descending else c.asc() for c in columns]
    rows = list(session.scalars(stmt.order_by(*order).limit(params.limit + 1)))
    if len(rows) <= params.limit:
        return rows, None
    rows = rows[: params.limit]
    return rows, encode_cursor(*key_of(rows[-1]))


def time_ordered(session: Session, stmt: Select, *, entity: Any, params: PageParams) -> tuple[list[Any], str | None]:
    """A page of ``entity`` rows newest first, by (created_at, id)."""
    return keyset_page(
        session,
        stmt,
        columns=[entity.created_at, entity.id],
        kinds=[datetime, str],
        params=params,
        key_of=lambda row: (row.created_at, row.id),
    )
