"""Create a secret file once, atomically, readable by its owner alone.

Several processes may start together and each find the key file absent. Each writes its own candidate to a
private temporary file (mode 0600) in the target folder, fsyncs it, and hard-links it into place: the link
never replaces an existing file, so the first process to link wins and every other one reads the winner's key.
The folder is fsynced afterwards so the new name survives a crash.
"""

import os
from pathlib import Path


def create_exclusive(path: Path, data: bytes) -> bool:
    """Store `data` at `path` if nothing is there yet: True if this call created the file, False if another
    process had (the caller then reads the file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(6).hex()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, path)  # atomic and never replaces
        except FileExistsError:
            return False
    finally:
        tmp.unlink(missing_ok=True)
    try:
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:  # pragma: no cover - folders that cannot be fsynced
        pass
    return True
