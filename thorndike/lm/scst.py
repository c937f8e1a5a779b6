"""Self-critical sequence training (SCST): REINFORCE on sampled completions with the greedy decode's reward as the
baseline.

Lecture-notes concept: 003 lecture 8, "Self-Critical Sequence Training" (heading only in the notes); the method is
Rennie et al. 2017. For each prompt x the policy samples completions y^s and decodes one greedily, y^g; the task's
verifier scores both, and the gradient is

    grad J = E[(r(x, y^s) - r(x, y^g)) grad log pi(y^s | x)]

The greedy reward is a baseline that depends on x alone (not on y^s), so the estimate stays unbiased, and it is the
reward the policy earns at test time (when it decodes greedily): a sample is pushed up exactly when it beats what the
model would say now, and once the greedy decode is right, only samples as good as it are not pushed down.
"""

from __future__ import annotations

from torch import Tensor

from thorndike.lm.losses import sequence_logprob

__all__ = ["self_critical_advantages", "scst_loss"]


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
