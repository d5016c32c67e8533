"""Checkpoints written by the engine before architectures became plugins still load, unchanged, through the
built-in plugin: same names, configs, state_dict layouts, and the same logits on the same rows.

The fixtures (tests/workers/engine/fixtures, see its README) were written by the old fixed zoo and are never
regenerated."""

import json
from pathlib import Path

import pytest
import torch

from workers.engine import ArchSpec, TrainConfig, load_checkpoint, prepare_inputs, sha256_file, train
from workers.engine.data import load_digits_split
from workers.engine.zoo import expected_layout, load_model, validate_checkpoint

FIXTURES = Path(__file__).parent / "fixtures"
MANIFEST = json.loads((FIXTURES / "legacy.json").read_text())
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def probe():
    return load_checkpoint(FIXTURES / "legacy-probe.safetensors")


@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_a_checkpoint_from_the_fixed_zoo_loads_and_predicts_as_before(name, probe):
    entry = MANIFEST[name]
    path = FIXTURES / f"legacy-{name}.safetensors"
    assert sha256_file(path) == entry["sha256"], "the fixture itself changed"
    spec = ArchSpec(entry["architecture"]["name"], entry["architecture"]["config"])
    state = load_checkpoint(path)
    validate_checkpoint(spec, state)  # names, shapes and dtypes as the old layout
    assert {k: (tuple(v.shape), v.dtype) for k, v in state.items()} == expected_layout(spec)
    model = load_model(spec, state, CPU)
    with torch.no_grad():
        logits = model(prepare_inputs(spec, probe[f"{name}.inputs"]))
    torch.testing.assert_close(logits, probe[f"{name}.logits"], rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", ["logreg", "mlp"])
def test_training_with_the_same_recipe_gives_the_same_weights(name):
    """Initialisation draws the same numbers in the same order as the fixed zoo did."""
    entry = MANIFEST[name]
    spec = ArchSpec(entry["architecture"]["name"], entry["architecture"]["config"])
    x, y, _, _ = load_digits_split(0.3, 0)
    state = train(spec, x[:200], y[:200], TrainConfig(epochs=2, batch_size=64, lr=1e-2, alpha=0.0, seed=0), CPU)
    legacy = load_checkpoint(FIXTURES / f"legacy-{name}.safetensors")
    for key, value in legacy.items():
        torch.testing.assert_close(state[key], value, rtol=1e-5, atol=1e-6)
