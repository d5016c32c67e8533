"""Compaction: rows no model carries leave the stored data set, the row space stays aligned, crashes recover.

The jobs run in this process against the real database (PostgreSQL and SQLite) and blob folder.
"""

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file
from sqlalchemy import select

from app.core.config import get_settings
from app.core.db import session_scope
from app.core.idhash import get_id_hasher, is_hashed
from app.core.storage import FileBlobStore
from app.datasets.orm import Dataset, DatasetCompaction, DatasetRow
from app.models.orm import ModelVersion
from tests.helpers import digits_arrays
from tests.workers import factories as f
from workers import datastore
from workers.engine import forget_commitment
from workers.jobs import compact
from workers.jobs.cache import refresh_cache
from workers.jobs.common import read_grad_cache
from workers.jobs.deletions import apply_deletions

ROWS = 400


def _dataset(dataset_id: str) -> Dataset:
    with session_scope() as session:
        return session.get(Dataset, dataset_id)


def _rows(dataset_id: str) -> dict[int, DatasetRow]:
    with session_scope() as session:
        rows = session.execute(select(DatasetRow).where(DatasetRow.dataset_id == dataset_id)).scalars()
        return {r.row_index: r for r in rows}


def _delete(tenant: str, model_id: str, rows: list[int], method: str = "iau") -> str:
    request_id = f.make_deletion(tenant, model_id, rows, method=method)
    apply_deletions(model_id, request_id)
    done = f.request(request_id)
    assert done.status == "succeeded", done.error
    return request_id


def _files_containing(root, needles: list[bytes]) -> list[str]:
    hits = []
    for path in root.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            hits += [f"{path.name}: row {i}" for i, n in enumerate(needles) if n in data]
    return hits


def _unique_rows(x: np.ndarray, candidates: list[int]) -> list[int]:
    """Rows whose float32 bytes occur once in the data set (a duplicate would stay in the blob legitimately)."""
    blob = x.tobytes() + digits_arrays()[2].tobytes()
    return [i for i in candidates if blob.count(x[i].tobytes()) == 1]


def test_compaction_erases_rows_and_keeps_the_row_space_aligned(settings):
    x, y = digits_arrays()[0][:ROWS], digits_arrays()[1][:ROWS]
    tenant = f.make_tenant()
    dataset_id = f.make_dataset(tenant, rows=ROWS)
    model_id = f.trained_model(tenant, dataset_id, unlearn_defaults=f.MOVING_UPDATE)
    refresh_cache(model_id, 1)
    store = FileBlobStore(get_settings().storage_dir)
    old_blob = _dataset(dataset_id).blob_sha256
    erased = _unique_rows(x, [5, 17, 42, 43, 44])[:3]
    assert len(erased) == 3
    first = _delete(tenant, model_id, erased)
    refresh_cache(model_id, 2)
    v2_cache = f.versions(model_id)[-1].grad_cache_sha256
    _, covered_before = read_grad_cache(v2_cache)

    result = compact.compact_dataset(dataset_id)

    assert result["rows"] == 3 and result["caches_rewritten"] == 1, result
    dataset = _dataset(dataset_id)
    assert (dataset.num_rows, dataset.erased_rows, dataset.compact_after) == (ROWS - 3, 3, None)
    assert not store.exists(old_blob) and not store.exists(v2_cache)
    kept = np.ones(ROWS, dtype=bool)
    kept[erased] = False
    tensors = load_file(str(store.path(dataset.blob_sha256)))
    np.testing.assert_array_equal(tensors["features"], x[kept])
    np.testing.assert_array_equal(tensors["labels"], y[kept])
    assert tensors["holdout_features"].shape == digits_arrays()[2].shape
    assert _files_containing(store.root, [x[i].tobytes() for i in erased]) == []

    hasher = get_id_hasher()
    rows = _rows(dataset_id)
    for i in erased:
        assert rows[i].erased_at is not None and rows[i].sample_id == hasher.hash_id(tenant, f"user-{i}")
    assert rows[0].erased_at is None and rows[0].sample_id == "user-0"
    assert {t.sample_id for t in f.tombstones(model_id)} == {hasher.hash_id(tenant, f"user-{i}") for i in erased}
    assert all(is_hashed(s) for s in f.request(first).sample_ids)
    (record,) = _compactions(dataset_id)
    assert (record.state, record.rows, record.from_blob, record.to_blob) == ("done", 3, old_blob, dataset.blob_sha256)

    # the rewritten cache covers the same rows, by their new positions
    v2 = f.versions(model_id)[-1]
    _, covered = read_grad_cache(v2.grad_cache_sha256)
    assert torch.equal(covered, covered_before[torch.from_numpy(kept)])

    # later deletions name rows by their unchanged row numbers and reach the right content
    later = _unique_rows(x, [6, 100, 101])[:2]
    second = _delete(tenant, model_id, later)
    done = f.request(second)
    assert done.evidence["correction"]["mode"] == "cached" and done.evidence["request"]["rows"] == 2
    salt = hasher.request_salt(second)
    want = forget_commitment([f"user-{i}" for i in later], torch.from_numpy(x[later]), torch.from_numpy(y[later]), salt)
    assert done.evidence["request"]["forget_commitment"] == want
    with session_scope() as session:
        data = datastore.load_dataset(session, dataset_id)
        live = datastore.live_mask(session, model_id, data.num_rows)
    position = {row: p for p, row in enumerate(np.flatnonzero(kept))}
    assert sorted(np.flatnonzero(~live.numpy())) == sorted(position[i] for i in later)
    assert data.sample_ids == [f"user-{i}" for i in np.flatnonzero(kept)]

    third = _delete(tenant, model_id, [7], method="retrain")
    assert f.request(third).evidence["method"] == "retrain"
    result = compact.compact_dataset(dataset_id)
    assert result["rows"] == 3
    assert _dataset(dataset_id).num_rows == ROWS - 6
    assert _files_containing(store.root, [x[i].tobytes() for i in erased + later]) == []


