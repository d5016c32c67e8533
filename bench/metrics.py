"""Figures the benchmark reports for one model: accuracy, membership AUC, distance to the retrained model,
attack success rate. All computed in eval mode without gradients, in chunks."""

import torch
import torch.nn.functional as F
from torch import Tensor, nn


@torch.no_grad()
def logits(model: nn.Module, x: Tensor, device: torch.device, chunk_size: int = 8192) -> Tensor:
    """Model outputs for prepared inputs x, returned on the CPU: (N, C)."""
    model = model.to(device).eval()
    out = [model(x[s : s + chunk_size].to(device)).float().cpu() for s in range(0, len(x), chunk_size)]
    return torch.cat(out) if out else torch.empty(0)


def accuracy(z: Tensor, y: Tensor) -> float:
    return float((z.argmax(1) == y).float().mean()) if len(y) else float("nan")


def losses(z: Tensor, y: Tensor) -> Tensor:
    return F.cross_entropy(z, y, reduction="none")  # (N,)


def membership_auc(forget_losses: Tensor, holdout_losses: Tensor) -> float:
    """Loss-threshold membership attack: P(loss of a holdout row > loss of a forget row), ties count half.
    0.5 = forget rows are indistinguishable from unseen rows; 1.0 = every forget row looks like a member."""
    f = forget_losses.double()[:, None]  # (F, 1)
    h = holdout_losses.double()[None, :]  # (1, H)
    return float((h > f).double().mean() + 0.5 * (h == f).double().mean())


def kl_to_reference(z_ref: Tensor, z: Tensor) -> float:
    """Mean over rows of KL(p_ref || p): how far a model's predictive distribution is from the reference's."""
    log_p_ref, log_p = F.log_softmax(z_ref.double(), 1), F.log_softmax(z.double(), 1)
    return float((log_p_ref.exp() * (log_p_ref - log_p)).sum(1).mean())


def churn(z_from: Tensor, z: Tensor) -> float:
    """Share of rows whose predicted class differs between two models."""
    return float((z_from.argmax(1) != z.argmax(1)).double().mean())


def class_shift(z_from: Tensor, z: Tensor) -> float:
    """Largest change, over classes, of the mean probability a model gives a class across the rows: a model
    that lowers (or raises) one class everywhere, rather than on a few rows, scores high."""
    change = F.softmax(z.double(), 1).mean(0) - F.softmax(z_from.double(), 1).mean(0)  # (C,)
    return float(change.abs().max())


def attack_success_rate(z_triggered: Tensor, y_true: Tensor, target: int) -> float:
    """Share of triggered rows whose true class is not the target that the model assigns to the target."""
    mask = y_true != target
    return float((z_triggered[mask].argmax(1) == target).float().mean())
