"""Temporal-difference prediction of V^pi: TD(0) and TD(lambda) with eligibility traces.

Notes: 000 L249-L252 and 004 L1738-L1741 (TD(0)), 001 L50-L52 (learning at each step, bootstrapping),
003 L1230-L1269 (N-step updates, eligibility traces, TD(lambda) and its N-step weights). TD(0), every step of every
run:

    delta_t = r_t + gamma * V(s_{t+1}) - V(s_t)        (V(s_{t+1}) = 0 when s_{t+1} is terminal)
    V(s_t) <- V(s_t) + alpha * delta_t

TD(lambda) spreads each TD error over the states visited before, through an eligibility trace e ``[R, S]``
(zero at the start of every episode):

    e <- gamma * lambda * e;   e(s_t) <- e(s_t) + 1 (accumulating) or e(s_t) <- 1 (replacing)
    V(s) <- V(s) + alpha * delta_t * e(s)     for every s

``mode="online"`` applies the increment at every step (V changes within the episode); ``mode="offline"`` adds the
same increments up with V held fixed and applies their sum when the episode ends; ``mode="lambda_return"`` is the
offline lambda-return algorithm: at the episode's end every V(s_t) moves toward the lambda-return

    G_t^lambda = r_t + gamma * [(1 - lambda) V(s_{t+1}) + lambda G_{t+1}^lambda]
               = (1 - lambda) sum_{N>=1} lambda^(N-1) G_t^(N)          (003 L1257-L1258, INVENTORY C21)

computed from the V of the episode's start, the increments alpha (G_t^lambda - V(s_t)) being summed per state.
With accumulating traces the offline mode and the lambda-return algorithm are the same update (the sum over t of
gamma^k lambda^k delta_{t+k} telescopes to G_t^lambda - V(s_t)); lambda = 0 is TD(0); lambda = 1 is every-visit
Monte Carlo (offline: exactly its summed form, INVENTORY C20).

The notes' rule (003 L1243-L1250, INVENTORY A28/E31) decays the trace by gamma alone and is the lambda = 1 case
(their heading says so: online "Monte-Carlo" updates); its update "V(s_t) <- V(s_t) + alpha e(s_t) Psi_(1)(s_t,
a_t)" must be read as applying the *current* step's TD error delta_t = Psi_(1)(s_t, a_t) to every state s. This
module decays by gamma * lambda, which is TD(lambda) for every lambda.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from thorndike.config import check, describe
from thorndike.core.returns import lambda_returns
from thorndike.core.targets import td_target
from thorndike.tabular.prediction import EpisodeBuffer, Episodes, PredictionAgent, PredictionConfig, TensorStore

__all__ = ["TD0", "TD0Config", "TDLambda", "TDLambdaConfig", "episode_lambda_returns"]

TRACES = ("accumulating", "replacing")
MODES = ("online", "offline", "lambda_return")


@dataclass
class TD0Config(PredictionConfig):
    """TD(0)'s hyperparameters (see :class:`PredictionConfig`); ``alpha_schedule="1/n"`` gives alpha = 1 / n(s)."""


class TD0(PredictionAgent):
    """TD(0) prediction: V(s) moves toward r + gamma V(s') after every step of the evaluated policy."""

    name = "td0"
    Config = TD0Config

    def learn(self, total_steps: int) -> TD0:
        """Give every run ``total_steps`` steps of the evaluated policy, updating V after each."""
        config, v = self.config, self.tables["v"]
        with self.session(total_steps) as run:
            while run.running():
                for t in self.collect(self.steps_this_iteration(self.config.log_every)):
                    target = td_target(t.reward, config.gamma, v[self.tables.runs, t.next_obs], t.terminated)
                    self.tables.update("v", t.obs, None, target, self.state_alpha(t.obs))
                    self.record_curve(t.done)
                run.log(self.log_stats())
        return self

    def state_alpha(self, states: Tensor) -> Tensor | float:
        """alpha, or 1 / n(s) with n(s) the updates of s so far, this one included (``alpha_schedule="1/n"``)."""
        if self.config.alpha_schedule == "1/n":
            return 1.0 / (self.tables.visits[self.tables.runs, states].sum(-1) + 1).double()
        return self.config.alpha


@dataclass
class TDLambdaConfig(PredictionConfig):
    """TD(lambda)'s hyperparameters (see :class:`PredictionConfig`)."""

    lam: float = describe("lambda: how far back each TD error reaches (0: TD(0), 1: Monte Carlo)", 0.9)
    trace: str = describe("accumulating: e(s_t) += 1; replacing: e(s_t) = 1", "accumulating")
    mode: str = describe("online: update every step; offline: sum the updates, apply at episode end; "
                         "lambda_return: move V(s_t) toward the lambda-return at episode end", "online")

    def __post_init__(self) -> None:
        super().__post_init__()
        check(0.0 <= self.lam <= 1.0, "lam", self.lam, "in [0, 1]")
        check(self.trace in TRACES, "trace", self.trace, f"one of {', '.join(TRACES)}")
        check(self.mode in MODES, "mode", self.mode, f"one of {', '.join(MODES)}")
        check(self.alpha_schedule == "constant", "alpha_schedule", self.alpha_schedule,
              "constant for TD(lambda) (one step size for every traced state)")


