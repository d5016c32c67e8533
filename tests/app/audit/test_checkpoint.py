"""Tree heads as C2SP checkpoints (c2sp.org/tlog-checkpoint, c2sp.org/signed-note), checked by a verifier written
here from the two specifications alone (nothing of app.audit.checkpoint), against the endpoint and the file."""

import base64
import hashlib

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from unlearn_client.verify.checks import verify_checkpoint, verify_tree_head
from unlearn_client.verify.cli import main

from app.audit import checkpoint
from app.audit.exceptions import VerificationError
from app.audit.signing import Signer


def spec_verify(note: bytes, name: str, raw_key: bytes) -> tuple[str, int, bytes]:
    """(origin, tree size, root hash) of a checkpoint signed by the Ed25519 key ``raw_key`` under ``name``.

    signed-note: UTF-8 without control characters but newline; text ending in a newline, a blank line, then lines
    "— <name> <base64(4-byte key id || signature)>"; key id = SHA-256(name || 0x0A || 0x01 || key)[:4]; the
    Ed25519 signature is over the text including its final newline. tlog-checkpoint: text lines origin, decimal
    size without leading zeroes, base64 of the 32-byte RFC 6962 root.
    """
    decoded = note.decode("utf-8")
    assert all(c == "\n" or ord(c) >= 0x20 for c in decoded)
    split = decoded.rindex("\n\n")
    text, signature_block = decoded[: split + 1], decoded[split + 2 :]
    assert signature_block.endswith("\n")
    key_id = hashlib.sha256(name.encode() + b"\x0a" + b"\x01" + raw_key).digest()[:4]
    verified = 0
    for line in signature_block[:-1].split("\n"):
        dash, key_name, b64 = line.split(" ")
        assert dash == "\u2014"
        blob = base64.b64decode(b64, validate=True)
        if key_name == name and blob[:4] == key_id:
            Ed25519PublicKey.from_public_bytes(raw_key).verify(blob[4:], text.encode())  # raises when forged
            verified += 1
    assert verified == 1
    origin, size, root = text[:-1].split("\n")
    assert size == str(int(size)) and int(size) >= 0
    root_hash = base64.b64decode(root, validate=True)
    assert len(root_hash) == 32
    return origin, int(size), root_hash


