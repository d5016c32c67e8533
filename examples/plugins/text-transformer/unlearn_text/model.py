"""A small transformer encoder classifier over token ids.

One encoder layer of "Attention Is All You Need" (Vaswani et al., 2017) in the pre-LayerNorm arrangement (Xiong et
al., 2020), with learned position embeddings and a masked mean pool over the non-padding tokens. Attention is
written out with matmul and softmax rather than a fused kernel, so the service can differentiate it twice (its
training penalises the gradient norm; fused CPU attention kernels have no double backward).
"""

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class SelfAttention(nn.Module):
    def __init__(self, embed_dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(embed_dim, 3 * embed_dim)
        self.proj = nn.Linear(embed_dim, embed_dim)

    def forward(self, x: Tensor, pad: Tensor) -> Tensor:
        b, length, d = x.shape  # (B, L, D)
        q, k, v = self.qkv(x).split(d, dim=2)  # 3 x (B, L, D)
        q, k, v = (t.view(b, length, self.heads, d // self.heads).transpose(1, 2) for t in (q, k, v))  # (B, H, L, Dh)
        att = (q @ k.transpose(-2, -1)) / math.sqrt(d // self.heads)  # (B, H, L, L)
        # padding keys get the smallest finite score (not -inf: a row of padding alone must not give NaN)
        att = att.masked_fill(pad[:, None, None, :], torch.finfo(att.dtype).min)
        y = F.softmax(att, dim=-1) @ v  # (B, H, L, Dh)
        return self.proj(y.transpose(1, 2).reshape(b, length, d))  # (B, L, D)


class EncoderLayer(nn.Module):
    def __init__(self, embed_dim: int, heads: int, ff_dim: int):
        super().__init__()
        self.ln1 = nn.LayerNorm(embed_dim)
        self.attn = SelfAttention(embed_dim, heads)
        self.ln2 = nn.LayerNorm(embed_dim)
        self.ff = nn.Sequential(nn.Linear(embed_dim, ff_dim), nn.GELU(), nn.Linear(ff_dim, embed_dim))

    def forward(self, x: Tensor, pad: Tensor) -> Tensor:
        x = x + self.attn(self.ln1(x), pad)  # (B, L, D)
        return x + self.ff(self.ln2(x))  # (B, L, D)


class TextEncoderClassifier(nn.Module):
    def __init__(
        self, vocab_size: int, max_length: int, num_classes: int, embed_dim: int, heads: int, ff_dim: int, pad_id: int
    ):
        super().__init__()
        self.pad_id = pad_id
        self.embed = nn.Embedding(vocab_size, embed_dim)
        self.position = nn.Embedding(max_length, embed_dim)
        self.encoder = EncoderLayer(embed_dim, heads, ff_dim)
        self.norm = nn.LayerNorm(embed_dim)
        self.head = nn.Linear(embed_dim, num_classes)

    def forward(self, ids: Tensor) -> Tensor:
        pad = ids == self.pad_id  # (B, L) bool
        positions = torch.arange(ids.shape[1], device=ids.device)  # (L,)
        x = self.embed(ids) + self.position(positions)  # (B, L, D)
        x = self.norm(self.encoder(x, pad))  # (B, L, D)
        keep = (~pad).unsqueeze(-1).to(x.dtype)  # (B, L, 1)
        pooled = (x * keep).sum(dim=1) / keep.sum(dim=1).clamp(min=1.0)  # (B, D): mean over real tokens
        return self.head(pooled)  # (B, K)
