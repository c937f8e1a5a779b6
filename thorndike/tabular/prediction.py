"""What the prediction learners share (Monte Carlo prediction, TD(0), TD(lambda)): the fixed policy they evaluate,
each run's current episode, and each run's V after each of its first episodes (for learning curves).

Prediction (000 L243-L252, 001 L45-L50, 004 L1707-L1741) estimates V^pi of a *given* policy pi: the agent does not
choose how to act, it follows pi and learns a state-value table ``v`` ``[R, S]``. Three parts are the same for every
prediction method and live here:

- :class:`FixedPolicy`: pi(a|s) for each run, ``[R, S, A]``, uniform at first; ``agent.set_policy(pi)`` replaces it
  (checkpointed, so a saved agent keeps evaluating the same policy);
- :class:`EpisodeBuffer`: each run's episode so far, in preallocated ``[R, T]`` tensors that double when an episode
  outgrows them; the methods that update at episode end (Monte Carlo, the lambda-return algorithm) read it there;
- :class:`ValueCurve`: V of each run after each of its first ``k`` episodes, ``[R, k + 1, S]``, the data of an
  RMS-error-against-episodes figure (Sutton and Barto figure 6.2), recorded without a Python loop over runs.

:class:`PredictionAgent`, one level below :class:`~thorndike.agent.Agent`, composes them with the tabular family's
parts (tables, step loop, episode ledger; :mod:`thorndike.tabular.base`): ``values()`` is the learned V,
``exact_values()`` the true V^pi of the evaluated policy (solved on the env's model), and acting follows pi. It
learns no Q, so it has no ``q``. Terminal states' V is 0 by definition; when the env's model is known the table
starts there at 0.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

import gymnasium as gym
import torch
from torch import Tensor

from thorndike import envs as th_envs
from thorndike.agent import Agent
from thorndike.config import check, describe
from thorndike.core import exploration
from thorndike.core.resources import require_memory, tensor_bytes
from thorndike.planning.result import PlanningResult
from thorndike.tabular.base import (
    RunHistory,
    RunStepper,
    Tables,
    TabularConfig,
    Transition,
    connect_runs,
    exact_values,
    learn_episodes,
    require_discrete_spaces,
    run_of_row,
)

__all__ = ["EpisodeBuffer", "Episodes", "FixedPolicy", "PredictionAgent", "PredictionConfig", "TensorStore",
           "ValueCurve"]

POLICIES = ("uniform", "optimal")


@dataclass
class PredictionConfig(TabularConfig):
    """Hyperparameters of every prediction learner: the evaluated policy and the learning-curve record. The
    behaviour-policy fields of :class:`TabularConfig` (exploration, epsilon, ...) are unused: pi is fixed."""

    policy: str = describe("the policy evaluated until set_policy() replaces it: uniform (pi(a|s) = 1/|A|) or "
                           "optimal (greedy in value iteration's V* on the env's model)", "uniform")
    curve_episodes: int = describe("keep each run's V after each of its first k episodes (agent.value_curve(), "
                                   "for learning curves); 0: off", 0)

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.policy in POLICIES, "policy", self.policy, f"one of {', '.join(POLICIES)}")
        check(self.curve_episodes >= 0, "curve_episodes", self.curve_episodes, ">= 0")


class FixedPolicy:
    """The policy a prediction learner evaluates: probabilities ``[R, S, A]`` (float64) for each run; a checkpoint
    component."""

    def __init__(self, n_runs: int, n_states: int, n_actions: int, device: torch.device) -> None:
        self.probs = torch.full((n_runs, n_states, n_actions), 1.0 / n_actions, dtype=torch.float64, device=device)
        self.runs = torch.arange(n_runs, device=device)

    def set(self, pi: Tensor) -> None:
        """Replace pi: probabilities ``[S, A]`` or actions ``[S]`` (the same for every run), or per run ``[R, S, A]``
        / ``[R, S]``. Rows must be distributions; actions must be in range."""
        R, S, A = self.probs.shape
        pi = torch.as_tensor(pi, device=self.probs.device)
        if not pi.is_floating_point():  # deterministic: one action per state
            if pi.shape not in ((S,), (R, S)):
                raise ValueError(f"a deterministic policy needs shape ({S},) or ({R}, {S}), got {tuple(pi.shape)}")
            if bool(((pi < 0) | (pi >= A)).any()):
                raise ValueError(f"policy actions must be in [0, {A}), got {pi.tolist()}")
            pi = torch.nn.functional.one_hot(pi.long(), A)
        pi = pi.to(torch.float64)
        if pi.shape not in ((S, A), (R, S, A)):
            raise ValueError(f"policy probabilities need shape ({S}, {A}) or ({R}, {S}, {A}), got {tuple(pi.shape)}")
        if bool((pi < 0).any()) or not torch.allclose(pi.sum(-1), torch.ones((), dtype=torch.float64), atol=1e-9):
            raise ValueError("policy rows must be probability distributions (non-negative, summing to 1)")
        self.probs.copy_(pi.expand(R, S, A))

    def sample(self, states: Tensor, generator: torch.Generator | None) -> Tensor:
        """a ~ pi(.|s_r) for each run ``[R]``."""
        return exploration.sample(self.probs[self.runs, states], generator)

    def state_dict(self) -> dict[str, Any]:
        return {"probs": self.probs.clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["probs"].shape != self.probs.shape:
            raise ValueError(f"checkpoint policy {tuple(state['probs'].shape)} does not fit this agent")
        self.probs.copy_(state["probs"])


class Episodes(NamedTuple):
    """The episodes that just ended, one row per run that ended one (``D`` rows, ``T`` = the longest length).

    ``states[d, t]`` is s_t for t < length and ``states[d, length]`` the state the episode ended in; ``rewards`` is 0
    and ``valid`` False past each episode's length. ``terminated[d]`` tells a true end (no bootstrap) from a
    time-limit cut.
    """

    runs: Tensor  # [D] long
    states: Tensor  # [D, T + 1] long
    actions: Tensor  # [D, T] long
    rewards: Tensor  # [D, T] float64
    lengths: Tensor  # [D] long
    valid: Tensor  # [D, T] bool
    terminated: Tensor  # [D] bool

    @property
    def final_states(self) -> Tensor:
        """The state each episode ended in ``[D]``."""
        return self.states.gather(1, self.lengths.unsqueeze(1)).squeeze(1)


class EpisodeBuffer:
    """Each run's current episode (states, actions, rewards) in ``[R, T]`` tensors; a checkpoint component.

    :meth:`append` writes one step of every run (``[R]`` tensors, advanced indexing at each run's own position);
    :meth:`take` hands over the episodes that ended and empties those runs' rows. The capacity doubles when an
    episode outgrows it, decided on a host-side bound, so appending never waits for the device.
    """

    def __init__(self, n_runs: int, device: torch.device, capacity: int = 64) -> None:
        self.device = device
        self.runs = torch.arange(n_runs, device=device)
        self.lengths = torch.zeros(n_runs, dtype=torch.int64, device=device)
        self.terminated = torch.zeros(n_runs, dtype=torch.bool, device=device)
        self.states = torch.zeros((n_runs, capacity + 1), dtype=torch.int64, device=device)
        self.actions = torch.zeros((n_runs, capacity), dtype=torch.int64, device=device)
        self.rewards = torch.zeros((n_runs, capacity), dtype=torch.float64, device=device)
        self._bound = 0  # an upper bound on lengths.max(), kept on the host

    def _grow(self) -> None:
        """Double the capacity, keeping what the rows hold."""
        R, T = self.actions.shape
        self.states = torch.cat([self.states, self.states.new_zeros((R, T))], 1)
        self.actions = torch.cat([self.actions, self.actions.new_zeros((R, T))], 1)
        self.rewards = torch.cat([self.rewards, self.rewards.new_zeros((R, T))], 1)

    @property
    def capacity(self) -> int:
        return self.actions.shape[1]

    def append(self, obs: Tensor, action: Tensor, reward: Tensor, next_obs: Tensor, terminated: Tensor) -> None:
        """Add step (s, a, r, s') of every run; s' is kept as the state the episode is in (the final state when it
        ends here)."""
        if self._bound + 1 > self.capacity:
            self._grow()
        position = self.lengths
        self.states[self.runs, position] = obs
        self.actions[self.runs, position] = action
        self.rewards[self.runs, position] = reward.to(torch.float64)
        self.states[self.runs, position + 1] = next_obs
        self.terminated = terminated.clone()
        self.lengths = position + 1
        self._bound += 1

    def take(self, done: Tensor) -> Episodes | None:
        """The episodes that ended this step (``done`` ``[R]``), or None when none did; their rows start over."""
        if not bool(done.any()):
            return None
        runs = done.nonzero().squeeze(1)
        lengths = self.lengths[runs]
        T = int(lengths.max())
        valid = torch.arange(T, device=self.device) < lengths.unsqueeze(1)
        rewards = torch.where(valid, self.rewards[runs, :T], 0.0)
        # Indexing with the runs' indices copies, so the episodes stay valid after the rows are reused.
        episodes = Episodes(runs, self.states[runs, : T + 1], self.actions[runs, :T], rewards, lengths, valid,
                            self.terminated[runs])
        self.lengths[runs] = 0
        self._bound = int(self.lengths.max())
        return episodes

    def state_dict(self) -> dict[str, Any]:
        return {"states": self.states.clone(), "actions": self.actions.clone(), "rewards": self.rewards.clone(),
                "lengths": self.lengths.clone(), "terminated": self.terminated.clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["lengths"].shape != self.lengths.shape:
            raise ValueError(f"checkpoint episode buffer has {len(state['lengths'])} runs, not {len(self.lengths)}")
        # The capacity is whatever the saved run had grown to.
        for name in ("states", "actions", "rewards", "lengths", "terminated"):
            setattr(self, name, state[name].clone().to(self.device))
        self._bound = int(self.lengths.max())


class TensorStore:
    """Named tensors a learner keeps between steps (counts, eligibility traces); a checkpoint component."""

    def __init__(self, **tensors: Tensor) -> None:
        self.tensors = tensors

    def __getitem__(self, name: str) -> Tensor:
        return self.tensors[name]

    def state_dict(self) -> dict[str, Any]:
        return {k: v.clone() for k, v in self.tensors.items()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name, value in self.tensors.items():
            if state[name].shape != value.shape:
                raise ValueError(f"checkpoint tensor {name!r} {tuple(state[name].shape)} does not fit this agent")
            value.copy_(state[name])


class ValueCurve:
    """V of each run after each of its first ``k`` episodes: ``values[r, e]`` is run r's V after e episodes (row 0
    the initial V), NaN until the run gets there; a checkpoint component."""

    def __init__(self, episodes: int, v: Tensor) -> None:
        R, S = v.shape
        require_memory("the value curve", tensor_bytes(R * (episodes + 1) * S, dtype=torch.float64), v.device,
                       {"curve_episodes": episodes, "n_runs": R}, f"{S:,} states")
        self.values = torch.full((R, episodes + 1, S), float("nan"), dtype=torch.float64, device=v.device)
        self.values[:, 0] = v
        self.runs = torch.arange(R, device=v.device)

    @property
    def episodes(self) -> int:
        return self.values.shape[1] - 1

    def record(self, done: Tensor, finished_before: Tensor, v: Tensor) -> None:
        """Store V ``[R, S]`` (after this step's update) for the runs whose episode ended now; ``finished_before`` is
        each run's episode count before this one ended."""
        keep = done & (finished_before < self.episodes)
        row = (finished_before + 1).clamp(max=self.episodes)
        self.values[self.runs, row] = torch.where(keep.unsqueeze(1), v, self.values[self.runs, row])

    def state_dict(self) -> dict[str, Any]:
        return {"values": self.values.clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["values"].shape != self.values.shape:
            raise ValueError(f"checkpoint value curve {tuple(state['values'].shape)} does not fit this agent")
        self.values.copy_(state["values"])


class PredictionAgent(Agent):
    """Base of the prediction learners: ``n_runs`` runs follow a fixed policy pi and learn V^pi in the state table
    ``v`` ``[R, S]``. It composes the family's parts (:class:`~thorndike.tabular.base.Tables`,
    :class:`~thorndike.tabular.base.RunStepper`, the episode ledger) with :class:`FixedPolicy` in place of a
    behaviour policy. A subclass writes ``learn``: it reads :meth:`collect` and calls :meth:`record_curve` after each
    step's update."""

    action_spaces: ClassVar[tuple[type[gym.Space], ...]] = (gym.spaces.Discrete,)

    @classmethod
    def check_spaces(cls, observation_space: gym.Space, action_space: gym.Space) -> None:
        require_discrete_spaces(cls.name, f"{cls.name} is tabular", observation_space, action_space)

    def build(self) -> None:
        config = self.config
        envs = connect_runs(self)
        self.n_states, self.n_actions = int(envs.observation_space.n), int(envs.action_space.n)
        self.tables = Tables(config.n_runs, self.n_states, self.n_actions, config.q_init, self.device, names=(),
                             state_names=("v",))
        self.history = RunHistory(self.ledger)
        self.stepper = RunStepper(self, self.tables.episodes, self.tables.visits)
        self.fixed_policy = FixedPolicy(config.n_runs, self.n_states, self.n_actions, self.device)
        self.components |= {"tables": self.tables, "fixed_policy": self.fixed_policy}
        mdp = th_envs.tabular_model(self.env_spec, self.env_setup.kwargs)
        if mdp is not None:
            # V(terminal) = 0 by definition; no update ever writes it, so start it there.
            self.tables["v"][:, mdp.terminal.to(self.device)] = 0.0
        if config.policy == "optimal":
            from thorndike.planning import value_iteration

            self.set_policy(value_iteration(self.model(), gamma=config.gamma).policy)
        self.curve: ValueCurve | None = None
        if config.curve_episodes > 0:
            self.curve = ValueCurve(config.curve_episodes, self.tables["v"])
            self.components["curve"] = self.curve

    # ---- the evaluated policy and collecting ----------------------------------------------------------------

    def set_policy(self, pi: Tensor) -> None:
        """Evaluate ``pi`` from now on: probabilities ``[S, A]`` or actions ``[S]`` (or per run ``[R, S, A]`` /
        ``[R, S]``). The learned V is kept (set it before learning to estimate V^pi from the start)."""
        self.fixed_policy.set(pi)

    def fixed_policy_action(self, states: Tensor) -> Tensor:
        """a ~ pi(.|s_r) for each run ``[R]``."""
        return self.fixed_policy.sample(states, self.generator)

    def collect(self, steps: int) -> Iterator[Transition]:
        """Step every run ``steps`` times following pi, yielding each transition (see
        :class:`~thorndike.tabular.base.RunStepper`)."""
        return self.stepper.collect(steps, self.fixed_policy_action)

    def learn_episodes(self, episodes: int, chunk: int = 1000, max_steps: int | None = None) -> PredictionAgent:
        """Learn until every run has finished ``episodes`` episodes, in ``learn`` calls of ``chunk`` more steps;
        ``max_steps`` (per run) stops a policy that never ends an episode."""
        learn_episodes(self, self.tables.episodes, episodes, chunk, max_steps)
        return self

    def record_curve(self, done: Tensor) -> None:
        """Call after a step's update: keeps V of the runs whose episode just ended (when ``curve_episodes``)."""
        if self.curve is not None:
            self.curve.record(done, self.tables.episodes, self.tables["v"])

    def value_curve(self) -> Tensor:
        """``[R, k + 1, S]``: each run's V after 0, 1, ..., k episodes (``k = curve_episodes``; NaN until reached)."""
        if self.curve is None:
            raise ValueError("value_curve() needs curve_episodes > 0 in the config")
        return self.curve.values.clone()

    def log_stats(self) -> dict[str, float]:
        return {"v_mean": float(self.values().mean()), "episodes_per_run": float(self.tables.episodes.double().mean())}

    # ---- results and acting ---------------------------------------------------------------------------------

    def values(self) -> Tensor:
        """The learned V ``[R, S]``."""
        return self.tables["v"]

    def __getattr__(self, name: str) -> Any:
        """Reached only for attributes the agent does not have: asking for the control learners' ``q`` says what a
        prediction learner has instead."""
        hint = f": {self.name} learns state values only, use agent.values() ([R, S])" if name == "q" else ""
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}{hint}", name=name, obj=self)

    def model(self) -> th_envs.TabularMDP:
        """The env's :class:`TabularMDP` (for exact evaluation), or an error saying there is none."""
        return th_envs.require_tabular_model(self.env_spec, self.env_setup.kwargs)

    def exact_values(self, policy: Tensor | None = None) -> Tensor:
        """The true V^pi ``[R, S]`` of the evaluated policy (or of ``policy`` ``[R, S]`` / ``[R, S, A]``), solved on
        the env's model with this agent's gamma: the oracle the learned ``values()`` estimate."""
        return exact_values(self, self.fixed_policy.probs.cpu() if policy is None else policy)

    def greedy_policy(self) -> Tensor:
        """The most probable action of the evaluated policy in each state ``[R, S]``."""
        return self.fixed_policy.probs.argmax(-1)

    def policy(self, obs: Tensor, deterministic: bool, generator: torch.Generator | None) -> Tensor:
        """Acting follows the evaluated policy (its most probable action when ``deterministic``)."""
        obs = obs.long().to(self.device)
        probs = self.fixed_policy.probs[run_of_row(len(obs), self.config.n_runs, self.device), obs]
        return probs.argmax(-1) if deterministic else exploration.sample(probs, generator)

    def solution(self, run: int = 0) -> PlanningResult:
        """One run's V (and the evaluated policy's most probable actions) as a :class:`PlanningResult`."""
        V = self.values()[run].cpu()
        # No Q is learned: every action of s shows V(s), so value plots still have their scale.
        return PlanningResult(V=V, Q=V.unsqueeze(-1).expand(-1, self.n_actions).clone(),
                              policy=self.greedy_policy()[run].cpu(), sweeps=self.global_step, residuals=[])

    def write_pictures(self, run_dir: Path) -> list[Path]:
        """``curve.png`` and, when the env is a grid thorndike knows, ``values.png``: run 0's learned V with the
        evaluated policy's most probable actions (no Q panel: prediction learns V only)."""
        from thorndike import plot

        pictures = super().write_pictures(run_dir)
        mdp = th_envs.tabular_model(self.env_spec, self.env_setup.kwargs)
        if mdp is not None and getattr(mdp, "grid", None) is not None:
            title = f"{self.name} on {th_envs.env_name(self.env_spec)}: run 0's V after {self.global_step} steps"
            pictures.append(plot.values(mdp, self.solution(0), run_dir / "values.png", title=title, q_values=False))
        return pictures
