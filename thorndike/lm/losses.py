"""The losses of RL for language models, as pure functions on tensors, shared by the trainers (issue #18): DPO and
its implicit rewards, the Bradley-Terry reward-model loss, GRPO's group-normalised advantages, per-token KL
estimators against a reference model, masked reductions over the tokens of padded sequences, and the PPO-Clip
surrogate per token.

Lecture-notes concept: 003's LLM lectures (preference fine-tuning, RLHF, GRPO = "PPO + group-based normalization",
F3 L1564-L1586, corrected as in INVENTORY E36: a group is the G completions of ONE prompt, each completion's
advantage is its reward normalised within its group, and the objective subtracts beta KL(pi_theta || pi_ref)).
DPO is named in the notes without its loss; it is the DPO paper's (Rafailov et al. 2023).

Shapes: sequences are ``[B, T]`` with a ``mask`` that is true on the tokens that count (the completion's) and false
on prompt and padding. Every masked reduction here selects with ``torch.where`` rather than multiplying by the mask,
so a masked position contributes nothing, not even a NaN from an infinite value, and its gradient is exactly 0.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from thorndike.config import check
from thorndike.core.losses import clipped_surrogate, importance_ratio

__all__ = ["dpo_loss", "dpo_implicit_rewards", "bradley_terry_loss", "preference_accuracy", "group_advantages",
           "per_token_kl", "KL_ESTIMATORS", "masked_sum", "masked_mean", "sequence_logprob",
           "clipped_token_objective", "clipped_fraction"]

KL_ESTIMATORS = ("k1", "k2", "k3")


def dpo_implicit_rewards(
    policy_chosen_logps: Tensor, policy_rejected_logps: Tensor, ref_chosen_logps: Tensor,
    ref_rejected_logps: Tensor, beta: float
) -> tuple[Tensor, Tensor]:
    """DPO's implicit rewards of the chosen and rejected completions: (beta (pc - rc), beta (pr - rr)).

    Each argument is a sequence log-probability log pi(y|x) per pair, ``[B]`` (:func:`sequence_logprob`). The
    policy that maximises E[r] - beta KL(pi || pi_ref) under a reward r is pi_ref exp(r / beta) / Z(x), so
    beta log(pi / pi_ref) is that reward up to a per-prompt constant, which cancels in a pair's difference.
    """
    return beta * (policy_chosen_logps - ref_chosen_logps), beta * (policy_rejected_logps - ref_rejected_logps)


def dpo_loss(
    policy_chosen_logps: Tensor, policy_rejected_logps: Tensor, ref_chosen_logps: Tensor,
    ref_rejected_logps: Tensor, beta: float
) -> Tensor:
    """Per-pair DPO loss -log sigmoid(beta ((pc - rc) - (pr - rr))), ``[B]``: the Bradley-Terry loss of the implicit
    rewards (:func:`dpo_implicit_rewards`), so preferring the chosen completion more than the reference does lowers
    it. The reference log-probabilities are constants (computed without gradient)."""
    chosen, rejected = dpo_implicit_rewards(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps,
                                            ref_rejected_logps, beta)
    return bradley_terry_loss(chosen, rejected)


def bradley_terry_loss(chosen_scores: Tensor, rejected_scores: Tensor) -> Tensor:
    """Per-pair -log sigmoid(s_chosen - s_rejected): the negative log-likelihood of the preference under the
    Bradley-Terry model P(chosen > rejected) = sigmoid(s_chosen - s_rejected). ``logsigmoid`` keeps it finite for
    large negative margins, where log(sigmoid(.)) would underflow to -inf."""
    return -F.logsigmoid(chosen_scores - rejected_scores)


def preference_accuracy(chosen_scores: Tensor, rejected_scores: Tensor) -> Tensor:
    """The fraction of pairs whose chosen score is strictly above the rejected one (a tie counts as wrong), a
    0-dim tensor."""
    return (chosen_scores > rejected_scores).float().mean()


def group_advantages(rewards: Tensor, eps: float = 1e-6) -> Tensor:
    """GRPO's advantages: each completion's reward normalised within its prompt's group, (r - mean) / std per row.

    rewards: ``[prompts, G]``, the rewards of G completions of each prompt -> ``[prompts, G]``. The std is the
    POPULATION std (divide by G, not G - 1), so each row of the result has mean 0 and population std exactly 1 (the
    notes' check, INVENTORY C69). DeepSeekMath's GRPO uses the sample std, which scales every advantage by
    sqrt((G - 1) / G), a constant factor the learning rate absorbs. A row whose std is below ``eps`` (all rewards
    equal: nothing to prefer) gives zeros, never NaN; such a group carries no policy gradient.
    """
    mean = rewards.mean(dim=-1, keepdim=True)
    std = rewards.std(dim=-1, correction=0, keepdim=True)
    flat = std < eps
    # Divide by a safe std on flat rows too: torch.where evaluates both branches, and 0/0 would put NaN in backward.
    return torch.where(flat, torch.zeros_like(rewards), (rewards - mean) / torch.where(flat, 1.0, std))


def per_token_kl(logp: Tensor, ref_logp: Tensor, estimator: str = "k3", mask: Tensor | None = None) -> Tensor:
    """Per-token estimate of KL(pi || pi_ref) from tokens sampled from pi (John Schulman, "Approximating KL
    divergence", 2020), with d = ref_logp - logp = log(pi_ref / pi) at the sampled token:

    - ``"k1"`` = -d = logp - ref_logp: unbiased, high variance, negative on some samples;
    - ``"k2"`` = d^2 / 2: biased (its mean is E[(log ratio)^2] / 2, close to the KL only when the two are close),
      low variance, never negative;
    - ``"k3"`` = exp(d) - d - 1: unbiased (E_pi[pi_ref / pi] = 1) and never negative (e^d >= 1 + d), the one GRPO
      subtracts.

    logp, ref_logp: same shape -> same shape; reduce with :func:`masked_mean`. With ``mask``, masked positions
    are 0 and have a zero gradient even where their log-probabilities are infinite (without it, exp(inf) there
    would make the backward pass NaN, although :func:`masked_mean` selects them out of the forward one).
    """
    check(estimator in KL_ESTIMATORS, "estimator", estimator, f"one of {list(KL_ESTIMATORS)}")
    d = ref_logp - logp
    if mask is not None:
        d = torch.where(mask.bool(), d, torch.zeros_like(d))
    if estimator == "k1":
        return -d
    if estimator == "k2":
        return 0.5 * d.square()
    # expm1 keeps k3's precision where the two log-probabilities are close (d near 0, the usual case).
    return torch.expm1(d) - d


def masked_sum(x: Tensor, mask: Tensor, dim: int | None = None) -> Tensor:
    """Sum of ``x`` over the positions where ``mask`` is true (all dims, or ``dim``); masked positions contribute
    exactly nothing (selected out, so an inf or NaN there does not leak) and get a zero gradient."""
    selected = torch.where(mask.bool(), x, torch.zeros_like(x))
    return selected.sum() if dim is None else selected.sum(dim)


def masked_mean(x: Tensor, mask: Tensor, dim: int | None = None) -> Tensor:
    """Mean of ``x`` over the positions where ``mask`` is true (all dims, or ``dim``); 0 where no position is
    (an empty completion), not NaN."""
    count = mask.bool().sum() if dim is None else mask.bool().sum(dim)
    return masked_sum(x, mask, dim) / count.clamp_min(1)


def sequence_logprob(token_logps: Tensor, mask: Tensor) -> Tensor:
    """log pi(y|x) = sum over the completion's tokens of log pi(y_t | x, y_<t): ``[B, T]`` -> ``[B]``."""
    return masked_sum(token_logps, mask, dim=-1)


def clipped_token_objective(
    logp: Tensor, old_logp: Tensor, advantages: Tensor, mask: Tensor, clip: float
) -> Tensor:
    """Per-token PPO-Clip objective (to MAXIMISE) of GRPO and PPO on sequences, ``[B, T]``, zero at masked tokens.

    logp: log pi_theta of each sampled token (with gradient), old_logp: the same under the policy that sampled them
    (detached), both ``[B, T]``; advantages: ``[B]`` (one per completion, GRPO: every token of a completion gets its
    group advantage) or ``[B, T]`` (per token); mask: ``[B, T]``, true on completion tokens. Each token's term is
    :func:`thorndike.core.losses.clipped_surrogate` of its ratio pi_theta / pi_old. Reduce it with
    :func:`masked_mean`: ``masked_mean(obj, mask, -1).mean()`` weights each completion equally (the GRPO paper's
    1/G sum_i 1/|o_i| sum_t), ``masked_mean(obj, mask)`` weights each token equally (DAPO's token-level mean, which
    does not let long completions' tokens count for less).
    """
    mask = mask.bool()
    if advantages.dim() == logp.dim() - 1:
        advantages = advantages.unsqueeze(-1)
    # Zero the log-ratio at masked tokens before exp: their ratio is 1, so garbage log-probabilities on padding
    # cannot overflow to inf, and the gradient there is exactly 0.
    log_ratio = torch.where(mask, logp - old_logp, torch.zeros_like(logp))
    objective = clipped_surrogate(importance_ratio(log_ratio), advantages, clip)
    return torch.where(mask, objective, torch.zeros_like(objective))


def clipped_fraction(logp: Tensor, old_logp: Tensor, mask: Tensor, clip: float) -> Tensor:
    """The fraction of completion tokens whose ratio pi_theta / pi_old lies outside [1 - clip, 1 + clip] (a 0-dim
    tensor), PPO's usual monitor of how far an update moved the policy."""
    ratio = importance_ratio(torch.where(mask.bool(), logp - old_logp, torch.zeros_like(logp)))
    return masked_mean(((ratio - 1.0).abs() > clip).float(), mask)
