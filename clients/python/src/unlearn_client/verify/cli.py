"""``python -m unlearn_client.verify``: check documents the audit endpoints returned, offline.

Exit status 0 = verified, 1 = rejected, 2 = usage error::

    python -m unlearn_client.verify receipt receipt.json --public-key key.pem
    python -m unlearn_client.verify entry entry.json --public-key key.pem            # GET /v1/audit/{seq}
    python -m unlearn_client.verify tree-head head.json --public-key key.pem         # GET /v1/audit/tree-head
    python -m unlearn_client.verify consistency proof.json --public-key key.pem \\
        --old-head head-then.json --new-head head-now.json                         # GET /v1/audit/consistency
    python -m unlearn_client.verify log entries.json --public-key key.pem [--tree-head head.json]
    python -m unlearn_client.verify checkpoint checkpoint.txt --public-key key.json  # GET /v1/audit/checkpoint

``--public-key`` takes a PEM file, a file with the base64 raw key, or the JSON of ``GET /v1/audit/public-key``
(which also names the log's checkpoint origin; else ``--origin``). ``--legacy-entries N``: the first N entries were
written before entries were signed (a log upgraded from such a release) and may carry no signature.
``entries.json`` is a JSON array of entries, a page of ``GET /v1/audit`` (its ``items``), or an object with an
``entries`` array.
"""

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from unlearn_client.errors import VerificationError
from unlearn_client.verify import checks as verify
from unlearn_client.verify.keys import key_id_of, load_public_key
from unlearn_client.verify.note import DEFAULT_ORIGIN_PREFIX


class _UsageError(Exception):
    pass


def _load_json(path: str) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise _UsageError(f"cannot read {path}: {exc}") from exc


def _load_key(path: str) -> tuple[Ed25519PublicKey, str | None]:
    """The key, and the log's origin when the file is the public-key JSON (which names it)."""
    origin = None
    try:
        text = Path(path).read_text(encoding="utf-8").strip()
        if text.startswith("{"):
            doc = json.loads(text)
            text = doc.get("public_key_pem") or doc.get("public_key_raw_b64") or ""
            origin = doc.get("origin")
    except (OSError, ValueError, AttributeError) as exc:
        raise _UsageError(f"cannot read public key {path}: {exc}") from exc
    return load_public_key(text), origin


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m unlearn_client.verify", description=(__doc__ or "").split("\n")[0])
    parser.add_argument("kind", choices=["receipt", "entry", "tree-head", "consistency", "log", "checkpoint"])
    parser.add_argument("document", help="JSON file as returned by the endpoint (checkpoint: the note text)")
    parser.add_argument("--public-key", required=True, help="PEM, base64 raw key, or the public-key JSON")
    parser.add_argument("--origin", help="checkpoint: the log's origin (default: the one the public-key JSON names)")
    parser.add_argument(
        "--legacy-entries", type=int, default=0, help="how many first entries predate per-entry signatures"
    )
    parser.add_argument("--tree-head", help="log: a signed tree head the log must match")
    parser.add_argument("--old-head", help="consistency: the signed head of the first size")
    parser.add_argument("--new-head", help="consistency: the signed head of the second size")
    args = parser.parse_args(argv)
    try:
        key, origin = _load_key(args.public_key)
        legacy = {"legacy_entries": args.legacy_entries}
        if args.kind == "checkpoint":
            origin = args.origin or origin or DEFAULT_ORIGIN_PREFIX + key_id_of(key)[:16]
            try:
                note = Path(args.document).read_text(encoding="utf-8")
            except (OSError, ValueError) as exc:
                raise _UsageError(f"cannot read {args.document}: {exc}") from exc
            size, root = verify.verify_checkpoint(note, key, origin)
            print(f"OK: checkpoint of {origin}: tree size {size}, root {root.hex()}")
            return 0
        doc = _load_json(args.document)
        if args.kind == "receipt":
            verify.verify_receipt(doc, key, **legacy)
            message = f"receipt for deletion request {doc['request'].get('id')} verified"
        elif args.kind == "entry":
            verify.verify_entry_inclusion(doc, key, **legacy)
            message = f"entry {doc['entry']['seq']} is in the signed tree of size {doc['tree_head']['tree_size']}"
        elif args.kind == "tree-head":
            size, root = verify.verify_tree_head(doc, key)
            message = f"tree head of size {size} (root {root.hex()}) verified"
        elif args.kind == "consistency":
            old = _load_json(args.old_head) if args.old_head else None
            new = _load_json(args.new_head) if args.new_head else None
            verify.verify_consistency_document(doc, key, old, new)
            message = f"tree of size {doc['first_size']} is a prefix of tree of size {doc['second_size']}"
            if old is None or new is None:
                message += " (roots not pinned by signed heads: pass --old-head and --new-head)"
        else:
            entries = (doc.get("items") or doc.get("entries") or []) if isinstance(doc, Mapping) else doc
            head = _load_json(args.tree_head) if args.tree_head else None
            root = verify.verify_log(entries, key, head, **legacy)
            message = f"log of {len(entries)} entries verified, root {root.hex()}"
            if head is None:
                message += " (no signed tree head given: a truncated log would pass)"
    except _UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (VerificationError, KeyError, TypeError, AttributeError) as exc:
        reason = exc if isinstance(exc, VerificationError) else f"malformed document ({type(exc).__name__}: {exc})"
        print(f"FAILED: {reason}", file=sys.stderr)
        return 1
    print(f"OK: {message}")
    return 0
