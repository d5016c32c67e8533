"""The Merkle tree over the stored log: tree heads, inclusion and consistency proofs from the database.

Leaf i (0-based) is ``leaf_hash(bytes.fromhex(entry_hash))`` of the entry with seq i + 1; the tree of size n
covers entries 1..n. Leaf hashes are cached in memory per database. The hash chain makes the cache cheap to
check: an entry's hash depends on every entry before it, so if the newest cached leaf still matches the
database, every cached leaf before it does (a rolled-back or rebuilt log resets the cache).
"""

import threading
from typing import Any

from sqlalchemy.orm import Session
from unlearn_client.verify.merkle import MerkleTree, leaf_hash

from app.audit import repository
from app.audit.signing import Signer

_caches: dict[str, "_Cache"] = {}
_caches_lock = threading.Lock()


class _Cache:
    def __init__(self) -> None:
        self.tree = MerkleTree()
        self.lock = threading.Lock()


def _cache_for(session: Session) -> _Cache:
    key = session.get_bind().url.render_as_string(hide_password=True)
    with _caches_lock:
        return _caches.setdefault(key, _Cache())


def tree_size(session: Session) -> int:
    return repository.max_seq(session)


def load_tree(session: Session, size: int) -> MerkleTree:
    """A tree holding at least ``size`` leaves read from the database (raises LookupError past the log's end)."""
    cache = _cache_for(session)
    with cache.lock:
        have = len(cache.tree)
        check = min(size, have)
        if check:  # the cached leaf at the newest position needed must still be the database's
            row = repository.entry_hashes(session, first_seq=check, last_seq=check)
            if not row or leaf_hash(bytes.fromhex(row[0][1])) != cache.tree.leaves[check - 1]:
                cache.tree, have = MerkleTree(), 0
        if size > have:
            rows = repository.entry_hashes(session, first_seq=have + 1, last_seq=size)
            if len(rows) != size - have:
                raise LookupError(f"the log holds fewer than {size} entries")
            for expected, (seq, entry_hash) in enumerate(rows, start=have + 1):
                if seq != expected:
                    raise LookupError(f"the log has a gap at seq {expected}")
                cache.tree.append(leaf_hash(bytes.fromhex(entry_hash)))
        return cache.tree


def signed_tree_head(session: Session, signer: Signer, size: int | None = None) -> dict[str, Any]:
    """The signed head of the tree of ``size`` entries (default: the whole log now)."""
    size = tree_size(session) if size is None else size
    return signer.sign_tree_head(size, load_tree(session, size).root(size))


def inclusion_proof(session: Session, *, seq: int, size: int) -> dict[str, Any]:
    """``{leaf_index, tree_size, audit_path}`` for entry ``seq`` in the tree of ``size`` entries."""
    tree = load_tree(session, size)
    path = tree.inclusion_proof(seq - 1, size)
    return {"leaf_index": seq - 1, "tree_size": size, "audit_path": [p.hex() for p in path]}


def consistency_proof(session: Session, *, first: int, second: int) -> dict[str, Any]:
    """``{first_size, second_size, first_root, second_root, proof}``: tree ``first`` is a prefix of ``second``."""
    tree = load_tree(session, second)
    return {
        "first_size": first,
        "second_size": second,
        "first_root": tree.root(first).hex(),
        "second_root": tree.root(second).hex(),
        "proof": [p.hex() for p in tree.consistency_proof(first, second)],
    }
