"""PPO with token-level rule rewards (Lu et al. 2024, section 2.3): our own loop on transformers + peft.

    >>> recipe = load_recipe("steam/smollm2-135m/ppo", ["training.max_steps=10"])  # doctest: +SKIP
    >>> train_ppo(recipe)  # doctest: +SKIP
    PosixPath('runs/steam-smollm2-135m-ppo/merged')

One base model (the SFT model) carries two LoRA adapters, `actor` and `critic`;
a value head (Linear, GELU, Linear to 1) reads the critic's last hidden state.
The reference policy is the base with the adapters switched off, so nothing
trained is shared with it. Each step:

1. Rollout: `samples_per_prompt` answers per prompt at `temperature`, from the actor.
2. Rewards on the tokens actually sampled (`token_rewards.py`): R_item on the
   token that completes each title, 10 R_list on the last token; the rule
   rewards are whitened by their standard deviation over the batch (no mean
   shift, so unrewarded tokens stay 0); then the per-token KL penalty
   -kl_coef (log pi_actor - log pi_ref) of Eq. 6 is added.
3. GAE (gamma, lam) on the critic's values; advantages whitened.
4. `ppo_epochs` passes over minibatches: the clipped ratio loss (clip_range)
   minus entropy_coef times the entropy, then value_loss_coef times the
   squared error of the values; one optimizer over both adapters and the head.

With `constrained: true` the rollouts sample within the catalog's title tree
(`datagen.lm.constrained`): every line a real title, none repeated, K lines. The
log-probabilities, the KL and the entropy stay those of the model's own
(unconstrained) distribution: the tree only limits what is sampled.

Under `accelerate launch` (or `torchrun`) each process rolls out its own
`prompts_per_step` prompts; the whitening statistics, each minibatch's token
count and the gradients are summed over the processes, so every process takes
the same optimizer step and the first one writes checkpoints and the model.

TRL 1.16 has no PPO, and its older PPO took one scalar per sequence, hence this loop.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path

from datagen.errors import DataError
from datagen.lm.constrained import ListConstraint, ListRequest, TitleTree
from datagen.training.data import training_rows
from datagen.training.evaluate import max_new_tokens as answer_length
from datagen.training.grpo import FACT_COLUMNS, RuleReward
from datagen.training.recipe import Recipe
from datagen.training.runs import dataset_identity, last_checkpoint, lora_config, model_reference, return_freed_memory, silence_libraries


@dataclass(frozen=True)
class PpoSettings:
    """The recipe's `training` keys; the defaults are the paper's."""

    output_dir: str
    max_steps: int = 100
    prompts_per_step: int = 4
    samples_per_prompt: int = 2  # "we sample 2 responses with a temperature of 0.7"
    temperature: float = 0.7
    max_new_tokens: int | None = None  # None: 20 per requested item + 16, as the evaluation (constrained: the tree's bound)
    constrained: bool = False  # sample within the catalog's titles (datagen.lm.constrained): K lines, real titles, none repeated
    exclude_history: bool = False  # constrained rollouts also never name an item of the shown history
    kl_coef: float = 0.3  # eta of Eq. 6
    gamma: float = 0.99
    lam: float = 0.95
    clip_range: float = 0.2
    value_loss_coef: float = 0.5
    entropy_coef: float = 0.01
    learning_rate: float = 5e-6
    ppo_epochs: int = 2
    minibatch_size: int = 4
    micro_batch_size: int | None = None  # answers per forward pass, their gradients summed over the minibatch; None: the minibatch at once
    max_grad_norm: float = 1.0
    whiten_rewards: bool = True
    logging_steps: int = 1
    save_steps: int = 50
    seed: int = 42

    @classmethod
    def from_recipe(cls, recipe: Recipe) -> PpoSettings:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(recipe.training) - known)
        if unknown:
            raise DataError(f"unknown key {unknown[0]!r}: PPO's `training` keys are {', '.join(sorted(known))}", path=recipe.path, line="training")
        return cls(**recipe.training)


def _value_head(hidden_size: int):
    from torch import nn

    return nn.Sequential(nn.Linear(hidden_size, 64), nn.GELU(), nn.Linear(64, 1))


class PpoLearner:
    """The model with its two adapters and value head, and the rollout / reward / update steps."""

    def __init__(self, recipe: Recipe, settings: PpoSettings, reward: RuleReward):
        import torch
        from peft import get_peft_model

        from datagen.lm.models import load_model

        self.settings, self.reward = settings, reward
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        base, self.tokenizer = load_model(model_reference(recipe), recipe.model.revision, recipe.model.dtype)
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        lora = lora_config(recipe)
        self.model = get_peft_model(base, lora, adapter_name="actor")
        self.model.add_adapter("critic", lora)
        self.model.to(self.device)
        self.value_head = _value_head(base.config.hidden_size).to(self.device)
        self.model.set_requires_grad(["actor", "critic"], True)
        parameters = [p for p in self.model.parameters() if p.requires_grad] + list(self.value_head.parameters())
        self.optimizer = torch.optim.AdamW(parameters, lr=settings.learning_rate)
        self.tree = TitleTree(reward.catalog.titles, self.tokenizer) if settings.constrained else None

    # -- rollout ---------------------------------------------------------------------------------

    def rollout(self, rows: list[dict], seed: int) -> dict:
        """Sample answers (seeded), score them by the rules, and place the rewards on their tokens."""
        import torch

        from datagen.training.token_rewards import place_rewards, token_char_ends

        s = self.settings
        texts = [self.tokenizer.apply_chat_template(list(row["prompt"]), tokenize=False, add_generation_prompt=True) for row in rows]
        prompts = self.tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(self.device)
        longest = max(row["k"] for row in rows)
        length = s.max_new_tokens or (answer_length(longest) if self.tree is None else self.tree.max_new_tokens(longest))
        constraint = []
        if self.tree is not None:  # generate() repeats each prompt samples_per_prompt times, in place
            requests = [ListRequest.for_row(row["k"], row["history_item_ids"], s.exclude_history) for row in rows]
            constraint = [ListConstraint(self.tree, requests, prompts["input_ids"].shape[1], copies=s.samples_per_prompt)]
        self.model.set_adapter("actor")
        self.model.eval()
        torch.manual_seed(seed)
        with torch.inference_mode():
            output = self.model.generate(
                **prompts,
                do_sample=True,
                temperature=s.temperature,
                top_k=0,
                top_p=1.0,
                max_new_tokens=length,
                num_return_sequences=s.samples_per_prompt,
                pad_token_id=self.tokenizer.pad_token_id,
                logits_processor=constraint,
            )
        prompt_ids = prompts["input_ids"].repeat_interleave(s.samples_per_prompt, dim=0)
        prompt_mask = prompts["attention_mask"].repeat_interleave(s.samples_per_prompt, dim=0)
        responses, answers = [], []
        for sequence in output[:, prompt_ids.shape[1] :].tolist():
            if self.tokenizer.eos_token_id in sequence:
                sequence = sequence[: sequence.index(self.tokenizer.eos_token_id) + 1]
            responses.append(sequence)
            answers.append(self.tokenizer.decode(sequence, skip_special_tokens=True))
        sample_rows = [row for row in rows for _ in range(s.samples_per_prompt)]
        parts = self.reward.parts(answers, sample_rows)
        width = max(len(r) for r in responses)
        response_ids = torch.full((len(responses), width), self.tokenizer.pad_token_id, dtype=torch.long)
        response_mask = torch.zeros((len(responses), width))
        scores = torch.zeros((len(responses), width))
        for i, (sequence, text, part) in enumerate(zip(responses, answers, parts)):
            response_ids[i, : len(sequence)] = torch.tensor(sequence)
            response_mask[i, : len(sequence)] = 1
            scores[i, : len(sequence)] = torch.tensor(place_rewards(token_char_ends(self.tokenizer, sequence), text, part))
        return {
            "prompt_ids": prompt_ids,
            "prompt_mask": prompt_mask,
            "response_ids": response_ids.to(self.device),
            "response_mask": response_mask.to(self.device),
            "scores": scores.to(self.device),
            "parts": parts,
        }

    # -- forward passes --------------------------------------------------------------------------

    def _forward(self, batch: dict, adapter: str | None, hidden: bool = False, entropy: bool = False):
        """Log-probabilities of the response tokens (with their entropies when asked), or the critic's values, under `adapter` (None: the reference)."""
        import contextlib

        import torch

        ids = torch.cat([batch["prompt_ids"], batch["response_ids"]], dim=1)
        mask = torch.cat([batch["prompt_mask"], batch["response_mask"]], dim=1)
        start = batch["prompt_ids"].shape[1] - 1
        width = batch["response_ids"].shape[1]
        if adapter is None:
            context = self.model.disable_adapter()
        else:
            self.model.set_adapter(adapter)
            context = contextlib.nullcontext()
        with context:
            # the responses end every row, so only the last width + 1 positions need logits
            output = self.model(input_ids=ids, attention_mask=mask, output_hidden_states=hidden, logits_to_keep=width + 1)
        if hidden:
            states = output.hidden_states[-1][:, start:-1]
            return self.value_head(states.float()).squeeze(-1)
        logits = output.logits[:, :-1].float() / self.settings.temperature
        log_probs = torch.log_softmax(logits, dim=-1)
        taken = log_probs.gather(-1, batch["response_ids"].unsqueeze(-1)).squeeze(-1)
        if not entropy:
            return taken
        return taken, -(log_probs.exp() * log_probs).sum(-1)

    def _in_pieces(self, batch: dict, adapter: str | None, hidden: bool = False):
        """`_forward` over the whole batch, `micro_batch_size` answers at a time (without gradients)."""
        import torch

        size, width = batch["response_ids"].shape
        step = self.settings.micro_batch_size or size
        pieces = [self._forward(_rows(batch, start, start + step), adapter, hidden) for start in range(0, size, step)]
        return torch.cat([torch.nn.functional.pad(piece, (0, width - piece.shape[1])) for piece in pieces])

    # -- advantages ------------------------------------------------------------------------------

    def advantages(self, batch: dict) -> dict:
        """Eq. 6 per token, whitened rule rewards, GAE; adds old log-probs, values, advantages and returns to the batch."""
        import torch

        s = self.settings
        mask = batch["response_mask"]
        with torch.no_grad():
            old = self._in_pieces(batch, "actor")
            reference = self._in_pieces(batch, None)
            values = self._in_pieces(batch, "critic", hidden=True) * mask
        scores = batch["scores"]
        if s.whiten_rewards:
            scores = scores / (masked_std(scores, mask) + 1e-8)
        kl = (old - reference) * mask
        rewards = scores - s.kl_coef * kl
        advantages = torch.zeros_like(rewards)
        running = torch.zeros(rewards.shape[0], device=rewards.device)
        lengths = mask.sum(1).long()
        for t in reversed(range(rewards.shape[1])):
            alive = (t < lengths).float()
            following = values[:, t + 1] if t + 1 < rewards.shape[1] else torch.zeros_like(running)
            following = following * (t + 1 < lengths).float()
            delta = rewards[:, t] + s.gamma * following - values[:, t]
            running = (delta + s.gamma * s.lam * running) * alive
            advantages[:, t] = running
        returns = advantages + values
        whitened = (advantages - masked_mean(advantages, mask)) / (masked_std(advantages, mask) + 1e-8) * mask
        return {**batch, "old_log_probs": old, "values": values, "advantages": whitened, "returns": returns, "kl": kl}

    # -- update ----------------------------------------------------------------------------------

    def update(self, batch: dict) -> dict[str, float]:
        """`ppo_epochs` passes of clipped-ratio PPO over minibatches of the batch's sequences.

        A minibatch's losses are means over all its answer tokens; with `micro_batch_size` each piece adds its tokens'
        share to the gradient, so the optimizer step is the same as for the whole minibatch at once, in a fraction
        of the memory.
        """
        import torch

        s = self.settings
        self.model.train()
        size = batch["response_ids"].shape[0]
        micro = s.micro_batch_size or s.minibatch_size
        logs = {"policy_loss": [], "value_loss": [], "entropy": [], "clip_fraction": []}
        for _ in range(s.ppo_epochs):
            for start in range(0, size, s.minibatch_size):
                end = min(start + s.minibatch_size, size)
                tokens = summed_over_processes(batch["response_mask"][start:end].sum()).clamp(min=1)
                totals = dict.fromkeys(logs, 0.0)
                for piece_start in range(start, end, micro):
                    part = _rows(batch, piece_start, min(piece_start + micro, end))
                    mask = part["response_mask"]
                    new, entropy = self._forward(part, "actor", entropy=True)
                    ratio = torch.exp(new - part["old_log_probs"])
                    clipped = torch.clamp(ratio, 1 - s.clip_range, 1 + s.clip_range)
                    policy_loss = (torch.max(-part["advantages"] * ratio, -part["advantages"] * clipped) * mask).sum() / tokens
                    entropy_mean = (entropy * mask).sum() / tokens
                    (policy_loss - s.entropy_coef * entropy_mean).backward()
                    values = self._forward(part, "critic", hidden=True)
                    value_loss = (((values - part["returns"]) ** 2) * mask).sum() / tokens
                    (s.value_loss_coef * value_loss).backward()
                    totals["policy_loss"] += policy_loss.item()
                    totals["value_loss"] += value_loss.item()
                    totals["entropy"] += entropy_mean.item()
                    totals["clip_fraction"] += ((((ratio - 1).abs() > s.clip_range).float() * mask).sum() / tokens).item()
                trained = [p for group in self.optimizer.param_groups for p in group["params"]]
                for parameter in trained:  # each process's loss is its tokens' share of the global mean: sum them
                    if parameter.grad is not None:
                        summed_over_processes(parameter.grad)
                torch.nn.utils.clip_grad_norm_(trained, s.max_grad_norm)
                self.optimizer.step()
                self.optimizer.zero_grad()
                for key, total in totals.items():
                    logs[key].append(total)
        return {key: sum(values) / len(values) for key, values in logs.items()}

    # -- checkpoints -----------------------------------------------------------------------------

    def save(self, folder: Path, step: int) -> None:
        """Actor and critic adapters, the value head and the optimizer, written to a temporary folder then renamed."""
        import torch

        from datagen.output import atomic_folder

        with atomic_folder(folder) as scratch:
            self.model.save_pretrained(scratch)  # actor/ and critic/
            torch.save(self.value_head.state_dict(), scratch / "value_head.pt")
            torch.save(self.optimizer.state_dict(), scratch / "optimizer.pt")
            (scratch / "state.json").write_text(json.dumps({"step": step}))

    def load(self, folder: Path) -> int:
        import torch
        from peft import set_peft_model_state_dict
        from safetensors.torch import load_file

        for adapter in ("actor", "critic"):
            set_peft_model_state_dict(self.model, load_file(folder / adapter / "adapter_model.safetensors"), adapter_name=adapter)
        self.value_head.load_state_dict(torch.load(folder / "value_head.pt", map_location=self.device))
        self.optimizer.load_state_dict(torch.load(folder / "optimizer.pt", map_location=self.device))
        return json.loads((folder / "state.json").read_text())["step"]


