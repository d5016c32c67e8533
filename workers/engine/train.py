"""Training with gradient restriction, as used by Influence Approximation Unlearning (IAU, Liu et al.).

Each mini-batch minimises

    L(theta) = mean_B l(x, y; theta) + alpha * || grad_theta mean_B l ||_2

with l the per-sample cross-entropy. The penalty is differentiated through (double backward), which keeps the
influence of any single sample small so that one IAU update can remove it. alpha = 0 disables the penalty and
skips the double backward. The optimiser is Adam. Training is seeded (initialisation and shuffling) and
deterministic on the CPU; it is also the exact `retrain` method (train on the retained rows with the recipe).

Only the parameters the architecture lets the engine change are optimised (and enter the penalty); frozen
submodules (e.g. a pretrained backbone) keep their values and stay in eval mode, so their BatchNorm statistics
do not move either.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from workers.engine.zoo import ArchSpec, load_model, prepare_inputs, train_mode
from workers.engine.zoo import init_state as _init_state

_NORM_EPS = 1e-12  # added under the square root of the gradient norm


@dataclass
class TrainConfig:
    epochs: int = 20  # passes over the training rows
    batch_size: int = 64  # rows per mini-batch
    lr: float = 1e-3  # Adam learning rate
    alpha: float = 0.005  # gradient-restriction weight; 0 disables the penalty
    seed: int = 0  # seeds initialisation and shuffling
    weight_decay: float = 0.0  # Adam (L2) weight decay


def init_state(spec: ArchSpec, seed: int) -> dict[str, Tensor]:
    """Seeded initial parameters, drawn on the CPU so every device starts from the same point (with the
    architecture's pretrained tensors in place)."""
    return _init_state(spec, seed)


def train(
    spec: ArchSpec,
    features: Tensor,
    labels: Tensor,
    cfg: TrainConfig,
    device: torch.device,
    on_progress: Callable[[float], None] | None = None,
) -> dict[str, Tensor]:
    """Train from scratch on (features, labels); returns the state_dict on the CPU."""
    n = labels.shape[0]
    if n == 0:
        raise ValueError("cannot train on zero rows")
    if features.shape[0] != n:
        raise ValueError(f"features have {features.shape[0]} rows but labels have {n}")
    x_all = prepare_inputs(spec, features)  # (N, ...) float32 or int64, on the CPU
    y_all = labels.to(torch.int64)  # (N,)

    model = train_mode(load_model(spec, init_state(spec, cfg.seed), device))
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    gen = torch.Generator().manual_seed(cfg.seed)

    batches_per_epoch = (n + cfg.batch_size - 1) // cfg.batch_size
    total, done = cfg.epochs * batches_per_epoch, 0
    for _ in range(cfg.epochs):
        order = torch.randperm(n, generator=gen)  # (N,)
        for start in range(0, n, cfg.batch_size):
            idx = order[start : start + cfg.batch_size]  # (B,)
            x, y = x_all[idx].to(device), y_all[idx].to(device)
            loss = F.cross_entropy(model(x), y)  # mean over the batch
            if cfg.alpha > 0:
                grads = torch.autograd.grad(loss, params, create_graph=True)
                sq = sum((g * g).sum() for g in grads)
                grad_norm = torch.sqrt(sq + _NORM_EPS)  # ||grad_theta l||_2, finite derivative at 0
                loss = loss + cfg.alpha * grad_norm
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            done += 1
            if on_progress is not None and (done == total or done % max(1, batches_per_epoch) == 0):
                on_progress(done / total)
    return {k: v.detach().to("cpu").clone() for k, v in model.state_dict().items()}
