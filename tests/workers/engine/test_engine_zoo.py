import pytest
import torch

from workers.engine import (
    ArchSpec,
    CheckpointMismatch,
    ZooError,
    build_model,
    expected_feature_count,
    parameter_count,
    prepare_inputs,
    validate_checkpoint,
    validate_spec,
)


def _shapes(spec):
    return {k: tuple(v.shape) for k, v in build_model(spec).state_dict().items()}


def test_logreg_layout():
    spec = ArchSpec("logreg", {"in_features": 64, "num_classes": 10})
    assert _shapes(spec) == {"linear.weight": (10, 64), "linear.bias": (10,)}


def test_mlp_layout_is_sequential_linear_relu():
    spec = ArchSpec("mlp", {"in_features": 64, "hidden": [32, 16], "num_classes": 10})
    assert _shapes(spec) == {
        "net.0.weight": (32, 64),
        "net.0.bias": (32,),
        "net.2.weight": (16, 32),
        "net.2.bias": (16,),
        "net.4.weight": (10, 16),
        "net.4.bias": (10,),
    }
    layers = build_model(spec).net
    assert [type(m).__name__ for m in layers] == ["Linear", "ReLU", "Linear", "ReLU", "Linear"]


def test_lenet_layout_and_forward():
    spec = ArchSpec("lenet", {"in_channels": 3, "num_classes": 10})
    assert _shapes(spec) == {
        "conv1.weight": (6, 3, 5, 5),
        "conv1.bias": (6,),
        "conv2.weight": (16, 6, 5, 5),
        "conv2.bias": (16,),
        "fc1.weight": (120, 400),
        "fc1.bias": (120,),
        "fc2.weight": (84, 120),
        "fc2.bias": (84,),
        "fc3.weight": (10, 84),
        "fc3.bias": (10,),
    }
    x = prepare_inputs(spec, torch.rand(2, 3 * 32 * 32))
    assert build_model(spec)(x).shape == (2, 10)


def test_resnet18_layout_and_forward():
    spec = ArchSpec("resnet18", {"in_channels": 1, "num_classes": 7})
    shapes = _shapes(spec)
    assert shapes["conv1.weight"] == (64, 1, 3, 3)
    assert shapes["bn1.running_mean"] == (64,)
    assert shapes["layer1.0.conv1.weight"] == (64, 64, 3, 3)
    assert "layer1.0.shortcut.0.weight" not in shapes
    assert shapes["layer2.0.shortcut.0.weight"] == (128, 64, 1, 1)
    assert shapes["layer2.0.shortcut.1.running_var"] == (128,)
    assert shapes["layer4.1.bn2.weight"] == (512,)
    assert shapes["linear.weight"] == (7, 512)
    params = sum(p.numel() for p in build_model(spec).parameters())
    assert 11_000_000 < params < 11_300_000  # ResNet-18 size
    model = build_model(spec).eval()
    assert model(prepare_inputs(spec, torch.rand(2, 1, 32, 32))).shape == (2, 7)


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        (ArchSpec("vgg", {}), "unknown architecture"),
        (ArchSpec("logreg", {"in_features": 64}), "missing config keys ['num_classes']"),
        (ArchSpec("logreg", {"in_features": 64, "num_classes": 10, "depth": 3}), "unknown config keys"),
        (ArchSpec("mlp", {"in_features": 64, "hidden": [], "num_classes": 10}), "hidden"),
        (ArchSpec("mlp", {"in_features": 64, "hidden": [8, 0], "num_classes": 10}), "positive integer"),
        (ArchSpec("logreg", {"in_features": "64", "num_classes": 10}), "in_features"),
        (ArchSpec("lenet", {"num_classes": 1}), "at least 2"),
        (ArchSpec("mlp", {"in_features": 64, "hidden": [4] * 257, "num_classes": 10}), "at most 256 layers"),
    ],
)
def test_validate_spec_rejects_bad_specs(spec, fragment):
    with pytest.raises(ZooError) as err:
        validate_spec(spec)
    assert fragment in str(err.value)
    assert isinstance(err.value, ValueError)


