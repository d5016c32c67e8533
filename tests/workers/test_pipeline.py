"""Train, delete (IAU with exact then cached correction), retrain, purge: real worker process, real queue."""

import hashlib

import pytest
from safetensors.torch import load_file

from app.core.config import get_settings
from app.core.storage import FileBlobStore
from tests.workers import factories as f
from workers.engine import ArchSpec, build_model
from workers.queue import enqueue_deletion, enqueue_training


def _succeeded(request_id):
    r = f.request(request_id)
    assert r.status != "failed", r.error
    return r if r.status == "succeeded" else None


def _ready(model_id):
    m = f.model(model_id)
    assert m.status != "failed", m.error
    return m.status == "ready" and m.latest_version == 1


def _cached(model_id, version):
    return next((v for v in f.versions(model_id) if v.version == version and v.grad_cache_sha256), None)


def test_train_delete_retrain_purge(settings, workers):
    store = FileBlobStore(get_settings().storage_dir)
    tenant = f.make_tenant()
    dataset = f.make_dataset(tenant)
    model_id = f.make_training_model(tenant, dataset, unlearn_defaults=f.MOVING_UPDATE)
    enqueue_training(model_id)
    workers.start()

    f.wait_for(lambda: _ready(model_id), what="training")
    f.wait_for(lambda: _cached(model_id, 1), what="gradient cache of version 1")

    first = f.make_deletion(tenant, model_id, [0, 1, 2])
    enqueue_deletion(first)
    done = f.wait_for(lambda: _succeeded(first), what="first deletion")
    assert done.result_version == 2 and done.base_version == 1 and done.attempts == 1
    assert done.evidence["correction"]["mode"] == "cached"
    assert done.evidence["correction"]["staleness"] == 0
    assert done.evidence["request"]["rows"] == 3

    v1, v2 = f.versions(model_id)
    assert v2.checkpoint_sha256 != v1.checkpoint_sha256 and done.evidence["param_distance"] > 0
    assert (v1.state, v2.state, v2.parent_version) == ("purged", "available", 1)
    assert v1.purged_at is not None and v1.grad_cache_sha256
    # the purge commits with the new version; its blobs go right after
    f.wait_for(lambda: not store.exists(v1.checkpoint_sha256) and not store.exists(v1.grad_cache_sha256))
    assert v2.applied_requests == [first]
    blob = store.path(v2.checkpoint_sha256)
    assert hashlib.sha256(blob.read_bytes()).hexdigest() == v2.checkpoint_sha256
    net = build_model(ArchSpec("mlp", f.SMALL_MLP["config"]))
    net.load_state_dict(load_file(str(blob)))
    stones = f.tombstones(model_id)
    assert [(t.row_index, t.state, t.deleted_in_version) for t in stones] == [(i, "deleted", 2) for i in range(3)]

    second = f.make_deletion(tenant, model_id, [10, 11], method="retrain")
    enqueue_deletion(second)
    done = f.wait_for(lambda: _succeeded(second), what="retrain deletion")
    assert done.result_version == 3 and done.evidence["method"] == "retrain"
    assert [v.state for v in f.versions(model_id)] == ["purged", "purged", "available"]
    assert f.model(model_id).latest_version == 3


@pytest.mark.parametrize("backend", ["postgresql"])
def test_retrain_of_uploaded_model_fails_and_deletes_nothing(settings, workers):
    import torch

    from workers.engine import checkpoint_bytes

    tenant = f.make_tenant()
    dataset = f.make_dataset(tenant)
    arch = {"name": "logreg", "config": {"in_features": 64, "num_classes": 10}}
    torch.manual_seed(0)
    state = build_model(ArchSpec(arch["name"], arch["config"])).state_dict()
    model_id = f.make_uploaded_model(tenant, dataset, checkpoint_bytes(state), arch)
    rid = f.make_deletion(tenant, model_id, [5], method="retrain")
    enqueue_deletion(rid)
    workers.start()
    failed = f.wait_for(lambda: (r := f.request(rid)).status == "failed" and r, what="permanent failure")
    assert "training recipe" in failed.error and failed.attempts == 1
    assert f.tombstones(model_id) == []
    assert [v.version for v in f.versions(model_id)] == [1]


@pytest.mark.parametrize("backend", ["postgresql"])
def test_a_bad_request_in_a_coalesced_batch_does_not_fail_the_others(settings, workers):
    tenant = f.make_tenant()
    model_id = f.trained_model(tenant, f.make_dataset(tenant), unlearn_defaults=f.MOVING_UPDATE)
    good = f.make_deletion(tenant, model_id, [1, 2])
    bad = f.make_deletion(tenant, model_id, [])  # claims no rows: cannot be applied
    for rid in (good, bad):
        enqueue_deletion(rid, model_id)
    workers.start()
    f.wait_for(lambda: f.request(good).status == "succeeded" and f.request(bad).status == "failed", timeout=60)
    assert f.request(good).attempts == 2, "first tried together with the bad one, then alone"
    assert "claim no pending rows" in f.request(bad).error
    assert [v.applied_requests for v in f.versions(model_id)] == [[], [good]]
