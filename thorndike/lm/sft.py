"""Supervised fine-tuning (SFT) of a language model on a task's demonstrations: the warm start of RL for language
models.

Lecture-notes concept: 003's LLM lectures, the training path SFT -> instruction fine-tuning -> preference fine-tuning
-> RLVR / RLHF (F3 L1552-L1606): before RL, the model imitates demonstrations, so that its samples are sometimes
right and a reward has something to sharpen.

The loss is the cross-entropy of the demonstration's tokens given the prompt and the tokens before them, averaged
over every completion token of the batch; the prompt's tokens are masked out (the model is not taught to write
prompts, only to answer them):

    L(theta) = - sum_{i, t in completion_i} log pi_theta(y_{i,t} | x_i, y_{i,<t}) / sum_i |y_i|

A step is one Adam update on ``batch_size`` training examples (never a held-out prompt: the task's split decides).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from thorndike.lm.common import (
    Completions,
    LMAgent,
    LMConfig,
    LMParts,
    heldout_columns,
    lm_curves,
    refuse_env,
)
from thorndike.lm.losses import masked_mean
from thorndike.lm.model import sequence_logprobs


@dataclass
class SFTConfig(LMConfig):
    """SFT has only the fields every LM trainer has (:class:`~thorndike.lm.common.LMConfig`)."""

    def __post_init__(self) -> None:
        super().__post_init__()


def sft_loss(model: nn.Module, batch: Completions) -> Tensor:
    """Mean negative log-likelihood of the completion tokens (prompt and padding masked out), a 0-dim tensor."""
    logp = sequence_logprobs(model, batch.ids, batch.attention_mask, batch.completion_mask)
    return -masked_mean(logp, batch.token_mask)


class SFT(LMAgent):
    """Supervised fine-tuning on a task's demonstrations (the warm start of RL for language models)."""

    name = "sft"
    Config = SFTConfig

    def build(self) -> None:
        refuse_env(self)
        self.lm = LMParts(self.config, self.device)
        self.optimizer = self.lm.optimizer()
        self.components = {**self.lm.components(), "optimizer": self.optimizer}

    def demonstrations(self, n: int) -> Completions:
        """``n`` training prompts joined with their demonstrations (and EOS)."""
        examples = self.lm.sample_examples(n, self.generator)
        return self.lm.join([e.prompt for e in examples], [self.lm.task.demonstration(e) for e in examples])

    def learn(self, total_steps: int) -> SFT:
        config = self.config
        self.lm.model.train()
        with self.session(total_steps) as run:
            while run.running():
                start = self.global_step
                losses = []
                for _ in range(self.steps_this_iteration(config.log_every)):
                    loss = sft_loss(self.lm.model, self.demonstrations(config.batch_size))  # collect, target
                    self.lm.clip_and_step(self.optimizer, loss, self.global_step)  # update
                    losses.append(loss.detach())
                    self.global_step += 1
                mean_loss = torch.stack(losses).mean()
                self.check_finite("SFT loss", mean_loss)
                run.log({"loss": float(mean_loss), **heldout_columns(self.lm, start, self.global_step)})
        return self

    # ---- what the lifecycle and users ask of an LM ---------------------------------------------------------------

    def write_pictures(self, run_dir: Path) -> list[Path]:
        return [lm_curves(run_dir, run_dir / "curve.png", ("loss", "heldout/accuracy", "eval_mean"))]
