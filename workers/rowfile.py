"""Rewrite a data set's safetensors file without some of its rows, streaming bytes from the old file.

The safetensors format (huggingface/safetensors, "Format"): an unsigned little-endian 64-bit header length N, N
bytes of UTF-8 JSON ``{name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}}`` (may be
padded with spaces), then the byte buffer, each tensor row-major at its offsets relative to the buffer's start.

The row tensors (``features``, ``labels``) lose the dropped rows; the holdout tensors are copied as they are;
dtypes are kept (the bytes are copied, never decoded). The old file's ``__metadata__`` is not carried over. The
new file is written to a file object the caller owns (the blob store's temporary file) and hashed on the way.
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

ROW_TENSORS = ("features", "labels")
DTYPE_BYTES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1,
    "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
    "I32": 4, "U32": 4, "F32": 4,
    "I64": 8, "U64": 8, "F64": 8,
}  # fmt: skip
COPY_CHUNK = 8 * 1024 * 1024  # bytes copied at a time
ALIGN = 8  # the header is padded with spaces to a multiple of this


def read_header(fh: BinaryIO) -> tuple[dict, int]:
    """(header without __metadata__, offset of the byte buffer) of an open safetensors file."""
    (length,) = struct.unpack("<Q", fh.read(8))
    header = json.loads(fh.read(length))
    header.pop("__metadata__", None)
    return header, 8 + length


def _kept_runs(num_rows: int, drop: Sequence[int]) -> list[tuple[int, int]]:
    """[start, end) runs of rows kept when the sorted positions ``drop`` go."""
    runs, start = [], 0
    for position in drop:
        if position > start:
            runs.append((start, position))
        start = position + 1
    if start < num_rows:
        runs.append((start, num_rows))
    return runs


def rewrite_without_rows(src: Path, dst: BinaryIO, drop: Sequence[int]) -> tuple[str, int]:
    """Write ``src`` minus the rows at positions ``drop`` to ``dst``; returns (sha256 hex, size) of what was written.

    Raises ValueError when a position is out of range or the file lacks a row tensor."""
    drop = sorted(set(drop))
    digest = hashlib.sha256()
    written = 0

    def out(data: bytes) -> None:
        nonlocal written
        digest.update(data)
        dst.write(data)
        written += len(data)

    with open(src, "rb") as fh:
        header, base = read_header(fh)
        if any(name not in header for name in ROW_TENSORS):
            raise ValueError(f"{src} lacks one of the row tensors {ROW_TENSORS}")
        num_rows = header["features"]["shape"][0]
        if drop and (drop[0] < 0 or drop[-1] >= num_rows):
            raise ValueError(f"row positions must be in [0, {num_rows})")
        runs = _kept_runs(num_rows, drop)
        kept = num_rows - len(drop)
        names = sorted(header, key=lambda n: header[n]["data_offsets"][0])  # the buffer's order
        plan, new_header, offset = [], {}, 0
        for name in names:
            info = header[name]
            begin, end = info["data_offsets"]
            shape = list(info["shape"])
            if name in ROW_TENSORS:
                row_bytes = DTYPE_BYTES[info["dtype"]]
                for dim in shape[1:]:
                    row_bytes *= dim
                ranges = [(begin + a * row_bytes, begin + b * row_bytes) for a, b in runs]
                shape[0] = kept
            else:
                ranges = [(begin, end)]
            size = sum(b - a for a, b in ranges)
            new_header[name] = {"dtype": info["dtype"], "shape": shape, "data_offsets": [offset, offset + size]}
            plan.append(ranges)
            offset += size
        encoded = json.dumps(new_header, separators=(",", ":")).encode("utf-8")
        encoded += b" " * (-(8 + len(encoded)) % ALIGN)
        out(struct.pack("<Q", len(encoded)) + encoded)
        for ranges in plan:
            for a, b in ranges:
                fh.seek(base + a)
                remaining = b - a
                while remaining > 0:
                    chunk = fh.read(min(COPY_CHUNK, remaining))
                    if not chunk:
                        raise ValueError(f"{src} is shorter than its header says")
                    out(chunk)
                    remaining -= len(chunk)
    return digest.hexdigest(), written
