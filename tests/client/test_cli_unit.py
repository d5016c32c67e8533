"""The `unlearn` command against answers from httpx.MockTransport: exit statuses, tables and --json, paging,
progress lines, and the audit commands' checks against a pinned key."""

import hashlib
import json

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from unlearn_client import UnlearnClient, cli
from unlearn_client.verify.merkle import MerkleTree

from app.audit.checkpoint import sign_checkpoint
from app.audit.signing import Signer

PAYLOAD = b"checkpoint" * 50
SHA = hashlib.sha256(PAYLOAD).hexdigest()


def problem(status: int, detail: str, **extra) -> httpx.Response:
    body = {"type": "about:blank", "title": "Unprocessable Content", "status": status, "detail": detail, **extra}
    return httpx.Response(status, json=body, headers={"content-type": "application/problem+json"})


@pytest.fixture
def run_cli(monkeypatch, capsys):
    """Run `unlearn ARGS` against a handler; returns (exit status, stdout, stderr)."""

    def run(handler, *args: str, key: str | None = "k"):
        transport = httpx.MockTransport(handler)
        monkeypatch.setattr(cli, "UnlearnClient", lambda url, k, **kw: UnlearnClient(url, k, transport=transport))
        monkeypatch.setattr("unlearn_client.client.time.sleep", lambda s: None)
        monkeypatch.delenv("UNLEARN_API_KEY", raising=False)
        try:
            code = cli.main(["--url", "http://svc", *(["--api-key", key] if key else []), *args])
        except SystemExit as exc:
            code = exc.code
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


def test_problem_is_reported_with_exit_1(run_cli):
    code, out, err = run_cli(lambda r: problem(422, "unknown sample ids: x9", unknown_ids=["x9"]), "delete", "m1", "x9")
    assert code == 1 and out == ""
    assert "error: 422 Unprocessable Content: unknown sample ids: x9" in err and '"x9"' in err


def test_wait_shows_progress_and_exits_3_on_failure(run_cli):
    answers = iter(
        [
            httpx.Response(202, json={"id": "d1", "status": "queued"}),
            httpx.Response(200, json={"id": "d1", "status": "running", "stage": "gradients", "progress": 0.4}),
            httpx.Response(200, json={"id": "d1", "status": "failed", "error": "out of memory"}),
        ]
    )
    code, out, err = run_cli(lambda r: next(answers), "--json", "delete", "m1", "u1", "--wait")
    assert code == 3
    assert "[############..................]  40% running: gradients" in err
    assert "deletion d1 failed: out of memory" in err
    assert json.loads(out)["status"] == "failed"


def test_training_wait_shows_each_status(run_cli):
    answers = iter(
        [
            httpx.Response(202, json={"id": "m1", "status": "training"}),
            httpx.Response(200, json={"id": "m1", "status": "training"}),
            httpx.Response(200, json={"id": "m1", "status": "ready", "latest_version": 1}),
        ]
    )
    args = ("models", "train", "--name", "n", "--dataset", "ds", "--arch", "logreg", "--wait")
    code, out, err = run_cli(lambda r: next(answers), *args)
    assert code == 0
    assert err.splitlines() == ["model m1: training", "model m1: ready"]
    assert "latest_version  1" in out  # key/value lines without --json


def test_download_mismatch_exits_4(run_cli, tmp_path):
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/latest"):
            return httpx.Response(200, json={"version": 2, "checkpoint_sha256": SHA})
        return httpx.Response(200, content=PAYLOAD + b"x", headers={"ETag": f'"{SHA}"'})

    code, _out, err = run_cli(handler, "download", "m1", "-o", str(tmp_path / "m.st"))
    assert code == 4 and "differs from the ETag sha256" in err
    assert list(tmp_path.iterdir()) == []