def _compactions(dataset_id: str) -> list[DatasetCompaction]:
    with session_scope() as session:
        return list(
            session.execute(
                select(DatasetCompaction)
                .where(DatasetCompaction.dataset_id == dataset_id)
                .order_by(DatasetCompaction.created_at)
            ).scalars()
        )


@pytest.mark.parametrize("backend", ["postgresql"])
def test_rows_stay_until_every_model_deleted_them(settings):
    rows = ROWS + 1  # a blob of its own: other data sets of the module's database share none
    tenant = f.make_tenant()
    dataset_id = f.make_dataset(tenant, rows=rows)
    first = f.trained_model(tenant, dataset_id, unlearn_defaults=f.MOVING_UPDATE)
    second = f.trained_model(tenant, dataset_id, unlearn_defaults=f.MOVING_UPDATE)
    _delete(tenant, first, [3, 4])
    assert compact.compact_dataset(dataset_id)["rows"] == 0, "the second model still carries rows 3 and 4"
    assert _dataset(dataset_id).num_rows == rows and _dataset(dataset_id).compact_after is None
    _delete(tenant, second, [4, 9])
    assert compact.compact_dataset(dataset_id)["rows"] == 1, "only row 4 is gone from both"
    assert [i for i, r in _rows(dataset_id).items() if r.erased_at is not None] == [4]
    # both models go on deleting on the compacted data set
    _delete(tenant, first, [9])
    assert compact.compact_dataset(dataset_id)["rows"] == 1
    assert _dataset(dataset_id).num_rows == rows - 2


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_model_in_training_holds_compaction_off(settings):
    rows = ROWS + 2  # a blob of its own: other data sets of the module's database share none
    tenant = f.make_tenant()
    dataset_id = f.make_dataset(tenant, rows=rows)
    model_id = f.trained_model(tenant, dataset_id, unlearn_defaults=f.MOVING_UPDATE)
    _delete(tenant, model_id, [1])
    f.make_training_model(tenant, dataset_id)
    result = compact.compact_dataset(dataset_id)
    assert result["rows"] == 0 and "training" in result["blocked"]
    assert _dataset(dataset_id).num_rows == rows


@pytest.mark.parametrize("storage", ["file", "s3"])
def test_a_crash_before_the_switch_changes_nothing_and_the_next_run_compacts(settings, monkeypatch):
    rows = ROWS + 3  # a blob of its own: other data sets of the module's database share none
    tenant = f.make_tenant()
    dataset_id = f.make_dataset(tenant, rows=rows)
    model_id = f.trained_model(tenant, dataset_id, unlearn_defaults=f.MOVING_UPDATE)
    _delete(tenant, model_id, [2, 8])
    store = datastore.get_store()
    old_blob = _dataset(dataset_id).blob_sha256

    def crash(*args, **kwargs):
        raise SystemExit("worker killed during the switch")

    monkeypatch.setattr(compact.compaction, "switch", crash)
    with pytest.raises(SystemExit):
        compact.compact_dataset(dataset_id)
    (record,) = _compactions(dataset_id)
    assert record.state == "writing" and store.exists(record.to_blob), "new blob written, not switched"
    assert _dataset(dataset_id).blob_sha256 == old_blob and _dataset(dataset_id).num_rows == rows
    assert all(r.erased_at is None for r in _rows(dataset_id).values())

    monkeypatch.undo()
    result = compact.compact_dataset(dataset_id)
    assert result["recovered"] == 1 and result["rows"] == 2
    abandoned, done = _compactions(dataset_id)
    assert (abandoned.state, done.state) == ("abandoned", "done")
    assert done.to_blob == abandoned.to_blob == _dataset(dataset_id).blob_sha256, "the same content, rewritten"
    assert not store.exists(old_blob)


