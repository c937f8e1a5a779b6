"""Group Relative Policy Optimization (GRPO, Shao et al. 2024, DeepSeekMath) with a task's verifier as the reward:
RL with verifiable rewards (RLVR).

Lecture-notes concept: 003's workshop notes, GRPO = PPO with group-normalised advantages and no critic
(F3 L1564-L1586), CORRECTED as in INVENTORY E36: the notes say GRPO "computes advantages within each group of all
possible actions" with "G the number of groups"; in DeepSeekMath a group is the G completions o_1..o_G sampled for
ONE prompt q, i indexes the completions within it, and every token of o_i gets the advantage

    A_i = (r_i - mean(r_1..r_G)) / std(r_1..r_G)                      (thorndike.lm.losses.group_advantages)

so a completion is judged against its siblings on the same prompt, never against completions of other (easier or
harder) prompts, and a prompt whose G rewards are all equal teaches nothing (zero advantages). The objective, to
maximise, over a few inner epochs on the sampled batch:

    J(theta) = 1/G sum_i 1/|o_i| sum_t [ min(rho_{i,t} A_i, clip(rho_{i,t}, 1 - eps, 1 + eps) A_i)
                                         - beta KL_t(pi_theta || pi_ref) ]

with rho_{i,t} = pi_theta(o_{i,t} | q, o_{i,<t}) / pi_old(o_{i,t} | q, o_{i,<t}) (pi_old: the policy that sampled the
batch) and the k3 estimator KL_t = pi_ref / pi_theta - log(pi_ref / pi_theta) - 1 at the sampled token
(:func:`thorndike.lm.losses.per_token_kl`), pi_ref the frozen warm start. No value network: the group's mean reward
is the baseline. The reward is the task's verifier: partial credit (``reward="partial"``, e.g. digits right from the
units up for addition) or exact match (``reward="exact"``).

A step is one round: ``batch_size`` training prompts, ``group_size`` completions each, ``inner_epochs`` updates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from thorndike.config import check, describe
from thorndike.lm.common import (
    Completions,
    LMAgent,
    LMConfig,
    LMParts,
    heldout_columns,
    lm_curves,
    refuse_env,
)
from thorndike.lm.losses import clipped_fraction, clipped_token_objective, group_advantages, masked_mean, per_token_kl
from thorndike.lm.model import sequence_logprobs

REWARDS = ("partial", "exact")


@dataclass
class GRPOConfig(LMConfig):
    """GRPO's fields on top of every LM trainer's (:class:`~thorndike.lm.common.LMConfig`; ``batch_size`` counts
    prompts per step)."""

    group_size: int = describe("completions sampled per prompt (G); advantages are normalised within each group", 8,
                               at_most=256)
    inner_epochs: int = describe("updates on each sampled batch (the ratio pi_theta / pi_old moves away from 1 after "
                                 "the first)", 2, at_most=64)
    clip: float = describe("PPO clip range epsilon of the per-token ratio", 0.2)
    kl_coef: float = describe("beta: weight of the k3 estimate of KL(pi_theta || pi_ref) subtracted per token", 0.04)
    reward: str = describe("the verifier's reward: partial (the task's partial credit) or exact (1 for an exact "
                           "match, else 0)", "partial")
    temperature: float = describe("sampling temperature of the training completions", 1.0)
    skip_flat_groups: bool = describe("update only on the groups whose rewards differ (DAPO's dynamic sampling): a "
                                      "group of equal rewards has zero advantages, so it adds no policy gradient, "
                                      "only its KL term and the cost of its forward and backward passes", False)

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.group_size >= 2, "group_size", self.group_size, ">= 2 (a group of one has no baseline)")
        check(self.inner_epochs >= 1, "inner_epochs", self.inner_epochs, ">= 1")
        check(0 < self.clip < 1, "clip", self.clip, "in (0, 1)")
        check(self.kl_coef >= 0, "kl_coef", self.kl_coef, ">= 0")
        check(self.reward in REWARDS, "reward", self.reward, f"one of {list(REWARDS)}")
        check(0 < self.temperature <= 10, "temperature", self.temperature, "in (0, 10]")


def grpo_advantages(rewards: Tensor, group_size: int) -> Tensor:
    """Per-completion advantages ``[P * G]`` from the rewards ``[P * G]`` of G completions per prompt (rows
    prompt-major): each normalised within its own prompt's group (E36), not over the batch."""
    return group_advantages(rewards.view(-1, group_size)).reshape(-1)


def grpo_loss(logp: Tensor, old_logp: Tensor, ref_logp: Tensor, advantages: Tensor, mask: Tensor, clip: float,
              kl_coef: float) -> tuple[Tensor, Tensor]:
    """GRPO's loss (minus J above) and the mean per-token k3 KL to the reference, both 0-dim.

    logp: per-token log pi_theta ``[B, T]`` (with gradient); old_logp, ref_logp: the sampling policy's and the
    reference's (no gradient); advantages ``[B]``; mask ``[B, T]`` (completion tokens). Each completion's tokens are
    averaged first (1/|o_i|), then the completions (1/G and over prompts), as in DeepSeekMath.
    """
    objective = clipped_token_objective(logp, old_logp, advantages, mask, clip)
    kl = per_token_kl(logp, ref_logp, "k3", mask)
    per_completion = masked_mean(objective - kl_coef * kl, mask, dim=-1)
    return -per_completion.mean(), masked_mean(kl, mask)


