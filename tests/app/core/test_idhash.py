"""Keyed hashes of sample ids and commitment salts: the master key file, and what the keyed functions give."""

import hashlib
import hmac
import logging
import multiprocessing
import stat

import pytest

from app.core.idhash import PREFIX, IdHasher, is_hashed, load_or_create_key


def _load(path: str) -> str:
    return load_or_create_key(path).hex()


def test_key_file_is_created_private_once_and_never_logged(tmp_path, caplog):
    path = tmp_path / "keys" / "id-hash-key"
    with caplog.at_level(logging.DEBUG):
        key = load_or_create_key(path)
    assert len(key) == 32 and path.read_text().strip() == key.hex()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_key(path) == key, "an existing key is read, never replaced"
    assert key.hex() not in caplog.text and "idhash.key_created" in caplog.text
    assert key.hex() not in repr(IdHasher(key))
    assert [p.name for p in path.parent.iterdir()] == ["id-hash-key"], "no temporary file left behind"


def test_processes_starting_together_share_one_key(tmp_path):
    path = str(tmp_path / "id-hash-key")
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        keys = pool.map(_load, [path] * 8)
    assert len(set(keys)) == 1 and keys[0] == load_or_create_key(path).hex()


def test_a_damaged_key_file_is_refused(tmp_path):
    path = tmp_path / "id-hash-key"
    path.write_text("not hex\n")
    with pytest.raises(ValueError):
        load_or_create_key(path)
    path.write_text("ab" * 16 + "\n")
    with pytest.raises(ValueError):
        load_or_create_key(path)


def test_hashes_are_keyed_per_tenant_and_recognisable():
    hasher, other = IdHasher(bytes(32)), IdHasher(bytes(range(32)))
    value = hasher.hash_id("tenant-a", "alice@example.com")
    assert value.startswith(PREFIX) and is_hashed(value) and not is_hashed("alice@example.com")
    assert value == hasher.hash_id("tenant-a", "alice@example.com"), "the same id hashes the same: 409 again"
    assert value != hasher.hash_id("tenant-b", "alice@example.com")
    assert value != other.hash_id("tenant-a", "alice@example.com"), "another key, another value"
    assert "alice" not in value
    unkeyed = hashlib.sha256(b"alice@example.com").hexdigest()
    assert unkeyed not in value, "a plain sha256 of a guess does not match"
    ids = ["alice@example.com", "bob", "é"]
    assert hasher.hash_ids("tenant-a", ids) == [hasher.hash_id("tenant-a", i) for i in ids]


def test_request_salts_and_fingerprints():
    hasher = IdHasher(bytes(32))
    salt = hasher.request_salt("req-1")
    assert len(salt) == 32 and salt == hasher.request_salt("req-1") and salt != hasher.request_salt("req-2")
    assert salt != IdHasher(bytes(range(32))).request_salt("req-1")
    body = {"sample_ids": ["alice@example.com"], "method": "iau", "reason": None}
    fp = hasher.fingerprint("tenant-a", body)
    assert fp == hasher.fingerprint("tenant-a", dict(reversed(body.items())))
    assert fp != hasher.fingerprint("tenant-b", body)
    plain = hashlib.sha256(b'{"method":"iau","reason":null,"sample_ids":["alice@example.com"]}').hexdigest()
    assert fp != plain and not hmac.compare_digest(fp, plain)
