import torch
import torch.nn.functional as F

from workers.engine import ArchSpec, build_model, gradient_sum
from workers.engine import gradients as gradients_module
from workers.engine.zoo import load_model

CPU = torch.device("cpu")  # hand-written references; the engine runs on the `device` fixture


def _rel(a: dict, b: dict) -> float:
    num = sum(float(((a[k].double() - b[k].double()) ** 2).sum()) for k in a)
    den = sum(float((b[k].double() ** 2).sum()) for k in b)
    return (num / den) ** 0.5


def test_gradient_sum_is_the_sum_of_per_sample_gradients(small_logreg, device):
    spec, x, y, state = small_logreg
    got = gradient_sum(spec, state, x, y, device, chunk_size=64)
    model = load_model(spec, state, CPU).double()
    loss = F.cross_entropy(model(x.double()), y, reduction="sum")
    names, params = zip(*model.named_parameters(), strict=True)
    want = dict(zip(names, torch.autograd.grad(loss, params), strict=True))
    assert got.keys() == want.keys()
    assert _rel(got, want) < 1e-5


def test_gradient_sum_does_not_depend_on_chunk_size(small_logreg, device):
    spec, x, y, state = small_logreg
    a = gradient_sum(spec, state, x, y, device, chunk_size=7)
    b = gradient_sum(spec, state, x, y, device, chunk_size=1000)
    assert _rel(a, b) < 1e-6
    idx = torch.tensor([5, 17, 42, 299])
    sub = gradient_sum(spec, state, x, y, device, chunk_size=3, index=idx)
    assert _rel(sub, gradient_sum(spec, state, x[idx], y[idx], device)) < 1e-6


def test_rows_are_streamed_in_eval_mode(small_logreg, monkeypatch, device):
    """The model only ever sees chunk_size rows at a time, always in eval mode."""
    spec, x, y, state = small_logreg
    seen = []
    real_load = gradients_module.load_model

    def spying_load(*args, **kwargs):
        model = real_load(*args, **kwargs)
        model.register_forward_pre_hook(lambda m, inp: seen.append((inp[0].shape[0], m.training)))
        return model

    monkeypatch.setattr(gradients_module, "load_model", spying_load)
    gradient_sum(spec, state, x, y, device, chunk_size=50)
    assert [n for n, _ in seen] == [50] * 6
    assert not any(training for _, training in seen)


def test_batchnorm_statistics_are_not_touched(device):
    spec = ArchSpec("resnet18", {"in_channels": 1, "num_classes": 3})
    torch.manual_seed(0)
    state = build_model(spec).state_dict()
    for k, v in state.items():
        if k.endswith("running_mean"):
            v.normal_()
    before = {k: v.clone() for k, v in state.items()}
    x, y = torch.rand(3, 1, 32, 32), torch.tensor([0, 1, 2])
    # Full fp32 convolutions on CUDA (cuDNN's TF32 default would differ by about 1e-3 between groupings).
    with torch.backends.cudnn.flags(enabled=True, allow_tf32=False):
        grads = gradient_sum(spec, state, x, y, device, chunk_size=2)
        assert "bn1.weight" in grads and "bn1.running_mean" not in grads
        assert all(torch.equal(state[k], before[k]) for k in before)
        # eval-mode gradients: the per-sample sum is independent of how rows are grouped (no batch statistics)
        one = gradient_sum(spec, state, x, y, device, chunk_size=1)
    assert _rel(grads, one) < 1e-5
