"""Jobs for a model removed with DELETE /v1/models/{id} end cleanly: a queued deletion, training or cache job
finds nothing to do; an update or a training run that was under way when the model went drops the checkpoint
it wrote and schedules no retry. The jobs run in this process against the real database."""

import secrets

import pytest

from app.core.config import get_settings
from app.core.db import session_scope
from app.core.security import Principal
from app.core.storage import FileBlobStore
from app.models.removal import remove_model
from tests.helpers import logreg_checkpoint
from tests.workers import factories as f
from workers.jobs import deletions as deletion_jobs
from workers.jobs import train as train_jobs
from workers.jobs.cache import refresh_cache
from workers.jobs.deletions import apply_deletions
from workers.jobs.train import train_model

LOGREG = {"name": "logreg", "config": {"in_features": 64, "num_classes": 10}}


def _remove(tenant_id: str, model_id: str) -> None:
    with session_scope() as session:
        principal = Principal(key_id="test-operator", tenant_id=tenant_id, role="operator")
        remove_model(session, principal=principal, model_id=model_id, store=FileBlobStore(get_settings().storage_dir))


def _blobs() -> list[str]:
    from tests.app.written import stored_files

    return [p for p in stored_files(get_settings().storage_dir) if not p.startswith("tmp/")]


@pytest.fixture
def no_retries(monkeypatch) -> list:
    scheduled: list = []
    monkeypatch.setattr(deletion_jobs, "_schedule_retries", lambda *args: scheduled.append(args))
    return scheduled


def test_jobs_queued_for_a_removed_model_do_nothing(settings, no_retries):
    tenant = f.make_tenant()
    dataset = f.make_dataset(tenant, rows=100)
    model_id = f.make_uploaded_model(tenant, dataset, logreg_checkpoint(seed=secrets.randbelow(2**31)), LOGREG)
    request_id = f.make_deletion(tenant, model_id, [0, 1])
    _remove(tenant, model_id)
    left = _blobs()
    assert apply_deletions(model_id, request_id) == {"model_id": model_id, "versions": []}
    assert refresh_cache(model_id, 1)["skipped"] is True
    assert train_model(model_id)["skipped"] is True
    assert _blobs() == left and no_retries == []


def test_an_update_under_way_when_the_model_goes_ends_cleanly(settings, monkeypatch, no_retries):
    tenant = f.make_tenant()
    dataset = f.make_dataset(tenant, rows=100)
    model_id = f.make_uploaded_model(tenant, dataset, logreg_checkpoint(seed=secrets.randbelow(2**31)), LOGREG)
    request_id = f.make_deletion(tenant, model_id, [0, 1])
    run_update = deletion_jobs.run_update

    def update_then_remove(**kwargs):
        result = run_update(**kwargs)
        _remove(tenant, model_id)  # the DELETE lands after the update, before its publication
        return result

    monkeypatch.setattr(deletion_jobs, "run_update", update_then_remove)
    dataset_blob = _blobs()
    assert len(dataset_blob) == 2  # the data set and the checkpoint
    assert apply_deletions(model_id, request_id) == {"model_id": model_id, "versions": []}
    assert no_retries == []
    with session_scope() as session:
        from app.datasets.orm import Dataset

        sha = session.get(Dataset, dataset).blob_sha256
    assert _blobs() == [f"{sha[:2]}/{sha}"], "the new checkpoint and the old one are gone"
    assert f.model(model_id) is None and f.request(request_id) is None


def test_training_under_way_when_the_model_goes_ends_cleanly(settings, monkeypatch):
    tenant = f.make_tenant()
    dataset = f.make_dataset(tenant, rows=100)
    model_id = f.make_training_model(tenant, dataset)
    train = train_jobs.train

    def train_then_remove(*args, **kwargs):
        state = train(*args, **kwargs)
        _remove(tenant, model_id)
        return state

    monkeypatch.setattr(train_jobs, "train", train_then_remove)
    before = _blobs()
    assert train_model(model_id) == {"model_id": model_id, "skipped": True}
    assert _blobs() == before, "the trained checkpoint is not left behind"
    assert f.model(model_id) is None
