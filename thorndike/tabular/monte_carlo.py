"""Monte Carlo prediction of V^pi and on-policy Monte Carlo control.

Notes: 000 L243-L248 (Monte Carlo needs the return of the whole episode before it updates), 001 L45-L48 (two
equivalent forms of the update), 004 L1707-L1736 (the return G_t; unbiased, high variance, needs complete
episodes), 003 L289-L301 (epsilon-greedy and GLIE exploration for control). At the end of each episode, for
t = T-1 down to 0:

    G_t = r_t + gamma * G_{t+1}                        (G_T = 0; see "time limits" below)
    V(s_t) <- V(s_t) + alpha * (G_t - V(s_t))  =  (1 - alpha) * V(s_t) + alpha * G_t

``visit="first"`` updates V(s) only from the first time s occurs in the episode (each episode gives one sample of
V^pi(s)); ``visit="every"`` from every occurrence. ``step_size="constant"`` uses alpha (a recency-weighted average
that tracks a changing target); ``step_size="mean"`` uses alpha = 1 / N(s), N(s) counting the returns used for s so
far (this one included), so V(s) is exactly the average of those returns (Sutton and Barto sections 5.1, 2.4).

Control (:class:`MCControl`) does the same for Q(s, a) with the agent's epsilon-greedy behaviour policy, which
acts greedily in the current Q: on-policy first-visit Monte Carlo control (Sutton and Barto section 5.4). With
``epsilon_decay`` < 1 exploration fades (GLIE, 003 L300-L301).

Time limits. Monte Carlo is defined for episodes that terminate. An episode cut by a time limit has no final return;
its tail is then bootstrapped: G_T = V(s_T) for prediction, sum_a pi(a|s_T) Q(s_T, a) under the behaviour policy
for control (the convention of :mod:`thorndike.core.returns`).

All runs step in lockstep; each run's episode is kept in an :class:`~thorndike.tabular.prediction.EpisodeBuffer`
and, on a step where some runs' episodes end, those runs are updated together. The backward pass is done in closed
form (:func:`mc_update`: what the sequential updates leave, computed with scatter-adds), so an update costs a few
tensor operations whatever the episode's length.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from thorndike.config import check, describe
from thorndike.core.returns import reward_to_go
from thorndike.tabular.base import TabularAgent, TabularConfig
from thorndike.tabular.prediction import (
    EpisodeBuffer,
    Episodes,
    PredictionAgent,
    PredictionConfig,
    TensorStore,
)

__all__ = ["MCControl", "MCControlConfig", "MCPrediction", "MCPredictionConfig", "earlier_visits",
           "episode_returns", "mc_update"]

VISITS = ("first", "every")
STEP_SIZES = ("constant", "mean")
_DISCOUNT_MATRIX_MAX = 1024  # longer episodes use reward_to_go's loop rather than a [T, T] matrix


def episode_returns(rewards: Tensor, lengths: Tensor, tail: Tensor, gamma: float) -> Tensor:
    """G_t = sum_{k=t}^{L-1} gamma^(k-t) r_k + gamma^(L-t) tail, for a batch of episodes of lengths L.

    rewards: ``[D, T]`` (0 past each length), lengths ``[D]``, tail ``[D]`` (0 for an episode that terminated) ->
    returns ``[D, T]`` (meaningless past each length).
    """
    D, T = rewards.shape
    padded = torch.cat([rewards, rewards.new_zeros((D, 1))], 1)
    # The tail is one more "reward" right after the episode's last step.
    padded[torch.arange(D, device=rewards.device), lengths] += tail
    if T > _DISCOUNT_MATRIX_MAX:
        return reward_to_go(padded.t(), gamma).t()[:, :T]
    # One matrix product instead of a loop over time: G = padded @ W, W[k, t] = gamma^(k - t) for k >= t.
    steps = torch.arange(T + 1, device=rewards.device, dtype=rewards.dtype)
    lag = steps.unsqueeze(1) - steps[:T]
    weights = torch.where(lag >= 0, torch.pow(gamma, lag.clamp_min(0.0)), 0.0)
    return padded @ weights


def earlier_visits(keys: Tensor, valid: Tensor) -> Tensor:
    """``[D, T]`` long: how many valid steps of row d before step t have the same key (state, or state-action
    index) as step t; 0 marks a first visit. One sort per row (by key, then time), no loop."""
    D, T = keys.shape
    steps = torch.arange(T, device=keys.device).expand(D, T)
    # Invalid steps get a key above every real one, so they sort after the valid steps and form their own group.
    grouped = torch.where(valid, keys, keys.max() + 1 if keys.numel() else 0)
    order = torch.sort(grouped * T + steps, dim=1).indices  # by key, then by time
    sorted_keys = grouped.gather(1, order)
    new_group = torch.ones_like(valid)
    new_group[:, 1:] = sorted_keys[:, 1:] != sorted_keys[:, :-1]
    group_start = torch.cummax(torch.where(new_group, steps, 0), dim=1).values
    return torch.empty_like(steps).scatter_(1, order, steps - group_start)


def mc_update(table: Tensor, counts: Tensor, runs: Tensor, keys: Tensor, returns: Tensor, use: Tensor,
              earlier: Tensor, step_size: str, alpha: float) -> None:
    """Update ``table`` ``[R, K]`` (K states, or S * A state-action pairs) in place from the returns of the episodes
    of ``runs`` ``[D]``: as if ``table[r, keys[d, t]]`` moved toward ``returns[d, t]`` for every used step, in the
    order t = T-1 down to 0, but in closed form over the rows (no loop over time).

    ``step_size="constant"``: k updates V <- V + alpha (G - V) leave (1 - alpha)^k V_0 + sum_j alpha (1 - alpha)^(j')
    G_j, j' being the updates that come after G_j's (the visits earlier in time: ``earlier`` ``[D, T]``).
    ``"mean"``: V <- (N V + sum G) / (N + k), the average of all returns so far; ``counts`` ``[R, K]`` holds N.
    """
    D, K = len(runs), table.shape[1]
    used = use.to(table.dtype)
    k = torch.zeros((D, K), dtype=table.dtype, device=table.device).scatter_add_(1, keys, used)
    old = table[runs]
    if step_size == "mean":
        n = counts[runs].to(table.dtype)
        total = torch.zeros_like(old).scatter_add_(1, keys, used * returns)
        table[runs] = torch.where(k > 0, (n * old + total) / (n + k).clamp_min(1.0), old)
    else:
        weighted = used * alpha * (1.0 - alpha) ** earlier.to(table.dtype) * returns
        table[runs] = (1.0 - alpha) ** k * old + torch.zeros_like(old).scatter_add_(1, keys, weighted)
    counts[runs] += k.to(counts.dtype)


@dataclass
class MCPredictionConfig(PredictionConfig):
    """Monte Carlo prediction's hyperparameters (see :class:`PredictionConfig` and :class:`TabularConfig`)."""

    visit: str = describe("first: update V(s) from the first visit of s in an episode; every: from every visit",
                          "first")
    step_size: str = describe("constant: V += alpha (G - V); mean: alpha = 1 / N(s), the sample average of the "
                              "returns", "constant")

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.visit in VISITS, "visit", self.visit, f"one of {', '.join(VISITS)}")
        check(self.step_size in STEP_SIZES, "step_size", self.step_size, f"one of {', '.join(STEP_SIZES)}")
        check(self.alpha_schedule == "constant", "alpha_schedule", self.alpha_schedule,
              "constant for Monte Carlo (use step_size='mean' for 1 / N(s))")