@pytest.mark.parametrize("storage", ["file", "s3"])
def test_a_crash_after_the_switch_leaves_the_old_blob_to_the_next_run(settings, monkeypatch):
    rows = ROWS + 4  # a blob of its own: other data sets of the module's database share none
    tenant = f.make_tenant()
    dataset_id = f.make_dataset(tenant, rows=rows)
    model_id = f.trained_model(tenant, dataset_id, unlearn_defaults=f.MOVING_UPDATE)
    _delete(tenant, model_id, [11])
    store = datastore.get_store()
    old_blob = _dataset(dataset_id).blob_sha256

    def crash(compaction_id):
        raise SystemExit("worker killed after the switch")

    monkeypatch.setattr(compact, "finish", crash)
    with pytest.raises(SystemExit):
        compact.compact_dataset(dataset_id)
    (record,) = _compactions(dataset_id)
    assert record.state == "switched" and old_blob in record.old_blobs
    assert _dataset(dataset_id).blob_sha256 == record.to_blob and _dataset(dataset_id).num_rows == rows - 1
    assert store.exists(old_blob), "the old blob outlived the crash"

    monkeypatch.undo()
    with session_scope() as session:
        from workers.compaction import due_datasets

        assert dataset_id in due_datasets(session), "the reconciler finds the half-done compaction"
    result = compact.compact_dataset(dataset_id)
    assert result["recovered"] == 1 and result["rows"] == 0
    assert not store.exists(old_blob) and _compactions(dataset_id)[0].state == "done"


@pytest.mark.parametrize("backend", ["postgresql"])
def test_a_cache_computed_before_a_compaction_is_not_recorded_after_it(settings, monkeypatch):
    rows = ROWS + 5  # a blob of its own: other data sets of the module's database share none
    tenant = f.make_tenant()
    dataset_id = f.make_dataset(tenant, rows=rows)
    model_id = f.trained_model(tenant, dataset_id, unlearn_defaults=f.MOVING_UPDATE)
    _delete(tenant, model_id, [0, 1])
    from workers.jobs import cache

    real_build = cache.build_cache

    def compact_meanwhile(*args, **kwargs):
        built = real_build(*args, **kwargs)
        assert compact.compact_dataset(dataset_id)["rows"] == 2  # switches while the cache was computed
        return built

    monkeypatch.setattr(cache, "build_cache", compact_meanwhile)
    assert refresh_cache(model_id, 2)["skipped"] is True
    with session_scope() as session:
        v2 = session.execute(
            select(ModelVersion).where(ModelVersion.model_id == model_id, ModelVersion.version == 2)
        ).scalar_one()
    assert v2.grad_cache_sha256 is None, "a cache over the old row positions must not be recorded"
    monkeypatch.undo()
    assert refresh_cache(model_id, 2)["rows"] == rows - 2


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_cache_recorded_after_the_rewrite_is_dropped_by_the_switch(settings, monkeypatch):
    rows = ROWS + 6  # a blob of its own: other data sets of the module's database share none
    tenant = f.make_tenant()
    dataset_id = f.make_dataset(tenant, rows=rows)
    model_id = f.trained_model(tenant, dataset_id, unlearn_defaults=f.MOVING_UPDATE)
    _delete(tenant, model_id, [0])
    refresh_cache(model_id, 2)
    cache_sha = f.versions(model_id)[-1].grad_cache_sha256
    monkeypatch.setattr(compact, "_rewrite_caches", lambda p, drop, compaction_id: [])  # saw no cache yet
    result = compact.compact_dataset(dataset_id)
    assert (result["caches_dropped"], result["caches_rewritten"]) == (1, 0)
    assert result["dropped_caches"] == [(model_id, 2)]
    assert f.versions(model_id)[-1].grad_cache_sha256 is None, "its covered mask names the old positions"
    assert not FileBlobStore(get_settings().storage_dir).exists(cache_sha)