def episode_lambda_returns(episodes: Episodes, v: Tensor, gamma: float, lam: float) -> Tensor:
    """G_t^lambda ``[D, T]`` of the episodes that ended, bootstrapping from ``v`` ``[R, S]`` (0 past each length):
    a terminated episode's last step has no bootstrap, a time-limit cut bootstraps from V(s_T)."""
    runs = episodes.runs.unsqueeze(1)
    next_values = v[runs, episodes.states[:, 1:]]
    T = next_values.shape[1]
    last = torch.arange(T, device=v.device) == (episodes.lengths - 1).unsqueeze(1)
    terminated = last & episodes.terminated.unsqueeze(1)
    # Past its length a row is padding: cutting it at its last step (truncated there) keeps the padding out.
    truncated = last & ~episodes.terminated.unsqueeze(1)
    returns = lambda_returns(episodes.rewards.t(), next_values.t(), terminated.t(), truncated.t(), gamma, lam).t()
    return torch.where(episodes.valid, returns, 0.0)


class TDLambda(PredictionAgent):
    """TD(lambda) prediction with eligibility traces (online, offline, or the offline lambda-return algorithm)."""

    name = "td_lambda"
    Config = TDLambdaConfig

    def build(self) -> None:
        super().build()
        shape = (self.config.n_runs, self.n_states)
        # e: the eligibility traces; pending: offline mode's increments, applied at the episode's end.
        self.traces = TensorStore(e=torch.zeros(shape, dtype=torch.float64, device=self.device),
                                  pending=torch.zeros(shape, dtype=torch.float64, device=self.device))
        self.components["traces"] = self.traces
        self.buffer: EpisodeBuffer | None = None
        if self.config.mode == "lambda_return":
            self.buffer = EpisodeBuffer(self.config.n_runs, self.device)
            self.components["buffer"] = self.buffer

    def learn(self, total_steps: int) -> TDLambda:
        """Give every run ``total_steps`` steps of the evaluated policy (V changes every step when online, at each
        episode's end otherwise)."""
        config, v = self.config, self.tables["v"]
        runs = self.tables.runs
        with self.session(total_steps) as run:
            while run.running():
                for t in self.collect(self.steps_this_iteration(self.config.log_every)):
                    if self.buffer is not None:
                        self.buffer.append(t.obs, t.action, t.reward, t.next_obs, t.terminated)
                        episodes = self.buffer.take(t.done)
                        if episodes is not None:
                            self.lambda_return_update(episodes)
                    else:
                        target = td_target(t.reward, config.gamma, v[runs, t.next_obs], t.terminated)
                        self.trace_update(t.obs, target - v[runs, t.obs], t.done)
                    self.record_curve(t.done)
                run.log(self.log_stats())
        return self

    def trace_update(self, states: Tensor, delta: Tensor, done: Tensor) -> None:
        """One step of every run: decay and mark the traces, then apply (online) or add up (offline)
        alpha delta e; at an episode's end the traces restart from zero and offline sums are applied."""
        config, v = self.config, self.tables["v"]
        e, pending = self.traces["e"], self.traces["pending"]
        runs = self.tables.runs
        e.mul_(config.gamma * config.lam)
        if config.trace == "accumulating":
            e[runs, states] += 1.0
        else:
            e[runs, states] = 1.0
        increment = config.alpha * delta.unsqueeze(1) * e
        if config.mode == "online":
            v.add_(increment)
        else:
            pending.add_(increment)
            ended = done.unsqueeze(1)
            v.add_(torch.where(ended, pending, 0.0))
            pending.masked_fill_(ended, 0.0)
        e.masked_fill_(done.unsqueeze(1), 0.0)

    def lambda_return_update(self, episodes: Episodes) -> None:
        """The offline lambda-return algorithm for the episodes that just ended: V(s) += alpha * sum over the
        visits t of s of (G_t^lambda - V(s_t)), all from the V of the episode's start."""
        config, v = self.config, self.tables["v"]
        returns = episode_lambda_returns(episodes, v, config.gamma, config.lam)
        states = episodes.states[:, :-1]
        runs = episodes.runs.unsqueeze(1).expand_as(states)
        increments = torch.where(episodes.valid, config.alpha * (returns - v[runs, states]), 0.0)
        v.index_put_((runs, states), increments, accumulate=True)

    def log_stats(self) -> dict[str, float]:
        return super().log_stats() | {"trace_mean": float(self.traces["e"].sum(-1).mean())}
