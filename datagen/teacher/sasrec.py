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

    def forward_rows(self, x: torch.Tensor, qkv: torch.Tensor, allowed: torch.Tensor, rows: torch.Tensor, kept: torch.Tensor | None = None) -> torch.Tensor:
        """forward at the flattened positions `rows` that hold an item, given as x = [len(rows), dim]; only the
        positions `rows[kept]` come out when `kept` is given.

        The position-wise layers run on those positions alone. `qkv` ([batch, length, 3 * dim]) takes their
        queries, keys and values; its other positions must hold finite values (0): a masked key adds exactly 0
        to a query's attention.
        """
        batch, length, dim = qkv.shape[0], qkv.shape[1], x.shape[1]
        qkv.view(batch * length, 3 * dim)[rows] = self.attention.qkv(self.attention_norm(x))
        mixed = self.attention.mix(qkv, allowed).reshape(batch * length, dim)
        if kept is not None:
            x, rows = x[kept], rows[kept]
        x = x + self.dropout(self.attention.out(mixed[rows]))
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
        history = self._window(history)
        length = history.shape[1]
        tokens = history + 1
        present = tokens > 0
        positions = torch.arange(self.config.max_history - length, self.config.max_history, device=history.device)
        x = self.item_embedding(tokens) * self.config.dim**0.5 + self.position_embedding(positions)
        x = self.embedding_dropout(x) * present.unsqueeze(-1)
        allowed = self._allowed(present)
        for block in self.blocks:
            x = block(x, allowed) * present.unsqueeze(-1)
        return self.final_norm(x)

    def last_hidden_state(self, history: torch.Tensor) -> torch.Tensor:
        """hidden_states(history)[:, -1] ([batch, dim]) for a fraction of the work: the blocks compute only the
        positions that hold an item, and the last block only each history's last one. On CPU it equals the slice
        of hidden_states to the bit (tests/test_teacher_ranking.py), so the labels made from it do not change.
        """
        history = self._window(history)
        batch, length = history.shape
        present = history >= 0
        rows = present.reshape(-1).nonzero().squeeze(1)
        nonempty = present[:, -1].nonzero().squeeze(1)  # histories are left-padded: the last position holds an item
        if min(len(rows), len(nonempty)) < MIN_PARTIAL_ROWS:
            return self.hidden_states(history)[:, -1]
        positions = rows % length + (self.config.max_history - length)
        x = self.embedding_dropout(self.item_embedding(history.reshape(-1)[rows] + 1) * self.config.dim**0.5 + self.position_embedding(positions))
        # as an additive mask, which attention would otherwise make from the bool one in every block
        allowed = x.new_zeros(batch, 1, length, length).masked_fill_(~self._allowed(present), -torch.inf)
        qkv = x.new_zeros(batch, length, 3 * self.config.dim)
        for block in self.blocks[:-1]:
            x = block.forward_rows(x, qkv, allowed, rows)
        last_rows = present.sum(1).cumsum(0)[nonempty] - 1  # each history's last position, as an index into rows
        last = x.new_zeros(batch, self.config.dim)
        last[nonempty] = self.blocks[-1].forward_rows(x, qkv, allowed, rows, kept=last_rows)
        return self.final_norm(last)

    def _window(self, history: torch.Tensor) -> torch.Tensor:
        """The last max_history positions of `history`."""
        return history[:, -self.config.max_history :] if history.shape[1] > self.config.max_history else history

    def _allowed(self, present: torch.Tensor) -> torch.Tensor:
        """[batch, 1, length, length] attention mask: each position sees the earlier positions that hold an item."""
        length = present.shape[1]
        causal = torch.ones(length, length, dtype=torch.bool, device=present.device).tril()
        # A padded query sees only itself, so no attention row is empty (an empty row gives NaN).
        allowed = causal & (present.unsqueeze(1) | torch.eye(length, dtype=torch.bool, device=present.device))
        return allowed.unsqueeze(1)

    def item_scores(self, hidden: torch.Tensor) -> torch.Tensor:
        """[..., dim] -> [..., n_items]: dot products with every item's embedding."""
        return hidden @ self.item_embedding.weight[1:].T

    def score_next(self, history: torch.Tensor) -> torch.Tensor:
        """Scores of every item as the next one after each (left-padded) history."""
        return self.item_scores(self.last_hidden_state(history))
