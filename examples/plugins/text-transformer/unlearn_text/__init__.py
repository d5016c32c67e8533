"""The `text-transformer` architecture plugin: token ids (N, L) int64 -> class logits (N, K).

The whole plugin is this class: a pydantic config validated when a model is registered, `build`, and the input
contract (rows of `max_length` token ids between 0 and vocab_size - 1, `pad_id` marking padding).
"""

from pydantic import BaseModel, ConfigDict, Field, model_validator

from unlearn_contract import Architecture, InputContract
from unlearn_text.model import TextEncoderClassifier

__all__ = ["TextConfig", "TextEncoderClassifier", "TextTransformer"]


class TextConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    vocab_size: int = Field(ge=2, le=1_000_000, description="token ids are 0 .. vocab_size - 1")
    max_length: int = Field(ge=1, le=4096, description="tokens per row; shorter texts are padded with pad_id")
    num_classes: int = Field(ge=2, le=100_000)
    embed_dim: int = Field(default=32, ge=4, le=4096, description="width of embeddings and attention")
    heads: int = Field(default=2, ge=1, le=64, description="attention heads; must divide embed_dim")
    ff_dim: int = Field(default=64, ge=1, le=16384, description="hidden width of the feed-forward block")
    pad_id: int = Field(default=0, ge=0, description="the padding token: ignored by attention and pooling")

    @model_validator(mode="after")
    def _fits(self) -> "TextConfig":
        if self.embed_dim % self.heads:
            raise ValueError(f"embed_dim ({self.embed_dim}) must be a multiple of heads ({self.heads})")
        if self.pad_id >= self.vocab_size:
            raise ValueError(f"pad_id ({self.pad_id}) must be below vocab_size ({self.vocab_size})")
        return self


class TextTransformer(Architecture):
    name = "text-transformer"
    version = "0.1.0"
    Config = TextConfig
    description = "token embedding + learned positions, one pre-LN transformer encoder layer, masked mean pool, linear"
    input_dtype = "int64"
    input_description = "int64 rows of max_length token ids in [0, vocab_size - 1], padded with pad_id"

    def build(self, config: TextConfig) -> TextEncoderClassifier:
        return TextEncoderClassifier(
            vocab_size=config.vocab_size,
            max_length=config.max_length,
            num_classes=config.num_classes,
            embed_dim=config.embed_dim,
            heads=config.heads,
            ff_dim=config.ff_dim,
            pad_id=config.pad_id,
        )

    def inputs(self, config: TextConfig) -> InputContract:
        return InputContract("int64", (config.max_length,), min_value=0, max_value=config.vocab_size - 1)
