"""The SARSA family: SARSA, expected SARSA, n-step SARSA and n-step Q-learning.

Notes: 003 lecture 3, value learning (L251-L259: sample, compute Q_hat, move Q toward it with step alpha), then

    SARSA            (L275-L279)  Q_hat = r + gamma * Q(s', a'),  a' ~ behaviour(.|s'), the action taken next
    expected SARSA   (L281-L283)  Q_hat = r + gamma * sum_a' pi(a'|s') Q(s', a')
    n-step SARSA     (L329-L333)  Q_hat(s_t, a_t) = sum_{k<n} gamma^k r_{t+k} + gamma^n Q(s_{t+n}, a_{t+n})
    n-step Q-learning(L335-L339)  Q_hat(s_t, a_t) = sum_{k<n} gamma^k r_{t+k} + gamma^n max_a Q(s_{t+n}, a)

and Q(s, a) <- Q(s, a) + alpha (Q_hat - Q(s, a)) for each; a terminal next state is worth 0 (the target is the reward
alone). SARSA is on-policy (L305-L311): it learns the values of the epsilon-greedy policy it follows, so on
CliffWalking it prefers the path away from the cliff edge, where Q-learning learns the greedy policy's values and walks
along the edge (Sutton and Barto, example 6.6; tests/tabular/test_classic_results.py).

Expected SARSA here takes the expectation under the behaviour policy (``TabularAgent.behaviour_probs``), which makes it
on-policy like SARSA with the sampling noise of a' removed; the notes list it as off-policy (L321), which it is when pi
is another policy: with pi greedy its target is Q-learning's (epsilon = 0 shows it, INVENTORY C19).

n-step methods are online: each run keeps its last n (s, a, r) (:class:`thorndike.core.n_step.NStepBuffer`) and
updates the pair of n steps ago at every step; when an episode ends, all the pairs still waiting are updated at that
step with the truncated sums (no bootstrap after a termination; the bootstrap from the true last state after a
time-limit truncation). With n = 1 they are SARSA and Q-learning, step for step.

The notes' claim "They all are on-policy" (L325, INVENTORY E21) is wrong for n-step Q-learning as written: the
rewards r_{t+1} .. r_{t+n-1} come from the behaviour policy's actions, not the greedy ones, so without importance
sampling or a tree backup its fixed point is neither Q* nor Q^behaviour but a mix (the first n - 1 steps follow the
behaviour, the rest is greedy). Under a uniformly random behaviour on a two-step chain it learns
Q(s0, go) = E_behaviour[r_1 + r_2] = 0 where Q* = 1 (tests/tabular/test_sarsa.py). It is unbiased only when the
behaviour is greedy (or n = 1).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import Tensor

from thorndike.config import check, describe
from thorndike.core.n_step import NStepBuffer
from thorndike.core.targets import (
    expected_sarsa_target,
    expected_sarsa_target_value,
    sarsa_target,
    sarsa_target_value,
)
from thorndike.tabular.base import TabularAgent, TabularConfig, Transition

__all__ = [
    "SARSA",
    "ExpectedSARSA",
    "ExpectedSARSAConfig",
    "NStepConfig",
    "NStepQLearning",
    "NStepSARSA",
    "SARSAConfig",
    "expected_sarsa_scalar_target",
    "sarsa_scalar_target",
]


@dataclass
class SARSAConfig(TabularConfig):
    """SARSA's hyperparameters: those of every tabular learner (see :class:`TabularConfig`)."""


@dataclass
class ExpectedSARSAConfig(TabularConfig):
    """Expected SARSA's hyperparameters: those of every tabular learner (see :class:`TabularConfig`)."""


@dataclass
class NStepConfig(TabularConfig):
    """n-step SARSA's and n-step Q-learning's hyperparameters: those of every tabular learner, and n."""

    # each step sums the last n rewards: Sutton and Barto's figures go to n = 512
    n: int = describe("steps of real rewards before bootstrapping (1: one-step SARSA / Q-learning)", 4,
                      at_most=10_000)

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.n >= 1, "n", self.n, ">= 1")


def sarsa_scalar_target(reward: float, gamma: float, q_next: list[float], terminated: bool, next_action: int,
                        next_probs: Callable[[], list[float]]) -> float:
    """SARSA's target for one run on plain numbers (the few-runs path, :mod:`thorndike.tabular.scalar`):
    r + gamma Q(s', a'), r where s' is terminal."""
    return sarsa_target_value(reward, gamma, q_next, next_action, terminated)


def expected_sarsa_scalar_target(reward: float, gamma: float, q_next: list[float], terminated: bool,
                                 next_action: int, next_probs: Callable[[], list[float]]) -> float:
    """Expected SARSA's target for one run on plain numbers (the few-runs path): r + gamma sum_a' pi(a'|s')
    Q(s', a'), pi the behaviour policy at s' (``next_probs()``), r where s' is terminal."""
    return expected_sarsa_target_value(reward, gamma, q_next, next_probs(), terminated)


