"""Removal evidence: what was measured before and after an unlearning update (design.md section 4).

Figures: forget-set and holdout loss/accuracy, accuracy on a fixed seeded sample of retained rows, the
loss-threshold membership-inference AUC of forget rows against holdout rows (Yeom et al.; 0.5 means the attack
cannot tell them apart), the parameter L2 distance, checkpoint hashes, and a salted sha256 commitment to the
forgotten rows (ids and content), never the rows themselves. Approximate unlearning, as in Influence Approximation
Unlearning (IAU, Liu et al.), is not a certificate of exact deletion: these are measurements, nothing more.
"""

from __future__ import annotations

import hashlib
import os
import random
import struct
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from workers.engine.zoo import ArchSpec, load_model, prepare_inputs, train_mode

EVAL_CHUNK = 1024  # rows per forward pass when measuring
COMMITMENT_TAG = b"unlearn-forget-commitment-v2"
SALT_BYTES = 32  # bytes of a random salt drawn when the caller gives none
# Fixed bins of the loss histograms, in log10(loss): 1e-4 .. 10**1.5 in quarter decades (22 bins); losses below
# the first edge count in the first bin, above the last edge in the last. Counts only, never per-row values.
HIST_LOG10_EDGES = tuple(-4.0 + 0.25 * i for i in range(23))