def test_usage_errors_exit_2(run_cli):
    assert run_cli(lambda r: httpx.Response(500), "delete", "m1")[0] == 2  # no sample ids
    assert run_cli(lambda r: httpx.Response(500), "datasets", "upload", "n", "/nonexistent")[0] == 2
    code, _out, err = run_cli(lambda r: httpx.Response(500), "models", "get", "m1", key=None)
    assert code == 2 and "no API key" in err


def test_unreachable_service_exits_1(capsys, monkeypatch):
    monkeypatch.setattr("unlearn_client.client.time.sleep", lambda s: None)
    code = cli.main(["--url", "http://127.0.0.1:9", "--api-key", "k", "status", "d1"])
    assert code == 1 and "service unreachable" in capsys.readouterr().err


PAGES = {
    None: {"items": [{"id": "d2", "status": "failed", "model_id": "m1"}], "next_cursor": "c1", "limit": 1},
    "c1": {"items": [{"id": "d1", "status": "failed", "model_id": "m1"}], "next_cursor": None, "limit": 1},
}


def test_lists_show_a_table_a_json_page_or_every_page(run_cli):
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/v1/deletions"
        seen.append(dict(request.url.params))
        return httpx.Response(200, json=PAGES[request.url.params.get("cursor")])

    code, out, err = run_cli(handler, "deletions", "list", "--status", "failed", "--limit", "1")
    assert code == 0 and out.splitlines()[0].split()[:3] == ["ID", "MODEL_ID", "STATUS"]
    assert out.splitlines()[1].split()[:3] == ["d2", "m1", "failed"] and "--cursor c1" in err
    code, out, _ = run_cli(handler, "--json", "deletions", "list", "--status", "failed", "--limit", "1")
    assert json.loads(out) == PAGES[None]
    code, out, _ = run_cli(handler, "--json", "deletions", "list", "--status", "failed", "--all", "--since", "2026")
    assert [d["id"] for d in json.loads(out)["items"]] == ["d2", "d1"] and json.loads(out)["next_cursor"] is None
    assert seen[-1] == {"status": "failed", "since": "2026", "cursor": "c1"}


@pytest.fixture
def log_service(tmp_path):
    """A signed log of 5 entries (leaf hashes only) served by a mock: tree heads and consistency proofs."""
    signer = Signer(Ed25519PrivateKey.generate())
    tree = MerkleTree([hashlib.sha256(bytes([i])).digest() for i in range(5)])

    def head(size: int) -> dict:
        return signer.sign_tree_head(size, tree.root(size), 1_700_000_000_000)

    def handler(request: httpx.Request) -> httpx.Response:
        params = request.url.params
        if request.url.path == "/v1/audit/public-key":
            return httpx.Response(200, json=signer.public_key_document() | {"origin": signer.note_origin})
        if request.url.path == "/v1/audit/checkpoint":
            return httpx.Response(200, text=sign_checkpoint(signer, 5, tree.root(5)))
        if request.url.path == "/v1/audit/tree-head":
            return httpx.Response(200, json=head(int(params.get("size", 5))))
        if request.url.path == "/v1/audit/consistency":
            m, n = int(params["from"]), int(params.get("to", 5))
            proof = [p.hex() for p in tree.consistency_proof(m, n)]
            doc = {"first_size": m, "second_size": n, "first_root": tree.root(m).hex()}
            return httpx.Response(
                200, json=doc | {"second_root": tree.root(n).hex(), "proof": proof} | {"tree_head": head(n)}
            )
        return httpx.Response(404, json={"title": "Not Found", "detail": request.url.path})

    key_file = tmp_path / "pinned-key.json"
    key_file.write_text(json.dumps(signer.public_key_document() | {"origin": signer.note_origin}))
    return handler, key_file, head, signer