class MCPrediction(PredictionAgent):
    """Monte Carlo prediction: V^pi of a fixed policy from complete episodes' returns."""

    name = "mc_prediction"
    Config = MCPredictionConfig

    def build(self) -> None:
        super().build()
        self.buffer = EpisodeBuffer(self.config.n_runs, self.device)
        self.counts = TensorStore(n=torch.zeros((self.config.n_runs, self.n_states), dtype=torch.int64,
                                                device=self.device))
        self.components["buffer"] = self.buffer
        self.components["counts"] = self.counts

    def learn(self, total_steps: int) -> MCPrediction:
        """Give every run ``total_steps`` steps of the evaluated policy; V changes when an episode ends."""
        with self.session(total_steps) as run:
            while run.running():
                for t in self.collect(self.steps_this_iteration(self.config.log_every)):
                    self.buffer.append(t.obs, t.action, t.reward, t.next_obs, t.terminated)
                    episodes = self.buffer.take(t.done)
                    if episodes is not None:
                        self.update(episodes)
                        self.record_curve(t.done)
                run.log(self.log_stats())
        return self

    def update(self, episodes: Episodes) -> None:
        """The Monte Carlo update of V from the episodes that just ended."""
        config, v = self.config, self.tables["v"]
        tail = torch.where(episodes.terminated, 0.0, v[episodes.runs, episodes.final_states])
        returns = episode_returns(episodes.rewards, episodes.lengths, tail, config.gamma)
        states = episodes.states[:, :-1]
        earlier = earlier_visits(states, episodes.valid)
        use = episodes.valid & (earlier == 0) if config.visit == "first" else episodes.valid
        mc_update(v, self.counts["n"], episodes.runs, states, returns, use, earlier, config.step_size, config.alpha)


