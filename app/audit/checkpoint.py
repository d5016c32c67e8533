"""Tree heads as C2SP checkpoints: signed notes that transparency-log tooling and witnesses read.

Follows c2sp.org/tlog-checkpoint (the note text: origin line, tree size in decimal, base64 of the RFC 6962 root,
each ending in a newline, no extension lines) and c2sp.org/signed-note (the text, an empty line, then signature
lines ``— <key name> <base64(key id || signature)>``; Ed25519 signatures over the note text; key id = the first
four bytes of SHA-256(key name || 0x0A || 0x01 || 32-byte public key)). The key name is the log's origin.

The same Ed25519 key signs the JSON tree heads, receipts and entries, each behind its own domain tag
(``unlearn-audit/...``); an origin may not start with that tag, so no checkpoint text is ever one of those
messages. ``verifier_key`` gives the key in the text form witnesses are configured with (the form of Go's
golang.org/x/mod/sumdb/note: ``<name>+<hex key id>+<base64(0x01 || public key)>``).

``write`` puts the newest checkpoint in a file (UNLEARN_AUDIT_CHECKPOINT_PATH) each time a larger tree head is
signed (app.audit.tree): a way to keep heads outside the database, for whoever copies the file off the host.
"""

import base64
import binascii
import hashlib
import os
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from app.audit.exceptions import VerificationError
from app.audit.signing import Signer, raw_public_key

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


def sign_checkpoint(signer: Signer, tree_size: int, root_hash: bytes) -> str:
    """The signed note of the tree head (size, root) under the signer's origin."""
    origin = signer.note_origin
    text = checkpoint_text(origin, tree_size, root_hash)
    signature = note_key_id(origin, signer.public_key) + signer.private_key.sign(text.encode("utf-8"))
    return f"{text}\n{EM_DASH} {origin} {base64.b64encode(signature).decode('ascii')}\n"


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


def read(path: Path, signer: Signer) -> tuple[int, bytes] | None:
    """The (size, root) of the checkpoint at ``path`` (None when there is no file). Raises VerificationError when
    the file is not a checkpoint of this log signed by this key."""
    try:
        note = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise VerificationError(f"cannot read {path}: {exc}") from exc
    return open_checkpoint(note, signer.public_key, signer.note_origin)


class FileLock:
    """An exclusive lock on ``<path>.lock`` (processes of one host publishing to one file)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(f"{path}.lock")

    def __enter__(self) -> "FileLock":
        import fcntl  # POSIX only: the service runs on Linux; the offline verifier needs none of this

        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *_exc: object) -> None:
        import fcntl

        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)


def write(path: Path, note: str) -> None:
    """Replace the file at ``path`` with ``note`` atomically (temporary file, fsync, rename)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(note)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