def _rows(batch: dict, start: int, end: int) -> dict:
    """Answers start..end of a batch, without the columns that are padding in all of them: prompts are padded on the
    left, answers (and everything per answer token) on the right. RoPE sees only relative positions, so dropping left
    padding changes no log-probability."""
    import torch

    prompt_width = int(batch["prompt_mask"][start:end].sum(1).max())
    answer_width = max(1, int(batch["response_mask"][start:end].sum(1).max()))
    rows = {}
    for key, value in batch.items():
        if not isinstance(value, torch.Tensor):
            continue
        rows[key] = value[start:end, -prompt_width:] if key.startswith("prompt_") else value[start:end, :answer_width]
    return rows


def join_processes() -> tuple[int, int]:
    """(processes, this one's rank): under `accelerate launch` or `torchrun` ($WORLD_SIZE > 1) the process group is
    joined (NCCL on GPUs, gloo on the CPU) and each process takes its GPU."""
    import os

    import torch
    import torch.distributed as dist

    processes, rank = int(os.environ.get("WORLD_SIZE", "1")), int(os.environ.get("RANK", "0"))
    if processes > 1 and not dist.is_initialized():
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return processes, rank


def leave_processes() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def summed_over_processes(tensor):
    """`tensor` summed over the processes of a distributed run (itself in a single process)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(tensor)
    return tensor


def masked_mean(values, mask):
    """The mean of `values` where `mask` is 1, over every process's batch."""
    import torch

    total, count = summed_over_processes(torch.stack([(values * mask).sum(), mask.sum()]))
    return total / count.clamp(min=1)


