"""Salted commitments to a request's sample ids and forgotten rows, and how a holder of the opening checks them.

The audit log, the deletion status and the receipts name what was forgotten only through these commitments. Each
is salted with the request's own 32-byte salt, which the service shows only to the tenant (POST response, status,
receipt) and stores nowhere, so a reader of the log cannot test a guessed id ("alice@example.com") against them:

- ``sample_ids_sha256 = HMAC-SHA256(key=salt, "unlearn-sample-ids/v2\\n" || json.dumps(sorted(set(ids))))``, the
  JSON written as Python's default ``json.dumps`` writes it (``", "`` between items, non-ASCII as ``\\uXXXX``);
- ``forget_commitment = sha256("unlearn-forget-commitment-v2" || u32le(len(salt)) || salt || u64le(n) ||
  the n row digests sorted)``, each row digest ``sha256(u64le(len(id)) || id UTF-8 || i64le(label) ||
  u32le(feature dims) || i64le(each feature dim) || features as float32 little-endian)``; for integer features
  (token ids) the dims are followed by ``b"i8"`` and the features are int64 little-endian.

An opening is (ids, salt) for the first and (ids, their rows, salt) for the second: whoever holds it (the requester,
or an auditor the requester gives it to) recomputes the value and compares. This module recomputes both with the
standard library and numpy alone (an independent implementation of the workers' ``forget_commitment``)::

    python -m app.audit.commitments sample-ids --salt HEX --commitment HEX ids.txt
    python -m app.audit.commitments forget --salt HEX --commitment HEX ids.txt rows.safetensors

``ids.txt`` holds one id per line; ``rows.safetensors`` the rows' ``features`` and ``labels`` in the order of the
ids. Exit status 0 = the commitment opens, 1 = it does not, 2 = usage error.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import struct
import sys
from collections.abc import Iterable, Sequence

import numpy as np

SAMPLE_IDS_TAG = b"unlearn-sample-ids/v2\n"
FORGET_TAG = b"unlearn-forget-commitment-v2"
SALT_BYTES = 32


def _salt(salt: bytes | str) -> bytes:
    raw = bytes.fromhex(salt) if isinstance(salt, str) else bytes(salt)
    if len(raw) < 16:
        raise ValueError("a commitment salt has at least 16 bytes")
    return raw


def commit_sample_ids(sample_ids: Iterable[str], salt: bytes | str) -> str:
    """Hex HMAC-SHA256 commitment to a set of sample ids under ``salt`` (bytes or hex)."""
    message = SAMPLE_IDS_TAG + json.dumps(sorted(set(sample_ids))).encode("ascii")
    return hmac.new(_salt(salt), message, hashlib.sha256).hexdigest()


def check_sample_ids(sample_ids: Iterable[str], salt: bytes | str, commitment: str) -> bool:
    """True when (ids, salt) opens ``commitment``."""
    return hmac.compare_digest(commit_sample_ids(sample_ids, salt), str(commitment))


def _row_digest(sample_id: str, label: int, shape: bytes, row: np.ndarray) -> bytes:
    raw = str(sample_id).encode("utf-8")
    h = hashlib.sha256()
    h.update(struct.pack("<Q", len(raw)) + raw)
    h.update(struct.pack("<q", int(label)))
    h.update(shape)
    h.update(np.ascontiguousarray(row, dtype="<i8" if row.dtype.kind in "iu" else "<f4").tobytes())
    return h.digest()


def forget_commitment(sample_ids: Sequence[str], features: np.ndarray, labels: np.ndarray, salt: bytes | str) -> str:
    """Hex commitment to rows (ids, features (n, ...), labels (n,)) under ``salt``; independent of row order."""
    integer = np.asarray(features).dtype.kind in "iu"  # token ids
    feats = np.asarray(features, dtype=np.int64 if integer else np.float32)
    labs = np.asarray(labels).reshape(-1)
    if not (len(sample_ids) == labs.shape[0] == feats.shape[0]):
        raise ValueError("sample_ids, features and labels must describe the same rows")
    shape = struct.pack("<I", feats.ndim - 1 if len(sample_ids) else 0) + b"".join(
        struct.pack("<q", d) for d in feats.shape[1:]
    )
    shape += b"i8" if integer else b""
    digests = sorted(_row_digest(sid, labs[i], shape, feats[i]) for i, sid in enumerate(sample_ids))
    raw_salt = _salt(salt)
    top = hashlib.sha256(FORGET_TAG + struct.pack("<I", len(raw_salt)) + raw_salt + struct.pack("<Q", len(digests)))
    for d in digests:
        top.update(d)
    return top.hexdigest()


def check_forget_commitment(
    sample_ids: Sequence[str], features: np.ndarray, labels: np.ndarray, salt: bytes | str, commitment: str
) -> bool:
    """True when (ids, rows, salt) opens ``commitment``."""
    return hmac.compare_digest(forget_commitment(sample_ids, features, labels, salt), str(commitment))


def _read_ids(path: str) -> list[str]:
    with open(path, encoding="utf-8") as fh:
        return [line.rstrip("\r\n") for line in fh if line.rstrip("\r\n")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.audit.commitments", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="kind", required=True)
    for kind in ("sample-ids", "forget"):
        p = sub.add_parser(kind)
        p.add_argument("--salt", required=True, help="the request's commitment_salt (hex)")
        p.add_argument("--commitment", required=True, help="the commitment to check (hex)")
        p.add_argument("ids", help="file with one sample id per line")
        if kind == "forget":
            p.add_argument("rows", help="safetensors file with the rows' features and labels, in the ids' order")
    args = parser.parse_args(argv)
    try:
        ids = _read_ids(args.ids)
        if args.kind == "sample-ids":
            ok = check_sample_ids(ids, args.salt, args.commitment)
        else:
            from safetensors.numpy import load_file

            rows = load_file(args.rows)
            ok = check_forget_commitment(ids, rows["features"], rows["labels"], args.salt, args.commitment)
    except (OSError, ValueError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print("opens" if ok else "does not open")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
