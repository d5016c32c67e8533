"""Checks on an uploaded data set: a safetensors file (parsed with safe_open, never unpickled) holding
`features` ([N, ...], no zero-size dimension; float with every number finite, or int64 ids such as token ids,
whose smallest and largest value are recorded), `labels` (int64, [N], 0 to MAX_LABEL) and optionally
`holdout_features` / `holdout_labels` (both or neither, held to the same rules, rows shaped like `features` and of
the same kind); and the optional ids text (N unique non-empty lines without control characters).

The tensors' bytes are read in bounded chunks (numpy memory maps over the file at the offsets its header gives;
bfloat16, which numpy lacks, is read as its 16-bit patterns), so a check never holds a whole data set in memory.
"""

import json
import struct
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from safetensors import safe_open

from app.core.errors import Unprocessable
from app.core.text import first_bad_identifiers

FLOAT_DTYPES = {"F16", "BF16", "F32", "F64"}
INT_DTYPES = {"I64"}  # integer features: ids (token ids), handed to architectures as int64
DTYPE_NAMES = {"F16": "float16", "BF16": "bfloat16", "F32": "float32", "F64": "float64", "I64": "int64"}
REQUIRED = ("features", "labels")
OPTIONAL = ("holdout_features", "holdout_labels")
MAX_SAMPLE_ID_LENGTH = 255
# Largest label: num_classes (largest label + 1) is stored as a 32-bit signed integer.
MAX_LABEL = 2**31 - 2
LABEL_CHUNK = 1 << 20  # labels read at a time when checking their range
ROW_CHUNK_BYTES = 8 * 1024 * 1024  # bytes of feature rows read at a time when checking that they are finite
MAX_REPORTED = 20  # offending rows or lines named in a problem
# safetensors dtype -> the little-endian numpy dtype its bytes are read as (bfloat16 as raw 16-bit patterns).
_FLOAT_VIEWS = {"F16": "<f2", "F32": "<f4", "F64": "<f8", "BF16": "<u2"}
_BF16_EXPONENT = 0x7F80  # all exponent bits set: infinity or NaN


@dataclass(frozen=True)
class DatasetInfo:
    num_rows: int
    num_holdout: int
    feature_shape: list[int]
    num_classes: int
    feature_dtype: str = "float32"  # float16, bfloat16, float32, float64 or int64
    feature_range: list[int] | None = None  # integer features: [smallest, largest] over training and holdout rows


def _label_range(handle, name: str, n: int) -> tuple[int, int]:
    """(min, max) of a label tensor, read in chunks (bytes on disk, never a pickle)."""
    lo, hi = None, None
    sliced = handle.get_slice(name)
    for start in range(0, n, LABEL_CHUNK):
        part = np.asarray(sliced[start : min(n, start + LABEL_CHUNK)])
        lo = int(part.min()) if lo is None else min(lo, int(part.min()))
        hi = int(part.max()) if hi is None else max(hi, int(part.max()))
    return (lo if lo is not None else 0), (hi if hi is not None else -1)


def _data_offsets(path: Path) -> dict[str, int]:
    """Absolute byte offset of each tensor's data (from the header of a file safe_open has accepted)."""
    with open(path, "rb") as fh:
        (header_size,) = struct.unpack("<Q", fh.read(8))
        header = json.loads(fh.read(header_size))
    return {name: 8 + header_size + meta["data_offsets"][0] for name, meta in header.items() if name != "__metadata__"}


