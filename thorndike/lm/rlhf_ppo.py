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

import torch
from torch import Tensor

from thorndike.core.returns import gae
from thorndike.lm.losses import per_token_kl
from thorndike.lm.reward_model import last_token_index

__all__ = ["shaped_rewards", "token_gae", "adaptive_kl_coef"]


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