class SARSA(TabularAgent):
    """Tabular SARSA: on-policy TD control toward r + gamma Q(s', a'), a' the behaviour's next action."""

    name = "sarsa"
    Config = SARSAConfig
    scalar_target = staticmethod(sarsa_scalar_target)

    def learn(self, total_steps: int) -> SARSA:
        """Give every run ``total_steps`` steps (or stop at the run's ``stop_return``)."""
        config = self.config
        with self.session(total_steps) as run:
            while run.running():
                steps = self.steps_this_iteration(config.log_every)
                if self.scalar is not None:  # few runs: the same steps and updates in plain Python
                    self.scalar.learn(steps, next_action=True)
                    run.log(self.log_stats())
                    continue
                # a' is drawn before the update and is the action taken on the next step (collect keeps it).
                for t in self.collect(steps, next_action=True):
                    target = sarsa_target(t.reward, config.gamma, self.tables.rows("q", t.next_obs), t.next_action,
                                          t.terminated)
                    self.tables.update("q", t.obs, t.action, target, self.alpha(t.obs, t.action))
                run.log(self.log_stats())
        return self


class ExpectedSARSA(TabularAgent):
    """Tabular expected SARSA: TD control toward r + gamma E_{a' ~ behaviour(.|s')} Q(s', a')."""

    name = "expected_sarsa"
    Config = ExpectedSARSAConfig
    scalar_target = staticmethod(expected_sarsa_scalar_target)

    def learn(self, total_steps: int) -> ExpectedSARSA:
        """Give every run ``total_steps`` steps (or stop at the run's ``stop_return``)."""
        config = self.config
        with self.session(total_steps) as run:
            while run.running():
                steps = self.steps_this_iteration(config.log_every)
                if self.scalar is not None:  # few runs: the same steps and updates in plain Python
                    self.scalar.learn(steps)
                    run.log(self.log_stats())
                    continue
                for t in self.collect(steps):
                    target = expected_sarsa_target(t.reward, config.gamma, self.tables.rows("q", t.next_obs),
                                                   self.behaviour_probs(t.next_obs), t.terminated)
                    self.tables.update("q", t.obs, t.action, target, self.alpha(t.obs, t.action))
                run.log(self.log_stats())
        return self


class NStepSARSA(TabularAgent):
    """n-step SARSA: on-policy TD control toward n rewards plus gamma^n Q(s_{t+n}, a_{t+n}).

    With ``alpha_schedule="1/n"`` the count n(s, a) includes the visits whose updates are still waiting.
    """

    name = "n_step_sarsa"
    Config = NStepConfig

    def build(self) -> None:
        super().build()
        self.n_step = NStepBuffer(self.config.n, self.config.n_runs, self.device)
        self.components["n_step"] = self.n_step

    def learn(self, total_steps: int) -> NStepSARSA:
        """Give every run ``total_steps`` steps (or stop at the run's ``stop_return``)."""
        with self.session(total_steps) as run:
            while run.running():
                for t in self.collect(self.steps_this_iteration(self.config.log_every), next_action=True):
                    bootstrap = self.tables.rows("q", t.next_obs).gather(-1, t.next_action.unsqueeze(-1)).squeeze(-1)
                    n_step_update(self, self.n_step, t, bootstrap)
                run.log(self.log_stats())
        return self


class NStepQLearning(TabularAgent):
    """n-step Q-learning: n behaviour rewards plus gamma^n max_a Q(s_{t+n}, a); biased off-policy (S&B sec. 7.3).

    Its first n - 1 steps follow the behaviour policy with no importance-sampling correction, so under an
    exploratory behaviour it does not learn Q* (see the module docstring). With ``alpha_schedule="1/n"`` the count
    n(s, a) includes the visits whose updates are still waiting.
    """

    name = "n_step_q_learning"
    Config = NStepConfig

    def build(self) -> None:
        super().build()
        self.n_step = NStepBuffer(self.config.n, self.config.n_runs, self.device)
        self.components["n_step"] = self.n_step

    def learn(self, total_steps: int) -> NStepQLearning:
        """Give every run ``total_steps`` steps (or stop at the run's ``stop_return``)."""
        with self.session(total_steps) as run:
            while run.running():
                for t in self.collect(self.steps_this_iteration(self.config.log_every)):
                    n_step_update(self, self.n_step, t, self.tables.rows("q", t.next_obs).amax(-1))
                run.log(self.log_stats())
        return self


def n_step_update(agent: TabularAgent, buffer: NStepBuffer, t: Transition, bootstrap: Tensor) -> None:
    """Store step ``t`` in ``buffer`` and make the updates it completes on ``agent``'s table ``q``, oldest first.

    ``bootstrap`` ``[R]`` is the method's value of the true next state (read before any of these updates).
    """
    buffer.push(t.obs, t.action, t.reward)
    for u in buffer.updates(bootstrap, t.terminated, t.done, agent.config.gamma):
        agent.tables.update("q", u.states, u.actions, u.target, agent.alpha(u.states, u.actions), active=u.active)
    buffer.end_episodes(t.done)
