"""Jobs for models whose architecture this worker cannot run end as readable failures, never as retries or
crashes: an architecture that is not installed in the worker (the API's image had it), or a plugin whose module
passed the registration checks on the meta device and then raises on real rows. The jobs run in this process
against the real database."""

import torch
from torch import nn

from tests.unlearn_contract.sample_plugins import Tiny
from tests.workers import factories as f
from unlearn_contract import registry as reg
from unlearn_contract.modules import _resolve_json
from workers.jobs.deletions import apply_deletions
from workers.jobs.train import train_model

MISSING = {"name": "not-installed-here", "config": {"width": 64}}


def _training_model(tenant: str, dataset: str, architecture: dict) -> str:
    from app.core.db import session_scope
    from app.models.orm import Model

    model_id = f.make_training_model(tenant, dataset)
    with session_scope() as session:
        session.get(Model, model_id).architecture = architecture
    return model_id


def test_training_an_architecture_the_worker_lacks_fails_with_its_name(settings):
    tenant = f.make_tenant()
    model_id = _training_model(tenant, f.make_dataset(tenant, rows=50), MISSING)
    assert train_model(model_id) == {"model_id": model_id, "failed": True}
    model = f.model(model_id)
    assert model.status == "failed" and model.latest_version is None
    assert "unknown architecture 'not-installed-here'; installed: " in model.error


def test_a_deletion_for_an_architecture_the_worker_lacks_fails_for_good(settings):
    tenant = f.make_tenant()
    dataset = f.make_dataset(tenant, rows=50)
    state = {"linear.weight": torch.zeros(10, 64), "linear.bias": torch.zeros(10)}
    from workers.engine import checkpoint_bytes

    model_id = f.make_uploaded_model(tenant, dataset, checkpoint_bytes(state), MISSING)
    request_id = f.make_deletion(tenant, model_id, [3, 4])
    apply_deletions(model_id, request_id)
    request = f.request(request_id)
    assert request.status == "failed" and request.attempts == 1
    assert "architecture: unknown architecture 'not-installed-here'" in request.error
    assert [v.version for v in f.versions(model_id)] == [1] and f.tombstones(model_id) == []


class _RealRowsCrash(nn.Linear):
    def forward(self, x):
        if not x.is_meta:
            raise RuntimeError("this kernel needs a GPU")
        return super().forward(x)


class PassesTheChecksOnly(Tiny):
    name = "passes-the-checks-only"

    def build(self, config):
        return _RealRowsCrash(config.width, config.num_classes)


def test_a_plugin_that_raises_on_real_rows_fails_its_training_job_readably(settings, monkeypatch):
    found = reg.Registry({**reg.get_registry().installed, "passes-the-checks-only": reg.Installed(
        PassesTheChecksOnly(), "1", "tests")}, {})  # fmt: skip
    monkeypatch.setattr(reg, "get_registry", lambda: found)
    _resolve_json.cache_clear()
    try:
        tenant = f.make_tenant()
        arch = {"name": "passes-the-checks-only", "config": {"width": 64, "num_classes": 10}}
        model_id = _training_model(tenant, f.make_dataset(tenant, rows=50), arch)
        assert train_model(model_id)["failed"] is True
        assert f.model(model_id).error == "RuntimeError: this kernel needs a GPU"
    finally:
        _resolve_json.cache_clear()
