"""Which waiting requests one update takes: coalescing, and its cap UNLEARN_MAX_COALESCE."""

import pytest

from app.core.config import get_settings
from tests.workers import factories as f
from workers.jobs.batches import next_batch

pytestmark = pytest.mark.parametrize("backend", ["sqlite"])


@pytest.mark.parametrize(("cap", "expected"), [(0, 5), (1, 1), (3, 3)])
def test_waiting_iau_requests_are_coalesced_up_to_the_cap(settings, monkeypatch, cap, expected):
    monkeypatch.setenv("UNLEARN_MAX_COALESCE", str(cap))
    get_settings.cache_clear()
    tenant = f.make_tenant()
    model_id = f.make_training_model(tenant, f.make_dataset(tenant))
    ids = [f.make_deletion(tenant, model_id, [i]) for i in range(5)]
    batch = next_batch(model_id, None)
    assert batch.method == "iau"
    assert batch.request_ids == ids[:expected], "oldest first, at most `cap` requests"


def test_a_retrain_request_is_applied_alone(settings):
    tenant = f.make_tenant()
    model_id = f.make_training_model(tenant, f.make_dataset(tenant))
    first = f.make_deletion(tenant, model_id, [0])
    f.make_deletion(tenant, model_id, [1], method="retrain")
    f.make_deletion(tenant, model_id, [2])
    assert next_batch(model_id, None).request_ids == [first], "iau requests before a retrain, not past it"


def test_only_requests_of_one_purpose_share_an_update(settings):
    tenant = f.make_tenant()
    model_id = f.make_training_model(tenant, f.make_dataset(tenant))
    first = f.make_deletion(tenant, model_id, [0])
    second = f.make_deletion(tenant, model_id, [1])
    f.make_deletion(tenant, model_id, [2], purpose="poison")
    f.make_deletion(tenant, model_id, [3])
    batch = next_batch(model_id, None)
    assert (batch.request_ids, batch.purpose, batch.escalated) == ([first, second], "privacy", False)


def test_every_escalation_waiting_for_the_model_goes_into_one_retrain(settings):
    tenant = f.make_tenant()
    model_id = f.make_training_model(tenant, f.make_dataset(tenant))
    first = f.make_deletion(tenant, model_id, [0], escalated=True)
    f.make_deletion(tenant, model_id, [1])
    third = f.make_deletion(tenant, model_id, [2], purpose="poison", escalated=True)
    f.make_deletion(tenant, model_id, [3], method="retrain")
    batch = next_batch(model_id, None)
    assert (batch.request_ids, batch.method, batch.escalated) == ([first, third], "retrain", True)
