"""Self-critical sequence training (SCST): REINFORCE on sampled completions with the greedy decode's reward as the
baseline, the reward being the task's verifier.

Lecture-notes concept: 003 lecture 8, "Self-Critical Sequence Training" (heading only in the notes); the method is
Rennie et al. 2017. For each prompt x the policy samples completions y^s and decodes one greedily, y^g; the task's
verifier scores both, and the gradient is

    grad J = E[(r(x, y^s) - r(x, y^g)) grad log pi(y^s | x)]

The greedy reward is a baseline that depends on x alone (not on y^s), so the estimate stays unbiased, and it is the
reward the policy earns at test time (when it decodes greedily): a sample is pushed up exactly when it beats what the
model would say now, and once the greedy decode is right, only samples as good as it are not pushed down.

A step is one batch: ``batch_size`` training prompts, each decoded greedily once and sampled ``samples`` times, then
one Adam update on the loss ``-mean(A log pi(y^s|x))`` (:func:`scst_loss`). No reference model, no critic.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from thorndike.config import check, describe
from thorndike.lm.common import LMAgent, LMConfig, LMParts, heldout_columns, lm_curves, refuse_env
from thorndike.lm.losses import masked_mean, sequence_logprob
from thorndike.lm.model import sequence_logprobs

__all__ = ["self_critical_advantages", "scst_loss", "SCST", "SCSTConfig"]

REWARDS = ("partial", "exact")


def self_critical_advantages(sample_rewards: Tensor, greedy_rewards: Tensor) -> Tensor:
    """``r(x, y^s) - r(x, y^g)``: sample_rewards ``[P, K]`` (K samples of each of P prompts) or ``[P]``,
    greedy_rewards ``[P]`` -> the shape of sample_rewards."""
    if sample_rewards.dim() == greedy_rewards.dim() + 1:
        greedy_rewards = greedy_rewards.unsqueeze(-1)
    return sample_rewards - greedy_rewards


def scst_loss(token_logps: Tensor, mask: Tensor, advantages: Tensor) -> Tensor:
    """The REINFORCE loss to minimise, ``-mean_b(A_b * log pi(y_b | x_b))``: token_logps and mask ``[B, T]`` (mask
    true on completion tokens; masked positions contribute nothing), advantages ``[B]`` (constants)."""
    return -(advantages.detach() * sequence_logprob(token_logps, mask)).mean()


@dataclass
class SCSTConfig(LMConfig):
    """SCST's fields on top of every LM trainer's (:class:`~thorndike.lm.common.LMConfig`; ``batch_size`` counts
    prompts per step)."""

    samples: int = describe("completions sampled per prompt, each judged against the prompt's greedy decode", 4,
                            at_most=256)
    reward: str = describe("the verifier's reward: partial (the task's partial credit) or exact (1 for an exact "
                           "match, else 0)", "partial")
    temperature: float = describe("sampling temperature of the training completions", 1.0)

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.samples >= 1, "samples", self.samples, ">= 1")
        check(self.reward in REWARDS, "reward", self.reward, f"one of {list(REWARDS)}")
        check(0 < self.temperature <= 10, "temperature", self.temperature, "in (0, 10]")


class SCST(LMAgent):
    """Self-critical sequence training: REINFORCE with the greedy decode's reward as the baseline."""

    name = "scst"
    Config = SCSTConfig

    def build(self) -> None:
        refuse_env(self)
        self.lm = LMParts(self.config, self.device)
        self.optimizer = self.lm.optimizer()
        self.components = {**self.lm.components(), "optimizer": self.optimizer}

    def learn(self, total_steps: int) -> SCST:
        config, lm = self.config, self.lm
        exact = config.reward == "exact"
        with self.session(total_steps) as run:
            while run.running():
                start = self.global_step
                totals: dict[str, list[Tensor]] = {k: [] for k in ("reward/sample", "reward/greedy", "advantage",
                                                                   "better", "worse", "loss", "entropy")}
                for _ in range(self.steps_this_iteration(config.log_every)):
                    # collect: each prompt's greedy decode and its samples, scored by the verifier
                    prompts = [e.prompt for e in lm.sample_examples(config.batch_size, self.generator)]
                    greedy = lm.rewards(lm.sample(prompts, greedy=True), exact=exact)
                    batch = lm.sample(prompts, config.samples, self.generator, config.temperature)
                    rewards = lm.rewards(batch, exact=exact)
                    # targets: the self-critical advantages (rows prompt-major: the samples of prompt i together)
                    advantages = self_critical_advantages(rewards.view(-1, config.samples), greedy).reshape(-1)
                    # update: one REINFORCE step
                    logp, entropy = sequence_logprobs(lm.model, batch.ids, batch.attention_mask,
                                                      batch.completion_mask, with_entropy=True)
                    loss = scst_loss(logp, batch.token_mask, advantages)
                    lm.clip_and_step(self.optimizer, loss, self.global_step)
                    totals["reward/sample"].append(rewards.mean())
                    totals["reward/greedy"].append(greedy.mean())
                    totals["advantage"].append(advantages.mean())
                    totals["better"].append((advantages > 0).float().mean())
                    totals["worse"].append((advantages < 0).float().mean())
                    totals["loss"].append(loss.detach())
                    totals["entropy"].append(masked_mean(entropy.detach(), batch.token_mask))
                    self.global_step += 1
                stats = {key: torch.stack(values).mean() for key, values in totals.items()}
                self.check_finite("SCST loss", stats["loss"])
                run.log({**{key: float(value) for key, value in stats.items()},
                         **heldout_columns(lm, start, self.global_step)})  # log
        return self

    # ---- what the lifecycle and users ask of an LM ---------------------------------------------------------------

    def write_pictures(self, run_dir: Path) -> list[Path]:
        return [lm_curves(run_dir, run_dir / "curve.png", ("reward/sample", "reward/greedy", "heldout/accuracy",
                                                           "eval_mean"))]
