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

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from thorndike.config import ConfigError
from thorndike.interaction import EvalResult
from thorndike.lm.common import Completions, LMAgent, LMParts, lm_curves, read_model_state, refuse_env
from thorndike.lm.losses import bradley_terry_loss, preference_accuracy
from thorndike.lm.preferences import PreferenceConfig, PreferenceData, due, pair_result

__all__ = ["last_token_index", "last_token_hidden", "RewardModel", "RewardModelConfig", "RewardModelAgent",
           "load_reward_model"]


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


@dataclass
class RewardModelConfig(PreferenceConfig):
    """The LM fields, the hidden rule's and its pairs' (:class:`~thorndike.lm.preferences.PreferenceConfig`): a step
    is one Adam update on ``batch_size`` pairs."""

    def __post_init__(self) -> None:
        super().__post_init__()


def reward_loss(reward: RewardModel, batch: Completions) -> tuple[Tensor, Tensor, Tensor]:
    """Mean Bradley-Terry loss of a pair batch (:meth:`PreferenceData.batch`: chosen rows, then rejected rows), and
    the chosen and rejected scores ``[B]``."""
    scores = reward(batch.ids, batch.attention_mask)
    chosen, rejected = scores.chunk(2)
    return bradley_terry_loss(chosen, rejected).mean(), chosen, rejected


class RewardModelAgent(LMAgent):
    """Reward model: a scalar head on the transformer, fitted to preference pairs with the Bradley-Terry loss."""

    name = "reward_model"
    Config = RewardModelConfig

    def build(self) -> None:
        refuse_env(self)
        self.lm = LMParts(self.config, self.device)  # the trunk: the LM, warm-started from init_from when given
        self.data = PreferenceData(self.lm, self.config)
        self.reward = RewardModel(self.lm.model, self.config.d_model).to(self.device)
        self.optimizer = torch.optim.Adam(self.reward.parameters(), lr=self.config.lr)
        self.components = {**self.lm.components(), "reward_head": self.reward.head, "optimizer": self.optimizer}
        if self.config.pair_source != "perturbed":  # the frozen warm start whose samples make pairs
            self.components["reference"] = self.lm.reference()

    def learn(self, total_steps: int) -> RewardModelAgent:
        config = self.config
        self.reward.train()
        parameters = list(self.reward.parameters())
        with self.session(total_steps) as run:
            while run.running():
                start = self.global_step
                losses, accuracies, margins = [], [], []
                for _ in range(self.steps_this_iteration(config.log_every)):
                    batch = self.data.batch(self.data.sample(config.batch_size, self.generator))  # collect
                    loss, chosen, rejected = reward_loss(self.reward, batch)  # targets: the labels
                    self.lm.clip_and_step(self.optimizer, loss, self.global_step, parameters)  # update
                    losses.append(loss.detach())
                    accuracies.append(preference_accuracy(chosen.detach(), rejected.detach()))
                    margins.append((chosen - rejected).detach().mean())
                    self.global_step += 1
                mean_loss = torch.stack(losses).mean()
                self.check_finite("reward model loss", mean_loss)
                row = {"loss": float(mean_loss), "accuracy": float(torch.stack(accuracies).mean()),
                       "margin": float(torch.stack(margins).mean())}
                if config.heldout_every > 0:
                    row["heldout/pair_accuracy"] = (self.evaluate().mean
                                                    if due(config.heldout_every, start, self.global_step)
                                                    else float("nan"))
                run.log(row)  # log
        return self

    # ---- what the lifecycle and users ask of it -----------------------------------------------------------------

    @torch.no_grad()
    def score(self, prompts: list[str] | str, completions: list[str] | str) -> list[float]:
        """The reward model's score of each (prompt, completion)."""
        prompts = [prompts] if isinstance(prompts, str) else list(prompts)
        completions = [completions] if isinstance(completions, str) else list(completions)
        batch = self.lm.join(prompts, completions)
        was_training = self.reward.training
        self.reward.eval()
        try:
            return self.reward(batch.ids, batch.attention_mask).tolist()
        finally:
            self.reward.train(was_training)

    def evaluate(self, episodes: int | None = None, deterministic: bool = True, seed: int | None = None,
                 **_: Any) -> EvalResult:
        """HELD-OUT PAIR ACCURACY (the mean): the fraction of the first ``episodes`` of the fixed held-out pairs
        (test-split prompts; all ``heldout_pairs`` when None) whose chosen completion the model scores strictly above
        the rejected one; each return is 1 or 0."""
        was_training = self.reward.training
        self.reward.eval()
        try:
            chosen, rejected = self.data.heldout_scores(lambda b: self.reward(b.ids, b.attention_mask), episodes)
        finally:
            self.reward.train(was_training)
        return pair_result(chosen, rejected)

    def summary(self) -> str:
        """What the command line reports after training: the held-out pair accuracy."""
        result = self.evaluate()
        return (f"held-out pair accuracy {result.mean:.3f} ({len(result.returns)} pairs on test-split prompts of "
                f"{self.lm.task.name}, labelled by the hidden rule)")

    def write_pictures(self, run_dir: Path) -> list[Path]:
        return [lm_curves(run_dir, run_dir / "curve.png", ("loss", "accuracy", "heldout/pair_accuracy",
                                                           "eval_mean"))]


def load_reward_model(path: str, task_tokenizer: Any, device: torch.device) -> RewardModel:
    """The frozen reward model of a ``reward_model`` run (its folder or a checkpoint), for RLHF-PPO: built from the
    run's own config (its shape may differ from the policy's) with its weights; a run of another algorithm or on
    another task is refused naming ``reward_from``."""
    state = read_model_state(path)
    if state.get("algo") != "reward_model" or "reward_head" not in state.get("components", {}):
        raise ConfigError(f"invalid config: reward_from={path!r} is a {state.get('algo')!r} run; give the run folder "
                          "or a checkpoint of a reward_model run")
    if state["components"].get("tokenizer") != task_tokenizer.state_dict():
        raise ConfigError(f"invalid config: reward_from={path!r} is a reward model of another task (its tokenizer "
                          f"is {state['components'].get('tokenizer')}); train it on this task")
    fields = {f.name for f in dataclasses.fields(RewardModelConfig)}
    config = RewardModelConfig(**{**{k: v for k, v in state["config"].items() if k in fields}, "init_from": None})
    trunk = LMParts(config, device).model
    reward = RewardModel(trunk, config.d_model).to(device)
    trunk.load_state_dict(state["components"]["model"])
    reward.head.load_state_dict(state["components"]["reward_head"])
    reward.eval().requires_grad_(False)
    return reward