def _non_finite_rows(path: Path, *, offset: int, shape: list[int], dtype: str) -> list[int]:
    """Indices of the first rows (up to MAX_REPORTED) of a float tensor holding NaN or an infinity."""
    view = np.dtype(_FLOAT_VIEWS[dtype])
    per_row = int(np.prod(shape[1:]))
    data = np.memmap(path, dtype=view, mode="r", offset=offset, shape=(shape[0], per_row))  # (N, D)
    step = max(1, ROW_CHUNK_BYTES // (per_row * view.itemsize))
    rows: list[int] = []
    for start in range(0, shape[0], step):
        chunk = np.asarray(data[start : start + step])  # (step, D)
        if dtype == "BF16":
            bad = ((chunk & _BF16_EXPONENT) == _BF16_EXPONENT).any(axis=1)
        else:
            bad = ~np.isfinite(chunk).all(axis=1)
        rows.extend(start + int(i) for i in np.flatnonzero(bad)[: MAX_REPORTED - len(rows)])
        if len(rows) >= MAX_REPORTED:
            break
    del data  # closes the map
    return rows


def _int_range(path: Path, meta: dict[str, tuple[list[int], str]]) -> list[int]:
    """[smallest, largest] over the integer feature tensors, read in chunks of ROW_CHUNK_BYTES."""
    offsets = _data_offsets(path)
    lo, hi = None, None
    for name in ("features", "holdout_features"):
        if name not in meta or meta[name][0][0] == 0:
            continue
        shape = meta[name][0]
        total = int(np.prod(shape))
        data = np.memmap(path, dtype="<i8", mode="r", offset=offsets[name], shape=(total,))
        step = ROW_CHUNK_BYTES // 8
        for start in range(0, total, step):
            chunk = np.asarray(data[start : start + step])
            lo = int(chunk.min()) if lo is None else min(lo, int(chunk.min()))
            hi = int(chunk.max()) if hi is None else max(hi, int(chunk.max()))
        del data  # closes the map
    return [lo, hi]


def _check_finite(path: Path, meta: dict[str, tuple[list[int], str]]) -> None:
    offsets = _data_offsets(path)
    found: list[dict] = []
    for name in ("features", "holdout_features"):
        if name in meta and meta[name][0][0] > 0:
            shape, dtype = meta[name]
            rows = _non_finite_rows(path, offset=offsets[name], shape=shape, dtype=dtype)
            found.extend({"tensor": name, "row": row} for row in rows[: MAX_REPORTED - len(found)])
    if found:
        named = ", ".join(f"{f['tensor']} row {f['row']}" for f in found[:5])
        raise Unprocessable(f"features must be finite numbers: NaN or infinity in {named}", non_finite=found)


def inspect_dataset(path: Path) -> DatasetInfo:
    """Validate the data set file; raises Unprocessable listing every problem found."""
    try:
        handle = safe_open(str(path), framework="numpy")
    except Exception as exc:  # noqa: BLE001 - safetensors raises its own error type for any malformed file
        raise Unprocessable(f"file is not a valid safetensors file: {exc}") from None
    with handle:
        info, meta = _inspect(handle)
    if info.feature_dtype == "int64":
        return replace(info, feature_range=_int_range(path, meta))
    _check_finite(path, meta)  # NaN and infinity exist only in float rows
    return info


def _inspect(handle) -> tuple[DatasetInfo, dict[str, tuple[list[int], str]]]:
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
    if f_dtype not in FLOAT_DTYPES | INT_DTYPES:
        problems.append(f"features must be a float tensor or int64 ids, got {f_dtype}")
    kind = INT_DTYPES if f_dtype in INT_DTYPES else FLOAT_DTYPES
    if len(f_shape) < 2:
        problems.append(f"features must have shape [N, ...] with at least one feature dimension, got {f_shape}")
    elif 0 in f_shape[1:]:
        problems.append(f"features rows must not have a zero-size dimension, got shape {f_shape}")
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
        if h_dtype not in kind:
            want = "int64 ids like features" if kind is INT_DTYPES else "a float tensor like features"
            problems.append(f"holdout_features must be {want}, got {h_dtype}")
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
    if lo < 0 or hi > MAX_LABEL:
        raise Unprocessable(
            f"labels must be >= 0 and <= {MAX_LABEL}, found {lo if lo < 0 else hi}", max_label=MAX_LABEL
        )
    info = DatasetInfo(
        num_rows=n,
        num_holdout=num_holdout,
        feature_shape=list(f_shape[1:]),
        num_classes=hi + 1,
        feature_dtype=DTYPE_NAMES[f_dtype],
    )
    return info, meta


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
    if bad := first_bad_identifiers(ids, limit=MAX_REPORTED):
        shown = "; ".join(f"line {line} {problem}" for line, problem in bad[:5])
        raise Unprocessable(
            f"sample ids must not hold control characters (0-based lines): {shown}", lines=[i for i, _ in bad]
        )
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
