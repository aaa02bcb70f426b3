"""The losses SASRec can be trained with: full softmax, sampled softmax, and the paper's binary cross-entropy.

- `softmax`: cross-entropy over every item at every position (as the UniRec
  SASRec of Lu et al.'s code). Exact, but time and memory grow with
  positions x items.
- `sampled-softmax`: cross-entropy over the target and `negatives` items drawn
  once per batch (shared by every position) from a mix of train popularity and
  uniform, with the logQ correction (Yi et al. 2019) so that it estimates the
  full softmax; a drawn negative equal to the position's target is masked out.
  Cost grows with positions x negatives; memory is bounded in the number of items.
- `bce`: Kang & McAuley 2018, the paper's own objective: one uniformly drawn
  negative per position, binary cross-entropy on the target and on it.

The two softmax objectives take `label_smoothing` (as `F.cross_entropy`'s: that
share of the target's probability spread evenly over the candidates).

`auto` picks `softmax` up to `FULL_SOFTMAX_MAX_ITEMS` items and
`sampled-softmax` above (see `datagen.teacher.settings.resolve_objective`).

    >>> loss_fn = TrainingObjective("sampled-softmax", popularity, negatives=2048, generator=generator)  # doctest: +SKIP
    >>> loss = loss_fn(model, hidden, targets)  # doctest: +SKIP
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from datagen.teacher.evaluate import batch_rows
from datagen.teacher.sasrec import SASRec
from datagen.teacher.tensors import PAD

# sampled-softmax draws from half train popularity, half uniform: popular negatives are the hard
# ones, uniform ones keep pushing down the long tail (never-seen items included). In single runs
# on Amazon Games the mix ranked better than uniform alone, and than popularity alone (that one at
# dropout 0.2 rather than 0.5); docs/results.md, Benchmarks.
UNIFORM_SHARE = 0.5
# The full softmax's logits are computed for this many scores at a time (16 MiB of float32): glibc
# hands larger blocks to the kernel on free and page-faults them in anew for the next batch, which
# cost a third of the CPU on Amazon Games; blocks this size are reused from the heap.
SCORES_PER_CHUNK = 1 << 22


class TrainingObjective:
    """`objective(model, hidden [B, L, d], targets [B, L]) -> summed loss over the non-padding positions`.

    A sum, not a mean: batches of short windows hold fewer positions, and the
    trainer divides by the mean number of positions per batch, so that every
    position weighs the same whatever the length of the batch it fell into.
    """

    def __init__(self, name: str, popularity: torch.Tensor, negatives: int, generator: torch.Generator, label_smoothing: float = 0.0):
        self.name = name
        self.negatives = negatives
        self.label_smoothing = label_smoothing
        self.generator = generator
        popular = popularity.double() / popularity.double().sum().clamp_min(1)
        proposal = (1 - UNIFORM_SHARE) * popular + UNIFORM_SHARE / len(popularity)
        self.proposal = (proposal / proposal.sum()).float()
        self.log_proposal = self.proposal.log()

    def __call__(self, model: SASRec, hidden: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        present = targets != PAD
        if self.name == "softmax":
            return self._full_softmax(model, hidden[present], targets[present], self.label_smoothing)
        embeddings = model.item_embedding.weight[1:]
        safe_targets = targets.clamp_min(0)
        positive = (hidden * embeddings[safe_targets]).sum(-1)
        if self.name == "bce":
            drawn = torch.randint(0, embeddings.shape[0] - 1, targets.shape, generator=self.generator)
            drawn = (drawn + (drawn >= safe_targets.cpu()).long()).to(targets.device)  # uniform over the other items
            negative = (hidden * embeddings[drawn]).sum(-1)
            losses = F.softplus(-positive) + F.softplus(negative)
            return (losses * present).sum()
        drawn = torch.multinomial(self.proposal, self.negatives, replacement=True, generator=self.generator).to(targets.device)
        log_proposal = self.log_proposal.to(targets.device)
        negative = hidden @ embeddings[drawn].T - log_proposal[drawn]
        negative = negative.masked_fill(drawn == safe_targets.unsqueeze(-1), float("-inf"))
        logits = torch.cat([(positive - log_proposal[safe_targets]).unsqueeze(-1), negative], dim=-1)
        log_probabilities = torch.log_softmax(logits, dim=-1)
        losses = -log_probabilities[..., 0]
        if self.label_smoothing:
            # as F.cross_entropy's label_smoothing, over the candidates that were not masked out
            candidates = torch.isfinite(logits)
            spread = -log_probabilities.masked_fill(~candidates, 0).sum(-1) / candidates.sum(-1)
            losses = (1 - self.label_smoothing) * losses + self.label_smoothing * spread
        return (losses * present).sum()

    @staticmethod
    def _full_softmax(model: SASRec, hidden: torch.Tensor, targets: torch.Tensor, label_smoothing: float) -> torch.Tensor:
        """Cross-entropy over every item at the non-padding positions ([P, d], [P]), summed, a chunk of positions at a time."""
        rows = batch_rows(model.config.n_items, most=max(len(hidden), 1), scores=SCORES_PER_CHUNK)
        return sum(F.cross_entropy(model.item_scores(part), part_targets, reduction="sum", label_smoothing=label_smoothing) for part, part_targets in zip(hidden.split(rows), targets.split(rows)))
