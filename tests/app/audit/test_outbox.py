"""The audit outbox: events the API records without the append lock reach the chain exactly once, in an order
that respects what depends on them, while chained appends and the sequencer run concurrently."""

import threading

from sqlalchemy import func, select
from unlearn_client.verify.checks import verify_log

from app.audit import outbox
from app.audit.orm import AuditEntry, AuditOutboxEntry
from app.audit.service import append_entry, entry_document
from tests.app.audit.test_audit_db import all_entries


def _record(sessions, request_id: str, *, commit: bool = True) -> None:
    with sessions() as s:
        outbox.record(
            s, actor="key-1", event_type="deletion.requested", tenant_id="t-1",
            refs={"request_id": request_id, "model_id": "m-1"}, evidence={"sample_count": 1},
        )  # fmt: skip
        if commit:
            s.commit()


def _outbox_size(sessions) -> int:
    with sessions() as s:
        return s.scalar(select(func.count()).select_from(AuditOutboxEntry))


def test_recorded_events_wait_in_the_outbox_until_sequenced(sessions):
    before = len(all_entries(sessions))
    _record(sessions, "r-a")
    _record(sessions, "r-b")
    _record(sessions, "r-rolled-back", commit=False)
    assert len(all_entries(sessions)) == before  # no lock taken, nothing chained yet
    assert _outbox_size(sessions) == 2
    assert outbox.sequence_committed(sessions) == 2
    entries = all_entries(sessions)
    assert [e["refs"]["request_id"] for e in entries[before:]] == ["r-a", "r-b"]
    assert _outbox_size(sessions) == 0
    assert outbox.sequence_committed(sessions) == 0
    verify_log(entries)


def test_a_chained_append_drains_the_outbox_first(sessions):
    """A worker's deletion.started lands after the deletion.requested the API recorded before it."""
    before = len(all_entries(sessions))
    _record(sessions, "r-dep")
    with sessions() as s:
        entry = append_entry(
            s, actor="worker", event_type="deletion.started", tenant_id="t-1",
            refs={"request_id": "r-dep", "model_id": "m-1"}, evidence={},
        )  # fmt: skip
        s.commit()
    entries = all_entries(sessions)[before:]
    assert [e["event_type"] for e in entries] == ["deletion.requested", "deletion.started"]
    assert entry.seq == entries[-1]["seq"]
    assert _outbox_size(sessions) == 0


def test_concurrent_recorders_appenders_and_sequencer_chain_every_event_once(sessions):
    before = len(all_entries(sessions))
    recorders, appenders, per = 4, 2, 40
    errors: list[BaseException] = []
    stop = threading.Event()

    def sequencer() -> None:  # what the workers' maintenance thread does, more often
        while not stop.wait(0.01):
            outbox.sequence_committed(sessions)

    threads = [threading.Thread(target=sequencer)]

    def recorder(w: int) -> None:
        try:
            for i in range(per):
                _record(sessions, f"rec-{w}-{i}", commit=i % 13 != 0)  # some roll back: never chained
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    def appender(w: int) -> None:
        try:
            for i in range(per):
                with sessions() as s:
                    append_entry(s, actor="worker", event_type="deletion.started", evidence={"w": w, "i": i})
                    s.commit()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads += [threading.Thread(target=recorder, args=(w,)) for w in range(recorders)]
    threads += [threading.Thread(target=appender, args=(w,)) for w in range(appenders)]
    for t in threads:
        t.start()
    for t in threads[1:]:
        t.join()
    stop.set()
    threads[0].join()
    outbox.sequence_committed(sessions)  # what the last recorders left
    assert errors == []
    assert _outbox_size(sessions) == 0
    entries = all_entries(sessions)
    assert [e["seq"] for e in entries] == list(range(1, len(entries) + 1))
    new = entries[before:]
    recorded = [e["refs"]["request_id"] for e in new if e["event_type"] == "deletion.requested"]
    expected = {f"rec-{w}-{i}" for w in range(recorders) for i in range(per) if i % 13 != 0}
    assert sorted(recorded) == sorted(expected)  # each committed event once; none rolled back
    for w in range(recorders):  # one recorder's events keep their order
        mine = [r for r in recorded if r.startswith(f"rec-{w}-")]
        assert mine == sorted(mine, key=lambda r: int(r.rsplit("-", 1)[1]))
    assert sum(e["event_type"] == "deletion.started" for e in new) == appenders * per
    with sessions() as s:
        docs = [entry_document(e) for e in s.scalars(select(AuditEntry).order_by(AuditEntry.seq))]
    verify_log(docs)
