"""Building, checking and feeding modules of installed architectures: every failure of plugin code is a
PluginError naming the architecture and the step; input contracts name the mismatch."""

import pytest
import torch

from tests.unlearn_contract.sample_plugins import sample_registry  # noqa: F401 - fixture
from unlearn_contract import InputContract, PluginError, RowsInfo
from unlearn_contract import modules as m


def test_a_working_plugin_is_counted_checked_and_fed(sample_registry):  # noqa: F811
    arch = m.resolve("tiny", {"width": 5})
    assert arch.config_dict() == {"width": 5, "num_classes": 3} and arch.version == "9.9"
    assert m.parameter_count(arch) == 5 * 3 + 3
    assert m.probe_classes(arch, RowsInfo((5,), "float32")) == 3
    assert m.prepare_inputs(arch, torch.ones(2, 5, dtype=torch.float64)).dtype == torch.float32


@pytest.mark.parametrize(
    ("name", "config", "fragment"),
    [
        ("raises-in-build", {}, "failed to build: RuntimeError: the backbone weights are missing"),
        ("not-a-module", {}, "build() returned dict, not a torch.nn.Module"),
        ("wrong-output", {}, "returned (2, 3, 1) float32; expected float logits of shape (2, K)"),
        ("raises-in-forward", {}, "failed to run a forward pass on rows of shape [4]: ValueError: shape mismatch"),
        ("trains-nothing", {}, "trainable() names no parameter of the module: ['backbone']"),
        ("bad-contract", {}, "inputs() returned tuple, not an InputContract"),
        ("picky", {"width": 3}, "picky: config 'width': width must be even"),
        ("tiny", {"width": 0}, "tiny: config 'width': Input should be greater than or equal to 1"),
        ("tiny", {"depth": 2}, "tiny: unknown config keys ['depth']"),
        ("raising-validator", {"width": 4}, "config validation raised KeyError"),
        ("not-an-architecture", {}, "installed but unavailable"),
    ],
)
def test_every_failure_of_plugin_code_is_a_plugin_error(sample_registry, name, config, fragment):  # noqa: F811
    with pytest.raises(PluginError) as err:
        m.probe_classes(m.resolve(name, config), RowsInfo((4,), "float32"))
    assert fragment in str(err.value)
    if name not in ("picky", "tiny", "raising-validator", "not-an-architecture"):
        assert f"architecture {name} (entry point" in str(err.value)  # names the plugin and its source


@pytest.mark.parametrize(
    ("contract", "rows", "fragment"),
    [
        (InputContract("int64", (8,)), RowsInfo((8,), "float32"), "takes int64 ids but the data set's features are"),
        (InputContract("float", (8,)), RowsInfo((8,), "int64", (0, 3)), "takes float rows"),
        (InputContract("int64", (8,)), RowsInfo((9,), "int64", (0, 3)), "expects rows of shape [8]"),
        (InputContract("float", (None, 4)), RowsInfo((7, 5), "float16"), "shape [any,4] but the data set's rows"),
        (InputContract("float", (3, 32, 32), reshape=True), RowsInfo((64,), "float32"), "expects 3072 numbers"),
        (
            InputContract("int64", (8,), min_value=0, max_value=99),
            RowsInfo((8,), "int64", (0, 100)),
            "takes ids from 0 to 99 but the data set's features range from 0 to 100",
        ),
    ],
)
def test_input_contracts_name_the_mismatch(contract, rows, fragment):
    assert fragment in contract.mismatch(rows)


def test_input_contracts_accept_what_fits():
    assert InputContract("float", (None, 4)).mismatch(RowsInfo((7, 4), "bfloat16")) is None
    assert InputContract("float", (1, 8, 8), reshape=True).mismatch(RowsInfo((64,), "float64")) is None
    ids = InputContract("int64", (8,), min_value=0, max_value=99)
    assert ids.mismatch(RowsInfo((8,), "int64", (0, 99))) is None
    with pytest.raises(PluginError):
        InputContract("float", (None, 4), reshape=True)
    with pytest.raises(PluginError):
        InputContract("text", (4,))


def test_token_ids_stay_integers_and_floats_are_refused():
    arch = m.resolve("text-transformer", {"vocab_size": 50, "max_length": 6, "num_classes": 2})
    ids = torch.tensor([[3, 4, 0, 0, 0, 0]], dtype=torch.int32)
    assert m.prepare_inputs(arch, ids).dtype == torch.int64
    with pytest.raises(PluginError, match="takes int64 ids, got float32 rows"):
        m.prepare_inputs(arch, ids.float())
    with pytest.raises(PluginError, match=r"expects rows of shape \[6\], got \[5\]"):
        m.prepare_inputs(arch, ids[:, :5])


def test_frozen_parameters_keep_their_values_and_statistics_in_training_mode():
    arch = m.resolve("frozen-cnn", {"num_classes": 10})
    state = m.initial_state(arch, seed=3)
    pretrained = arch.plugin.pretrained(arch.config)
    assert all(torch.equal(state[k], v) for k, v in pretrained.items())  # the shipped backbone, not a random one
    model = m.train_mode(m.load_module(arch, state, torch.device("cpu")))
    assert [k for k, p in model.named_parameters() if p.requires_grad] == ["head.weight", "head.bias"]
    assert not model.backbone.training and model.head.training
    model(torch.rand(16, 1, 8, 8))  # a training-mode forward pass
    after = model.state_dict()
    assert all(torch.equal(after[k], v) for k, v in pretrained.items())  # BatchNorm running statistics included


def test_modules_with_non_persistent_buffers_are_built_for_real():
    class Scaled(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = torch.nn.Linear(4, 2)
            self.register_buffer("scale", torch.full((4,), 2.0), persistent=False)

        def forward(self, x):
            return self.linear(x * self.scale)

    from tests.unlearn_contract.sample_plugins import TinyConfig
    from unlearn_contract import Architecture

    class Plugin(Architecture):
        name = "scaled"
        Config = TinyConfig

        def build(self, config):
            return Scaled()

        def inputs(self, config):
            return InputContract("float", (4,))

    arch = m.Resolved("scaled", Plugin(), "1", "test", TinyConfig())
    state = Scaled().state_dict()
    assert "scale" not in state
    model = m.load_module(arch, state, torch.device("cpu"))
    assert torch.equal(model.scale, torch.full((4,), 2.0))  # not the garbage of an empty materialisation