@torch.no_grad()
@torch.no_grad()  # measurements only: no autograd graph
def per_sample_losses(
    model: nn.Module, spec: ArchSpec, features: Tensor, labels: Tensor, chunk_size: int = EVAL_CHUNK
) -> tuple[Tensor, Tensor]:
    """(losses (N,), correct (N,) bool) on the CPU, computed in eval mode chunk by chunk."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    losses, correct = [], []
    for start in range(0, labels.shape[0], chunk_size):
        x = prepare_inputs(spec, features[start : start + chunk_size]).to(device)  # (c, ...)
        y = labels[start : start + chunk_size].to(device=device, dtype=torch.int64)  # (c,)
        logits = model(x)  # (c, K)
        losses.append(F.cross_entropy(logits, y, reduction="none").float().cpu())
        correct.append((logits.argmax(dim=1) == y).cpu())
    if was_training:
        train_mode(model)  # frozen submodules stay in eval mode
    if not losses:
        return torch.zeros(0), torch.zeros(0, dtype=torch.bool)
    return torch.cat(losses), torch.cat(correct)


def evaluate(
    spec: ArchSpec,
    model: nn.Module | dict[str, Tensor],
    features: Tensor,
    labels: Tensor,
    device: torch.device | None = None,
) -> dict:
    """{loss, accuracy, rows} on (features, labels); `model` is a module or a state_dict of `spec`."""
    if isinstance(model, dict):
        model = load_model(spec, model, device or torch.device("cpu"))
    return _summary(*per_sample_losses(model, spec, features, labels))


def membership_auc(forget_losses: Tensor, holdout_losses: Tensor) -> float:
    """AUC of the loss-threshold attack that calls a row a member when its loss is low.

    = P(loss_forget < loss_holdout) + 0.5 * P(tie): 0.5 = indistinguishable, 1.0 = every forgotten row has a
    lower loss than every holdout row (still remembered), below 0.5 = forgotten rows now stand out the other way.
    """
    f = forget_losses.double().flatten()  # (F,)
    h = holdout_losses.double().flatten()  # (H,)
    if f.numel() == 0 or h.numel() == 0:
        return float("nan")
    # rank-sum (Mann-Whitney U) with average ranks for ties, O((F+H) log(F+H))
    scores = torch.cat([-f, -h])  # higher score = more likely a member
    order = torch.argsort(scores, stable=True)
    sorted_scores = scores[order]
    ranks = torch.empty_like(scores)
    _, inverse, counts = torch.unique_consecutive(sorted_scores, return_inverse=True, return_counts=True)
    ends = torch.cumsum(counts, 0).double()  # last 1-based rank of each tie group
    avg_rank = ends - (counts.double() - 1) / 2
    ranks[order] = avg_rank[inverse]
    u = ranks[: f.numel()].sum() - f.numel() * (f.numel() + 1) / 2
    return float(u / (f.numel() * h.numel()))


def loss_histogram(losses: Tensor) -> list[int]:
    """Counts of per-sample losses in the HIST_LOG10_EDGES bins (a fixed layout, so histograms compare)."""
    edges = torch.tensor(HIST_LOG10_EDGES[1:-1], dtype=torch.float64)  # (21,) inner edges
    logs = losses.double().flatten().clamp_min(1e-30).log10()  # (N,)
    index = torch.bucketize(logs, edges, right=True)  # (N,) bin 0..21
    return [int(c) for c in torch.bincount(index, minlength=len(HIST_LOG10_EDGES) - 1)]


def param_distance(a: dict[str, Tensor], b: dict[str, Tensor]) -> float:
    """L2 distance over the floating-point tensors shared by two state_dicts (buffers included)."""
    total = 0.0
    for k, v in a.items():
        if k in b and v.is_floating_point():
            total += float(((v.double().cpu() - b[k].double().cpu()) ** 2).sum())
    return total**0.5


def forget_commitment(sample_ids: list[str], features: Tensor, labels: Tensor, salt: bytes | None = None) -> str:
    """Salted sha256 commitment to the forgotten rows: ids and content, canonical and independent of row order.

    Each row hashes to sha256(len(id) | id utf-8 | label int64 | shape | features as float32 little-endian);
    integer features (token ids) hash as int64 little-endian instead, after the shape and the tag b"i8" (float32
    would round ids above 2^24). The row digests are sorted and hashed together under a version tag with the salt
    (length-prefixed) and the row count. ``salt`` is the request's salt, which its requester is given so that it
    can open the commitment (app.audit.commitments checks one); None draws a fresh random salt that is kept
    nowhere, so the value hides the rows from anyone guessing them and can be opened by nobody.
    """
    if len(sample_ids) != labels.shape[0] or features.shape[0] != labels.shape[0]:
        raise ValueError("sample_ids, features and labels must describe the same rows")
    salt = os.urandom(SALT_BYTES) if salt is None else bytes(salt)
    if len(salt) < 16:
        raise ValueError("a commitment salt has at least 16 bytes")
    integer = not (features.is_floating_point() or features.is_complex() or features.dtype == torch.bool)
    feats = features.detach().to("cpu", torch.int64 if integer else torch.float32).contiguous()
    shape = struct.pack("<I", feats[0].dim() if len(sample_ids) else 0) + b"".join(
        struct.pack("<q", s) for s in feats.shape[1:]
    )
    if integer:
        shape += b"i8"
    row_format = "<i8" if integer else "<f4"
    digests = []
    for i, sid in enumerate(sample_ids):
        raw = str(sid).encode("utf-8")
        h = hashlib.sha256()
        h.update(struct.pack("<Q", len(raw)) + raw)
        h.update(struct.pack("<q", int(labels[i])))
        h.update(shape)
        h.update(feats[i].numpy().astype(row_format, copy=False).tobytes())
        digests.append(h.digest())
    top = hashlib.sha256(COMMITMENT_TAG + struct.pack("<I", len(salt)) + salt + struct.pack("<Q", len(digests)))
    for d in sorted(digests):
        top.update(d)
    return top.hexdigest()


def snapshot(
    model: nn.Module,
    spec: ArchSpec,
    forget: tuple[Tensor, Tensor],
    retained_sample: tuple[Tensor, Tensor],
    holdout: tuple[Tensor, Tensor] | None,
    losses: Callable[[tuple[Tensor, Tensor]], tuple[Tensor, Tensor]] | None = None,
) -> dict:
    """Measurements of one model: forget, holdout, retained-sample figures and the membership AUC.

    `losses(rows)` gives (per-sample losses, correct) of a row set; by default per_sample_losses on `model`."""
    losses = losses or (lambda rows: per_sample_losses(model, spec, *rows))
    f_loss, f_ok = losses(forget)
    r_loss, r_ok = losses(retained_sample)
    out = {
        "forget": _summary(f_loss, f_ok),
        "retained_sample": _summary(r_loss, r_ok),
        "holdout": None,
        "membership_auc": None,
        "loss_histogram": {"log10_edges": list(HIST_LOG10_EDGES), "forget": loss_histogram(f_loss), "holdout": None},
    }
    if holdout is not None and holdout[1].shape[0] > 0:
        h_loss, h_ok = losses(holdout)
        out["holdout"] = _summary(h_loss, h_ok)
        auc = membership_auc(f_loss, h_loss)
        out["membership_auc"] = None if auc != auc else auc  # no forgotten rows left to measure (compacted): None
        out["loss_histogram"]["holdout"] = loss_histogram(h_loss)
    return out


def _summary(losses: Tensor, correct: Tensor) -> dict:
    if losses.numel() == 0:
        return {"loss": None, "accuracy": None, "rows": 0}
    return {
        "loss": float(losses.double().mean()),
        "accuracy": float(correct.double().mean()),
        "rows": int(losses.numel()),
    }


def retained_sample_index(retain_idx: Tensor, size: int, seed: int) -> Tensor:
    """A fixed, seeded sample of retained row indices (the same rows before and after an update).

    Drawn in O(size), not O(N): a single-row deletion on a large data set should not pay for a permutation
    of every retained row."""
    n = retain_idx.numel()
    if n <= size:
        return retain_idx.sort().values
    pick = torch.tensor(random.Random(seed).sample(range(n), size), dtype=torch.long)  # (size,)
    return retain_idx[pick].sort().values
