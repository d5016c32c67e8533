"""The engine on installed plugin architectures: token-id rows (text-transformer) and a frozen backbone whose
parameters no gradient, cache, update, training or retraining ever touches (frozen-cnn)."""

import pytest
import torch

from workers.engine import (
    ArchSpec,
    TrainConfig,
    UnlearnConfig,
    build_cache,
    evaluate,
    forget_commitment,
    gradient_sum,
    retrain,
    train,
    unlearn,
)
from workers.engine.evidence import per_sample_losses
from workers.engine.zoo import load_model

FROZEN = ArchSpec("frozen-cnn", {"num_classes": 10})
RECIPE = TrainConfig(epochs=4, batch_size=64, lr=1e-2, alpha=0.005, seed=0)


@pytest.fixture(scope="module")
def digits_after_pretraining():
    from unlearn_transfer.pretrain import PRETRAIN_ROWS, digits_images

    x, y = digits_images(PRETRAIN_ROWS, PRETRAIN_ROWS + 600)  # images the backbone never saw
    return x[:400], y[:400], x[400:], y[400:]


@pytest.fixture(scope="module")
def pretrained():
    from unlearn_transfer import FrozenCNN

    return FrozenCNN().pretrained(None)


@pytest.fixture(scope="module")
def frozen_model(digits_after_pretraining, device):
    x, y, _, _ = digits_after_pretraining
    return train(FROZEN, x, y, RECIPE, device)


def _same(state, reference) -> bool:
    return all(torch.equal(state[k].cpu(), v) for k, v in reference.items())


def test_training_keeps_the_pretrained_backbone_and_learns_the_head(frozen_model, digits_after_pretraining, pretrained):
    _, _, xh, yh = digits_after_pretraining
    assert _same(frozen_model, pretrained)  # weights and BatchNorm statistics
    assert evaluate(FROZEN, frozen_model, xh, yh)["accuracy"] > 0.8


def test_gradients_and_the_cache_cover_the_head_alone(frozen_model, digits_after_pretraining, device):
    x, y, _, _ = digits_after_pretraining
    grads = gradient_sum(FROZEN, frozen_model, x, y, device)
    assert sorted(grads) == ["head.bias", "head.weight"]
    cache = build_cache(FROZEN, frozen_model, x, y, torch.ones(len(y), dtype=torch.bool), 1, device)
    assert sorted(cache.grad_sum) == ["head.bias", "head.weight"]


@pytest.mark.parametrize("update", ["targeted", "neggrad+", "salun", "gradient", "reference"])
def test_every_update_leaves_the_backbone_alone(frozen_model, digits_after_pretraining, pretrained, device, update):
    x, y, xh, yh = digits_after_pretraining
    model = load_model(FROZEN, frozen_model, device)
    forget = torch.argsort(per_sample_losses(model, FROZEN, x, y)[0])[:20]  # the rows the head fits best
    retain = torch.ones(len(y), dtype=torch.bool)
    retain[forget] = False
    cfg = UnlearnConfig(update=update, max_accuracy_drop=1.0, max_steps=3, repair_steps=4)
    result = unlearn(FROZEN, frozen_model, x, y, retain, forget, cfg, device, holdout=(xh, yh))
    assert _same(result.state_dict, pretrained)
    if update == "targeted":
        # the anchor holds this generalising head where it was, and the repair then keeps the start (the rows
        # did not move toward their target); without it the head moves, and the backbone still does not
        cfg = UnlearnConfig(update=update, max_accuracy_drop=1.0, repair_steps=4, anchor_weight=0.0)
        result = unlearn(FROZEN, frozen_model, x, y, retain, forget, cfg, device, holdout=(xh, yh))
        assert _same(result.state_dict, pretrained)
    assert not torch.equal(result.state_dict["head.weight"], frozen_model["head.weight"])
    assert result.evidence["parameters"] == {"trainable": 128 * 10 + 10, "frozen": 4896}


def test_retraining_leaves_the_backbone_alone(frozen_model, digits_after_pretraining, pretrained, device):
    x, y, xh, yh = digits_after_pretraining
    forget = torch.arange(0, 20)
    retain = torch.ones(len(y), dtype=torch.bool)
    retain[forget] = False
    result = retrain(FROZEN, frozen_model, x, y, retain, forget, RECIPE, device, holdout=(xh, yh))
    assert _same(result.state_dict, pretrained)
    assert result.evidence["parameters"]["frozen"] == 4896


@pytest.fixture(scope="module")
def text_task():
    from unlearn_text.corpus import dataset

    x, y, xh, yh, vocab = dataset(300, 200, max_length=16, seed=1)
    spec = ArchSpec("text-transformer", {"vocab_size": len(vocab), "max_length": 16, "num_classes": 4})
    return spec, x, y, xh, yh


def test_token_ids_train_unlearn_and_retrain(text_task, device):
    spec, x, y, xh, yh = text_task
    assert x.dtype == torch.int64
    state = train(spec, x, y, TrainConfig(epochs=6, batch_size=32, lr=3e-3, alpha=0.005, seed=0), device)
    assert evaluate(spec, state, x, y)["accuracy"] > evaluate(spec, state, xh, yh)["accuracy"]  # it memorised
    forget = torch.arange(0, 15)
    retain = torch.ones(len(y), dtype=torch.bool)
    retain[forget] = False
    result = unlearn(spec, state, x, y, retain, forget, UnlearnConfig(), device, holdout=(xh, yh))
    outcome = result.evidence["outcome"]
    assert outcome["target"]["kind"] == "membership" and isinstance(outcome["met"], bool)
    assert result.evidence["after"]["forget"]["loss"] >= result.evidence["before"]["forget"]["loss"]
    exact = retrain(spec, state, x, y, retain, forget, TrainConfig(epochs=1, batch_size=32, alpha=0.0), device)
    assert exact.evidence["outcome"]["met"] is True


def test_the_commitment_to_token_ids_is_exact_integers():
    ids, labels, salt = torch.tensor([[2**24 + 1, 5]]), torch.tensor([1]), b"s" * 16
    one = forget_commitment(["a"], ids, labels, salt)
    assert one == forget_commitment(["a"], ids.to(torch.int32), labels, salt)
    assert one != forget_commitment(["a"], torch.tensor([[2**24, 5]]), labels, salt)  # float32 would merge them
    assert one != forget_commitment(["a"], ids.float(), labels, salt)


def test_the_independent_checker_opens_commitments_to_token_ids():
    from app.audit import commitments

    ids, labels, salt = torch.tensor([[2**40, 3, 0], [7, 1, 2]]), torch.tensor([1, 0]), bytes(range(32))
    value = forget_commitment(["a", "b"], ids, labels, salt)
    assert commitments.check_forget_commitment(["a", "b"], ids.numpy(), labels.numpy(), salt, value)
    assert not commitments.check_forget_commitment(["a", "b"], ids.numpy() + 1, labels.numpy(), salt, value)
