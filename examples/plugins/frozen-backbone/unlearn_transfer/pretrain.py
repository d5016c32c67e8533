"""How backbone.safetensors was made: `python -m unlearn_transfer.pretrain [path]`.

Trains the backbone with a temporary linear head on the first PRETRAIN_ROWS images of scikit-learn's digits (30
epochs of Adam, seeded, on the CPU) and saves the backbone's state_dict (weights and BatchNorm statistics) with
safetensors. The example data sets of the tests and the benchmark use only the images after these.
"""

import sys
from importlib.resources import files

import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import nn

from unlearn_transfer.model import FEATURES, Backbone

PRETRAIN_ROWS = 900  # digits images 0..899 are the backbone's; the rest are left for the example data sets
EPOCHS, BATCH, LR, SEED = 30, 64, 3e-3, 0


def digits_images(start: int, stop: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Digits images start..stop-1 as (n, 1, 8, 8) floats in [0, 1] and their labels (n,) int64."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = torch.tensor(digits.data[start:stop], dtype=torch.float32).reshape(-1, 1, 8, 8) / 16.0  # (n, 1, 8, 8)
    return x, torch.tensor(digits.target[start:stop], dtype=torch.int64)


def pretrain() -> dict[str, torch.Tensor]:
    torch.manual_seed(SEED)
    x, y = digits_images(0, PRETRAIN_ROWS)
    backbone, head = Backbone(), nn.Linear(FEATURES, 10)
    opt = torch.optim.Adam([*backbone.parameters(), *head.parameters()], lr=LR)
    gen = torch.Generator().manual_seed(SEED)
    for _ in range(EPOCHS):
        order = torch.randperm(len(y), generator=gen)
        for start in range(0, len(y), BATCH):
            idx = order[start : start + BATCH]
            loss = F.cross_entropy(head(backbone(x[idx])), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return {k: v.detach().contiguous() for k, v in backbone.state_dict().items()}


if __name__ == "__main__":
    target = sys.argv[1] if len(sys.argv) > 1 else str(files("unlearn_transfer") / "backbone.safetensors")
    save_file(pretrain(), target)
    print(f"wrote {target}")
