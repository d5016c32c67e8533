"""Deletion requests through the real worker code on one device (run by scripts/gpu-check.sh).

    python scripts/gpu_worker_check.py direct  --device cuda --workdir /tmp/w   # the job functions, in process
    python scripts/gpu_worker_check.py service --device cuda --workdir /tmp/s   # uvicorn API + `python -m workers`

Both use a SQLite file and a blob folder under --workdir. `direct` registers digits and a small MLP the way the
worker tests do (tests/workers/factories.py; version 1 from the real training job when Redis answers, else
trained by the engine on the device and registered as an upload), then calls the jobs: refresh_cache (the
gradient cache, on the device), apply_deletions for two queued requests (coalesced, cached correction) and again
for a third (no cache: exact correction). `service` needs Redis: it starts the API under uvicorn and one
`python -m workers --device DEVICE`, and over HTTP uploads digits, trains (on the device), deletes rows, polls,
downloads the checkpoint, runs a `retrain` deletion and verifies the signed receipt offline. Each checks that
every update was published and that its evidence names the device; a JSON summary goes to stdout.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def configure(work: Path, device: str, redis_url: str, queue: str) -> None:
    """The service's settings for this run; set before any app module reads them."""
    work.mkdir(parents=True, exist_ok=True)
    os.environ.update(
        DATABASE_URL=f"sqlite:///{work / 'unlearn.db'}",
        REDIS_URL=redis_url,
        UNLEARN_QUEUE=queue,
        UNLEARN_STORAGE_DIR=str(work / "blobs"),
        UNLEARN_AUDIT_KEY_PATH=str(work / "audit-signing-key.pem"),
        UNLEARN_BOOTSTRAP_ADMIN_KEY="gpu-check-admin-key",
        UNLEARN_DEVICE=device,
    )
    from app.core.migrate import upgrade

    upgrade()


def redis_answers(url: str) -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1).ping())
    except Exception:
        return False


def check_evidence(evidence: dict, device: str, *, method: str = "iau", correction: str | None = None) -> None:
    assert evidence["device"] == device, f"evidence device {evidence['device']!r}, expected {device!r}"
    assert evidence["method"] == method, evidence["method"]
    if correction is not None:
        assert evidence["correction"]["mode"] == correction, evidence["correction"]


