"""The `frozen-cnn` architecture plugin: transfer learning with a frozen feature extractor.

A small CNN backbone, pretrained on the first 900 images of scikit-learn's digits (see pretrain.py) and shipped with
the package as safetensors, turns each 8x8 image into 128 features; a head (linear, or one hidden layer) maps them
to class logits. `trainable` names the head alone, so the service trains, unlearns and retrains only the head and
the backbone's weights and BatchNorm statistics never change. `pretrained` hands the service the backbone's
weights when it trains a model from scratch.

A deletion can only remove what the trainable part learned: the backbone must come from data no deletion will ever
name (here, images the example data sets do not contain).
"""

from importlib.resources import files

from pydantic import BaseModel, ConfigDict, Field
from safetensors.torch import load_file

from unlearn_contract import Architecture, InputContract
from unlearn_transfer.model import FEATURES, FrozenBackboneClassifier

WEIGHTS = "backbone.safetensors"

__all__ = ["FrozenCNN", "FrozenCNNConfig", "FrozenBackboneClassifier"]


class FrozenCNNConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    num_classes: int = Field(default=10, ge=2, le=100_000)
    hidden: int = Field(default=0, ge=0, le=4096, description="0: a linear head; else one hidden ReLU layer")


class FrozenCNN(Architecture):
    name = "frozen-cnn"
    version = "0.1.0"
    Config = FrozenCNNConfig
    description = f"pretrained digits CNN backbone (frozen, {FEATURES} features) with a trainable head"
    input_dtype = "float"
    input_description = "float rows of 64 numbers in [0, 1]: 8x8 grayscale images, flat or shaped [1,8,8]"

    def build(self, config: FrozenCNNConfig) -> FrozenBackboneClassifier:
        return FrozenBackboneClassifier(config.num_classes, config.hidden)

    def inputs(self, config: FrozenCNNConfig) -> InputContract:
        return InputContract("float", (1, 8, 8), reshape=True)

    def trainable(self, config: FrozenCNNConfig) -> list[str]:
        return ["head"]

    def pretrained(self, config: FrozenCNNConfig) -> dict:
        weights = load_file(str(files("unlearn_transfer") / WEIGHTS))  # safetensors: never unpickled
        return {f"backbone.{k}": v for k, v in weights.items()}