def raw(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def test_signed_checkpoint_per_the_specifications():
    signer = Signer(Ed25519PrivateKey.generate(), origin="audit.example.com/unlearn")
    root = hashlib.sha256(b"root").digest()
    note = checkpoint.sign_checkpoint(signer, 20852163, root)
    assert note.startswith(f"audit.example.com/unlearn\n20852163\n{base64.b64encode(root).decode()}\n\n\u2014 ")
    assert spec_verify(note.encode(), "audit.example.com/unlearn", raw(signer.public_key)) == (
        "audit.example.com/unlearn",
        20852163,
        root,
    )
    assert verify_checkpoint(note, signer.public_key, signer.note_origin) == (20852163, root)
    # a witness adds its cosignature line: the log's signature still verifies, the other is ignored
    witness = Signer(Ed25519PrivateKey.generate(), origin="witness.example/w1")
    cosigned = note + checkpoint.sign_checkpoint(witness, 20852163, root).split("\n\n")[1]
    assert verify_checkpoint(cosigned, signer.public_key, signer.note_origin)[0] == 20852163
    spec_verify(cosigned.encode(), "audit.example.com/unlearn", raw(signer.public_key))


def test_empty_tree_and_default_origin():
    signer = Signer(Ed25519PrivateKey.generate())
    note = checkpoint.sign_checkpoint(signer, 0, hashlib.sha256(b"").digest())
    origin, size, _ = spec_verify(note.encode(), signer.note_origin, raw(signer.public_key))
    assert (origin, size) == ("unlearn.invalid/audit/" + signer.key_id[:16], 0)
    name, key_hash, encoded = checkpoint.verifier_key(origin, signer.public_key).split("+", 2)
    assert name == origin
    assert bytes.fromhex(key_hash) == hashlib.sha256(origin.encode() + b"\n\x01" + raw(signer.public_key)).digest()[:4]
    assert base64.b64decode(encoded) == b"\x01" + raw(signer.public_key)


@pytest.mark.parametrize(
    "edit",
    [
        lambda n: n.replace("\n5\n", "\n6\n", 1),  # another size
        lambda n: n.replace("unlearn-test", "unlearn-tesT", 1),  # another origin in the text
        lambda n: n[: n.rindex(" ") + 1] + base64.b64encode(b"\0" * 68).decode() + "\n",  # another signature
        lambda n: n.split("\n\n")[0] + "\n",  # no signature
        lambda n: n.replace("\n\n", "\n", 1),  # no blank line
        lambda n: n.replace("\n5\n", "\n05\n", 1),  # leading zero
        lambda n: n.replace("\n5\n", "\n5\x00\n", 1),  # a control character
    ],
)
def test_altered_checkpoints_rejected(edit):
    signer = Signer(Ed25519PrivateKey.generate(), origin="unlearn-test")
    note = checkpoint.sign_checkpoint(signer, 5, hashlib.sha256(b"r").digest())
    with pytest.raises(VerificationError):
        verify_checkpoint(edit(note), signer.public_key, "unlearn-test")
    with pytest.raises(VerificationError):  # right note, wrong key
        verify_checkpoint(note, Ed25519PrivateKey.generate().public_key(), "unlearn-test")


@pytest.mark.parametrize("origin", ["", "has space", "a+b", "line\nbreak", "unlearn-audit/tree-head/v1"])
def test_origins_that_cannot_name_a_log_refused(origin):
    with pytest.raises(ValueError):
        checkpoint.check_origin(origin)


def test_endpoint_and_published_file(service, tmp_path):
    """GET /v1/audit/checkpoint serves the head as a note that the spec verifier accepts, the same size and root
    as the JSON head; each larger head is written to the configured file; the command checks both."""
    client = service.client
    doc = client.get("/v1/audit/public-key", headers={"Authorization": ""}).json()
    key = Ed25519PublicKey.from_public_bytes(base64.b64decode(doc["public_key_raw_b64"]))
    head = client.get("/v1/audit/tree-head").json()
    resp = client.get("/v1/audit/checkpoint", headers={"Authorization": ""})  # witnesses poll without a key
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/plain")
    origin, size, root = spec_verify(resp.content, doc["origin"], raw(key))
    assert origin == doc["origin"] and doc["note_verifier_key"].startswith(origin + "+")
    assert (size, root) == verify_tree_head(head, key)
    assert spec_verify(service.checkpoint_path.read_bytes(), origin, raw(key))[1:] == (size, root)

    for i in range(3):
        client.post("/v1/tenants", json={"name": f"more-{i}"})
    bigger = client.get("/v1/audit/tree-head").json()
    assert bigger["tree_size"] > size
    published = spec_verify(service.checkpoint_path.read_bytes(), origin, raw(key))
    assert published[1:] == verify_tree_head(bigger, key)
    client.get("/v1/audit/tree-head", params={"size": 1})  # a smaller head does not replace the published one
    assert spec_verify(service.checkpoint_path.read_bytes(), origin, raw(key))[1] == bigger["tree_size"]

    (tmp_path / "key.json").write_bytes(client.get("/v1/audit/public-key").content)
    note = tmp_path / "checkpoint.txt"
    note.write_bytes(client.get("/v1/audit/checkpoint").content)
    assert main(["checkpoint", str(note), "--public-key", str(tmp_path / "key.json")]) == 0
    note.write_text(note.read_text().replace(f"\n{bigger['tree_size']}\n", "\n1\n"))
    assert main(["checkpoint", str(note), "--public-key", str(tmp_path / "key.json")]) == 1


def test_configured_origin(service_with_origin):
    client = service_with_origin.client
    doc = client.get("/v1/audit/public-key").json()
    assert doc["origin"] == "audit.example.com/unlearn-test"
    note = client.get("/v1/audit/checkpoint").content
    key = base64.b64decode(doc["public_key_raw_b64"])
    assert spec_verify(note, "audit.example.com/unlearn-test", key)[0] == "audit.example.com/unlearn-test"