class GRPO(LMAgent):
    """GRPO on a task's verifier (RLVR): G samples per prompt, group-normalised advantages, clipped per-token ratio,
    k3 KL to the reference, no critic."""

    name = "grpo"
    Config = GRPOConfig

    def build(self) -> None:
        refuse_env(self)
        self.lm = LMParts(self.config, self.device)
        self.reference = self.lm.reference()
        self.optimizer = self.lm.optimizer()
        self.components = {**self.lm.components(), "reference": self.reference, "optimizer": self.optimizer}

    def collect(self) -> tuple[Completions, Tensor]:
        """G completions of each of ``batch_size`` training prompts, sampled with the run's generator, and their
        rewards from the task's verifier ``[P * G]``."""
        config, lm = self.config, self.lm
        prompts = [e.prompt for e in lm.sample_examples(config.batch_size, self.generator)]
        batch = lm.sample(prompts, config.group_size, self.generator, config.temperature)
        return batch, lm.rewards(batch, exact=config.reward == "exact")

    def update(self, batch: Completions, rewards: Tensor, measure_kl: bool = True) -> dict[str, Tensor]:
        """``inner_epochs`` steps of GRPO's loss on one sampled batch; the statistics of the last (0-dim tensors).
        With ``kl_coef = 0`` the reference's forward pass is made only when ``measure_kl`` (for the log); the KL
        statistic is then NaN otherwise."""
        config, lm = self.config, self.lm
        # targets: advantages within each prompt's group; the reference's log-probabilities
        advantages = grpo_advantages(rewards, config.group_size)
        mask = batch.token_mask
        ref_logp = None
        if config.kl_coef > 0 or measure_kl:  # without the KL term the reference is needed only for the log
            with torch.no_grad():
                ref_logp = sequence_logprobs(self.reference, batch.ids, batch.attention_mask, batch.completion_mask)
        # pi_old is the policy that sampled the batch: its log-probabilities are the first epoch's, detached (the
        # ratio starts at exactly 1, so the first step is the plain policy gradient)
        old_logp = None
        for _ in range(config.inner_epochs):
            logp, entropy = sequence_logprobs(lm.model, batch.ids, batch.attention_mask, batch.completion_mask,
                                              with_entropy=True)
            if old_logp is None:
                old_logp = logp.detach()
            loss, kl = grpo_loss(logp, old_logp, old_logp if ref_logp is None else ref_logp, advantages, mask,
                                 config.clip, config.kl_coef)
            lm.clip_and_step(self.optimizer, loss, self.global_step)
        return {"loss": loss.detach(), "kl": kl.detach() if ref_logp is not None else loss.new_tensor(math.nan),
                "clip_fraction": clipped_fraction(logp.detach(), old_logp, mask, config.clip),
                "entropy": masked_mean(entropy.detach(), mask)}

    def learn(self, total_steps: int) -> GRPO:
        config, lm = self.config, self.lm
        with self.session(total_steps) as run:
            while run.running():
                start = self.global_step
                totals: dict[str, list[Tensor]] = {}
                steps = self.steps_this_iteration(config.log_every)
                for step in range(steps):
                    batch, rewards = self.collect()
                    last = step == steps - 1  # the row's KL is measured on its last batch when kl_coef is 0
                    flat = rewards.view(-1, config.group_size).std(-1) == 0
                    if config.skip_flat_groups:  # one host sync per step: which rows to keep
                        keep = (~flat).repeat_interleave(config.group_size)
                        stats = self.update(batch.select(keep), rewards[keep], last) if bool(keep.any()) else \
                            {"loss": rewards.new_zeros(()), "kl": rewards.new_tensor(math.nan),  # no update
                             "clip_fraction": rewards.new_zeros(()), "entropy": rewards.new_tensor(math.nan)}
                    else:
                        stats = self.update(batch, rewards, last)
                    stats["reward"] = rewards.mean()
                    stats["accuracy"] = lm.rewards(batch, exact=True).mean()
                    stats["flat_groups"] = flat.float().mean()
                    for key, value in stats.items():
                        totals.setdefault(key, []).append(value)
                    self.global_step += 1
                # nanmean: steps without a measured KL (or without an update: every group flat) are left out
                means = {key: torch.stack(values).nanmean() for key, values in totals.items()}
                self.check_finite("GRPO loss", means["loss"])
                # log: what the sampled batches earned, how far the policy moved, the held-out accuracy when due
                run.log({**{key: float(value) for key, value in means.items()},
                         **heldout_columns(lm, start, self.global_step)})
        return self

    # ---- what the lifecycle and users ask of an LM ---------------------------------------------------------------

    def write_pictures(self, run_dir: Path) -> list[Path]:
        return [lm_curves(run_dir, run_dir / "curve.png", ("reward", "heldout/accuracy", "kl", "eval_mean"))]
