"""GRPO (TRL's GRPOTrainer) with the rule rewards of Lu et al. 2024 summed into one reward per completion.

    >>> recipe = load_recipe("steam/smollm2-135m/grpo", ["training.max_steps=10"])  # doctest: +SKIP
    >>> train_grpo(recipe)  # doctest: +SKIP
    PosixPath('runs/steam-smollm2-135m-grpo/merged')

The paper trains PPO with the rewards on tokens (R_item on each title, R_list at
the end); GRPO only takes a number per completion, so each completion gets
sum(R_item) + 10 R_list (`AnswerRewards.sequence`), the same rules, for users who
want to compare the two. The teacher's full ranking, for Rank_i in Eq. 1, comes
from the build's SASRec after the history the prompt shows, so the dataset must
be a local build folder with its teacher.
"""

from __future__ import annotations

from pathlib import Path
from statistics import fmean

from datagen.errors import DataError
from datagen.training.data import rows_read, training_rows
from datagen.training.recipe import Recipe
from datagen.training.runs import run_trainer, trainer_config

FACT_COLUMNS = ["k", "history_item_ids", "target_item_id", "constraint", "target_category", "excluded_category", "proportion", "candidate_item_ids"]


class RuleReward:
    """A TRL reward function: `sum(R_item) + 10 R_list` for each completion, its parts logged as metrics."""

    __name__ = "lu2024_rules"

    def __init__(self, build_path: str, device: str = "cpu"):
        from datagen.buildfolder import BuildFolder
        from datagen.scoring.answers import TitleIndex
        from datagen.scoring.catalog import Catalog
        from datagen.teacher.folder import load_teacher
        from datagen.teacher.ranking import TeacherRanker

        if not Path(build_path).is_dir():
            raise DataError("the rule rewards need the build folder (its catalog and SASRec teacher), not a Hub id", path=build_path)
        folder = BuildFolder.open(build_path)
        self.catalog = Catalog(folder.items)
        self.index = TitleIndex(self.catalog.titles)
        self.ranker = TeacherRanker(load_teacher(folder, device=device), folder.items)

    def parts(self, completions: list, rows: list[dict]):
        """The AnswerRewards of each completion (chat messages or text) against its row's facts."""
        from datagen.scoring.answers import Facts, parse_answer
        from datagen.scoring.rewards import answer_rewards, teacher_ranks

        orders, _ = self.ranker.full_orders([list(row["history_item_ids"]) for row in rows])
        texts = [completion[-1]["content"] if isinstance(completion, list) else completion for completion in completions]
        return [answer_rewards(parse_answer(text, self.index), Facts.from_row(row), self.catalog, teacher_ranks(order)) for text, row, order in zip(texts, rows, orders)]

    def __call__(self, prompts, completions, log_metric=None, **columns) -> list[float]:
        rows = [dict(zip(FACT_COLUMNS, values)) for values in zip(*(columns[name] for name in FACT_COLUMNS))]
        parts = self.parts(completions, rows)
        if log_metric is not None:
            log_metric("rules/item_reward_sum", fmean(sum(p.item) for p in parts))
            log_metric("rules/list_reward", fmean(p.list for p in parts))
            log_metric("rules/illegal_share", fmean(p.illegal_share for p in parts))
        return [p.sequence for p in parts]


def grpo_config(recipe: Recipe, quiet: bool = False):
    """TRL's GRPOConfig from the recipe's `training` keys."""
    from trl import GRPOConfig

    return trainer_config(GRPOConfig, recipe, has_eval=False, quiet=quiet)


def train_grpo(recipe: Recipe, resume: bool = False, quiet: bool = False) -> Path:
    """Train the recipe with GRPO on its prompts; returns the merged model's folder."""
    from trl import GRPOTrainer

    answers_per_prompt = int(recipe.training.get("num_generations", 8))
    train = training_rows(recipe.dataset, ["prompt", *FACT_COLUMNS], limit=rows_read(recipe.training, answers_per_prompt))
    reward = RuleReward(recipe.dataset.path)
    return run_trainer(GRPOTrainer, recipe, grpo_config(recipe, quiet), train, resume=resume, quiet=quiet, reward_funcs=[reward])
