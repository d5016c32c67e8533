"""The Merkle tree over the stored log: signed tree heads and checkpoints, inclusion and consistency proofs.

Leaf i (0-based) is ``leaf_hash(bytes.fromhex(entry_hash))`` of the entry with seq i + 1; the tree of size n covers
entries 1..n. Leaves are cached in memory per database and key, and each entry is verified once, when it enters
the cache: its seq follows the one before it with no gap, its ``prev_hash`` is the hash of the entry before, its
content reproduces its ``entry_hash``, and it carries the log key's signature (app.audit.signing; the first
``Signer.legacy_entries`` entries may be unsigned). Only committed entries enter the cache (a transaction holding
entries it appended cannot load the tree), so a cached entry the database no longer holds means the stored log
was changed: every load checks that the newest cached entry still has its hash (a rewrite that re-chains changes
it) and that the log is not shorter than what this process verified or signed.

The cache also remembers the largest tree head this process signed (seeded, when a checkpoint file is configured,
from the file: what this or another process published before), and signs no head the log cannot show to be
consistent with it (c2sp.org/tlog-checkpoint: "a log MUST NOT sign any checkpoint which is inconsistent with any
checkpoint it previously signed"). Each failure raises an alarm and LogIntegrityError (503, app.audit.alarms),
and the cache keeps what it verified: once the stored log is put back, service resumes.
"""

import threading
from typing import Any

from sqlalchemy.orm import Session
from unlearn_client.verify.merkle import EMPTY_ROOT, MerkleTree, leaf_hash

from app.audit import checkpoint, repository
from app.audit.alarms import alarm, integrity_failure
from app.audit.canonical import GENESIS_HASH, compute_entry_hash, entry_document
from app.audit.exceptions import CanonicalError, VerificationError
from app.audit.signing import Signer, verify_event_signature

VERIFY_CHUNK = 1000  # entries read and verified per query when the cache grows

_caches: dict[tuple[str, str], "_Cache"] = {}
_caches_lock = threading.Lock()


class _Cache:
    def __init__(self) -> None:
        self.tree = MerkleTree()
        self.last_hash = GENESIS_HASH  # entry_hash of the newest cached entry
        self.signed: tuple[int, bytes] = (0, EMPTY_ROOT)  # the largest head signed (or found published)
        self.published = -1  # the largest size written to the checkpoint file by this process (-1: none)
        self.seeded = False
        self.lock = threading.RLock()


def _cache_for(session: Session, signer: Signer) -> _Cache:
    key = (session.get_bind().url.render_as_string(hide_password=True), signer.key_id)
    with _caches_lock:
        cache = _caches.setdefault(key, _Cache())
    if not cache.seeded:
        with cache.lock:
            if not cache.seeded:
                cache.seeded = True
                _seed(cache, signer)
    return cache


def _seed(cache: _Cache, signer: Signer) -> None:
    """Start from the head in the checkpoint file, when there is one."""
    if signer.checkpoint_path is None:
        return
    try:
        head = checkpoint.read(signer.checkpoint_path, signer)
    except VerificationError as exc:
        alarm("checkpoint_file", f"{signer.checkpoint_path}: {exc}")
        return
    if head is not None:
        cache.signed = cache.signed if cache.signed[0] >= head[0] else head


def _verified_leaves(signer: Signer, rows: list[Any], first_seq: int, prev_hash: str) -> list[tuple[bytes, str]]:
    """(leaf hash, entry hash) of stored entries first_seq, first_seq + 1, ..., each checked."""
    out = []
    for expected, row in enumerate(rows, start=first_seq):
        if row.seq != expected:
            raise integrity_failure("gap", f"entry {expected} is missing: the next stored entry is {row.seq}")
        doc = entry_document(row)
        if doc["prev_hash"] != prev_hash:
            raise integrity_failure("chain", f"entry {expected} does not chain to entry {expected - 1}")
        try:
            computed = compute_entry_hash(doc)
        except CanonicalError as exc:
            raise integrity_failure("entry_hash", f"entry {expected}: {exc}") from exc
        if computed != doc["entry_hash"]:
            raise integrity_failure("entry_hash", f"entry {expected}: its content does not reproduce its hash")
        if doc["signature"] is not None or expected > signer.legacy_entries:
            try:
                verify_event_signature(signer.public_key, doc)
            except VerificationError as exc:
                raise integrity_failure("signature", f"entry {expected} {exc}") from exc
        out.append((leaf_hash(bytes.fromhex(computed)), computed))
        prev_hash = computed
    return out


def _load(session: Session, signer: Signer, cache: _Cache, size: int) -> MerkleTree:
    if repository.has_uncommitted_appends(session):
        raise RuntimeError("the tree is read only over committed entries: commit the appends first")
    have = len(cache.tree)
    if have:
        stored = repository.entry_hashes(session, first_seq=have, last_seq=have)
        if not stored or stored[0][1] != cache.last_hash:
            what = "is gone" if not stored else "holds another hash now"
            raise integrity_failure("rewritten", f"entry {have}, verified before, {what}")
    while len(cache.tree) < size:
        first = len(cache.tree) + 1
        last = min(size, first + VERIFY_CHUNK - 1)
        rows = list(repository.entry_rows(session, first_seq=first, last_seq=last))
        leaves = _verified_leaves(signer, rows, first, cache.last_hash)
        for leaf, entry_hash in leaves:
            cache.tree.append(leaf)
            cache.last_hash = entry_hash
        if len(rows) < last - first + 1:
            stored = repository.max_seq(session)
            if stored >= last:
                missing = first + len(rows)
                raise integrity_failure("gap", f"entry {missing} is missing: the log goes on to entry {stored}")
            raise LookupError(f"the log holds fewer than {size} entries")
    return cache.tree


