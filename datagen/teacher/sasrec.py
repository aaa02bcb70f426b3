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

# CPU BLAS multiplies a few rows with other kernels than many, which round differently in the last bits; a batch
# with fewer histories or positions than this takes the full pass, so a product never shrinks to a few rows.
MIN_PARTIAL_ROWS = 64


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
        return self.out(self.mix(self.qkv(x), allowed))

    def mix(self, qkv: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        """[batch, length, 3 * dim] queries, keys and values -> [batch, length, dim]: the heads' outputs, not yet projected."""
        batch, length, dim = qkv.shape[0], qkv.shape[1], qkv.shape[2] // 3
        q, k, v = qkv.view(batch, length, 3, self.heads, dim // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, dropout_p=self.dropout if self.training else 0.0)
        return y.transpose(1, 2).reshape(batch, length, dim)


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

    def forward_at(self, x: torch.Tensor, allowed: torch.Tensor, rows: torch.Tensor, last_only: bool) -> torch.Tensor:
        """forward(x, allowed) at the flattened positions `rows` ([batch, length, dim], 0 elsewhere), or, when
        `last_only`, at the last position of each history ([batch, dim]).

        The position-wise layers run on those positions alone. A masked key adds exactly 0 to a query's
        attention, so the keys and values of the other positions are left 0.
        """
        batch, length, dim = x.shape
        flat = x.reshape(batch * length, dim)
        qkv = flat.new_zeros(batch * length, 3 * dim)
        qkv[rows] = self.attention.qkv(self.attention_norm(flat[rows]))
        mixed = self.attention.mix(qkv.view(batch, length, 3 * dim), allowed)
        if last_only:
            last = x[:, -1] + self.dropout(self.attention.out(mixed[:, -1]))
            return last + self.dropout(self.feed_forward(self.feed_forward_norm(last)))
        kept = flat[rows] + self.dropout(self.attention.out(mixed.reshape(batch * length, dim)[rows]))
        out = flat.new_zeros(batch * length, dim)
        out[rows] = kept + self.dropout(self.feed_forward(self.feed_forward_norm(kept)))
        return out.view(batch, length, dim)


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
        x, present, allowed = self._embedded(history)
        for block in self.blocks:
            x = block(x, allowed) * present.unsqueeze(-1)
        return self.final_norm(x)

    def last_hidden_state(self, history: torch.Tensor) -> torch.Tensor:
        """hidden_states(history)[:, -1] ([batch, dim]) for a fraction of the work: the blocks compute only the
        positions that hold an item, and the last block only the last position. On CPU it equals the slice of
        hidden_states to the bit (tests/test_teacher_ranking.py), so the labels made from it do not change.
        """
        x, present, allowed = self._embedded(history)
        rows = present.reshape(-1).nonzero().squeeze(1)
        if min(len(rows), len(history)) < MIN_PARTIAL_ROWS:
            return self.hidden_states(history)[:, -1]
        for block in self.blocks[:-1]:
            x = block.forward_at(x, allowed, rows, last_only=False)
        return self.final_norm(self.blocks[-1].forward_at(x, allowed, rows, last_only=True) * present[:, -1:])

    def _embedded(self, history: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The embedded positions [batch, length, dim] (0 where padded), which hold an item [batch, length], and the
        attention mask [batch, 1, length, length] of the last max_history positions of `history`."""
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
        return x, present, allowed.unsqueeze(1)

    def item_scores(self, hidden: torch.Tensor) -> torch.Tensor:
        """[..., dim] -> [..., n_items]: dot products with every item's embedding."""
        return hidden @ self.item_embedding.weight[1:].T

    def score_next(self, history: torch.Tensor) -> torch.Tensor:
        """Scores of every item as the next one after each (left-padded) history."""
        return self.item_scores(self.last_hidden_state(history))
