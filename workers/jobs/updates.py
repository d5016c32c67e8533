"""The two ways a deletion update is computed: IAU on the latest checkpoint, or exact retraining.

- iau: `workers.engine.unlearn` with the model's unlearning defaults. The retained gradient comes from the
  latest version's gradient cache G when it has one (correction `cached`), else it is streamed over the retained
  rows (correction `exact`); the model's defaults may name either. The evidence records which, and the cache's
  staleness in versions.
- retrain: `workers.engine.train` from scratch on the retained rows with the recipe the model was trained with
  (the gold standard). A model registered from an uploaded checkpoint has no recipe: a permanent failure.

Either way the evidence carries `outcome: {target, met, measured, reason}`: the engine's verdict for iau (its
target depends on the requests' `purpose`), and the exact outcome for a retrain.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from app.core.idhash import get_id_hasher
from workers.datastore import TrainingData, get_store
from workers.engine import (
    GradCache,
    TrainConfig,
    UnlearnConfig,
    forget_commitment,
    load_checkpoint,
    param_distance,
    sha256_state_dict,
    train,
    unlearn,
)
from workers.engine.evidence import retained_sample_index, snapshot
from workers.engine.retrain import exact_outcome
from workers.engine.zoo import load_model, trainable_summary
from workers.jobs.common import PermanentError, arch_spec, device, phase, read_grad_cache

StageFn = Callable[..., None]  # (stage, progress=None, *, force=True)


@dataclass
class UpdateResult:
    state_dict: dict[str, Tensor]  # new parameters, on the CPU
    evidence: dict[str, Any]  # measurements of the whole (possibly coalesced) update


def config_from(cls: type, overrides: dict[str, Any]) -> Any:
    """A config dataclass with the overrides that name its fields (unknown keys are ignored)."""
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in (overrides or {}).items() if k in names})


def run_update(
    *,
    method: str,
    model_info: dict[str, Any],
    base_info: dict[str, Any],
    data: TrainingData,
    live: Tensor,
    forget_idx: Tensor,
    on_stage: StageFn,
    purpose: str = "privacy",
) -> UpdateResult:
    retain_mask = live.clone()  # (N,) bool
    retain_mask[forget_idx] = False
    if not bool(retain_mask.any()):
        raise PermanentError("forgetting every live row leaves nothing to retain")
    spec = arch_spec(model_info["architecture"])
    with phase("deletion", "load_checkpoint"):
        state = load_checkpoint(get_store().local_path(base_info["checkpoint_sha256"]))
    if method == "retrain":
        result = _retrain(spec, model_info, state, data, retain_mask, forget_idx, on_stage)
    elif method == "iau":
        result = _iau(spec, model_info, base_info, state, data, retain_mask, forget_idx, on_stage, purpose)
    else:
        raise PermanentError(f"unknown deletion method {method!r}")
    result.evidence["base_version"] = base_info["version"]
    return result


def _iau(spec, model_info, base_info, state, data, retain_mask, forget_idx, on_stage, purpose) -> UpdateResult:
    defaults = {**model_info["unlearn_defaults"], "purpose": purpose}
    cache, cache_note = None, None
    cache_sha = base_info["grad_cache_sha256"]
    wants = defaults.get("correction")
    if wants in (None, "cached"):
        if cache_sha and get_store().exists(cache_sha):
            on_stage("loading_cache", 0.05)
            with phase("deletion", "load_cache"):
                grad_sum, covered = read_grad_cache(cache_sha)
            cache = GradCache(grad_sum=grad_sum, rows=int(covered.sum()), version=base_info["version"], covered=covered)
            defaults["correction"] = "cached"
        else:
            defaults["correction"] = "exact"
            cache_note = "no gradient cache for the latest version yet: retained gradient streamed exactly"
    cfg: UnlearnConfig = config_from(UnlearnConfig, defaults)
    on_stage("unlearning", 0.1)
    result = unlearn(
        spec,
        state,
        data.features,
        data.labels,
        retain_mask,
        forget_idx,
        cfg,
        device(),
        holdout=data.holdout,
        cache=cache,
        current_version=base_info["version"],
        sample_ids=data.sample_ids,
        on_progress=lambda f: on_stage("unlearning", 0.1 + 0.8 * f, force=False),
    )
    evidence = dict(result.evidence)
    evidence.setdefault("purpose", purpose)
    if cache_note:
        evidence["correction"] = {**evidence.get("correction", {}), "note": cache_note}
    return UpdateResult(state_dict=result.state_dict, evidence=evidence)


def _retrain(spec, model_info, state, data, retain_mask, forget_idx, on_stage) -> UpdateResult:
    recipe = model_info["train_recipe"]
    if not recipe:
        raise PermanentError(
            "method 'retrain' needs the model's training recipe, and this model was registered from an uploaded "
            "checkpoint; use method 'iau'"
        )
    cfg: TrainConfig = config_from(TrainConfig, recipe)
    dev = device()
    started = time.perf_counter()
    retain_idx = retain_mask.nonzero().flatten()  # (|D_r|,)
    forget = (data.features[forget_idx], data.labels[forget_idx])
    sample = retained_sample_index(retain_idx, 512, 0)
    retained = (data.features[sample], data.labels[sample])
    on_stage("evidence_before", 0.05)
    before = snapshot(load_model(spec, state, dev), spec, forget, retained, data.holdout)
    timings = {"evidence_before": time.perf_counter() - started}
    on_stage("retraining", 0.1)
    new_state = train(
        spec,
        data.features[retain_idx],
        data.labels[retain_idx],
        cfg,
        dev,
        on_progress=lambda f: on_stage("retraining", 0.1 + 0.8 * f, force=False),
    )
    timings["retrain"] = time.perf_counter() - started - timings["evidence_before"]
    on_stage("evidence_after", 0.9)
    after = snapshot(load_model(spec, new_state, dev), spec, forget, retained, data.holdout)
    timings["evidence_after"] = time.perf_counter() - started - timings["evidence_before"] - timings["retrain"]
    forget_ids = [data.sample_ids[int(i)] for i in forget_idx]
    evidence = {
        "method": "retrain",
        "hyperparameters": dataclasses.asdict(cfg),
        "device": str(dev),
        "rows": {
            "live": int(retain_idx.numel() + forget_idx.numel()),
            "forget": int(forget_idx.numel()),
            "retained": int(retain_idx.numel()),
            "retained_sample": int(sample.numel()),
        },
        "before": before,
        "after": after,
        "parameters": trainable_summary(load_model(spec, state, dev)),  # numbers training changed, the frozen ones
        "param_distance": param_distance(state, new_state),
        "checkpoint_sha256": {"before": sha256_state_dict(state), "after": sha256_state_dict(new_state)},
        "forget_commitment": forget_commitment(forget_ids, *forget),
        "timings_s": {k: round(v, 6) for k, v in {**timings, "total": time.perf_counter() - started}.items()},
        "note": "exact unlearning: retrained from scratch without the forgotten rows, with the recorded recipe",
        "outcome": measured_exact_outcome(after),
    }
    return UpdateResult(state_dict=new_state, evidence=evidence)


def measured_exact_outcome(after: dict[str, Any]) -> dict[str, Any]:
    """The engine's verdict of an exact retrain (met by construction) with `measured` filled from the evidence
    taken after it, for comparison with approximate updates."""
    return {
        **exact_outcome(),
        "measured": {
            "membership_auc": after.get("membership_auc"),
            "forget_accuracy": (after.get("forget") or {}).get("accuracy"),
            "holdout_accuracy": (after.get("holdout") or {}).get("accuracy"),
        },
    }


def request_evidence(
    result: UpdateResult, data: TrainingData, request_id: str, rows: list[int], batch_ids: list[str]
) -> dict[str, Any]:
    """One request's evidence: the update's measurements plus a commitment to this request's own rows.

    The requests coalesced into the update are listed once, on the version (``applied_requests``) and in its
    ``version.created`` audit entry; each request records only how many there were, so the evidence written per
    update grows linearly with its requests.
    """
    idx = torch.tensor(sorted(rows), dtype=torch.int64)
    salt = get_id_hasher().request_salt(request_id)  # the requester is given it: it opens the commitment
    own = forget_commitment([data.sample_ids[int(i)] for i in idx], data.features[idx], data.labels[idx], salt=salt)
    return {
        **result.evidence,
        "forget_commitment": own,  # this request's rows; the whole update's (unopenable) one is on the version
        "request": {"id": request_id, "rows": len(rows), "forget_commitment": own},
        "coalesced": {"count": len(batch_ids)},
    }
