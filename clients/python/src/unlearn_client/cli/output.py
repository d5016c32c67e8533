"""How the command line shows results: JSON with --json, else short tables and `key: value` lines; progress on
stderr (redrawn in place on a terminal, one line per change otherwise)."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

BAR_WIDTH = 30  # characters in the progress bar
CELL_WIDTH = 40  # longest cell shown in a table before it is cut


class Output:
    def __init__(self, as_json: bool, stream: TextIO | None = None) -> None:
        self.as_json = as_json
        self.stream = stream or sys.stdout

    def value(self, value: Any) -> None:
        """One document."""
        if self.as_json or not isinstance(value, Mapping):
            print(json.dumps(value, indent=2, sort_keys=True, default=str), file=self.stream)
            return
        width = max((len(str(k)) for k in value), default=0)
        for key, item in value.items():
            shown = json.dumps(item, default=str) if isinstance(item, Mapping | list) else item
            print(f"{key:<{width}}  {'-' if shown is None else shown}", file=self.stream)

    def table(self, rows: Sequence[Mapping[str, Any]], columns: Sequence[str], *, page: Mapping[str, Any]) -> None:
        """A list: the JSON page (with --json) or a table of `columns`."""
        if self.as_json:
            print(json.dumps(dict(page), indent=2, sort_keys=True, default=str), file=self.stream)
            return
        cells = [[_cell(row.get(c)) for c in columns] for row in rows]
        widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
        print("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip(), file=self.stream)
        for row in cells:
            print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip(), file=self.stream)


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    text = json.dumps(value, default=str) if isinstance(value, Mapping | list) else str(value)
    return text if len(text) <= CELL_WIDTH else text[: CELL_WIDTH - 1] + "…"


def note(message: str) -> None:
    print(message, file=sys.stderr)


class Progress:
    """A progress line for a deletion (bar, percentage, stage) or a training run (status, elapsed seconds)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.last = ""
        self.started = time.monotonic()

    def deletion(self, deletion: Mapping[str, Any]) -> None:
        status = deletion.get("status") or "?"
        progress = deletion.get("progress")
        fraction = 1.0 if status == "succeeded" else min(max(float(progress or 0.0), 0.0), 1.0)
        filled = round(fraction * BAR_WIDTH)
        stage = deletion.get("stage")
        label = f"{status}: {stage}" if stage and stage != status else status
        self._show(f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {fraction * 100:3.0f}% {label}")

    def training(self, model: Mapping[str, Any]) -> None:
        elapsed = time.monotonic() - self.started
        status = model.get("status") or "?"
        # Redrawn on a terminal every poll; elsewhere a line only when the status changes.
        self._show(f"model {model.get('id')}: {status}" + (f" ({elapsed:.0f} s)" if self.tty else ""))

    def _show(self, line: str) -> None:
        if line == self.last:
            return
        self.last = line
        if self.tty:
            self.stream.write("\r" + line.ljust(BAR_WIDTH + 40))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty and self.last:
            self.stream.write("\n")
            self.stream.flush()
