"""Checks on an uploaded data set: a safetensors file (parsed with safe_open, never unpickled) holding
`features` (float, [N, ...]), `labels` (int64, [N], >= 0) and optionally `holdout_features` / `holdout_labels`
(both or neither, rows shaped like `features`); and the optional ids text (N unique non-empty lines)."""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from safetensors import safe_open

from app.core.errors import Unprocessable

FLOAT_DTYPES = {"F16", "BF16", "F32", "F64"}
REQUIRED = ("features", "labels")
OPTIONAL = ("holdout_features", "holdout_labels")
MAX_SAMPLE_ID_LENGTH = 255
LABEL_CHUNK = 1 << 20  # labels read at a time when checking their range


@dataclass(frozen=True)
class DatasetInfo:
    num_rows: int
    num_holdout: int
    feature_shape: list[int]
    num_classes: int


def _label_range(handle, name: str, n: int) -> tuple[int, int]:
    """(min, max) of a label tensor, read in chunks (bytes on disk, never a pickle)."""
    lo, hi = None, None
    sliced = handle.get_slice(name)
    for start in range(0, n, LABEL_CHUNK):
        part = np.asarray(sliced[start : min(n, start + LABEL_CHUNK)])
        lo = int(part.min()) if lo is None else min(lo, int(part.min()))
        hi = int(part.max()) if hi is None else max(hi, int(part.max()))
    return (lo if lo is not None else 0), (hi if hi is not None else -1)


def inspect_dataset(path: Path) -> DatasetInfo:
    """Validate the data set file; raises Unprocessable listing every problem found."""
    try:
        handle = safe_open(str(path), framework="numpy")
    except Exception as exc:  # noqa: BLE001 - safetensors raises its own error type for any malformed file
        raise Unprocessable(f"file is not a valid safetensors file: {exc}") from None
    with handle:
        return _inspect(handle)


def _inspect(handle) -> DatasetInfo:
    names = set(handle.keys())
    problems: list[str] = []
    missing = [n for n in REQUIRED if n not in names]
    unexpected = sorted(names - set(REQUIRED) - set(OPTIONAL))
    if missing:
        problems.append(f"missing tensors: {', '.join(missing)}")
    if unexpected:
        problems.append(f"unexpected tensors: {', '.join(unexpected)} (allowed: {', '.join(REQUIRED + OPTIONAL)})")
    if ("holdout_features" in names) != ("holdout_labels" in names):
        problems.append("holdout_features and holdout_labels must be given together")
    if problems:
        raise Unprocessable("; ".join(problems), problems=problems)

    meta = {n: (handle.get_slice(n).get_shape(), handle.get_slice(n).get_dtype()) for n in names}
    f_shape, f_dtype = meta["features"]
    l_shape, l_dtype = meta["labels"]
    if f_dtype not in FLOAT_DTYPES:
        problems.append(f"features must be a float tensor, got {f_dtype}")
    if len(f_shape) < 2:
        problems.append(f"features must have shape [N, ...] with at least one feature dimension, got {f_shape}")
    if l_dtype != "I64":
        problems.append(f"labels must be int64, got {l_dtype}")
    if len(l_shape) != 1:
        problems.append(f"labels must have shape [N], got {l_shape}")
    elif f_shape and l_shape[0] != f_shape[0]:
        problems.append(f"labels has {l_shape[0]} rows but features has {f_shape[0]}")
    if f_shape and f_shape[0] < 1:
        problems.append("features has no rows")
    num_holdout = 0
    if "holdout_features" in names:
        h_shape, h_dtype = meta["holdout_features"]
        hl_shape, hl_dtype = meta["holdout_labels"]
        num_holdout = h_shape[0] if h_shape else 0
        if h_dtype not in FLOAT_DTYPES:
            problems.append(f"holdout_features must be a float tensor, got {h_dtype}")
        if list(h_shape[1:]) != list(f_shape[1:]) or len(h_shape) < 2:
            problems.append(f"holdout_features rows must be shaped like features rows {f_shape[1:]}, got {h_shape}")
        if hl_dtype != "I64":
            problems.append(f"holdout_labels must be int64, got {hl_dtype}")
        if len(hl_shape) != 1 or hl_shape[0] != num_holdout:
            problems.append(f"holdout_labels must have shape [{num_holdout}], got {hl_shape}")
    if problems:
        raise Unprocessable("; ".join(problems), problems=problems)

    n = f_shape[0]
    lo, hi = _label_range(handle, "labels", n)
    if num_holdout:
        h_lo, h_hi = _label_range(handle, "holdout_labels", num_holdout)
        lo, hi = min(lo, h_lo), max(hi, h_hi)
    if lo < 0:
        raise Unprocessable(f"labels must be >= 0, found {lo}")
    return DatasetInfo(num_rows=n, num_holdout=num_holdout, feature_shape=list(f_shape[1:]), num_classes=hi + 1)


def parse_ids(text: str | None, *, num_rows: int) -> list[str]:
    """The external sample ids: one per line, N of them, unique and non-empty; default "0".."N-1"."""
    if text is None:
        return [str(i) for i in range(num_rows)]
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # a final newline ends the last line
    ids = [line.removesuffix("\r") for line in lines]
    if len(ids) != num_rows:
        raise Unprocessable(f"ids has {len(ids)} lines but the data set has {num_rows} rows")
    empty = [i for i, s in enumerate(ids) if not s.strip()]
    if empty:
        raise Unprocessable(f"ids has empty lines (0-based line numbers {empty[:20]})", empty_lines=empty[:100])
    too_long = [s[:40] for s in ids if len(s) > MAX_SAMPLE_ID_LENGTH]
    if too_long:
        raise Unprocessable(f"sample ids may be at most {MAX_SAMPLE_ID_LENGTH} characters", too_long=too_long[:20])
    seen: set[str] = set()
    duplicates: list[str] = []
    for s in ids:
        if s in seen:
            duplicates.append(s)
        seen.add(s)
    if duplicates:
        shown = sorted(set(duplicates))
        raise Unprocessable(f"ids are not unique: {shown[:20]}", duplicate_ids=shown[:100])
    return ids
