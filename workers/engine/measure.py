"""Measurements shared by the unlearning updates: cached per-sample losses, accuracies, seeded row subsets.

The holdout handed to the engine (the data set's calibration holdout) is split, by a seeded permutation, into
two disjoint parts: the **stop** rows, which the membership stop rule and the rank-matched loss targets read, and
the **guard** rows, which only the utility guard reads. Neither part sees the other's rows, so the guard does not
watch the rows the stop rule optimises and the verdict's utility figure is not one the loop was steered by.
"""

from __future__ import annotations

import torch
from torch import Tensor

from workers.engine.evidence import per_sample_losses
from workers.engine.zoo import ArchSpec

Rows = tuple[Tensor, Tensor]  # (features (n, ...), labels (n,))


def subsample(rows: Rows | None, size: int, seed: int) -> Rows | None:
    """A fixed, seeded subset of at most `size` rows (all of them when there are fewer)."""
    if rows is None or rows[1].shape[0] == 0:
        return None
    if rows[1].shape[0] <= size:
        return rows
    pick = torch.randperm(rows[1].shape[0], generator=torch.Generator().manual_seed(seed))[:size]
    return rows[0][pick], rows[1][pick]


def split_holdout(holdout: Rows | None, stop_share: float, seed: int) -> tuple[Rows | None, Rows | None]:
    """(stop rows, guard rows): a seeded, disjoint split of the holdout; the stop part gets `stop_share`.

    With fewer than 2 rows there is nothing to split: both parts are None."""
    if holdout is None or holdout[1].shape[0] < 2:
        return None, None
    n = holdout[1].shape[0]
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))  # (n,)
    k = min(n - 1, max(1, int(round(stop_share * n))))
    stop, guard = order[:k].sort().values, order[k:].sort().values
    return (holdout[0][stop], holdout[1][stop]), (holdout[0][guard], holdout[1][guard])


class Measure:
    """per_sample_losses of row sets at the current parameters, remembered until the parameters change.

    The utility check of the last step and the after-evidence measure the same rows at the same parameters;
    this does the forward passes once. Row sets are keyed by identity (the tuples live for the whole call).
    """

    def __init__(self, model, spec: ArchSpec):
        self.model, self.spec, self.memo = model, spec, {}
        self.reads: list[int] = []  # ids of the row sets measured, in order (tests check who reads what)

    def __call__(self, rows: Rows) -> tuple[Tensor, Tensor]:
        if id(rows) not in self.memo:
            self.reads.append(id(rows))
            self.memo[id(rows)] = (rows, per_sample_losses(self.model, self.spec, *rows))
        return self.memo[id(rows)][1]

    def changed(self) -> None:
        self.memo.clear()


def accuracy(measure: Measure, rows: Rows | None) -> float | None:
    if rows is None:
        return None
    _, ok = measure(rows)
    return float(ok.double().mean()) if ok.numel() else None


def utility_lost(measure: Measure, baselines: list, max_drop: float) -> bool:
    """True if accuracy on any (rows, starting accuracy) pair fell more than max_drop below its start."""
    for rows, start in baselines:
        now = accuracy(measure, rows)
        if start is not None and now is not None and start - now > max_drop:
            return True
    return False


def paired_drop(measure: Measure, rows: Rows | None, before: Tensor | None, max_drop: float, z: float) -> dict | None:
    """Accuracy on `rows` now against `before` (each row's correctness at the start), paired row by row.

    drop = (rows lost - rows gained) / n; the drop allowed is max_drop plus z standard errors of that difference
    when nothing changed but which rows happen to flip (McNemar: sqrt(lost + gained) / n). A small guard set sees a
    change of one row as 1/n: with z = 0 the rule is the plain "accuracy fell by more than max_drop"."""
    if rows is None or before is None or before.numel() == 0:
        return None
    ok, before = measure(rows)[1].cpu(), before.cpu()
    n = ok.numel()
    lost, gained = int((before & ~ok).sum()), int((~before & ok).sum())
    allowed = max_drop + z * (lost + gained) ** 0.5 / n
    return {"accuracy": float(ok.double().mean()), "drop": (lost - gained) / n, "allowed": allowed}


def paired_lost(measure: Measure, baselines: list, max_drop: float, z: float) -> bool:
    """True if any (rows, correctness at the start) pair lost more accuracy than paired_drop allows."""
    for rows, before in baselines:
        r = paired_drop(measure, rows, before, max_drop, z)
        if r is not None and r["drop"] > r["allowed"] + 1e-12:
            return True
    return False