def load_tree(session: Session, signer: Signer, size: int) -> MerkleTree:
    """A tree holding at least ``size`` verified leaves (LookupError past the log's end; LogIntegrityError when
    the stored log fails a check)."""
    cache = _cache_for(session, signer)
    with cache.lock:
        return _load(session, signer, cache, size)


def tree_size(session: Session, signer: Signer) -> int:
    """The number of entries in the log (LogIntegrityError when it is shorter than what was verified or signed)."""
    size = repository.max_seq(session)
    cache = _cache_for(session, signer)
    with cache.lock:
        floor = max(len(cache.tree), cache.signed[0])
    if size < floor:
        raise integrity_failure(
            "rewritten", f"the log holds {size} entries; {floor} were verified or covered by a signed tree head"
        )
    return size


def _consistent_root(session: Session, signer: Signer, cache: _Cache, size: int, head: tuple[int, bytes]) -> bytes:
    """The root of the tree of ``size``, after checking that the log still reproduces ``head``."""
    try:
        tree = _load(session, signer, cache, max(size, head[0]))
    except LookupError as exc:
        if size <= repository.max_seq(session):
            raise integrity_failure("rewritten", f"the log is shorter than the tree head of {head[0]} signed") from exc
        raise
    if tree.root(head[0]) != head[1]:
        raise integrity_failure(
            "inconsistent_head", f"the first {head[0]} entries no longer reproduce the tree head signed over them"
        )
    return tree.root(size)


def _publish(session: Session, signer: Signer, cache: _Cache) -> None:
    """Write the largest signed head to the checkpoint file, unless the file holds a larger one (then check it)."""
    path = signer.checkpoint_path
    size, root = cache.signed
    if path is None or size <= cache.published:
        return
    with checkpoint.FileLock(path):
        try:
            published = checkpoint.read(path, signer)
        except VerificationError as exc:
            alarm("checkpoint_file", f"{path}: {exc}; replaced")
            published = None
        if published is not None:
            _consistent_root(session, signer, cache, size, published)
            if published[0] >= size:
                cache.signed = max(cache.signed, published, key=lambda h: h[0])
                cache.published = published[0]
                return
        checkpoint.write(path, checkpoint.sign_checkpoint(signer, size, root))
        cache.published = size


def signed_root(session: Session, signer: Signer, size: int) -> bytes:
    """The root of the tree of ``size`` entries, once it is shown consistent with every head signed before;
    records it as signed and publishes it (checkpoint file) when it is the largest."""
    cache = _cache_for(session, signer)
    with cache.lock:
        root = _consistent_root(session, signer, cache, size, cache.signed)
        if size > cache.signed[0]:
            cache.signed = (size, root)
        _publish(session, signer, cache)
        return root


def signed_tree_head(session: Session, signer: Signer, size: int | None = None) -> dict[str, Any]:
    """The signed head of the tree of ``size`` entries (default: the whole log now)."""
    size = tree_size(session, signer) if size is None else size
    return signer.sign_tree_head(size, signed_root(session, signer, size))


def signed_checkpoint(session: Session, signer: Signer, size: int | None = None) -> str:
    """The tree head of ``size`` entries (default: the whole log now) as a C2SP checkpoint (signed note)."""
    size = tree_size(session, signer) if size is None else size
    return checkpoint.sign_checkpoint(signer, size, signed_root(session, signer, size))


def _reproduces(doc: dict[str, Any]) -> bool:
    try:
        return compute_entry_hash(doc) == doc["entry_hash"]
    except CanonicalError:
        return False


def check_served(session: Session, signer: Signer, entries: list[dict[str, Any]]) -> None:
    """Refuse to serve (with a proof, in a receipt) a stored entry that is not the entry this process verified:
    a row changed after it was loaded, without re-chaining, is caught here (LogIntegrityError, ``rewritten``).
    Call after loading the tree over the entries."""
    cache = _cache_for(session, signer)
    with cache.lock:
        for doc in entries:
            seq = doc["seq"]
            verified = 0 < seq <= len(cache.tree) and _reproduces(doc)
            if not verified or cache.tree.leaves[seq - 1] != leaf_hash(bytes.fromhex(doc["entry_hash"])):
                raise integrity_failure("rewritten", f"entry {seq} as stored now is not the entry verified before")


def inclusion_proof(session: Session, signer: Signer, *, seq: int, size: int) -> dict[str, Any]:
    """``{leaf_index, tree_size, audit_path}`` for entry ``seq`` in the tree of ``size`` entries."""
    tree = load_tree(session, signer, size)
    path = tree.inclusion_proof(seq - 1, size)
    return {"leaf_index": seq - 1, "tree_size": size, "audit_path": [p.hex() for p in path]}


def consistency_proof(session: Session, signer: Signer, *, first: int, second: int) -> dict[str, Any]:
    """``{first_size, second_size, first_root, second_root, proof}``: tree ``first`` is a prefix of ``second``."""
    tree = load_tree(session, signer, second)
    return {
        "first_size": first,
        "second_size": second,
        "first_root": tree.root(first).hex(),
        "second_root": tree.root(second).hex(),
        "proof": [p.hex() for p in tree.consistency_proof(first, second)],
    }
