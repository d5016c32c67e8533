"""The exact `retrain` method: train from scratch on the retained rows with the model's recorded recipe.

This is the gold standard every Influence Approximation Unlearning (IAU) figure is compared with. It returns
the same result shape as iau.unlearn, with the same before/after evidence.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict

import torch
from torch import Tensor

from workers.engine.checkpoint import sha256_state_dict
from workers.engine.device import synchronize
from workers.engine.evidence import forget_commitment, param_distance, retained_sample_index, snapshot
from workers.engine.iau import UnlearnResult, check_rows
from workers.engine.train import TrainConfig, train
from workers.engine.zoo import ArchSpec, load_model, trainable_summary

RETAINED_SAMPLE = 512  # rows in the fixed retained sample measured before and after
EVIDENCE_SEED = 0  # seeds the choice of the retained sample (the same as UnlearnConfig's default)


def exact_outcome() -> dict:
    """The verdict of an exact retrain: the rows were never seen by the new parameters."""
    return {
        "target": {"kind": "exact"},
        "met": True,
        "measured": {},
        "reason": "retrained from scratch without the forgotten rows, with the recorded recipe",
    }


def retrain(
    spec: ArchSpec,
    state_dict: dict[str, Tensor],
    features: Tensor,
    labels: Tensor,
    retain_mask: Tensor,
    forget_idx: Tensor,
    cfg: TrainConfig,
    device: torch.device,
    holdout: tuple[Tensor, Tensor] | None = None,
    sample_ids: list[str] | None = None,
    on_progress: Callable[[float], None] | None = None,
) -> UnlearnResult:
    """Train a new model on the rows in `retain_mask`; `state_dict` is the version being replaced."""
    n = labels.shape[0]
    retain_idx, forget_idx = check_rows(retain_mask, forget_idx, n)
    if sample_ids is not None and len(sample_ids) != n:
        raise ValueError(f"sample_ids has {len(sample_ids)} entries for {n} rows")
    timings, start = {}, time.perf_counter()
    forget = (features[forget_idx], labels[forget_idx])
    sample_idx = retained_sample_index(retain_idx, RETAINED_SAMPLE, EVIDENCE_SEED)
    retained = (features[sample_idx], labels[sample_idx])
    original = load_model(spec, state_dict, device)
    before = snapshot(original, spec, forget, retained, holdout)
    synchronize(device)
    timings["evidence_before"] = time.perf_counter() - start

    t = time.perf_counter()
    new_state = train(spec, features[retain_idx], labels[retain_idx], cfg, device, on_progress)
    synchronize(device)
    timings["train"] = time.perf_counter() - t

    t = time.perf_counter()
    after = snapshot(load_model(spec, new_state, device), spec, forget, retained, holdout)
    ids = [str(int(i)) if sample_ids is None else sample_ids[int(i)] for i in forget_idx]
    evidence = {
        "method": "retrain",
        "update": "retrain",
        "hyperparameters": asdict(cfg),
        "device": str(device),
        "rows": {
            "live": int(retain_idx.numel() + forget_idx.numel()),
            "forget": int(forget_idx.numel()),
            "retained": int(retain_idx.numel()),
            "retained_sample": int(sample_idx.numel()),
        },
        "parameters": trainable_summary(original),  # numbers training changed, and the frozen ones
        "before": before,
        "after": after,
        "param_distance": param_distance(state_dict, new_state),
        "checkpoint_sha256": {"before": sha256_state_dict(state_dict), "after": sha256_state_dict(new_state)},
        "correction": None,
        "steps": cfg.epochs,
        "stop_reason": "epochs",
        "auc_trace": [],
        "forget_commitment": forget_commitment(ids, *forget),
        "sample_ids": "caller" if sample_ids is not None else "row_index",
        "outcome": exact_outcome(),
        "note": "exact retraining without the forgotten rows",
    }
    timings["evidence_after"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - start
    evidence["timings_s"] = {k: round(v, 6) for k, v in timings.items()}
    return UnlearnResult(state_dict=new_state, evidence=evidence, steps=cfg.epochs)
