"""Issue 11 acceptance, end to end on PostgreSQL and SQLite: the API in process, a real `python -m workers`.

After a deletion and the compaction that follows it, no file under the storage folder holds the raw bytes of a
deleted row's features, and no table holds a deleted sample id in plain text; the model's later deletions (iau
and retrain), a subject erasure and a consolidation still work on the compacted data set, and erase their rows
the same way.
"""

import numpy as np
from sqlalchemy import select
from unlearn_client.verify.checks import verify_receipt

from app.audit.commitments import check_sample_ids
from app.audit.signing import load_public_key
from app.core.config import get_settings
from app.core.db import Base, session_scope
from app.datasets.orm import DatasetCompaction
from app.deletions.orm import DeletionRequest
from app.models.orm import Model
from tests.e2e.test_service import ARCH, RECIPE, poll
from tests.helpers import digits_arrays, digits_safetensors, upload_dataset
from tests.workers import factories as f
from workers.jobs.consolidate import consolidate_model

ROWS = 400
PEOPLE = ["alice@example.com", "bob@example.com", "carol@example.com", "dave@example.com", "erin@example.com"]


def _rows_for_people(x: np.ndarray) -> list[int]:
    """Rows whose float32 bytes occur once in the uploaded file (a duplicate row would stay legitimately)."""
    blob = x.tobytes() + digits_arrays()[2].tobytes()
    unique = [i for i in range(10, ROWS) if blob.count(x[i].tobytes()) == 1]
    return unique[:: len(unique) // len(PEOPLE)][: len(PEOPLE)]


def _table_dump(app) -> str:
    with app.state.engine.connect() as conn:
        return "\n".join(
            repr(tuple(row)) for table in Base.metadata.sorted_tables for row in conn.execute(select(table))
        )


def _storage_hits(needles: dict[str, bytes]) -> list[str]:
    hits = []
    for path in get_settings().storage_dir.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            hits += [f"{path.relative_to(get_settings().storage_dir)} holds {name}" for name, n in needles.items()
                     if n in data]  # fmt: skip
    return hits


def _assert_erased(app, x, rows, people) -> None:
    needles = {p: x[r].tobytes() for p, r in zip(people, rows, strict=True)}
    needles |= {f"{p} (id)": p.encode() for p in people}
    assert _storage_hits(needles) == []
    dump = _table_dump(app)
    assert [p for p in people if p in dump] == []


def _model_requests(model_id: str) -> list[str]:
    with session_scope() as session:
        return list(session.scalars(select(DeletionRequest.id).where(DeletionRequest.model_id == model_id)))


def _delete(client, model_id, ids, **extra):
    resp = client.post(f"/v1/models/{model_id}/deletions", json={"sample_ids": ids, **extra})
    assert resp.status_code == 202, resp.text
    done = poll(client, resp.headers["location"], lambda b: b["status"] in ("succeeded", "failed"), timeout=180)
    assert done["status"] == "succeeded", done
    return resp.json(), done


def _erased(client, dataset_id, count):
    """The data set once `count` rows are erased and its compactions have finished (old blobs deleted)."""
    meta = poll(client, f"/v1/datasets/{dataset_id}", lambda b: b["erased_count"] >= count, timeout=120)
    f.wait_for(lambda: not _compacting(dataset_id), timeout=60, what="the compaction's last step")
    return meta


def _compacting(dataset_id) -> list[str]:
    with session_scope() as session:
        return list(
            session.scalars(
                select(DatasetCompaction.id).where(
                    DatasetCompaction.dataset_id == dataset_id, DatasetCompaction.state.in_(("writing", "switched"))
                )
            )
        )


def test_deleted_rows_leave_storage_and_database(client, app, workers, monkeypatch):
    monkeypatch.setenv("UNLEARN_COMPACTION_DELAY_S", "0")
    workers.start()
    x = digits_arrays()[0][:ROWS]
    rows = _rows_for_people(x)
    ids = [f"user-{i}" for i in range(ROWS)]
    for person, row in zip(PEOPLE, rows, strict=True):
        ids[row] = person
    resp = upload_dataset(client, digits_safetensors(rows=ROWS), ids="\n".join(ids) + "\n")
    assert resp.status_code == 201, resp.text
    dataset = resp.json()
    resp = client.post(
        "/v1/models", json={"name": "m", "dataset_id": dataset["id"], "architecture": ARCH, "train": RECIPE}
    )
    assert resp.status_code == 202, resp.text
    model_id = resp.json()["id"]
    model = poll(client, f"/v1/models/{model_id}", lambda b: b["status"] != "training", timeout=180)
    assert model["status"] == "ready", model

    first, done = _delete(client, model_id, PEOPLE[:2], reason="accounts closed")
    meta = _erased(client, dataset["id"], 2)
    assert (meta["num_rows"], meta["sha256"] != dataset["sha256"]) == (ROWS - 2, True)
    _assert_erased(app, x, rows[:2], PEOPLE[:2])

    # what stays opens only with the requester's salt, and the receipt still verifies
    assert check_sample_ids(PEOPLE[:2], first["commitment_salt"], first["sample_ids_sha256"])
    receipt = client.get(f"/v1/deletions/{first['id']}/receipt").json()
    verify_receipt(receipt, load_public_key(client.get("/v1/audit/public-key").json()["public_key_pem"]))
    again = client.post(f"/v1/models/{model_id}/deletions", json={"sample_ids": [PEOPLE[0]]})
    assert again.status_code == 409 and again.json()["deletion_ids"] == [first["id"]]
    assert client.post(f"/v1/models/{model_id}/deletions", json={"sample_ids": ["nobody"]}).status_code == 422

    # later deletions on the compacted data set: approximate, then exact
    _, done = _delete(client, model_id, [PEOPLE[2]])
    assert done["evidence"]["request"]["rows"] == 1
    _, done = _delete(client, model_id, [PEOPLE[3]], method="retrain")
    assert done["evidence"]["method"] == "retrain"
    _erased(client, dataset["id"], 4)
    _assert_erased(app, x, rows[:4], PEOPLE[:4])

    # a subject erasure across the data set's models, finished by the compaction
    resp = client.post(f"/v1/datasets/{dataset['id']}/erasures", json={"sample_ids": [PEOPLE[4]]})
    assert resp.status_code == 202, resp.text
    status = poll(client, resp.headers["location"], lambda b: b["status"] != "running", timeout=180)
    assert status["status"] == "succeeded" and status["rows_erased"] == 1, status
    _assert_erased(app, x, rows, PEOPLE)
    assert client.get(f"/v1/datasets/{dataset['id']}").json()["num_rows"] == ROWS - 5

    # an exact consolidation on the compacted data set: every approximate removal becomes exact
    with session_scope() as session:
        model = session.get(Model, model_id)
        model.unlearn_defaults = {**model.unlearn_defaults, "consolidate_after_deletions": 1}
    approximate = [
        d["id"]
        for d in (client.get(f"/v1/deletions/{rid}").json() for rid in _model_requests(model_id))
        if d["status"] == "succeeded" and d["exact_as_of_version"] is None
    ]
    assert approximate, "the erasure's approximate removal is left for the consolidation"
    result = consolidate_model(model_id)
    if "version" in result:
        version = result["version"]
    else:  # the running workers' maintenance found the model due first and consolidated it
        assert result.get("skipped") is True, result

        def exact_as_of() -> set:
            return {client.get(f"/v1/deletions/{rid}").json()["exact_as_of_version"] for rid in approximate}

        f.wait_for(lambda: None not in exact_as_of(), timeout=120, what="the maintenance's consolidation")
        (version,) = exact_as_of()
    for rid in approximate:
        assert client.get(f"/v1/deletions/{rid}").json()["exact_as_of_version"] == version
    latest = client.get(f"/v1/models/{model_id}/versions/latest").json()
    assert latest["version"] == version
    assert client.get(f"/v1/models/{model_id}/versions/{version - 1}/checkpoint").status_code == 410
    _assert_erased(app, x, rows, PEOPLE)
    assert f.verify_audit_log() > 0
