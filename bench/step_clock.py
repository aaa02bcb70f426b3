"""Training speed from a Trainer's logs: a callback that marks each logged step's time, tokens so far and loss.

    >>> clock = StepClock()
    >>> train_sft(recipe, callbacks=[clock])  # doctest: +SKIP
    >>> clock.rates(warmup=2)  # doctest: +SKIP
    {'timed_steps': 10, 'seconds_per_step': 1.93, 'tokens_per_second': 4210.5}

Log every step (`training.logging_steps=1`); the first `warmup` steps are not timed.
"""

from __future__ import annotations

import time

from transformers import TrainerCallback


class StepClock(TrainerCallback):
    def __init__(self):
        self.marks = []  # (step, seconds, tokens so far)
        self.losses = []  # (step, loss)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "num_tokens" in logs:
            self.marks.append((state.global_step, time.perf_counter(), float(logs["num_tokens"])))
        if logs and "loss" in logs:
            self.losses.append((state.global_step, logs["loss"]))

    def rates(self, warmup: int) -> dict:
        """Steps timed, seconds per step and tokens per second, over the logged steps after `warmup`."""
        timed = [mark for mark in self.marks if mark[0] > warmup]
        (first_step, first_time, first_tokens), (last_step, last_time, last_tokens) = timed[0], timed[-1]
        seconds = last_time - first_time
        return {"timed_steps": last_step - first_step, "seconds_per_step": seconds / (last_step - first_step), "tokens_per_second": (last_tokens - first_tokens) / seconds}
