"""Reward model: a scalar score of a (prompt, completion) learned from preference pairs with the Bradley-Terry loss.

Lecture-notes concept: 003 lecture 8, "Reward Model" (heading only in the notes): the reward of RLHF is a model of
human comparisons, P(chosen > rejected) = sigmoid(r(x, y_c) - r(x, y_r)) (Bradley and Terry 1952; Christiano et al.
2017; Ouyang et al. 2022), fitted by minimising -log sigmoid(r_c - r_r) over the pairs.

The model is the language model's transformer with a scalar head on the final hidden state of the LAST REAL token of
prompt + completion + EOS (the EOS has attended to every token before it, so its state summarises the whole text).
The pairs are labelled by the hidden rule of :mod:`thorndike.lm.preferences`, which the model never sees; its
held-out pair accuracy (pairs on test-split prompts) says how much of the rule it has learned.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["last_token_index", "last_token_hidden", "RewardModel"]


def last_token_index(attention_mask: Tensor) -> Tensor:
    """The column of each row's last real token, ``[B, L]`` -> ``[B]`` (long): whatever padding lies left (prompts)
    or right (finished completions) of it. A row with no real token gets column 0."""
    columns = torch.arange(attention_mask.shape[-1], device=attention_mask.device)
    return torch.where(attention_mask.bool(), columns, torch.zeros_like(columns)).amax(-1)


def last_token_hidden(hidden: Tensor, attention_mask: Tensor) -> Tensor:
    """``hidden [B, L, d]`` at each row's last real token -> ``[B, d]``."""
    index = last_token_index(attention_mask)
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), index]


class RewardModel(nn.Module):
    """A scalar score per sequence: ``Linear(d_model, 1)`` on the transformer's final hidden state at the last real
    token. ``trunk`` is any model with the :mod:`thorndike.lm.model` interface (its logits are not used)."""

    def __init__(self, trunk: nn.Module, d_model: int) -> None:
        super().__init__()
        self.trunk = trunk
        self.head = nn.Linear(d_model, 1)
        # A zero head scores every sequence 0 at first: the Bradley-Terry loss starts at log 2 for every pair.
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, ids: Tensor, attention_mask: Tensor) -> Tensor:
        """Scores ``[B]`` of the sequences ``ids, attention_mask [B, L]``."""
        hidden = self.trunk(ids, attention_mask, return_hidden=True)[2]
        return self.head(last_token_hidden(hidden, attention_mask)).squeeze(-1)
