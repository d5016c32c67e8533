"""Streaming per-sample gradient sums: the retained-gradient correction of IAU and the per-version cache G.

For rows S, gradient_sum returns sum_{i in S} grad_theta l(x_i, y_i; theta), the parameter gradient of the
summed cross-entropy, computed in eval mode (BatchNorm statistics frozen, dropout off). Rows are moved to the
device one chunk at a time and each chunk's gradient (mean over the chunk times its length) is added to float64
accumulators, so peak memory depends on the chunk size, not on N, and the result does not depend on the chunk
size beyond float32 rounding inside a chunk.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from workers.engine.zoo import ArchSpec, load_model, prepare_inputs

ACCUM_DTYPE = torch.float64  # gradient sums are accumulated (and returned) in float64


def named_params(model: nn.Module) -> dict[str, nn.Parameter]:
    return {k: p for k, p in model.named_parameters() if p.requires_grad}


def _rows(index: Tensor | None, n: int) -> Tensor:
    return torch.arange(n) if index is None else index.to(torch.int64).cpu()


def model_gradient_sum(
    model: nn.Module,
    spec: ArchSpec,
    features: Tensor,
    labels: Tensor,
    index: Tensor | None = None,
    chunk_size: int = 1024,
) -> dict[str, Tensor]:
    """sum over the chosen rows of grad l at the model's current parameters (model must be in eval mode)."""
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be positive, got {chunk_size}")
    if model.training:
        raise RuntimeError("gradients must be computed in eval mode")
    params = named_params(model)
    device = next(iter(params.values())).device
    acc = {k: torch.zeros(p.shape, dtype=ACCUM_DTYPE, device=device) for k, p in params.items()}
    rows = _rows(index, labels.shape[0])  # (M,)
    for start in range(0, rows.numel(), chunk_size):
        idx = rows[start : start + chunk_size]  # (c,)
        x = prepare_inputs(spec, features[idx]).to(device)  # (c, ...)
        y = labels[idx].to(device=device, dtype=torch.int64)  # (c,)
        loss = F.cross_entropy(model(x), y)  # mean over the chunk
        grads = torch.autograd.grad(loss, list(params.values()))
        for (k, _), g in zip(params.items(), grads, strict=True):
            acc[k] += g.to(ACCUM_DTYPE) * idx.numel()  # mean * chunk length = chunk sum
    return acc


def gradient_sum(
    spec: ArchSpec,
    state_dict: dict[str, Tensor],
    features: Tensor,
    labels: Tensor,
    device: torch.device,
    chunk_size: int = 1024,
    index: Tensor | None = None,
) -> dict[str, Tensor]:
    """sum_{i in rows} grad_theta l_i at `state_dict`, streamed in chunks; float64 tensors on the CPU.

    `index` (LongTensor) selects rows without copying the dataset; None means every row.
    """
    model = load_model(spec, state_dict, device)
    acc = model_gradient_sum(model, spec, features, labels, index=index, chunk_size=chunk_size)
    return {k: v.cpu() for k, v in acc.items()}
