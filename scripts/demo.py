"""Drive a running unlearning service end to end over HTTP (what `make demo` runs).

    python scripts/demo.py [--url http://127.0.0.1:8000] [--rows 5]

Steps: upload scikit-learn's digits data set (bundled with scikit-learn, no download), train a small MLP,
ask for a few rows to be deleted, poll the request until it finishes, download the latest checkpoint, check
its sha256 against the ETag, load it with safetensors into the zoo model, print the removal evidence, and fetch
the deletion's signed receipt and verify it against the audit key the service publishes. `--summary FILE`
writes the ids it created as JSON (make compose-check reads the deletion id from it).
The API key comes from UNLEARN_API_KEY (else UNLEARN_BOOTSTRAP_ADMIN_KEY, else the development key that
`make run` starts the service with).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
import uuid
from pathlib import Path

import httpx
import numpy as np
from safetensors.numpy import save as st_save

DEV_KEY = "dev-admin-key"  # the key scripts/run.sh bootstraps when none is set
HOLDOUT_ROWS = 300  # digits rows kept out of training, used for utility and membership evidence
ARCH = {"name": "mlp", "config": {"in_features": 64, "hidden": [256], "num_classes": 10}}
RECIPE = {"epochs": 100, "batch_size": 64, "lr": 0.005, "alpha": 0.0, "seed": 0}
LABEL_NOISE = 0.1  # share of rows (train and holdout alike) whose label is replaced by a random one
POLL_S = 0.5  # seconds between status polls


def digits() -> tuple[bytes, list[str], np.ndarray, np.ndarray, list[str]]:
    """(safetensors bytes, sample ids, holdout features, holdout labels, ids of mislabelled training rows) of the
    digits data set.

    A tenth of the labels, in the training rows and the holdout alike, are replaced by random ones, as in data
    collected at scale. The model memorises the rows whose label is wrong: the membership attack singles them
    out, and they are where a deletion has the most to remove. A random digits row, by contrast, ranks as a row
    never trained on would, and the engine rightly leaves the weights unchanged for it (docs/engine.md)."""
    from sklearn.datasets import load_digits

    data = load_digits()
    x = (data.data / 16.0).astype(np.float32)  # (1797, 64) in [0, 1]
    rng = np.random.default_rng(0)
    flip = rng.random(len(data.target)) < LABEL_NOISE
    y = np.where(flip, rng.integers(0, 10, len(data.target)), data.target).astype(np.int64)  # (1797,)
    hx, hy, tx, ty = x[:HOLDOUT_ROWS], y[:HOLDOUT_ROWS], x[HOLDOUT_ROWS:], y[HOLDOUT_ROWS:]
    blob = st_save({"features": tx, "labels": ty, "holdout_features": hx, "holdout_labels": hy})
    ids = [f"user-{i}" for i in range(len(ty))]
    wrong = np.flatnonzero(ty != data.target[HOLDOUT_ROWS:])  # training rows whose label is not the digit shown
    return blob, ids, hx, hy, [ids[i] for i in wrong]


def check(resp: httpx.Response, *expected: int) -> dict:
    if resp.status_code not in expected:
        sys.exit(f"demo: {resp.request.method} {resp.request.url.path} answered {resp.status_code}: {resp.text}")
    return resp.json() if resp.headers.get("content-type", "").endswith("json") else {}


def poll(client: httpx.Client, path: str, done, *, timeout: float, show=None) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        body = check(client.get(path), 200)
        if show is not None:
            show(body)
        if done(body):
            return body
        if time.monotonic() > deadline:
            sys.exit(f"demo: gave up waiting on {path} after {timeout:.0f}s: {body}")
        time.sleep(POLL_S)


def fmt(value, digits: int = 4) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def print_evidence(evidence: dict) -> None:
    before, after = evidence.get("before", {}), evidence.get("after", {})
    print("\nRemoval evidence (measured, not a certificate of exact deletion):")
    print(f"  method            {evidence.get('method')} / update {evidence.get('update', '-')}")
    correction = evidence.get("correction") or {}
    if correction:
        print(f"  correction        {correction.get('mode')} (cache staleness: {correction.get('staleness')})")
    print(f"  steps             {evidence.get('steps', '-')} (stop: {evidence.get('stop_reason', '-')})")
    rows = [
        ("forget accuracy", ("forget", "accuracy")),
        ("forget loss", ("forget", "loss")),
        ("holdout accuracy", ("holdout", "accuracy")),
        ("retained accuracy", ("retained_sample", "accuracy")),
    ]
    for label, (part, key) in rows:
        b = (before.get(part) or {}).get(key)
        a = (after.get(part) or {}).get(key)
        print(f"  {label:<18}{fmt(b)} -> {fmt(a)}")
    print(
        f"  membership AUC    {fmt(before.get('membership_auc'))} -> {fmt(after.get('membership_auc'))}"
        "  (the verdict below says where rows this hard would sit)"
    )
    print(f"  parameter L2 dist {fmt(evidence.get('param_distance'))}")
    if evidence.get("param_distance") == 0:
        print("  (no update step was kept: see stop reason; the new version's weights equal the previous ones)")
    print(f"  forget commitment {evidence.get('forget_commitment')}")
    print(f"  device            {evidence.get('device')}; timings {evidence.get('timings_s')}")


def print_verdict(deletion: dict) -> None:
    """The outcome of the deletion against its target, and which path removed the rows."""
    evidence = deletion.get("evidence") or {}
    outcome = deletion.get("outcome") or evidence.get("outcome") or {}
    measured = outcome.get("measured") or {}
    print("\nVerdict:")
    print(f"  target            {outcome.get('target')}")
    print(f"  met               {outcome.get('met')}  ({outcome.get('reason')})")
    if "membership_auc" in measured:
        print(
            f"  membership AUC    {fmt(measured.get('membership_auc_start'))} -> {fmt(measured.get('membership_auc'))}"
            "  (forgotten rows vs the holdout rows the stop rule reads)"
        )
    if "forget_loss" in measured:
        print(f"  forget loss       {fmt(measured.get('forget_loss_start'))} -> {fmt(measured.get('forget_loss'))}")
    removed_by = deletion.get("removed_by") or evidence.get("method")
    print(f"  removed by        {removed_by}; exact as of version {deletion.get('exact_as_of_version')}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default=os.environ.get("UNLEARN_URL", "http://127.0.0.1:8000"))
    parser.add_argument("--rows", type=int, default=5, help="how many training rows to delete")
    parser.add_argument(
        "--pick",
        choices=("mislabelled", "first"),
        default="mislabelled",
        help="delete mislabelled rows (which the model memorised; the default) or the rows from user-10 on",
    )
    parser.add_argument("--out", type=Path, default=Path("var/demo"), help="where the checkpoint is saved")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for each job")
    parser.add_argument("--summary", type=Path, help="write the dataset, model and deletion ids here (JSON)")
    args = parser.parse_args(argv)
    key = os.environ.get("UNLEARN_API_KEY") or os.environ.get("UNLEARN_BOOTSTRAP_ADMIN_KEY") or DEV_KEY

    client = httpx.Client(base_url=args.url, headers={"Authorization": f"Bearer {key}"}, timeout=60.0)
    try:
        client.get("/healthz").raise_for_status()
    except httpx.HTTPError as exc:
        sys.exit(f"demo: the service does not answer at {args.url} ({exc}); start it with `make run`")

    blob, ids, hx, hy, mislabelled = digits()
    print(f"1. upload digits: {len(ids)} training rows, {len(hy)} holdout rows")
    dataset = check(
        client.post(
            "/v1/datasets",
            data={"name": "digits (demo)", "ids": "\n".join(ids) + "\n"},
            files={"file": ("digits.safetensors", blob, "application/octet-stream")},
        ),
        201,
    )
    print(f"   dataset {dataset['id']}")

    print(f"2. train {ARCH['name']} {ARCH['config']['hidden']} with {RECIPE}")
    model = check(
        client.post(
            "/v1/models",
            json={"name": "digits-mlp (demo)", "dataset_id": dataset["id"], "architecture": ARCH, "train": RECIPE},
        ),
        202,
    )
    model = poll(client, f"/v1/models/{model['id']}", lambda b: b["status"] != "training", timeout=args.timeout)
    if model["status"] != "ready":
        sys.exit(f"demo: training failed: {model.get('error')}")
    v1 = check(client.get(f"/v1/models/{model['id']}/versions/1"), 200)
    print(f"   model {model['id']} ready: version 1, sha256 {v1['checkpoint_sha256'][:16]}...")

    forget = mislabelled[: args.rows] if args.pick == "mislabelled" else ids[10 : 10 + args.rows]
    why = "records whose label was wrong, which the model memorised" if args.pick == "mislabelled" else "rows 10 on"
    print(f"3. delete {len(forget)} rows ({why}): {', '.join(forget)}")
    resp = client.post(
        f"/v1/models/{model['id']}/deletions",
        json={"sample_ids": forget, "reason": "demo: account closed"},
        headers={"Idempotency-Key": str(uuid.uuid4())},
    )
    deletion = check(resp, 202)
    location = resp.headers["location"]
    print(f"   request {deletion['id']} queued at {location}")

    seen = set()

    def show(body: dict) -> None:
        step = (body["status"], body.get("stage"))
        if step not in seen:
            seen.add(step)
            print(f"   {body['status']:<10} stage={body.get('stage')} progress={body.get('progress', 0):.2f}")

    done = poll(client, location, lambda b: b["status"] in ("succeeded", "failed"), timeout=args.timeout, show=show)
    if done["status"] != "succeeded":
        sys.exit(f"demo: the deletion failed: {done.get('error')}")

    print(f"4. download latest (version {done['result_version']})")
    resp = client.get(f"/v1/models/{model['id']}/versions/latest/checkpoint")
    check(resp, 200)
    sha = hashlib.sha256(resp.content).hexdigest()
    etag = resp.headers.get("etag", "").strip('"')
    if sha != etag:
        sys.exit(f"demo: checkpoint sha256 {sha} does not match its ETag {etag}")
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"model-{model['id'][:8]}-v{done['result_version']}.safetensors"
    path.write_bytes(resp.content)
    print(f"   {len(resp.content)} bytes, sha256 {sha[:16]}... == ETag; saved to {path}")

    import torch
    from safetensors.torch import load_file

    from workers.engine import ArchSpec, build_model

    net = build_model(ArchSpec(ARCH["name"], ARCH["config"]))
    net.load_state_dict(load_file(str(path)), strict=True)
    net.eval()
    with torch.no_grad():
        accuracy = (net(torch.from_numpy(hx)).argmax(1).numpy() == hy).mean()
    print(f"   loaded into the zoo's {ARCH['name']} with safetensors; holdout accuracy {accuracy:.3f}")

    gone = client.get(f"/v1/models/{model['id']}/versions/1/checkpoint")
    print(f"5. version 1 checkpoint now answers {gone.status_code} (superseded versions are purged)")
    print_evidence(done["evidence"] or {})
    print_verdict(done)

    from unlearn_client.verify import verify_receipt_with as verify_receipt

    receipt = check(client.get(f"/v1/deletions/{deletion['id']}/receipt"), 200)
    key_id = verify_receipt(receipt, check(client.get("/v1/audit/public-key"), 200))
    print(f"6. receipt of {deletion['id']}: signature, tree head and inclusion proofs verified (key {key_id})")
    if args.summary is not None:
        ids = {"dataset_id": dataset["id"], "model_id": model["id"], "deletion_id": deletion["id"]}
        args.summary.parent.mkdir(parents=True, exist_ok=True)
        args.summary.write_text(json.dumps({**ids, "result_version": done["result_version"]}) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
