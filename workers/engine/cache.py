"""The per-version gradient cache of Influence Approximation Unlearning (IAU, Liu et al.), docs/engine.md.

G = sum over the rows a version covers of grad_theta l at that version's parameters: a float64 tensor per
parameter (the size of the model). A request then gets sum_{D_r} grad l = G - sum_{D_f} grad l - sum_{X} grad l
at O(|D_f| + |X|) cost, where X are covered rows deleted after G was built. `covered` (bool, one entry per
dataset row) records which rows G sums over; without it G must cover exactly the request's D_r and D_f.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from workers.engine.gradients import gradient_sum, model_gradient_sum
from workers.engine.zoo import ArchSpec


@dataclass
class GradCache:
    grad_sum: dict[str, Tensor]  # G = sum over covered rows of grad l at the cache version's theta
    rows: int  # number of rows G sums over
    version: int  # model version whose parameters G was computed at
    covered: Tensor | None = None  # BoolTensor (N,): rows G covers; None = exactly D_r and D_f of the request


def build_cache(
    spec: ArchSpec,
    state_dict: dict[str, Tensor],
    features: Tensor,
    labels: Tensor,
    live_mask: Tensor,
    version: int,
    device: torch.device,
    chunk_size: int = 1024,
) -> GradCache:
    """G for a version: the gradient sum over its live rows at its own parameters."""
    live_idx = live_mask.nonzero().flatten()  # (|D|,)
    grad = gradient_sum(spec, state_dict, features, labels, device, chunk_size=chunk_size, index=live_idx)
    return GradCache(grad_sum=grad, rows=int(live_idx.numel()), version=version, covered=live_mask.clone())


def cached_retained_sum(
    cache: GradCache,
    sum_f: dict[str, Tensor],
    model: nn.Module,
    spec: ArchSpec,
    features: Tensor,
    labels: Tensor,
    retain_mask: Tensor,
    forget_idx: Tensor,
    chunk_size: int,
) -> tuple[dict[str, Tensor], int]:
    """sum_{D_r} grad l from the cache; returns it and the number of other rows subtracted."""
    n_live = int(retain_mask.sum()) + forget_idx.numel()
    if cache.covered is None:
        if cache.rows != n_live:
            raise ValueError(
                f"gradient cache covers {cache.rows} rows but the request has {n_live} live rows; "
                "pass GradCache.covered to use a cache built over a different set of rows"
            )
        extra_idx = torch.zeros(0, dtype=torch.int64)
    else:
        covered = cache.covered.to(torch.bool).cpu()
        if (retain_mask & ~covered).any() or not covered[forget_idx].all():
            raise ValueError("gradient cache does not cover every retained and forgotten row")
        stale = covered.clone()
        stale[retain_mask] = False
        stale[forget_idx] = False
        extra_idx = stale.nonzero().flatten()  # rows deleted after the cache was built
    device = next(model.parameters()).device
    out = {k: cache.grad_sum[k].to(device=device, dtype=v.dtype) - v for k, v in sum_f.items()}
    if extra_idx.numel():
        extra = model_gradient_sum(model, spec, features, labels, extra_idx, chunk_size)
        out = {k: v - extra[k] for k, v in out.items()}
    return out, int(extra_idx.numel())