def direct(device_setting: str, work: Path, redis_url: str) -> dict:
    configure(work, device_setting, redis_url, f"gpu-check-direct-{secrets.token_hex(4)}")
    import torch
    from safetensors.torch import load_file

    from app.core.config import get_settings
    from app.core.storage import FileBlobStore
    from tests.helpers import digits_arrays
    from tests.workers import factories as f
    from workers.engine import ArchSpec, TrainConfig, build_model, checkpoint_bytes, resolve_device, train
    from workers.jobs.cache import refresh_cache
    from workers.jobs.deletions import apply_deletions

    device = str(resolve_device(device_setting))
    timings: dict[str, float] = {}
    tenant = f.make_tenant()
    dataset = f.make_dataset(tenant)
    spec = ArchSpec(f.SMALL_MLP["name"], f.SMALL_MLP["config"])
    started = time.perf_counter()
    if redis_answers(redis_url):  # the real training job (it counts attempts in Redis)
        model_id = f.trained_model(tenant, dataset, unlearn_defaults=f.MOVING_UPDATE)
        trained_by = "workers.jobs.train.train_model"
        assert f.versions(model_id)[0].evidence_summary["device"] == device
    else:
        x, y, _, _ = digits_arrays()
        state = train(
            spec, torch.from_numpy(x), torch.from_numpy(y), TrainConfig(**f.FAST_RECIPE), resolve_device(device)
        )
        model_id = f.make_uploaded_model(tenant, dataset, checkpoint_bytes(state), f.SMALL_MLP)
        f.set_unlearn_defaults(model_id, f.MOVING_UPDATE)
        trained_by = "workers.engine.train (no Redis: registered as an upload)"
    timings["version_1"] = time.perf_counter() - started

    started = time.perf_counter()
    cache = refresh_cache(model_id, 1)
    timings["refresh_cache"] = time.perf_counter() - started
    assert cache.get("rows") == len(digits_arrays()[1]), cache  # G over every row of version 1

    first, second = f.make_deletion(tenant, model_id, [0, 1, 2]), f.make_deletion(tenant, model_id, [10, 11])
    started = time.perf_counter()
    assert apply_deletions(model_id, first)["versions"] == [2]
    timings["apply_deletions_cached"] = time.perf_counter() - started
    third = f.make_deletion(tenant, model_id, [20, 21, 22, 23])
    started = time.perf_counter()
    assert apply_deletions(model_id, third)["versions"] == [3]
    timings["apply_deletions_exact"] = time.perf_counter() - started

    evidence = {}
    for name, rid, version, correction in (
        ("first", first, 2, "cached"),
        ("second (coalesced with first)", second, 2, "cached"),
        ("third", third, 3, "exact"),
    ):
        r = f.request(rid)
        assert r.status == "succeeded", (r.status, r.error)
        assert r.result_version == version, r.result_version
        check_evidence(r.evidence, device, correction=correction)
        evidence[name] = {k: r.evidence.get(k) for k in ("device", "correction", "steps", "stop_reason", "timings_s")}
    versions = f.versions(model_id)
    assert [v.state for v in versions] == ["purged", "purged", "available"], [v.state for v in versions]
    assert versions[1].applied_requests == [first, second]
    blob = FileBlobStore(get_settings().storage_dir).path(versions[2].checkpoint_sha256)
    assert hashlib.sha256(blob.read_bytes()).hexdigest() == versions[2].checkpoint_sha256
    build_model(spec).load_state_dict(load_file(str(blob)), strict=True)
    stones = {(t.row_index, t.state, t.deleted_in_version) for t in f.tombstones(model_id)}
    assert stones == {(i, "deleted", 2) for i in (0, 1, 2, 10, 11)} | {(i, "deleted", 3) for i in (20, 21, 22, 23)}
    return {
        "mode": "direct",
        "device": device,
        "version_1": trained_by,
        "audit_entries_verified": f.verify_audit_log(),
        "timings_s": {k: round(v, 3) for k, v in timings.items()},
        "requests": evidence,
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(args: list[str], log: Path) -> subprocess.Popen:
    out = open(log, "wb")  # noqa: SIM115 - closed by stop()
    proc = subprocess.Popen(args, cwd=ROOT, env=os.environ.copy(), stdout=out, stderr=subprocess.STDOUT)
    proc.log_file = out  # type: ignore[attr-defined]
    return proc


def stop(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.log_file.close()  # type: ignore[attr-defined]


def service(device_setting: str, work: Path, redis_url: str, timeout: float) -> dict:
    if not redis_answers(redis_url):
        raise SystemExit(f"service: nothing answers at {redis_url}")
    configure(work, device_setting, redis_url, f"gpu-check-{secrets.token_hex(4)}")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(work / "metrics")
    (work / "metrics").mkdir(exist_ok=True)
    import httpx
    from unlearn_client.verify import load_public_key, verify_receipt

    from tests.helpers import upload_digits
    from tests.workers.factories import FAST_RECIPE, SMALL_MLP
    from workers.engine import resolve_device

    device = str(resolve_device(device_setting))
    port = free_port()
    procs = [
        start([sys.executable, "-m", "workers", "--device", device_setting], work / "worker.log"),
        start(
            [sys.executable, "-m", "uvicorn", "app.main:create_app", "--factory", "--port", str(port)],
            work / "api.log",
        ),
    ]
    key = os.environ["UNLEARN_BOOTSTRAP_ADMIN_KEY"]
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {key}"}, timeout=60)
    started = time.perf_counter()
    timings: dict[str, float] = {}

    def poll(path: str, done) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            try:
                resp = client.get(path)
                if resp.status_code == 200 and done(resp.json()):
                    return resp.json()
            except httpx.TransportError:
                pass
            for proc in procs:
                assert proc.poll() is None, f"{proc.args[2]} exited with {proc.returncode}"
            assert time.monotonic() < deadline, f"timed out after {timeout:.0f} s polling {path}"
            time.sleep(0.2)

    def delete(model_id: str, ids: list[str], method: str) -> tuple[dict, str]:
        resp = client.post(f"/v1/models/{model_id}/deletions", json={"sample_ids": ids, "method": method})
        assert resp.status_code == 202, resp.text
        body = poll(resp.headers["location"], lambda b: b["status"] in ("succeeded", "failed"))
        assert body["status"] == "succeeded", body
        return body, resp.headers["location"]

    try:
        poll("/healthz", lambda b: True)
        timings["api_up"] = time.perf_counter() - started
        dataset = upload_digits(client)
        resp = client.post(
            "/v1/models", json={"name": "gpu-check", "dataset_id": dataset["id"], "architecture": SMALL_MLP,
                                "train": FAST_RECIPE, "unlearn": {"max_accuracy_drop": 1.0, "max_steps": 3}},
        )  # fmt: skip
        assert resp.status_code == 202, resp.text
        model_id = resp.json()["id"]
        model = poll(f"/v1/models/{model_id}", lambda b: b["status"] != "training")
        assert (model["status"], model["latest_version"]) == ("ready", 1), model
        v1 = client.get(f"/v1/models/{model_id}/versions/1").json()
        assert v1["evidence_summary"]["device"] == device, v1["evidence_summary"]
        timings["trained"] = time.perf_counter() - started

        iau, location = delete(model_id, ["user-1", "user-2", "user-3"], "iau")
        check_evidence(iau["evidence"], device)
        assert (iau["base_version"], iau["result_version"]) == (1, 2), iau
        timings["iau_deleted"] = time.perf_counter() - started
        resp = client.get(f"/v1/models/{model_id}/versions/latest/checkpoint")
        assert resp.status_code == 200 and hashlib.sha256(resp.content).hexdigest() == resp.headers["etag"].strip('"')
        assert client.get(f"/v1/models/{model_id}/versions/1/checkpoint").status_code == 410

        exact, _ = delete(model_id, ["user-10"], "retrain")
        check_evidence(exact["evidence"], device, method="retrain")
        assert exact["result_version"] == 3, exact
        timings["retrain_deleted"] = time.perf_counter() - started

        receipt = client.get(f"{location}/receipt").json()
        verify_receipt(receipt, load_public_key(client.get("/v1/audit/public-key").json()["public_key_pem"]))
    except BaseException:
        stop(procs)
        for name in ("worker.log", "api.log"):
            print(f"----- {name}\n{(work / name).read_text(errors='replace')[-4000:]}", file=sys.stderr)
        raise
    stop(procs)
    return {
        "mode": "service",
        "device": device,
        "timings_s": {k: round(v, 3) for k, v in timings.items()},
        "iau": {k: iau["evidence"].get(k) for k in ("device", "correction", "steps", "stop_reason", "timings_s")},
        "retrain": {k: exact["evidence"].get(k) for k in ("device", "timings_s")},
        "receipt_verified": True,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=["direct", "service"])
    ap.add_argument("--device", default="cuda", help="worker device setting (cuda, cuda:N, cpu, auto)")
    ap.add_argument("--workdir", type=Path, required=True, help="SQLite file, blobs and process logs go here")
    ap.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    ap.add_argument("--timeout", type=float, default=90.0, help="seconds to wait for each job (service)")
    args = ap.parse_args()
    if args.mode == "direct":
        summary = direct(args.device, args.workdir, args.redis_url)
    else:
        summary = service(args.device, args.workdir, args.redis_url, args.timeout)
    print(json.dumps(summary, indent=1, sort_keys=True))
    print(f"gpu_worker_check {args.mode}: OK on {summary['device']}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
