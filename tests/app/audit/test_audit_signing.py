"""Signing keys: generated once with private permissions, shared by concurrent first starts, stable key id."""

import base64
import hashlib
import multiprocessing
import stat

import pytest
from cryptography.hazmat.primitives import serialization

from app.audit.exceptions import VerificationError
from app.audit.signing import TREE_HEAD_DOMAIN, load_or_create_signing_key, load_public_key, verify_signature


def test_key_generated_once_with_mode_0600(tmp_path):
    path = tmp_path / "keys" / "audit.pem"
    signer = load_or_create_signing_key(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert b"PRIVATE KEY" in path.read_bytes()
    again = load_or_create_signing_key(path)
    assert again.key_id == signer.key_id
    assert [p.name for p in path.parent.iterdir()] == ["audit.pem"]  # no temporary file left behind


def test_public_key_document(tmp_path):
    signer = load_or_create_signing_key(tmp_path / "k.pem")
    doc = signer.public_key_document()
    raw = base64.b64decode(doc["public_key_raw_b64"])
    assert len(raw) == 32
    assert doc["key_id"] == hashlib.sha256(raw).hexdigest()
    assert "PRIVATE" not in doc["public_key_pem"]
    for text in (doc["public_key_pem"], doc["public_key_raw_b64"]):
        key = load_public_key(text)
        assert key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw) == raw


def _key_id_of(path):
    return load_or_create_signing_key(path).key_id


def test_concurrent_first_start_agrees_on_one_key(tmp_path):
    path = tmp_path / "race.pem"
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(8) as pool:
        ids = pool.map(_key_id_of, [path] * 16)
    assert len(set(ids)) == 1
    assert ids[0] == load_or_create_signing_key(path).key_id
    assert [p.name for p in tmp_path.iterdir()] == ["race.pem"]


def test_tree_head_signature_checks(tmp_path):
    signer = load_or_create_signing_key(tmp_path / "a.pem")
    other = load_or_create_signing_key(tmp_path / "b.pem")
    head = signer.sign_tree_head(5, b"\x11" * 32, timestamp_ms=1_700_000_000_000)
    verify_signature(signer.public_key, TREE_HEAD_DOMAIN, head)
    with pytest.raises(VerificationError, match="not by the given public key"):
        verify_signature(other.public_key, TREE_HEAD_DOMAIN, head)
    # another key that claims the first key's id is still refused
    forged = other.sign_tree_head(5, b"\x11" * 32, timestamp_ms=1_700_000_000_000) | {"key_id": signer.key_id}
    with pytest.raises(VerificationError, match="does not verify"):
        verify_signature(signer.public_key, TREE_HEAD_DOMAIN, forged)
    with pytest.raises(VerificationError):
        verify_signature(signer.public_key, TREE_HEAD_DOMAIN, head | {"tree_size": 6})


def test_existing_key_file_is_used(tmp_path):
    path = tmp_path / "given.pem"
    first = load_or_create_signing_key(path)
    pem = path.read_bytes()
    path.unlink()
    path.write_bytes(pem)
    assert load_or_create_signing_key(path).key_id == first.key_id
