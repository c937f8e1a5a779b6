"""RLHF-PPO: PPO on sequences against a learned reward model, with a per-token KL penalty to the frozen reference
and PPO-ptx.

Lecture-notes concept: 003 lecture 8 ("RL for seq2seq": Reward Model, PPO-ptx; headings only) on PPO's math
(003 lecture 8: the clipped surrogate, value regression; GAE). The method is Ziegler et al. 2019 and InstructGPT
(Ouyang et al. 2022):

- a completion is an episode whose actions are its tokens; the state before token t is the prompt and tokens < t;
- the reward of token t is ``-kl_coef * (log pi(y_t) - log pi_ref(y_t))`` (the per-token KL penalty, k1: Ziegler's
  "r(x, y) - beta log(pi / rho)"), and the LAST token also gets the learned reward model's score of the whole
  completion (:func:`shaped_rewards`);
- a value head on the policy's final hidden state estimates each token's return; GAE over the tokens of a completion
  (:func:`token_gae`, core's :func:`~thorndike.core.returns.gae` run over time = tokens) gives the advantages;
- the update is PPO-Clip per token plus the value loss, for ``n_epochs`` over the rollout;
- ``kl_coef`` is fixed, or adaptive towards ``target_kl`` (Ziegler et al.'s proportional controller,
  :func:`adaptive_kl_coef`);
- PPO-ptx (InstructGPT): the loss adds ``ptx_coef`` times the supervised (pretraining) loss on demonstrations, so that
  the policy keeps what it knew where the reward model says nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from thorndike.config import check, describe
from thorndike.core.returns import gae
from thorndike.lm.common import Completions, LMAgent, LMParts, lm_curves, refuse_env
from thorndike.lm.losses import (
    KL_ESTIMATORS,
    clipped_fraction,
    clipped_token_objective,
    masked_mean,
    masked_sum,
    per_token_kl,
)
from thorndike.lm.model import token_logprobs
from thorndike.lm.preferences import PreferenceConfig, PreferenceData, due, win_rate
from thorndike.lm.reward_model import last_token_index, load_reward_model
from thorndike.lm.sft import sft_loss

__all__ = ["shaped_rewards", "token_gae", "adaptive_kl_coef", "RLHFPPO", "RLHFPPOConfig", "KLController"]


def shaped_rewards(logp: Tensor, ref_logp: Tensor, scores: Tensor, mask: Tensor, kl_coef: float | Tensor,
                   estimator: str = "k1") -> tuple[Tensor, Tensor]:
    """Per-token rewards ``[B, T]`` and the per-token KL ``[B, T]`` they were shaped with.

    logp, ref_logp: the sampled tokens' log-probabilities under the policy that sampled them and under the frozen
    reference, ``[B, T]``; scores: the reward model's score of each completion, ``[B]``; mask: ``[B, T]``, true on
    completion tokens (contiguous in a row). Every completion token's reward is ``-kl_coef * kl_t``; the last one's
    adds ``scores``; masked positions are exactly 0.
    """
    mask = mask.bool()
    kl = per_token_kl(logp, ref_logp, estimator, mask)
    rewards = torch.where(mask, -kl_coef * kl, torch.zeros_like(kl))
    last = last_token_index(mask)
    has_tokens = mask.any(-1)
    bonus = torch.zeros_like(rewards)
    bonus[torch.arange(rewards.shape[0], device=rewards.device), last] = torch.where(
        has_tokens, scores.to(rewards.dtype), torch.zeros_like(scores, dtype=rewards.dtype))
    return rewards + bonus, kl


def token_gae(rewards: Tensor, values: Tensor, mask: Tensor, gamma: float, lam: float) -> Tensor:
    """GAE over the tokens of each completion: ``[B, T]`` rewards and values (value of the state before each token)
    -> advantages ``[B, T]``, 0 at masked positions.

    Each row's completion ends (terminates: no bootstrap) at its last masked-in token; the value after it is 0. This
    is core's :func:`~thorndike.core.returns.gae` with time = token position, so padding after a completion, whose
    rewards and values are set to 0, carries nothing back into it.
    """
    mask = mask.bool()
    values = torch.where(mask, values, torch.zeros_like(values))
    rewards = torch.where(mask, rewards, torch.zeros_like(rewards))
    next_values = torch.cat((values[:, 1:], torch.zeros_like(values[:, :1])), dim=1)
    terminated = torch.zeros_like(mask)
    terminated[torch.arange(mask.shape[0], device=mask.device), last_token_index(mask)] = True
    terminated = terminated & mask
    advantages = gae(rewards.T, values.T, next_values.T, terminated.T, torch.zeros_like(terminated.T), gamma,
                     lam).T
    return torch.where(mask, advantages, torch.zeros_like(advantages))


def adaptive_kl_coef(kl_coef: float, kl: float, target_kl: float, n_steps: int, horizon: int) -> float:
    """Ziegler et al. 2019's proportional controller: ``kl_coef * (1 + clip(kl / target_kl - 1, -0.2, 0.2) *
    n_steps / horizon)``, after a rollout of ``n_steps`` samples whose mean KL per completion was ``kl``. Above the
    target the penalty grows, below it shrinks, by at most 20% per ``horizon`` samples."""
    error = min(max(kl / target_kl - 1.0, -0.2), 0.2)
    return kl_coef * (1.0 + error * n_steps / horizon)


@dataclass
class RLHFPPOConfig(PreferenceConfig):
    """RLHF-PPO's fields: the LM's and the hidden rule's (:class:`~thorndike.lm.preferences.PreferenceConfig`), the
    reward model, the KL penalty, PPO's and PPO-ptx's. A step is one rollout of ``batch_size`` prompts (one
    completion each) and ``n_epochs`` passes of PPO over it."""

    reward_from: str | None = describe("the run folder or checkpoint of a reward_model run whose model scores the "
                                       "completions; None: the hidden rule itself (a 'gold' reward, for tests and "
                                       "comparisons)", None)
    kl_coef: float = describe("the per-token KL penalty's coefficient beta (its start when adaptive_kl)", 0.05)
    adaptive_kl: bool = describe("adapt kl_coef towards target_kl (Ziegler et al. 2019's proportional controller)",
                                 False)
    target_kl: float = describe("adaptive_kl's target: the mean KL of a completion to the reference, in nats", 1.0)
    kl_horizon: int = describe("adaptive_kl's horizon: the completions over which kl_coef may change by a fifth",
                               10_000)
    kl_estimator: str = describe(f"the per-token KL in the reward: one of {list(KL_ESTIMATORS)} (k1 = log pi - "
                                 "log pi_ref, Ziegler et al.'s)", "k1")
    clip: float = describe("PPO's clip range epsilon of the ratio pi / pi_old", 0.2)
    vf_coef: float = describe("weight of the value loss", 0.5)
    gamma: float = describe("discount over tokens", 1.0)
    gae_lambda: float = describe("GAE lambda over tokens", 0.95)
    n_epochs: int = describe("PPO passes over each rollout", 4, at_most=64)
    minibatches: int = describe("minibatches each pass splits the rollout into", 1, at_most=4096)
    normalize_advantages: bool = describe("standardise the advantages over the rollout's tokens", True)
    temperature: float = describe("sampling temperature of the rollouts", 1.0)
    ptx_coef: float = describe("PPO-ptx: weight of the supervised (pretraining) loss on demonstrations mixed into "
                               "each update; 0: plain PPO", 0.0)
    ptx_batch_size: int = describe("demonstrations per update for the PPO-ptx loss", 16, at_most=4096)

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.reward_from is None or (isinstance(self.reward_from, str) and self.reward_from != ""),
              "reward_from", self.reward_from, "None or the path of a reward_model run or checkpoint")
        check(self.kl_coef >= 0, "kl_coef", self.kl_coef, ">= 0")
        check(self.target_kl > 0, "target_kl", self.target_kl, "> 0")
        check(self.kl_horizon >= 1, "kl_horizon", self.kl_horizon, ">= 1")
        check(self.kl_estimator in KL_ESTIMATORS, "kl_estimator", self.kl_estimator, f"one of {list(KL_ESTIMATORS)}")
        check(0 < self.clip < 1, "clip", self.clip, "in (0, 1)")
        check(self.vf_coef >= 0, "vf_coef", self.vf_coef, ">= 0")
        check(0 < self.gamma <= 1, "gamma", self.gamma, "in (0, 1]")
        check(0 <= self.gae_lambda <= 1, "gae_lambda", self.gae_lambda, "in [0, 1]")
        check(self.n_epochs >= 1, "n_epochs", self.n_epochs, ">= 1")
        check(1 <= self.minibatches <= self.batch_size, "minibatches", self.minibatches,
              f"between 1 and batch_size={self.batch_size}")
        check(self.temperature > 0, "temperature", self.temperature, "> 0")
        check(self.ptx_coef >= 0, "ptx_coef", self.ptx_coef, ">= 0 (0: no PPO-ptx)")
        check(self.ptx_batch_size >= 1, "ptx_batch_size", self.ptx_batch_size, ">= 1")


class KLController:
    """The KL coefficient beta as a checkpoint component: fixed, or adapted after each rollout
    (:func:`adaptive_kl_coef`)."""

    def __init__(self, kl_coef: float) -> None:
        self.value = kl_coef

    def state_dict(self) -> dict[str, Any]:
        return {"kl_coef": self.value}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.value = float(state["kl_coef"])


@dataclass
class Rollout:
    """One rollout: the completions and, per token ``[B, T]`` (T = L - 1, the log-probability layout), the sampling
    policy's log-probabilities, the advantages and the value targets; per completion the scores."""

    batch: Completions
    old_logp: Tensor
    advantages: Tensor
    returns: Tensor
    scores: Tensor
    kl: Tensor  # per token, [B, T]


