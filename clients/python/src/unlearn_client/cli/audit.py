"""The audit commands: the log, tree heads, consistency proofs, the public key, and deletion receipts.

Everything the service signs can be checked here against a public key the user pinned (`--public-key FILE`:
PEM, base64 raw key, or the JSON of `unlearn audit public-key`); without one, the service's own published key
is used and the output says the check was not pinned.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from unlearn_client.cli.common import (
    EXIT_INTEGRITY,
    EXIT_OK,
    UsageError,
    add_list_options,
    json_file,
    read_text,
    show_list,
)
from unlearn_client.cli.output import Output, note
from unlearn_client.client import UnlearnClient
from unlearn_client.errors import VerificationError

AUDIT_COLUMNS = ("seq", "created_at", "event_type", "actor", "refs")


def _key(client: UnlearnClient, args: argparse.Namespace) -> tuple[Any, str]:
    """The public key to check against and where it came from."""
    from unlearn_client.verify import load_public_key

    if args.public_key:
        return load_public_key(read_text(args.public_key, "public key")), args.public_key
    source = f"{client.base_url}/v1/audit/public-key (not pinned: pass --public-key to check against your copy)"
    return load_public_key(client.get_public_key()), source


def _rejected(exc: Exception) -> int:
    note(f"REJECTED: {exc}")
    return EXIT_INTEGRITY


def audit_log(client: UnlearnClient, out: Output, args: argparse.Namespace) -> int:
    fetch = lambda **page: client.list_audit(model_id=args.model, deletion_id=args.deletion, **page)  # noqa: E731
    return show_list(out, args, fetch, AUDIT_COLUMNS)


def audit_entry(client: UnlearnClient, out: Output, args: argparse.Namespace) -> int:
    from unlearn_client.verify import verify_entry_inclusion

    document = client.get_audit_entry(args.seq)
    if args.verify:
        key, source = _key(client, args)
        try:
            verify_entry_inclusion(document, key)
        except VerificationError as exc:
            return _rejected(exc)
        note(f"entry {args.seq} is in the signed tree of size {document['tree_head']['tree_size']}; key {source}")
    out.value(document if out.as_json else document["entry"])
    return EXIT_OK


def audit_head(client: UnlearnClient, out: Output, args: argparse.Namespace) -> int:
    from unlearn_client.verify import verify_tree_head

    head = client.get_tree_head(args.size)
    if args.verify:
        key, source = _key(client, args)
        try:
            verify_tree_head(head, key)
        except VerificationError as exc:
            return _rejected(exc)
        note(f"tree head of size {head['tree_size']} verified; key {source}")
    out.value(head)
    return EXIT_OK


def audit_consistency(client: UnlearnClient, out: Output, args: argparse.Namespace) -> int:
    """The proof that the log of FROM entries is a prefix of the log now (or of --to entries), checked against
    both signed heads; `--old-head FILE` pins the first head to one saved earlier (the usual way to watch a log)."""
    from unlearn_client.verify import verify_consistency_document

    document = client.get_consistency(args.first, args.to)
    old_head = json_file(args.old_head, "old tree head") if args.old_head else client.get_tree_head(args.first)
    key, source = _key(client, args)
    try:
        verify_consistency_document(document, key, old_head, document.get("tree_head"))
    except VerificationError as exc:
        return _rejected(exc)
    pinned = "saved head" if args.old_head else "head fetched now"
    note(
        f"log of {document['first_size']} entries ({pinned}) is a prefix of the log of {document['second_size']}; "
        f"key {source}"
    )
    out.value(document)
    return EXIT_OK


def audit_checkpoint(client: UnlearnClient, out: Output, args: argparse.Namespace) -> int:
    """The C2SP checkpoint, checked against the pinned key under the origin its public-key document names."""
    from unlearn_client.verify import verify_checkpoint

    note_text = client.get_checkpoint()
    if args.verify:
        if args.public_key:
            text = read_text(args.public_key, "public key")
            document = json.loads(text) if text.lstrip().startswith("{") else {}
        else:
            document = client.get_public_key()
        key, source = _key(client, args)
        origin = args.origin or document.get("origin")
        if not origin:
            raise UsageError("the public key file names no origin: pass --origin or the JSON of audit public-key")
        try:
            size, root = verify_checkpoint(note_text, key, origin)
        except VerificationError as exc:
            return _rejected(exc)
        note(f"checkpoint of size {size} (root {root.hex()}) verified under {origin}; key {source}")
    if out.as_json:
        out.value({"checkpoint": note_text})
    else:
        out.stream.write(note_text)
    return EXIT_OK


def audit_public_key(client: UnlearnClient, out: Output, args: argparse.Namespace) -> int:
    document = client.get_public_key()
    if args.output:
        Path(args.output).write_text(json.dumps(document, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        note(f"public key {document.get('key_id')} written to {args.output}; compare its key_id out of band")
    out.value(document)
    return EXIT_OK


def receipt_get(client: UnlearnClient, out: Output, args: argparse.Namespace) -> int:
    receipt = client.get_receipt(args.deletion_id)
    if args.output:
        Path(args.output).write_text(json.dumps(receipt, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        note(f"receipt written to {args.output}")
    else:
        out.value(receipt)
    return EXIT_OK


def receipt_verify(client: UnlearnClient | None, out: Output, args: argparse.Namespace) -> int:
    from unlearn_client.verify import key_id_of, verify_receipt

    if (args.deletion_id is None) == (args.file is None):
        raise UsageError("give a DELETION_ID or --file RECEIPT.json (one of them)")
    if client is None and not args.public_key:
        raise UsageError("offline verification needs --public-key")
    receipt = json_file(args.file, "receipt") if args.file else client.get_receipt(args.deletion_id)  # type: ignore[union-attr]
    try:
        key, source = _key(client, args)  # type: ignore[arg-type]
        verify_receipt(receipt, key)
    except VerificationError as exc:
        note(f"receipt REJECTED: {exc}")
        return EXIT_INTEGRITY
    request = receipt.get("request") or {}
    key_id = key_id_of(key)
    note(f"receipt verified: deletion {request.get('id')} ({request.get('status')}), key {key_id} from {source}")
    out.value({"verified": True, "deletion_id": request.get("id"), "key_id": key_id})
    return EXIT_OK


def add_parsers(commands: Any) -> None:
    audit = commands.add_parser("audit", help="read and check the audit log")
    sub = audit.add_subparsers(dest="subcommand", required=True, metavar="SUBCOMMAND")
    p = sub.add_parser("log", help="audit entries, oldest first")
    p.add_argument("--model", help="only entries about this model")
    p.add_argument("--deletion", help="only entries about this deletion request")
    add_list_options(p)
    p.set_defaults(func=audit_log)
    p = sub.add_parser("entry", help="one entry with its inclusion proof")
    p.add_argument("seq", type=int)
    p.add_argument("--verify", action="store_true", help="check the proof against the signed tree head")
    p.add_argument("--public-key", help="the log's public key you pinned (file)")
    p.set_defaults(func=audit_entry)
    p = sub.add_parser("head", help="the signed tree head")
    p.add_argument("--size", type=int, help="the head of the first SIZE entries (default: the whole log)")
    p.add_argument("--verify", action="store_true", help="check its signature")
    p.add_argument("--public-key", help="the log's public key you pinned (file)")
    p.set_defaults(func=audit_head)
    p = sub.add_parser("consistency", help="prove that an earlier log is a prefix of the log now, and check it")
    p.add_argument("first", type=int, metavar="FROM", help="size of the earlier log")
    p.add_argument("--to", type=int, help="size of the later log (default: now)")
    p.add_argument("--old-head", help="the signed head of size FROM saved earlier (JSON file)")
    p.add_argument("--public-key", help="the log's public key you pinned (file)")
    p.set_defaults(func=audit_consistency)
    p = sub.add_parser("checkpoint", help="the newest tree head as a C2SP checkpoint (signed note)")
    p.add_argument("--verify", action="store_true", help="check its signature")
    p.add_argument("--public-key", help="the public-key JSON you pinned (names the origin too)")
    p.add_argument("--origin", help="the log's origin, when the key file is a PEM")
    p.set_defaults(func=audit_checkpoint)
    p = sub.add_parser("public-key", help="the log's Ed25519 public key")
    p.add_argument("-o", "--output", help="also save it to this file (pin it: later checks take --public-key)")
    p.set_defaults(func=audit_public_key)

    receipt = commands.add_parser("receipt", help="fetch and verify signed deletion receipts")
    sub = receipt.add_subparsers(dest="subcommand", required=True, metavar="SUBCOMMAND")
    p = sub.add_parser("get", help="fetch the signed receipt of a deletion")
    p.add_argument("deletion_id")
    p.add_argument("-o", "--output", help="write to this file instead of stdout")
    p.set_defaults(func=receipt_get)
    p = sub.add_parser("verify", help="verify a receipt's signature, tree head and inclusion proofs")
    p.add_argument("deletion_id", nargs="?", help="fetch this deletion's receipt from the service")
    p.add_argument("--file", help="verify a receipt saved earlier instead")
    p.add_argument("--public-key", help="the log's public key (PEM, base64 raw, or the public-key JSON)")
    p.set_defaults(func=receipt_verify, offline_ok=True)
