"""SASRec itself: the causal mask, padding, and the tensors it is trained on."""

from __future__ import annotations

import polars as pl
import pytest
import torch

from datagen.errors import DataError
from datagen.teacher.sasrec import SASRec
from datagen.teacher.scorers import SASRecScorer
from datagen.teacher.settings import SASRecConfig
from datagen.teacher.tensors import multi_hot, pad_lists, training_windows


def _model(seed: int = 0) -> SASRec:
    torch.manual_seed(seed)
    return SASRec(SASRecConfig(n_items=50, max_history=6, dim=16, inner_dim=32, heads=2, dropout=0.3)).eval()


def test_a_position_never_sees_a_later_item():
    model = _model()
    history = torch.tensor([[-1, 4, 9, 17, 23, 31], [2, 3, 5, 7, 11, 13]])
    before = model.hidden_states(history)
    for changed in range(1, 6):
        edited = history.clone()
        edited[:, changed] = 40
        after = model.hidden_states(edited)
        assert torch.equal(after[:, :changed], before[:, :changed]), f"positions before {changed} saw the change"
        assert not torch.allclose(after[:, changed], before[:, changed]), "the changed position itself must see it"


def test_padding_is_invisible():
    model = _model()
    short = torch.tensor([[-1, -1, -1, 4, 9, 17]])
    scores = model.score_next(short)
    assert torch.allclose(model.score_next(short[:, 3:]), scores, atol=1e-5)
    assert torch.isfinite(model.score_next(torch.full((1, 6), -1))).all(), "an empty history must not give NaN"


def test_pad_lists_keeps_the_newest_items_on_the_right():
    padded = pad_lists(pl.Series([[1, 2, 3, 4], [5], []]), width=3)
    assert padded.tolist() == [[2, 3, 4], [-1, -1, 5], [-1, -1, -1]]
    assert multi_hot(padded, 6).tolist()[1] == [False, False, False, False, False, True]


def test_training_windows_use_every_next_item_pair_once():
    inputs, targets = training_windows(pl.Series([[1, 2, 3, 4, 5, 6], [7, 8], [9]]), width=3)
    pairs = {(i, t) for row_in, row_t in zip(inputs.tolist(), targets.tolist()) for i, t in zip(row_in, row_t) if t >= 0}
    assert pairs == {(1, 2), (2, 3), (3, 4), (4, 5), (5, 6), (7, 8)}
    assert int((targets >= 0).sum()) == 6
    # the newest pairs share the last window, right-aligned
    assert inputs.tolist()[0] == [3, 4, 5] and targets.tolist()[0] == [4, 5, 6]


def test_a_teacher_with_broken_weights_is_an_error_not_a_perfect_score():
    """NaN scores tie with everything, and a tie once ranked the target first: HR = NDCG = 1.0 for a broken teacher."""
    model = _model()
    with torch.no_grad():
        model.item_embedding.weight[7] = float("nan")
    history = pad_lists(pl.Series([[1, 2, 3], [4, 5]]), 6)
    with pytest.raises(DataError, match="scores hold NaN or infinity"):
        SASRecScorer(model).score(history)