class RLHFPPO(LMAgent):
    """RLHF-PPO: PPO on sequences against a learned reward model, per-token KL penalty to the reference, PPO-ptx."""

    name = "rlhf_ppo"
    Config = RLHFPPOConfig

    def build(self) -> None:
        refuse_env(self)
        config = self.config
        self.lm = LMParts(config, self.device)
        self.reference = self.lm.reference()
        self.data = PreferenceData(self.lm, config)
        # The value head reads the policy's own final hidden states (a shared trunk, as in Ziegler et al.'s code).
        self.value_head = nn.Linear(config.d_model, 1).to(self.device)
        nn.init.zeros_(self.value_head.weight)
        nn.init.zeros_(self.value_head.bias)
        self.trained = list(self.lm.model.parameters()) + list(self.value_head.parameters())
        self.optimizer = torch.optim.Adam(self.trained, lr=config.lr)
        self.kl_coef = KLController(config.kl_coef)
        self.reward_model = (None if config.reward_from is None else
                             load_reward_model(config.reward_from, self.lm.tokenizer, self.device))
        self.components = {**self.lm.components(), "reference": self.reference, "value_head": self.value_head,
                           "optimizer": self.optimizer, "kl_coef": self.kl_coef}
        if self.reward_model is not None:  # saved, so a resumed run needs nothing outside its folder
            self.components["reward_model"] = self.reward_model

    # ---- the pieces of one step ---------------------------------------------------------------------------------

    def policy_outputs(self, ids: Tensor, attention_mask: Tensor, completion_mask: Tensor) -> tuple[Tensor, Tensor]:
        """Per-token log-probabilities of the sampled tokens and the values of the states before them, ``[B, T]``
        each (0 off the completion), from one forward pass of the policy over ``[B, L]`` sequences."""
        logits, _, hidden = self.lm.model(ids, attention_mask, return_hidden=True)
        logp = token_logprobs(logits, ids, completion_mask)
        values = self.value_head(hidden[:, :-1]).squeeze(-1)
        return logp, torch.where(completion_mask[:, 1:], values, torch.zeros_like(values))

    @torch.no_grad()
    def score(self, batch: Completions) -> Tensor:
        """The reward of each completion ``[B]``: the reward model's, or the hidden rule's when there is none."""
        if self.reward_model is None:
            return torch.tensor(self.data.rule.scores(batch.prompts, batch.texts), device=self.device)
        return self.reward_model(batch.ids, batch.attention_mask)

    @torch.no_grad()
    def collect(self) -> Rollout:
        config = self.config
        prompts = [e.prompt for e in self.lm.sample_examples(config.batch_size, self.generator)]
        batch = self.lm.sample(prompts, 1, self.generator, temperature=config.temperature)
        mask = batch.token_mask
        old_logp, values = self.policy_outputs(batch.ids, batch.attention_mask, batch.completion_mask)
        ref_logp = token_logprobs(self.reference(batch.ids, batch.attention_mask)[0], batch.ids,
                                  batch.completion_mask)
        scores = self.score(batch)
        rewards, kl = shaped_rewards(old_logp, ref_logp, scores, mask, self.kl_coef.value, config.kl_estimator)
        advantages = token_gae(rewards, values, mask, config.gamma, config.gae_lambda)
        return Rollout(batch, old_logp, advantages, advantages + values, scores, kl)

    def update(self, rollout: Rollout) -> dict[str, Tensor]:
        """``n_epochs`` passes of PPO-Clip + value loss (+ PPO-ptx) over the rollout's completions."""
        config = self.config
        mask = rollout.batch.token_mask
        advantages = rollout.advantages
        if config.normalize_advantages:
            mean = masked_mean(advantages, mask)
            std = masked_mean((advantages - mean).square(), mask).sqrt()
            advantages = torch.where(mask, (advantages - mean) / (std + 1e-8), torch.zeros_like(advantages))
        rows = mask.shape[0]
        stats: dict[str, list[Tensor]] = {"policy_loss": [], "value_loss": [], "ptx_loss": [], "clip_fraction": [],
                                          "approx_kl": []}
        for _ in range(config.n_epochs):
            order = torch.randperm(rows, generator=self.generator, device=self.device)
            for part in order.chunk(config.minibatches):
                batch = rollout.batch
                logp, values = self.policy_outputs(batch.ids[part], batch.attention_mask[part],
                                                   batch.completion_mask[part])
                part_mask, old_logp = mask[part], rollout.old_logp[part]
                objective = clipped_token_objective(logp, old_logp, advantages[part], part_mask, config.clip)
                policy_loss = -masked_mean(objective, part_mask)
                value_loss = 0.5 * masked_mean((values - rollout.returns[part]).square(), part_mask)
                loss = policy_loss + config.vf_coef * value_loss
                ptx = torch.zeros((), device=self.device)
                if config.ptx_coef > 0:  # PPO-ptx: keep the demonstrations' likelihood up
                    examples = self.lm.sample_examples(config.ptx_batch_size, self.generator)
                    demos = self.lm.join([e.prompt for e in examples],
                                         [self.lm.task.demonstration(e) for e in examples])
                    ptx = sft_loss(self.lm.model, demos)
                    loss = loss + config.ptx_coef * ptx
                self.lm.clip_and_step(self.optimizer, loss, self.global_step, self.trained)
                with torch.no_grad():
                    log_ratio = torch.where(part_mask, logp - old_logp, torch.zeros_like(logp))
                    # k3 estimate of KL(pi_old || pi) over the minibatch's tokens: how far this update moved
                    stats["approx_kl"].append(masked_mean(torch.expm1(log_ratio) - log_ratio, part_mask))
                    stats["clip_fraction"].append(clipped_fraction(logp, old_logp, part_mask, config.clip))
                stats["policy_loss"].append(policy_loss.detach())
                stats["value_loss"].append(value_loss.detach())
                stats["ptx_loss"].append(ptx.detach())
        return {key: torch.stack(values).mean() for key, values in stats.items()}

    def learn(self, total_steps: int) -> RLHFPPO:
        config = self.config
        self.lm.model.train()
        with self.session(total_steps) as run:
            while run.running():
                start = self.global_step
                rows: list[dict[str, Tensor]] = []
                hidden_scores: list[float] = []
                for _ in range(self.steps_this_iteration(config.log_every)):
                    rollout = self.collect()  # collect and targets (shaped rewards, GAE)
                    stats = self.update(rollout)  # update
                    kl = masked_sum(rollout.kl, rollout.batch.token_mask, -1).mean()  # per completion
                    stats.update({"reward": rollout.scores.mean(), "kl": kl,
                                  "length": rollout.batch.token_mask.sum(-1).float().mean(),
                                  "kl_coef": torch.tensor(self.kl_coef.value, device=self.device)})
                    if config.adaptive_kl:  # one host sync per rollout
                        self.kl_coef.value = adaptive_kl_coef(self.kl_coef.value, float(kl), config.target_kl,
                                                              config.batch_size, config.kl_horizon)
                    hidden_scores.append(self.data.hidden_score(rollout.batch.prompts, rollout.batch.texts))
                    rows.append(stats)
                    self.global_step += 1
                row = {key: float(torch.stack([r[key] for r in rows]).mean()) for key in rows[0]}
                row["hidden_score"] = sum(hidden_scores) / len(hidden_scores)
                self.check_finite("RLHF-PPO losses", torch.tensor([row["policy_loss"], row["value_loss"]]))
                row.update(self.heldout_columns(start))
                run.log(row)  # log
        return self

    def heldout_columns(self, start: int) -> dict[str, float]:
        """:meth:`heldout_metrics` when a multiple of ``heldout_every`` was passed this row (NaN otherwise)."""
        if self.config.heldout_every == 0:
            return {}
        if not due(self.config.heldout_every, start, self.global_step):
            return dict.fromkeys(("heldout/hidden_score", "heldout/accuracy", "heldout/win_rate"), float("nan"))
        return self.heldout_metrics()

    @torch.no_grad()
    def heldout_metrics(self) -> dict[str, float]:
        """On the first ``eval_prompts`` held-out prompts: the hidden rule's mean score of the policy's greedy
        completions, their exact-match accuracy, and their win rate against the reference's."""
        prompts = [e.prompt for e in self.lm.heldout(self.config.eval_prompts)]
        mine = self.data.greedy_completions(self.lm.model, prompts)
        theirs = self.data.greedy_completions(self.reference, prompts)
        accuracy = sum(self.lm.task.is_correct(p, c) for p, c in zip(prompts, mine)) / len(prompts)
        return {"heldout/hidden_score": self.data.hidden_score(prompts, mine), "heldout/accuracy": accuracy,
                "heldout/win_rate": win_rate(mine, theirs, self.data.rule, prompts)}

    # ---- what the lifecycle and users ask of an LM ---------------------------------------------------------------

    def write_pictures(self, run_dir: Path) -> list[Path]:
        return [lm_curves(run_dir, run_dir / "curve.png", ("hidden_score", "reward", "kl", "heldout/hidden_score"))]
