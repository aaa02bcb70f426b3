"""SASRec (Kang & McAuley 2018): causal self-attention over a user's recent items.

Items are embedded (id + 1; 0 is padding), positions are learned, and each
position's output is scored against the same item embeddings (shared
input/output embeddings), so `scores[b, i]` is the model's belief that item
`i` comes next after `history[b]`.

    >>> model = SASRec(SASRecConfig(n_items=100))
    >>> history = torch.tensor([[-1, -1, 3, 7, 42]])   # left-padded with -1
    >>> model.score_next(history).shape
    torch.Size([1, 100])
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from datagen.teacher.settings import SASRecConfig


class CausalSelfAttention(nn.Module):
    def __init__(self, dim: int, heads: int, dropout: float):
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} is not divisible by heads {heads}")
        self.heads = heads
        self.dropout = dropout
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        batch, length, dim = x.shape
        q, k, v = self.qkv(x).view(batch, length, 3, self.heads, dim // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, dropout_p=self.dropout if self.training else 0.0)
        return self.out(y.transpose(1, 2).reshape(batch, length, dim))


class Block(nn.Module):
    """Pre-norm transformer block: attention, then a two-layer feed-forward net."""

    def __init__(self, config: SASRecConfig):
        super().__init__()
        self.attention_norm = nn.LayerNorm(config.dim)
        self.attention = CausalSelfAttention(config.dim, config.heads, config.dropout)
        self.feed_forward_norm = nn.LayerNorm(config.dim)
        self.feed_forward = nn.Sequential(
            nn.Linear(config.dim, config.inner_dim),
            nn.GELU(),
            nn.Dropout(config.dropout),
            nn.Linear(config.inner_dim, config.dim),
        )
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        x = x + self.dropout(self.attention(self.attention_norm(x), allowed))
        return x + self.dropout(self.feed_forward(self.feed_forward_norm(x)))


class SASRec(nn.Module):
    def __init__(self, config: SASRecConfig):
        super().__init__()
        self.config = config
        self.item_embedding = nn.Embedding(config.n_items + 1, config.dim, padding_idx=0)
        self.position_embedding = nn.Embedding(config.max_history, config.dim)
        self.embedding_dropout = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.layers))
        self.final_norm = nn.LayerNorm(config.dim)
        nn.init.normal_(self.item_embedding.weight, std=config.dim**-0.5)
        with torch.no_grad():
            self.item_embedding.weight[0].zero_()

    def hidden_states(self, history: torch.Tensor) -> torch.Tensor:
        """[batch, length] item ids, -1 = padding (on the left) -> [batch, length, dim].

        Position t attends to positions <= t that hold an item, never to a later one.
        """
        length = history.shape[1]
        if length > self.config.max_history:
            history = history[:, -self.config.max_history :]
            length = self.config.max_history
        tokens = history + 1
        present = tokens > 0
        positions = torch.arange(self.config.max_history - length, self.config.max_history, device=history.device)
        x = self.item_embedding(tokens) * self.config.dim**0.5 + self.position_embedding(positions)
        x = self.embedding_dropout(x) * present.unsqueeze(-1)
        causal = torch.ones(length, length, dtype=torch.bool, device=history.device).tril()
        # A padded query sees only itself, so no attention row is empty (an empty row gives NaN).
        allowed = causal & (present.unsqueeze(1) | torch.eye(length, dtype=torch.bool, device=history.device))
        allowed = allowed.unsqueeze(1)
        for block in self.blocks:
            x = block(x, allowed) * present.unsqueeze(-1)
        return self.final_norm(x)

    def item_scores(self, hidden: torch.Tensor) -> torch.Tensor:
        """[..., dim] -> [..., n_items]: dot products with every item's embedding."""
        return hidden @ self.item_embedding.weight[1:].T

    def score_next(self, history: torch.Tensor) -> torch.Tensor:
        """Scores of every item as the next one after each (left-padded) history."""
        return self.item_scores(self.hidden_states(history)[:, -1])
