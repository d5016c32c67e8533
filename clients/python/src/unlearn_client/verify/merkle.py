"""Merkle tree hash, inclusion and consistency proofs in the shape of RFC 6962 section 2.1.

Definitions (RFC 6962 2.1): MTH({}) = SHA-256(""); MTH({d0}) = SHA-256(0x00 || d0); for n > 1, with k the largest
power of two smaller than n, MTH(D[n]) = SHA-256(0x01 || MTH(D[0:k]) || MTH(D[k:n])). Inclusion proofs are
PATH(m, D[n]) (2.1.1) and consistency proofs PROOF(m, D[n]) (2.1.2). The verifiers follow RFC 9162 sections
2.1.3.2 and 2.1.4.2.

Trees here are built over leaf *hashes* (``leaf_hash(data)``), which is what an append-only log keeps.
"""

import hashlib
from collections.abc import Sequence

from unlearn_client.errors import VerificationError

EMPTY_ROOT = hashlib.sha256(b"").digest()
_MEMO_MIN_SIZE = 8  # perfect subtrees at least this large are memoised (they never change in an append-only log)


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two strictly smaller than n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


class MerkleTree:
    """Leaf hashes of an append-only log, with the hash of every subtree computed on demand.

    Perfect subtrees are memoised: in an append-only log the hash of D[lo:hi] never changes once hi leaves exist.
    """

    def __init__(self, leaf_hashes: Sequence[bytes] = ()) -> None:
        self.leaves: list[bytes] = list(leaf_hashes)
        self._memo: dict[tuple[int, int], bytes] = {}

    def __len__(self) -> int:
        return len(self.leaves)

    def append(self, leaf_hash_: bytes) -> None:
        self.leaves.append(leaf_hash_)

    def _check_size(self, n: int) -> None:
        if not 0 <= n <= len(self.leaves):
            raise ValueError(f"tree size {n} outside 0..{len(self.leaves)}")

    def subtree(self, lo: int, hi: int) -> bytes:
        """MTH(D[lo:hi])."""
        n = hi - lo
        if n == 0:
            return EMPTY_ROOT
        if n == 1:
            return self.leaves[lo]
        perfect = n & (n - 1) == 0 and n >= _MEMO_MIN_SIZE
        if perfect and (cached := self._memo.get((lo, hi))) is not None:
            return cached
        k = _split(n)
        value = node_hash(self.subtree(lo, lo + k), self.subtree(lo + k, hi))
        if perfect:
            self._memo[(lo, hi)] = value
        return value

    def root(self, n: int | None = None) -> bytes:
        n = len(self.leaves) if n is None else n
        self._check_size(n)
        return self.subtree(0, n)

    def inclusion_proof(self, index: int, n: int | None = None) -> list[bytes]:
        """PATH(index, D[n]): sibling hashes from the leaf up to the root."""
        n = len(self.leaves) if n is None else n
        self._check_size(n)
        if not 0 <= index < n:
            raise ValueError(f"leaf index {index} outside 0..{n - 1}")
        path: list[bytes] = []
        lo, hi = 0, n
        while hi - lo > 1:  # walk down, collecting siblings; reversed at the end (leaf first)
            k = _split(hi - lo)
            if index < lo + k:
                path.append(self.subtree(lo + k, hi))
                hi = lo + k
            else:
                path.append(self.subtree(lo, lo + k))
                lo = lo + k
        return path[::-1]

    def consistency_proof(self, m: int, n: int | None = None) -> list[bytes]:
        """PROOF(m, D[n]) of RFC 6962 2.1.2; empty when m is 0 or m == n."""
        n = len(self.leaves) if n is None else n
        self._check_size(n)
        if not 0 <= m <= n:
            raise ValueError(f"first size {m} outside 0..{n}")
        if m == 0 or m == n:
            return []
        return self._subproof(m, 0, n, True)

    def _subproof(self, m: int, lo: int, hi: int, complete: bool) -> list[bytes]:
        n = hi - lo
        if m == n:
            return [] if complete else [self.subtree(lo, hi)]
        k = _split(n)
        if m <= k:
            return self._subproof(m, lo, lo + k, complete) + [self.subtree(lo + k, hi)]
        return self._subproof(m - k, lo + k, hi, False) + [self.subtree(lo, lo + k)]


def merkle_root(leaves: Sequence[bytes]) -> bytes:
    """MTH over leaf *data* (each hashed with the 0x00 prefix)."""
    return MerkleTree([leaf_hash(d) for d in leaves]).root()


def root_from_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes]) -> bytes:
    """The root implied by a leaf hash and its audit path (RFC 9162 2.1.3.2); raises on a malformed proof."""
    if not 0 <= index < size:
        raise VerificationError(f"leaf index {index} is not inside a tree of size {size}")
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            raise VerificationError("inclusion proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise VerificationError("inclusion proof is shorter than the tree is deep")
    return r


def verify_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes) -> None:
    """Raise VerificationError unless ``proof`` shows leaf hash ``leaf`` at ``index`` in the tree ``root``."""
    if root_from_inclusion(index, size, leaf, proof) != root:
        raise VerificationError(f"inclusion proof for leaf {index} does not lead to the root of tree size {size}")


def verify_consistency(first: int, second: int, first_root: bytes, second_root: bytes, proof: Sequence[bytes]) -> None:
    """Raise VerificationError unless ``proof`` shows tree (first, first_root) is a prefix of (second, ...).

    RFC 9162 2.1.4.2, plus the trivial cases: size 0 is a prefix of every tree (empty proof, first root must be
    the empty-tree hash), and equal sizes need an empty proof and equal roots.
    """
    if not 0 <= first <= second:
        raise VerificationError(f"first size {first} is not between 0 and second size {second}")
    if first == 0:
        if proof:
            raise VerificationError("consistency proof from the empty tree must be empty")
        if first_root != EMPTY_ROOT:
            raise VerificationError("root of the empty tree is not sha256('')")
        return
    if first == second:
        if proof:
            raise VerificationError("consistency proof between equal sizes must be empty")
        if first_root != second_root:
            raise VerificationError("trees of equal size have different roots")
        return
    if not proof:
        raise VerificationError("consistency proof is empty")
    path = list(proof)
    if first & (first - 1) == 0:  # first is a power of two: its root is a node of the second tree
        path.insert(0, first_root)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise VerificationError("consistency proof is longer than needed")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise VerificationError("consistency proof is shorter than needed")
    if fr != first_root:
        raise VerificationError(f"consistency proof does not reproduce the root of tree size {first}")
    if sr != second_root:
        raise VerificationError(f"consistency proof does not reproduce the root of tree size {second}")