@pytest.mark.parametrize(
    "spec",
    [
        ArchSpec("logreg", {"in_features": 64, "num_classes": 10}),
        ArchSpec("mlp", {"in_features": 64, "hidden": [32, 16, 8], "num_classes": 10}),
        ArchSpec("lenet", {"in_channels": 1, "num_classes": 7}),
        ArchSpec("resnet18", {"in_channels": 3, "num_classes": 10}),
    ],
)
def test_parameter_count_is_the_state_dict_size(spec):
    assert parameter_count(spec) == sum(t.numel() for t in build_model(spec).state_dict().values())


def test_parameter_count_of_huge_configs_allocates_nothing():
    mlp = ArchSpec("mlp", {"in_features": 10**6, "hidden": [10**6] * 3, "num_classes": 10**6})
    assert parameter_count(mlp) == 4 * (10**6 + 1) * 10**6
    resnet = ArchSpec("resnet18", {"in_channels": 3, "num_classes": 10**10})  # built on the meta device
    assert parameter_count(resnet) == parameter_count(ArchSpec("resnet18", {})) + 513 * (10**10 - 10)


def test_cnn_defaults():
    validate_spec(ArchSpec("lenet", {}))
    assert expected_feature_count(ArchSpec("lenet", {})) == 3 * 32 * 32
    assert expected_feature_count(ArchSpec("resnet18", {"in_channels": 1})) == 32 * 32


def test_validate_checkpoint_accepts_own_state_dict():
    spec = ArchSpec("resnet18", {"in_channels": 3, "num_classes": 10})
    validate_checkpoint(spec, build_model(spec).state_dict())


def test_validate_checkpoint_names_every_problem():
    spec = ArchSpec("mlp", {"in_features": 64, "hidden": [32], "num_classes": 10})
    tensors = dict(build_model(spec).state_dict())
    del tensors["net.0.bias"]
    tensors["net.9.weight"] = torch.zeros(3)
    tensors["net.2.weight"] = torch.zeros(10, 31)
    tensors["net.2.bias"] = torch.zeros(10, dtype=torch.float16)
    with pytest.raises(CheckpointMismatch) as err:
        validate_checkpoint(spec, tensors)
    e = err.value
    assert e.missing == ["net.0.bias"]
    assert e.unexpected == ["net.9.weight"]
    assert [m[0] for m in e.misshaped] == ["net.2.bias", "net.2.weight"]
    message = str(e)
    for fragment in ("net.0.bias", "net.9.weight", "net.2.weight", "(10, 31)", "(10, 32)", "float16"):
        assert fragment in message


def test_prepare_inputs_flattens_and_reshapes():
    mlp = ArchSpec("mlp", {"in_features": 64, "hidden": [8], "num_classes": 10})
    assert prepare_inputs(mlp, torch.rand(5, 8, 8)).shape == (5, 64)
    lenet = ArchSpec("lenet", {"in_channels": 1, "num_classes": 10})
    flat = torch.rand(4, 1024)
    img = prepare_inputs(lenet, flat)
    assert img.shape == (4, 1, 32, 32)
    assert torch.equal(img[1, 0, 3], flat[1, 96:128])  # row-major reshape
    assert prepare_inputs(mlp, torch.randint(0, 16, (2, 64))).dtype == torch.float32


def test_prepare_inputs_explains_impossible_shapes():
    lenet = ArchSpec("lenet", {"in_channels": 3, "num_classes": 10})
    with pytest.raises(ZooError, match=r"lenet expects 3072 numbers per row \(\[3,32,32\]\), got rows of shape 64"):
        prepare_inputs(lenet, torch.rand(2, 64))
    with pytest.raises(ZooError, match="expects 64 numbers"):
        prepare_inputs(ArchSpec("logreg", {"in_features": 64, "num_classes": 10}), torch.rand(2, 63))
