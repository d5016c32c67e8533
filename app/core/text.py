"""Text the databases can store faithfully, checked before anything is written.

PostgreSQL text cannot hold NUL (U+0000), and neither PostgreSQL nor SQLite can store a lone surrogate
(U+D800..U+DFFF): UTF-8 has no encoding for one, yet Python's JSON parser turns a `\\ud800` escape into one.
Identifiers (sample ids) are stricter still: no control characters at all (C0, DEL, C1), so an id reads the same
in a listing, a log line and a one-id-per-line file.
"""

import re

CONTROL = "\x00-\x1f\x7f-\x9f"  # C0 controls, DEL, C1 controls
SURROGATE = "\ud800-\udfff"
IDENTIFIER_FORBIDDEN = re.compile(f"[{CONTROL}{SURROGATE}]")
TEXT_FORBIDDEN = re.compile(f"[\x00{SURROGATE}]")


def describe(char: str) -> str:
    """What a forbidden character is, for a problem's detail: 'a lone surrogate (U+D800)'."""
    code = f"U+{ord(char):04X}"
    if "\ud800" <= char <= "\udfff":
        return f"a lone surrogate ({code})"
    return f"a control character ({code})"


def identifier_problem(value: str) -> str | None:
    """Why `value` cannot be an identifier, or None when it can."""
    found = IDENTIFIER_FORBIDDEN.search(value)
    return None if found is None else f"contains {describe(found.group())} at position {found.start()}"


def text_problem(value: str) -> str | None:
    """Why `value` cannot be stored as free text (line breaks and tabs allowed), or None when it can."""
    found = TEXT_FORBIDDEN.search(value)
    return None if found is None else f"contains {describe(found.group())} at position {found.start()}"


def first_bad_identifiers(values: list[str], *, limit: int = 20) -> list[tuple[int, str]]:
    """(index, problem) of up to `limit` values that cannot be identifiers. One scan of all the values joined
    (the separator is itself allowed) finds whether any is bad, so a clean list costs a single regex pass."""
    if IDENTIFIER_FORBIDDEN.search(" ".join(values)) is None:
        return []
    bad: list[tuple[int, str]] = []
    for index, value in enumerate(values):
        if (problem := identifier_problem(value)) is not None:
            bad.append((index, problem))
            if len(bad) >= limit:
                break
    return bad
