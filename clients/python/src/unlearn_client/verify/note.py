"""Tree heads as C2SP checkpoints: checking the signed notes the log publishes.

Follows c2sp.org/tlog-checkpoint (the note text: origin line, tree size in decimal, base64 of the RFC 6962 root,
each ending in a newline, no extension lines) and c2sp.org/signed-note (the text, an empty line, then signature
lines ``— <key name> <base64(key id || signature)>``; Ed25519 signatures over the note text; key id = the first
four bytes of SHA-256(key name || 0x0A || 0x01 || 32-byte public key)). The key name is the log's origin; a log
that names none is ``DEFAULT_ORIGIN_PREFIX`` + the first 16 hex digits of its key id.

``verifier_key`` gives the key in the text form witnesses are configured with (the form of Go's
golang.org/x/mod/sumdb/note: ``<name>+<hex key id>+<base64(0x01 || public key)>``).
"""

import base64
import binascii
import hashlib

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from unlearn_client.errors import VerificationError
from unlearn_client.verify.keys import raw_public_key

DEFAULT_ORIGIN_PREFIX = "unlearn.invalid/audit/"  # + the first 16 hex digits of the key id
ED25519_TYPE = b"\x01"  # signed-note signature type of Ed25519
EM_DASH = "\u2014"
MAX_NOTE_BYTES = 64 * 1024  # a note past this is refused unread
RESERVED_PREFIX = "unlearn-audit/"  # domain tags of the other signatures made with the same key


def check_origin(origin: str) -> None:
    """Raise ValueError unless ``origin`` can name the log in its checkpoints and signatures."""
    if not origin or any(c.isspace() or c == "+" or ord(c) < 0x20 for c in origin):
        raise ValueError(f"audit log origin {origin!r} must be non-empty, without spaces, '+' or control characters")
    if origin.startswith(RESERVED_PREFIX):
        raise ValueError(f"audit log origin may not start with {RESERVED_PREFIX!r}")


def note_key_id(name: str, public_key: Ed25519PublicKey) -> bytes:
    """The 4-byte signed-note key id of an Ed25519 key under ``name``."""
    return hashlib.sha256(name.encode("utf-8") + b"\n" + ED25519_TYPE + raw_public_key(public_key)).digest()[:4]


def verifier_key(name: str, public_key: Ed25519PublicKey) -> str:
    """``<name>+<hex key id>+<base64(0x01 || public key)>``."""
    encoded = base64.b64encode(ED25519_TYPE + raw_public_key(public_key)).decode("ascii")
    return f"{name}+{note_key_id(name, public_key).hex()}+{encoded}"


def checkpoint_text(origin: str, tree_size: int, root_hash: bytes) -> str:
    return f"{origin}\n{tree_size}\n{base64.b64encode(root_hash).decode('ascii')}\n"


def open_checkpoint(note: str, public_key: Ed25519PublicKey, origin: str) -> tuple[int, bytes]:
    """Verify a checkpoint signed by ``public_key`` under ``origin``; return (tree size, root hash).

    Signature lines of other keys (witness cosignatures, say) are ignored; the log's must be there and verify.
    """
    if len(note.encode("utf-8")) > MAX_NOTE_BYTES:
        raise VerificationError("checkpoint is too large")
    if any(ord(c) < 0x20 and c != "\n" for c in note):
        raise VerificationError("checkpoint holds control characters")
    text, sep, signatures = note.rpartition("\n\n")
    if not sep or not signatures.endswith("\n"):
        raise VerificationError("checkpoint is not a signed note (text, empty line, signature lines)")
    text += "\n"
    key_id = note_key_id(origin, public_key)
    verified = False
    for line in signatures[:-1].split("\n"):
        parts = line.split(" ")
        if len(parts) != 3 or parts[0] != EM_DASH:
            raise VerificationError(f"malformed signature line {line!r}")
        try:
            raw = base64.b64decode(parts[2], validate=True)
        except binascii.Error as exc:
            raise VerificationError("signature line is not base64") from exc
        if parts[1] != origin or raw[:4] != key_id:
            continue  # another key's signature
        try:
            public_key.verify(raw[4:], text.encode("utf-8"))
        except InvalidSignature as exc:
            raise VerificationError("the log's checkpoint signature does not verify") from exc
        verified = True
    if not verified:
        raise VerificationError(f"checkpoint carries no signature by the log's key under {origin!r}")
    lines = text[:-1].split("\n")
    if len(lines) < 3 or lines[0] != origin:
        raise VerificationError("checkpoint text is not origin, tree size, root hash")
    size_text, root_text = lines[1], lines[2]
    if not size_text.isascii() or not size_text.isdigit() or (size_text.startswith("0") and size_text != "0"):
        raise VerificationError("checkpoint tree size is not a decimal without leading zeroes")
    try:
        root = base64.b64decode(root_text, validate=True)
    except binascii.Error as exc:
        raise VerificationError("checkpoint root hash is not base64") from exc
    if len(root) != 32:
        raise VerificationError("checkpoint root hash is not 32 bytes")
    return int(size_text), root