def test_audit_head_and_consistency_are_checked_against_the_pinned_key(run_cli, log_service, tmp_path):
    handler, key_file, head, signer = log_service
    pinned = ("--public-key", str(key_file))
    code, out, err = run_cli(handler, "--json", "audit", "head", "--verify", *pinned)
    assert code == 0 and json.loads(out)["tree_size"] == 5 and "verified" in err
    code, out, err = run_cli(handler, "audit", "consistency", "2", *pinned)
    assert code == 0 and "log of 2 entries (head fetched now) is a prefix of the log of 5" in err

    saved = tmp_path / "head-3.json"
    saved.write_text(json.dumps(head(3)))
    code, _, err = run_cli(handler, "audit", "consistency", "3", "--old-head", str(saved), *pinned)
    assert code == 0 and "saved head" in err
    # A head the same key signed for a log of 3 entries that the log of 5 does not extend (rewritten since).
    saved.write_text(json.dumps(signer.sign_tree_head(3, b"\xab" * 32, 1_700_000_000_000)))
    code, _, err = run_cli(handler, "audit", "consistency", "3", "--old-head", str(saved), *pinned)
    assert code == 4 and "REJECTED: old tree head does not match" in err

    other = tmp_path / "other-key.json"
    other.write_text(json.dumps(Signer(Ed25519PrivateKey.generate()).public_key_document()))
    code, _, err = run_cli(handler, "audit", "head", "--verify", "--public-key", str(other))
    assert code == 4 and "not by the given public key" in err


def test_public_key_is_saved_for_pinning(run_cli, log_service, tmp_path):
    handler, key_file, _, _ = log_service
    code, out, err = run_cli(handler, "audit", "public-key", "-o", str(tmp_path / "k.json"))
    assert code == 0 and json.loads((tmp_path / "k.json").read_text()) == json.loads(key_file.read_text())
    assert "key_id" in out and "compare its key_id" in err


def test_receipt_verify_offline_needs_no_api_key(run_cli, tmp_path):
    receipt = tmp_path / "r.json"
    receipt.write_text(json.dumps({"request": {"id": "d1"}, "signature": "AAAA", "key_id": "x"}))
    key = tmp_path / "k.pem"
    key.write_text(Signer(Ed25519PrivateKey.generate()).public_key_document()["public_key_pem"])
    never = lambda r: pytest.fail("offline verification must not call the service")  # noqa: E731
    code, _, err = run_cli(never, "receipt", "verify", "--file", str(receipt), "--public-key", str(key), key=None)
    assert code == 4 and "REJECTED" in err


def test_checkpoint_is_checked_under_the_pinned_origin(run_cli, log_service, tmp_path):
    handler, key_file, _, signer = log_service
    code, out, err = run_cli(handler, "audit", "checkpoint", "--verify", "--public-key", str(key_file))
    assert code == 0 and out.startswith(signer.note_origin + "\n5\n") and "checkpoint of size 5" in err
    pem = tmp_path / "key.pem"
    pem.write_text(signer.public_key_document()["public_key_pem"])
    code, _, err = run_cli(
        handler, "audit", "checkpoint", "--verify", "--public-key", str(pem), "--origin", "other.example/log"
    )
    assert code == 4 and "no signature by the log's key under 'other.example/log'" in err


def test_erase_waits_for_the_erasure_to_reach_storage(run_cli):
    answers = iter(
        [
            httpx.Response(202, json={"id": "e1", "status": "running", "stage": "deleting", "progress": 0.0}),
            httpx.Response(200, json={"id": "e1", "status": "running", "stage": "compacting", "progress": 0.5}),
            httpx.Response(200, json={"id": "e1", "status": "succeeded", "stage": "erased", "progress": 1.0}),
        ]
    )
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((request.method, request.url.path))
        return next(answers)

    code, out, err = run_cli(handler, "--json", "datasets", "erase", "ds1", "user-1", "user-2", "--wait")
    assert code == 0 and json.loads(out)["stage"] == "erased"
    assert seen == [("POST", "/v1/datasets/ds1/erasures"), ("GET", "/v1/erasures/e1"), ("GET", "/v1/erasures/e1")]
    assert "compacting" in err and "100%" in err