def masked_std(values, mask):
    mean = masked_mean(values, mask)
    return masked_mean((values - mean) ** 2, mask).sqrt()


def train_ppo(recipe: Recipe, resume: bool = False, quiet: bool = False) -> Path:
    """Run PPO as the recipe says; returns the merged actor's folder (`quiet`: no progress bar, no library log lines)."""
    import torch
    import transformers

    from datagen.output import atomic_folder, write_json
    from datagen.progress import StepProgress

    if recipe.lora is None:
        raise DataError("PPO trains its actor and critic as two LoRA adapters of one model: it needs a lora section, not `lora: false`", path=recipe.path, line="lora")
    if quiet:
        silence_libraries()
    settings = PpoSettings.from_recipe(recipe)
    processes, rank = join_processes()
    output_dir = Path(settings.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    transformers.set_seed(settings.seed)  # the same on every process: the adapters and the value head start equal
    prompts = training_rows(recipe.dataset, ["prompt", *FACT_COLUMNS]).to_list()
    learner = PpoLearner(recipe, settings, RuleReward(recipe.dataset.path))
    step = 0
    checkpoint = last_checkpoint(output_dir, written_last="state.json") if resume else None
    if checkpoint:
        step = learner.load(Path(checkpoint))
    metrics = output_dir / "metrics.jsonl"
    with StepProgress(quiet=quiet or rank > 0).bar("PPO", total=settings.max_steps - step) as advance:
        while step < settings.max_steps:
            started = time.perf_counter()
            # each process takes its own prompts_per_step prompts of the step's processes x prompts_per_step
            start = (step * processes + rank) * settings.prompts_per_step
            rows = [prompts[(start + i) % len(prompts)] for i in range(settings.prompts_per_step)]
            batch = learner.advantages(learner.rollout(rows, seed=settings.seed + step * processes + rank))
            logs = learner.update(batch)
            return_freed_memory()
            step += 1
            parts = batch["parts"]
            means = torch.tensor(
                [
                    sum(p.sequence for p in parts) / len(parts),
                    sum(sum(p.item) for p in parts) / len(parts),
                    sum(p.list for p in parts) / len(parts),
                    sum(p.illegal_share for p in parts) / len(parts),
                    batch["kl"].sum(1).mean().item(),
                ],
                dtype=torch.float64,
            )
            means = (summed_over_processes(means) / processes).tolist()
            shares = summed_over_processes(torch.tensor(list(logs.values()), dtype=torch.float64)).tolist()  # each process holds its tokens' share
            record = {
                "step": step,
                **dict(zip(["reward", "reward_item_sum", "reward_list", "illegal_share", "kl"], means)),
                **dict(zip(logs, shares)),
                "step_seconds": round(time.perf_counter() - started, 2),
            }
            if rank == 0 and step % settings.logging_steps == 0:
                with metrics.open("a") as handle:
                    handle.write(json.dumps(record) + "\n")
            if rank == 0 and (step % settings.save_steps == 0 or step == settings.max_steps):
                learner.save(output_dir / f"checkpoint-{step}", step)
            advance(f"reward {record['reward']:.2f}, kl {record['kl']:.3f}")
    merged = output_dir / "merged"
    if rank > 0:  # the adapters are the same on every process: the first writes them
        leave_processes()
        return merged
    learner.model.save_pretrained(output_dir / "adapter", selected_adapters=["actor"])
    torch.save(learner.value_head.state_dict(), output_dir / "adapter" / "value_head.pt")
    merged_model = learner.model.merge_and_unload(adapter_names=["actor"])
    with atomic_folder(merged) as folder:
        merged_model.save_pretrained(folder)
        learner.tokenizer.save_pretrained(folder)
    write_json(
        {
            "recipe": str(recipe.path),
            "trainer": "PPO (datagen.training.ppo)",
            "resolved": {"dataset": dataclasses.asdict(recipe.dataset), "model": dataclasses.asdict(recipe.model), "lora": dataclasses.asdict(recipe.lora), "training": dataclasses.asdict(settings)},
            "dataset": dataset_identity(recipe.dataset.path),
            "prompts": len(prompts),
            "processes": processes,
            "resumed_from": checkpoint,
            "global_step": step,
        },
        output_dir / "run.json",
    )
    leave_processes()
    return merged