@dataclass
class MCControlConfig(TabularConfig):
    """On-policy Monte Carlo control's hyperparameters (see :class:`TabularConfig`: epsilon-greedy by default)."""

    visit: str = describe("first: update Q(s, a) from the first visit of (s, a) in an episode; every: from every "
                          "visit", "first")
    step_size: str = describe("constant: Q += alpha (G - Q); mean: alpha = 1 / N(s, a), the sample average of the "
                              "returns", "mean")

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.visit in VISITS, "visit", self.visit, f"one of {', '.join(VISITS)}")
        check(self.step_size in STEP_SIZES, "step_size", self.step_size, f"one of {', '.join(STEP_SIZES)}")
        check(self.alpha_schedule == "constant", "alpha_schedule", self.alpha_schedule,
              "constant for Monte Carlo (use step_size='mean' for 1 / N(s, a))")


class MCControl(TabularAgent):
    """On-policy Monte Carlo control: Q from episodes' returns, acting epsilon-greedily in Q."""

    name = "mc_control"
    Config = MCControlConfig

    def build(self) -> None:
        super().build()
        self.buffer = EpisodeBuffer(self.config.n_runs, self.device)
        self.counts = TensorStore(n=torch.zeros((self.config.n_runs, self.n_states, self.n_actions),
                                                dtype=torch.int64, device=self.device))
        self.components["buffer"] = self.buffer
        self.components["counts"] = self.counts

    def learn(self, total_steps: int) -> MCControl:
        """Give every run ``total_steps`` steps; Q (and so the behaviour policy) changes when an episode ends."""
        with self.session(total_steps) as run:
            while run.running():
                for t in self.collect(self.steps_this_iteration(self.config.log_every)):
                    self.buffer.append(t.obs, t.action, t.reward, t.next_obs, t.terminated)
                    episodes = self.buffer.take(t.done)
                    if episodes is not None:
                        self.update(episodes)
                run.log(self.log_stats())
        return self

    def update(self, episodes: Episodes) -> None:
        """The Monte Carlo update of Q from the episodes that just ended."""
        config, q = self.config, self.tables["q"]
        tail = torch.zeros(len(episodes.runs), dtype=torch.float64, device=self.device)
        if not bool(episodes.terminated.all()):
            # A time-limit cut: bootstrap with the behaviour policy's expected value at the last state.
            final = torch.zeros(config.n_runs, dtype=torch.int64, device=self.device)
            final[episodes.runs] = episodes.final_states
            expected = (self.behaviour_probs(final) * q[self.tables.runs, final]).sum(-1)[episodes.runs]
            tail = torch.where(episodes.terminated, tail, expected)
        returns = episode_returns(episodes.rewards, episodes.lengths, tail, config.gamma)
        pairs = episodes.states[:, :-1] * self.n_actions + episodes.actions
        earlier = earlier_visits(pairs, episodes.valid)
        use = episodes.valid & (earlier == 0) if config.visit == "first" else episodes.valid
        # Q [R, S, A] seen as [R, S * A] (a view: the update writes through).
        mc_update(q.view(config.n_runs, -1), self.counts["n"].view(config.n_runs, -1), episodes.runs, pairs,
                  returns, use, earlier, config.step_size, config.alpha)
