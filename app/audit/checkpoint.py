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
Reading and checking a checkpoint is unlearn_client.verify.note; this module signs and publishes.
"""

import base64
import os
from pathlib import Path

from unlearn_client.verify.note import (
    EM_DASH,
    check_origin,
    checkpoint_text,
    note_key_id,
    open_checkpoint,
    verifier_key,
)

from app.audit.exceptions import VerificationError
from app.audit.signing import Signer

__all__ = ["check_origin", "checkpoint_text", "open_checkpoint", "read", "sign_checkpoint", "verifier_key", "write"]


def sign_checkpoint(signer: Signer, tree_size: int, root_hash: bytes) -> str:
    """The signed note of the tree head (size, root) under the signer's origin."""
    origin = signer.note_origin
    text = checkpoint_text(origin, tree_size, root_hash)
    signature = note_key_id(origin, signer.public_key) + signer.private_key.sign(text.encode("utf-8"))
    return f"{text}\n{EM_DASH} {origin} {base64.b64encode(signature).decode('ascii')}\n"


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
