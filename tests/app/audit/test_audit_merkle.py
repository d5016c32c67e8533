"""Merkle hashing and proofs against the definitions of RFC 6962 section 2.1, computed independently here."""

import hashlib

import pytest
from unlearn_client.verify.merkle import (
    EMPTY_ROOT,
    MerkleTree,
    leaf_hash,
    merkle_root,
    verify_consistency,
    verify_inclusion,
)

from app.audit.exceptions import VerificationError


def H(b: bytes) -> bytes:
    return hashlib.sha256(b).digest()


def ref_mth(d: list[bytes]) -> bytes:
    """MTH straight from RFC 6962 2.1."""
    n = len(d)
    if n == 0:
        return H(b"")
    if n == 1:
        return H(b"\x00" + d[0])
    k = 1
    while k * 2 < n:
        k *= 2
    return H(b"\x01" + ref_mth(d[:k]) + ref_mth(d[k:]))


def ref_path(m: int, d: list[bytes]) -> list[bytes]:
    """PATH(m, D[n]) straight from RFC 6962 2.1.1."""
    n = len(d)
    if n == 1:
        return []
    k = 1
    while k * 2 < n:
        k *= 2
    if m < k:
        return ref_path(m, d[:k]) + [ref_mth(d[k:])]
    return ref_path(m - k, d[k:]) + [ref_mth(d[:k])]


def ref_subproof(m: int, d: list[bytes], b: bool) -> list[bytes]:
    """SUBPROOF(m, D[n], b) straight from RFC 6962 2.1.2."""
    n = len(d)
    if m == n:
        return [] if b else [ref_mth(d)]
    k = 1
    while k * 2 < n:
        k *= 2
    if m <= k:
        return ref_subproof(m, d[:k], b) + [ref_mth(d[k:])]
    return ref_subproof(m - k, d[k:], False) + [ref_mth(d[:k])]


DATA = [f"leaf-{i}".encode() for i in range(70)]
TREE = MerkleTree([leaf_hash(x) for x in DATA])


def test_empty_tree_is_sha256_of_nothing():
    assert EMPTY_ROOT == hashlib.sha256(b"").digest()
    assert EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert merkle_root([]) == EMPTY_ROOT


def test_small_trees_by_hand():
    a, b, c = b"a", b"b", b"c"
    la, lb, lc = H(b"\x00a"), H(b"\x00b"), H(b"\x00c")
    assert merkle_root([a]) == la
    assert merkle_root([a, b]) == H(b"\x01" + la + lb)
    # n = 3 splits at k = 2: ((a, b), c)
    assert merkle_root([a, b, c]) == H(b"\x01" + H(b"\x01" + la + lb) + lc)
    # the empty leaf is sha256(0x00), not sha256("")
    assert merkle_root([b""]) == H(b"\x00")
    assert merkle_root([b""]).hex() == "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"


def test_five_leaves_split_at_four():
    leaves = [H(b"\x00" + x) for x in DATA[:5]]
    left = H(b"\x01" + H(b"\x01" + leaves[0] + leaves[1]) + H(b"\x01" + leaves[2] + leaves[3]))
    assert merkle_root(DATA[:5]) == H(b"\x01" + left + leaves[4])


@pytest.mark.parametrize("n", range(0, 66))
def test_roots_and_proofs_match_the_definitions(n):
    d = DATA[:n]
    root = ref_mth(d)
    assert TREE.root(n) == root
    for m in range(n):
        path = TREE.inclusion_proof(m, n)
        assert path == ref_path(m, d)
        verify_inclusion(m, n, leaf_hash(d[m]), path, root)
    for m in range(0, n + 1):
        proof = TREE.consistency_proof(m, n)
        if 0 < m < n:
            assert proof == ref_subproof(m, d, True)
        verify_consistency(m, n, ref_mth(d[:m]), root, proof)


@pytest.mark.parametrize("n", [1, 2, 3, 5, 7, 8, 9, 16, 33, 64, 65])
def test_inclusion_rejects_any_change(n):
    root = TREE.root(n)
    for m in range(n):
        path = TREE.inclusion_proof(m, n)
        leaf = TREE.leaves[m]
        for i in range(len(path)):  # a flipped byte anywhere in the path
            bad = list(path)
            bad[i] = bytes([bad[i][0] ^ 1]) + bad[i][1:]
            with pytest.raises(VerificationError):
                verify_inclusion(m, n, leaf, bad, root)
        with pytest.raises(VerificationError):  # another leaf
            verify_inclusion(m, n, leaf_hash(b"other"), path, root)
        with pytest.raises(VerificationError):  # wrong index or size
            verify_inclusion((m + 1) % n if n > 1 else 1, n, leaf, path, root)
        with pytest.raises(VerificationError):
            verify_inclusion(m, n + 1, leaf, path, TREE.root(n + 1))
        with pytest.raises(VerificationError):  # truncated or extended
            verify_inclusion(m, n, leaf, path[:-1] if path else [root], root)


@pytest.mark.parametrize("m,n", [(1, 2), (1, 8), (3, 7), (4, 8), (5, 9), (6, 8), (7, 64), (32, 65), (63, 64)])
def test_consistency_rejects_any_change(m, n):
    r1, r2 = TREE.root(m), TREE.root(n)
    proof = TREE.consistency_proof(m, n)
    verify_consistency(m, n, r1, r2, proof)
    for i in range(len(proof)):
        bad = list(proof)
        bad[i] = bad[i][:-1] + bytes([bad[i][-1] ^ 0x80])
        with pytest.raises(VerificationError):
            verify_consistency(m, n, r1, r2, bad)
    with pytest.raises(VerificationError):
        verify_consistency(m, n, r1, r2, proof[:-1])
    with pytest.raises(VerificationError):
        verify_consistency(m, n, r1, r2, proof + [r1])
    with pytest.raises(VerificationError):
        verify_consistency(m, n, r1, TREE.root(n - 1), proof)


def test_consistency_between_unrelated_trees_fails():
    other = MerkleTree([leaf_hash(b"x" + x) for x in DATA[:8]])
    # the first tree is not a prefix of the second: proof from TREE, roots from the other tree
    proof = TREE.consistency_proof(5, 8)
    with pytest.raises(VerificationError):
        verify_consistency(5, 8, other.root(5), TREE.root(8), proof)
    with pytest.raises(VerificationError):
        verify_consistency(5, 8, other.root(5), TREE.root(8), other.consistency_proof(5, 8))
    with pytest.raises(VerificationError):
        verify_consistency(8, 8, other.root(8), TREE.root(8), [])
    with pytest.raises(VerificationError):
        verify_consistency(0, 8, other.root(1), TREE.root(8), [])
    with pytest.raises(VerificationError):
        verify_consistency(9, 8, TREE.root(9), TREE.root(8), [])


def test_out_of_range_requests_raise():
    with pytest.raises(ValueError):
        TREE.root(len(DATA) + 1)
    with pytest.raises(ValueError):
        TREE.inclusion_proof(5, 5)
    with pytest.raises(ValueError):
        TREE.consistency_proof(6, 5)
