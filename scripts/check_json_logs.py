"""Check that a service's log holds one JSON object per line: `python scripts/check_json_logs.py NAME FILE`.

Every non-empty line must be a JSON object with `ts`, `level`, `logger` and `event`; the lines that are not
are printed and the exit status is 1. make compose-check runs it on the containers' logs.
"""

import json
import sys

REQUIRED = ("ts", "level", "logger", "event")


def bad_lines(lines: list[str]) -> list[str]:
    bad = []
    for line in lines:
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            bad.append(line)
            continue
        if not isinstance(entry, dict) or any(key not in entry for key in REQUIRED):
            bad.append(line)
    return bad


def main(argv: list[str]) -> int:
    name, path = argv
    with open(path, encoding="utf-8", errors="replace") as fh:
        lines = fh.read().splitlines()
    bad = bad_lines(lines)
    events = sum(1 for line in lines if line.strip()) - len(bad)
    print(f"{name}: {events} JSON lines, {len(bad)} other lines")
    for line in bad[:20]:
        print(f"  not a JSON event: {line[:300]}")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
