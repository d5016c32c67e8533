"""What the command modules share: exit statuses, usage errors, argument helpers, list paging."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from unlearn_client.cli.output import Output, note

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_JOB_FAILED, EXIT_INTEGRITY = 0, 1, 2, 3, 4


class UsageError(Exception):
    """A command line that cannot be run as given (exit status 2)."""


def json_arg(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise UsageError(f"{what} is not valid JSON: {exc}") from exc


def json_file(path: str, what: str) -> Any:
    return json_arg(read_text(path, what), what)


def read_text(path: str, what: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read {what} {path}: {exc.strerror}") from exc


def existing_file(path: str, what: str) -> str:
    if not Path(path).is_file():
        raise UsageError(f"{what} {path} does not exist or is not a file")
    return path


def add_list_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--limit", type=int, help="items per page (the service's default when omitted)")
    parser.add_argument("--cursor", help="continue from the next_cursor an earlier page printed")
    parser.add_argument("--all", action="store_true", help="follow next_cursor to the last page")


def add_wait_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--timeout", type=float, default=None, help="give up waiting after this many seconds")
    parser.add_argument("--poll", type=float, default=0.5, help="seconds between status checks (default 0.5)")


def show_list(
    out: Output,
    args: argparse.Namespace,
    fetch: Callable[..., dict[str, Any]],
    columns: Sequence[str],
) -> int:
    """One page (`--limit`, `--cursor`), or every page with `--all`, shown as a table or as the JSON page."""
    page = fetch(limit=args.limit, cursor=args.cursor)
    items = list(page["items"])
    while args.all and page.get("next_cursor"):
        page = fetch(limit=args.limit, cursor=page["next_cursor"])
        items += page["items"]
    shown = {"items": items, "next_cursor": page.get("next_cursor"), "limit": page.get("limit")}
    out.table(items, columns, page=shown)
    if shown["next_cursor"] and not out.as_json:
        note(f"more: --cursor {shown['next_cursor']}  (or --all)")
    return EXIT_OK
