"""What every tabular learner shares: tables of values per run, the behaviour policy, stepping, episode history.

Notes: 003 lecture 3 (model-free learning: sample, compute a target Q_hat, move Q toward it with a learning rate),
000 lecture 2 and the Hugging Face units 2-3 (001). A tabular agent keeps a value per (state, action) pair (or per
state, for prediction) in a tensor, for any env whose observations and actions are ``Discrete``.

Many runs at once. A tabular agent is ``n_runs`` independent learners stepped in lockstep: run ``r`` has its own env
copy, its own tables (``q[r]``), its own epsilon and episode count. One step of all runs is a handful of tensor ops
on ``[R]`` and ``[R, S, A]`` tensors (each run updates one entry, found by advanced indexing), so a 30-seed study
costs about what one run costs. Counters are per run: ``global_step`` is the number of steps each run has taken and
``learn(total_steps)`` gives every run ``total_steps`` steps. The agent's seed fixes every run; runs differ because
they draw different random numbers from it.

The family's base class, :class:`TabularAgent`, sits between :class:`~thorndike.agent.Agent` and the algorithms so
that the tables, the behaviour policy and the episode history are written once; each algorithm file still holds its
own config and its own ``learn`` loop (collect -> targets -> update -> log).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import gymnasium as gym
import torch
from torch import Tensor

from thorndike import envs as th_envs
from thorndike.agent import Agent
from thorndike.config import check, describe
from thorndike.core import exploration
from thorndike.core.targets import incremental_update
from thorndike.planning.result import PlanningResult

__all__ = ["EpisodeHistory", "TabularAgent", "TabularConfig", "Tables", "Transition", "require_discrete_spaces"]

ALPHA_SCHEDULES = ("constant", "1/n")


@dataclass
class TabularConfig:
    """Hyperparameters every tabular learner has: runs, discount, learning rate and the behaviour policy."""

    n_runs: int = describe("independent runs learning at once (one env copy and one set of tables each)", 1)
    gamma: float = describe("discount factor", 0.99)
    alpha: float = describe("learning rate (step size) of the incremental update", 0.1)
    alpha_schedule: str = describe("constant: alpha every time; 1/n: 1 / (updates of that (s, a) so far)",
                                   "constant")
    exploration: str = describe("behaviour policy: epsilon_greedy, boltzmann, ucb or greedy", "epsilon_greedy")
    epsilon: float = describe("epsilon of epsilon-greedy at the start", 0.1)
    epsilon_schedule: str = describe("how epsilon falls with each run's finished episodes: exponential "
                                     "(times epsilon_decay per episode), linear (to epsilon_end over "
                                     "epsilon_decay_episodes) or glie (epsilon / (1 + episodes))", "exponential")
    epsilon_decay: float = describe("exponential schedule: epsilon is multiplied by this after every episode "
                                    "(1: constant)", 1.0)
    epsilon_decay_episodes: int = describe("linear schedule: episodes over which epsilon reaches epsilon_end", 0)
    epsilon_end: float = describe("epsilon never decays below this", 0.0)
    temperature: float = describe("temperature tau of the Boltzmann (softmax) policy", 1.0)
    ucb_c: float = describe("exploration constant c of the UCB bonus c sqrt(ln N(s) / n(s, a))", 1.0)
    q_init: float = describe("initial value of every table entry (optimistic when above any return)", 0.0)
    log_every: int = describe("steps (per run) between two rows of progress.csv", 1000)

    @property
    def epsilon_varies(self) -> bool:
        """Whether epsilon changes as episodes end (so the collect loop must recompute it)."""
        return self.epsilon_schedule != "exponential" or self.epsilon_decay != 1.0

    def epsilon_at(self, episodes: Tensor) -> Tensor:
        """epsilon of runs that have finished ``episodes`` episodes ``[R]`` (see ``epsilon_schedule``)."""
        return exploration.decayed_epsilon(self.epsilon, self.epsilon_decay, self.epsilon_end, episodes,
                                           self.epsilon_schedule, self.epsilon_decay_episodes)

    @property
    def n_envs(self) -> int:
        """One env copy per run (the lifecycle builds ``n_envs`` copies)."""
        return self.n_runs

    def __post_init__(self) -> None:
        check(self.n_runs >= 1, "n_runs", self.n_runs, ">= 1")
        check(0.0 <= self.gamma <= 1.0, "gamma", self.gamma, "in [0, 1]")
        check(0.0 < self.alpha <= 1.0, "alpha", self.alpha, "in (0, 1]")
        check(self.alpha_schedule in ALPHA_SCHEDULES, "alpha_schedule", self.alpha_schedule,
              f"one of {', '.join(ALPHA_SCHEDULES)}")
        check(self.exploration in exploration.EXPLORATION, "exploration", self.exploration,
              f"one of {', '.join(exploration.EXPLORATION)}")
        check(0.0 <= self.epsilon <= 1.0, "epsilon", self.epsilon, "in [0, 1]")
        check(self.epsilon_schedule in exploration.EPSILON_SCHEDULES, "epsilon_schedule", self.epsilon_schedule,
              f"one of {', '.join(exploration.EPSILON_SCHEDULES)}")
        check(0.0 < self.epsilon_decay <= 1.0, "epsilon_decay", self.epsilon_decay, "in (0, 1]")
        check(self.epsilon_schedule != "linear" or self.epsilon_decay_episodes >= 1, "epsilon_decay_episodes",
              self.epsilon_decay_episodes, ">= 1 with epsilon_schedule=linear")
        check(0.0 <= self.epsilon_end <= 1.0, "epsilon_end", self.epsilon_end, "in [0, 1]")
        check(self.temperature >= 0.0, "temperature", self.temperature, ">= 0")
        check(self.ucb_c >= 0.0, "ucb_c", self.ucb_c, ">= 0")
        check(self.log_every >= 1, "log_every", self.log_every, ">= 1")


@dataclass
class Transition:
    """One step of every run, ``[R]`` each: (s, a, r, s') with s' the true next state even where the episode
    ended (then ``reset_obs``, where the run goes on, is the next episode's first state)."""

    obs: Tensor
    action: Tensor
    reward: Tensor
    next_obs: Tensor
    terminated: Tensor
    truncated: Tensor
    reset_obs: Tensor
    # The behaviour policy's action at next_obs, drawn before the update (SARSA's a'); None unless asked for.
    next_action: Tensor | None = None

    @property
    def done(self) -> Tensor:
        return self.terminated | self.truncated


class PendingAction:
    """SARSA's a', drawn at the next state and taken on the next step: ``value`` is ``None`` until an on-policy
    learner has drawn one. A checkpoint component, so a resumed run takes the action it had already drawn."""

    def __init__(self, device: torch.device | str):
        self.device = device
        self.value: Tensor | None = None

    def state_dict(self) -> dict[str, Tensor | None]:
        return {"value": self.value}

    def load_state_dict(self, state: dict[str, Tensor | None]) -> None:
        value = state["value"]
        self.value = None if value is None else value.to(self.device)


class Tables:
    """The learned tables of ``R`` runs and their counts; a checkpoint component (``state_dict`` /
    ``load_state_dict``).

    ``names`` are action-value tables ``[R, S, A]`` (float64, all ``q_init`` at first); ``state_names`` are
    state-value tables ``[R, S]`` (prediction methods' V). ``visits`` counts updates of each (s, a) ``[R, S, A]``,
    ``episodes`` each run's finished episodes ``[R]``.
    """

    def __init__(self, n_runs: int, n_states: int, n_actions: int, q_init: float, device: torch.device,
                 names: tuple[str, ...] = ("q",), state_names: tuple[str, ...] = ()) -> None:
        self.tensors = {name: torch.full((n_runs, n_states, n_actions), float(q_init), dtype=torch.float64,
                                         device=device) for name in names}
        self.tensors |= {name: torch.full((n_runs, n_states), float(q_init), dtype=torch.float64, device=device)
                         for name in state_names}
        self.visits = torch.zeros((n_runs, n_states, n_actions), dtype=torch.int64, device=device)
        self.episodes = torch.zeros(n_runs, dtype=torch.int64, device=device)
        self.runs = torch.arange(n_runs, device=device)
        self.one = torch.ones((), dtype=torch.int64, device=device)  # the increment of a visit count

    def __getitem__(self, name: str) -> Tensor:
        return self.tensors[name]

    def rows(self, name: str, states: Tensor) -> Tensor:
        """Each run's entry of table ``name`` at its own state: ``[R, A]`` (``[R]`` for a state table)."""
        return self.tensors[name][self.runs, states]

    def update(self, name: str, states: Tensor, actions: Tensor | None, target: Tensor, alpha: Tensor | float,
               active: Tensor | None = None) -> Tensor:
        """``table[r, s_r, a_r] += alpha_r (target_r - table[r, s_r, a_r])`` for every run (``active`` ones only;
        ``actions=None`` for a state table); returns the TD errors ``target - old value``."""
        table = self.tensors[name]
        index = (self.runs, states) if actions is None else (self.runs, states, actions)
        old = table[index]
        new = incremental_update(old, target, alpha)
        if active is not None:
            new = torch.where(active, new, old)
        table[index] = new
        return target - old

    def state_dict(self) -> dict[str, Any]:
        return {"tensors": {k: v.clone() for k, v in self.tensors.items()}, "visits": self.visits.clone(),
                "episodes": self.episodes.clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name, value in state["tensors"].items():
            if name not in self.tensors or value.shape != self.tensors[name].shape:
                raise ValueError(f"checkpoint table {name!r} {tuple(value.shape)} does not fit this agent")
            self.tensors[name].copy_(value)
        self.visits.copy_(state["visits"])
        self.episodes.copy_(state["episodes"])


class EpisodeHistory:
    """Every finished episode of every run, in the order they ended: run, return, length and the run's step.

    Steps append fixed-shape ``[R]`` tensors (no host sync); :meth:`flush` compacts them. ``matrix("return", k)``
    gives ``[R, k]``: each run's first ``k`` episodes (NaN where a run has fewer), the form learning-curve studies
    average over runs.
    """

    FIELDS = ("run", "return", "length", "step")

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.columns = {"run": torch.zeros(0, dtype=torch.int64), "return": torch.zeros(0, dtype=torch.float64),
                        "length": torch.zeros(0, dtype=torch.int64), "step": torch.zeros(0, dtype=torch.int64)}
        self._pending: list[tuple[Tensor, Tensor, Tensor, int]] = []

    def add(self, done: Tensor, returns: Tensor, lengths: Tensor, step: int) -> None:
        self._pending.append((done, returns, lengths, step))

    def record(self, done: Tensor, info: dict[str, Any], step: int) -> None:
        """Add a step's finished episodes from its ``info``. Native envs report fixed-shape returns, so nothing
        waits for the device; Gymnasium's adapter lists only the episodes that ended, in env-index order."""
        if "episode_return" in info:
            returns, lengths = info["episode_return"], info["episode_length"]
        else:
            returns = torch.zeros(done.shape, dtype=torch.float64, device=done.device)
            lengths = torch.zeros(done.shape, dtype=torch.int64, device=done.device)
            returns[done] = info["episode_returns"].to(returns)
            lengths[done] = info["episode_lengths"].to(lengths)
        self.add(done, returns, lengths, step)

    def flush(self) -> None:
        if not self._pending:
            return
        done = torch.stack([p[0] for p in self._pending]).cpu()
        returns = torch.stack([p[1] for p in self._pending]).cpu().double()
        lengths = torch.stack([p[2] for p in self._pending]).cpu().long()
        steps = torch.tensor([p[3] for p in self._pending], dtype=torch.int64)
        self._pending.clear()
        t, run = done.nonzero(as_tuple=True)  # row-major: time first, then run, as the episodes ended
        new = {"run": run, "return": returns[t, run], "length": lengths[t, run], "step": steps[t]}
        self.columns = {k: torch.cat([self.columns[k], new[k]]) for k in self.FIELDS}

    def __len__(self) -> int:
        self.flush()
        return len(self.columns["run"])

    def of_run(self, run: int, field: str = "return") -> Tensor:
        """All of one run's episodes' ``field`` (return, length or step), in order."""
        self.flush()
        return self.columns[field][self.columns["run"] == run]

    def matrix(self, field: str, n_runs: int, episodes: int | None = None) -> Tensor:
        """``[R, k]`` float64: run r's first k episodes' ``field``; k defaults to the fewest any run finished."""
        self.flush()
        per_run = [self.of_run(r, field).double() for r in range(n_runs)]
        k = min(len(p) for p in per_run) if episodes is None else episodes
        out = torch.full((n_runs, k), float("nan"), dtype=torch.float64)
        for r, values in enumerate(per_run):
            out[r, : min(k, len(values))] = values[:k]
        return out

    def state_dict(self) -> dict[str, Any]:
        self.flush()
        return {k: v.clone() for k, v in self.columns.items()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._pending.clear()
        self.columns = {k: state[k].clone() for k in self.FIELDS}


def require_discrete_spaces(name: str, who: str, observation_space: gym.Space, action_space: gym.Space) -> None:
    """Refuse anything but Discrete observations and actions, listing the algorithms that support the spaces."""
    if not isinstance(action_space, gym.spaces.Discrete) or not isinstance(observation_space, gym.spaces.Discrete):
        from thorndike.registry import alternatives

        raise ValueError(
            f"{who}: it needs Discrete observations and Discrete actions, got observations {observation_space} and "
            f"actions {action_space}. Use it on FrozenLake, Taxi, CliffWalking or a TabularMDP; "
            f"{alternatives(name, observation_space, action_space)}"
        )


def write_episode_curve(agent: Agent, history: EpisodeHistory, run_dir: Path) -> list[Path]:
    """``episodes.png``: the return per episode, mean over the agent's runs with a standard-error band (nothing
    when no run has finished an episode yet)."""
    from thorndike import plot

    n_runs = agent.config.n_runs
    counts = torch.bincount(history.columns["run"], minlength=n_runs) if len(history) else torch.zeros(1)
    returns = history.matrix("return", n_runs, int(counts.max()))
    if returns.shape[1] == 0:
        return []
    title = f"{agent.name} on {th_envs.env_name(agent.env_spec)}: mean over {n_runs} runs (band: +/- 1 s.e.)"
    return [plot.episode_curves({agent.name: returns}, run_dir / "episodes.png", title=title,
                                smooth=max(1, returns.shape[1] // 50))]


class TabularAgent(Agent):
    """Base of the tabular learners: Discrete observations and actions, ``n_runs`` runs, ``q`` tables ``[R, S, A]``.

    A subclass sets ``Config`` (a :class:`TabularConfig`), optionally ``table_names`` (action-value tables other
    than ``q``) and ``state_table_names`` (state-value tables such as prediction's ``v``), and writes ``learn``. It
    reads its data from :meth:`collect`, updates with ``self.tables.update`` and logs with the session.
    ``evaluate`` plays greedy policies: env copy ``b`` follows run ``b % n_runs``.
    """

    action_spaces: ClassVar[tuple[type[gym.Space], ...]] = (gym.spaces.Discrete,)
    table_names: ClassVar[tuple[str, ...]] = ("q",)
    state_table_names: ClassVar[tuple[str, ...]] = ()

    # ---- spaces and tables ----------------------------------------------------------------------------------

    @classmethod
    def check_spaces(cls, observation_space: gym.Space, action_space: gym.Space) -> None:
        require_discrete_spaces(cls.name, f"{cls.name} is tabular", observation_space, action_space)

    def build(self) -> None:
        self.n_states = int(self.envs.single_observation_space.n)
        self.n_actions = int(self.envs.single_action_space.n)
        self.tables = Tables(self.config.n_runs, self.n_states, self.n_actions, self.config.q_init, self.device,
                             self.table_names, self.state_table_names)
        self.history = EpisodeHistory(self.device)
        self.components["tables"] = self.tables
        self.components["history"] = self.history
        self.pending_action = PendingAction(self.device)
        self.components["pending_action"] = self.pending_action
        self._epsilon = self.epsilon()

    @property
    def q(self) -> Tensor:
        """The action values ``[R, S, A]`` (the first table; double Q-learning overrides with the tables' mean)."""
        return self.tables["q"]

    def behaviour_q(self, states: Tensor) -> Tensor:
        """The values the behaviour policy acts on, ``[R, A]`` at each run's state."""
        return self.tables.rows("q", states)

    # ---- behaviour policy -----------------------------------------------------------------------------------

    def epsilon(self) -> Tensor:
        """Each run's current epsilon ``[R]``, from the episodes it has finished (``epsilon_schedule``)."""
        return self.config.epsilon_at(self.tables.episodes)

    def behaviour_probs(self, states: Tensor) -> Tensor:
        """pi_behaviour(.|s_r) for each run, ``[R, A]`` (float64)."""
        config = self.config
        counts = self.tables.visits[self.tables.runs, states] if config.exploration == "ucb" else None
        return exploration.behaviour_probs(config.exploration, self.behaviour_q(states), self._epsilon,
                                           config.temperature, counts, config.ucb_c)

    def behaviour_action(self, states: Tensor) -> Tensor:
        """a ~ pi_behaviour(.|s_r) for each run ``[R]``."""
        if self.config.exploration == "epsilon_greedy":
            return exploration.epsilon_greedy_sample(self.behaviour_q(states), self._epsilon, self.generator)
        return exploration.sample(self.behaviour_probs(states), self.generator)

    def alpha(self, states: Tensor, actions: Tensor) -> Tensor | float:
        """The step size of this update for each run: alpha, or 1 / n(s, a) counting this update."""
        if self.config.alpha_schedule == "1/n":
            return 1.0 / (self.tables.visits[self.tables.runs, states, actions] + 1).double()
        return self.config.alpha

    # ---- collecting -----------------------------------------------------------------------------------------

    def collect(self, steps: int, next_action: bool = False,
                choose: Callable[[Tensor], Tensor] | None = None) -> Iterator[Transition]:
        """Step every run ``steps`` times with the behaviour policy (or ``choose``), yielding each transition.

        With ``next_action=True`` the behaviour's action at the next state is drawn before the caller updates (SARSA's
        a') and is the action taken on the following step when the episode goes on. Visit counts ``n(s, a)`` grow
        after the caller's update (``alpha()`` counts the current update itself).
        """
        choose = choose or self.behaviour_action
        self._epsilon = self.epsilon()
        decay = self.config.epsilon_varies
        for _ in range(steps):
            obs = self.obs
            action = choose(obs) if self.pending_action.value is None else self.pending_action.value
            reset_obs, reward, terminated, truncated, info = self.envs.step(action)
            next_obs = info["final_obs"]
            done = terminated | truncated
            self.global_step += 1
            self.history.record(done, info, self.global_step)
            self.record_episodes(info)  # the lifecycle's counters (progress bar, log)
            t = Transition(obs, action, reward.double(), next_obs, terminated, truncated, reset_obs)
            if next_action:
                t.next_action = choose(next_obs)
            yield t
            self.tables.visits.index_put_((self.tables.runs, obs, action), self.tables.one, accumulate=True)
            # Episodes count after the update, so the update of an episode's last step still used its epsilon.
            self.tables.episodes += done
            if decay:
                self._epsilon = torch.where(done, self.epsilon(), self._epsilon)
            if next_action:
                self.pending_action.value = torch.where(done, choose(reset_obs), t.next_action)
            self.obs = reset_obs

    def learn_episodes(self, episodes: int, chunk: int = 1000, max_steps: int | None = None) -> TabularAgent:
        """Learn until every run has finished ``episodes`` episodes (textbook curves are drawn per episode), in
        ``learn`` calls of ``chunk`` more steps; ``max_steps`` (per run) stops a policy that never ends an episode."""
        if episodes < 1 or chunk < 1:
            raise ValueError(f"episodes and chunk must be >= 1, got {episodes} and {chunk}")
        while int(self.tables.episodes.min()) < episodes:
            if max_steps is not None and self.global_step >= max_steps:
                raise RuntimeError(f"after {self.global_step} steps run {int(self.tables.episodes.argmin())} has "
                                   f"finished only {int(self.tables.episodes.min())} of {episodes} episodes; raise "
                                   "max_steps or give the env a time limit")
            target = self.global_step + chunk
            self.learn(target if max_steps is None else min(target, max_steps))
        return self

    def log_stats(self) -> dict[str, float]:
        """The row every tabular learner logs: epsilon, mean |Q| and episodes per run."""
        return {"epsilon": float(self.epsilon().mean()), "q_abs_mean": float(self.q.abs().mean()),
                "episodes_per_run": float(self.tables.episodes.double().mean())}

    # ---- acting, results ------------------------------------------------------------------------------------

    def policy(self, obs: Tensor, deterministic: bool, generator: torch.Generator | None) -> Tensor:
        """Greedy (or behaviour, when not deterministic) actions; row ``b`` of ``obs`` follows run ``b % n_runs``."""
        obs = obs.long().to(self.device)
        runs = torch.arange(len(obs), device=self.device) % self.config.n_runs
        q = self.q[runs, obs]
        if deterministic:
            return exploration.greedy(q)
        return exploration.sample(exploration.epsilon_greedy_probs(q, self.epsilon()[runs]), generator)

    def greedy_policy(self) -> Tensor:
        """Each run's greedy policy ``[R, S]`` (lowest index among ties)."""
        return exploration.greedy(self.q)

    def values(self) -> Tensor:
        """max_a Q(s, a) for every run, ``[R, S]``."""
        return self.q.amax(-1)

    def solution(self, run: int = 0) -> PlanningResult:
        """One run's tables as a :class:`PlanningResult` (V, Q, greedy policy), e.g. for ``th.plot.values``."""
        Q = self.q[run].cpu()
        return PlanningResult(V=Q.amax(-1), Q=Q, policy=Q.argmax(-1), sweeps=self.global_step, residuals=[])

    def model(self) -> th_envs.TabularMDP:
        """The env's :class:`TabularMDP` (for exact evaluation), or an error saying there is none."""
        return th_envs.require_tabular_model(self.env_spec)

    def exact_values(self, policy: Tensor | None = None) -> Tensor:
        """V^pi ``[R, S]`` of each run's greedy policy (or of ``policy``: ``[R, S]`` actions or ``[R, S, A]``
        probabilities), solved exactly on the env's model with this agent's gamma: the learned policy judged
        without sampling noise."""
        from thorndike.planning import evaluate_policies

        policy = self.greedy_policy() if policy is None else policy
        return evaluate_policies(self.model(), policy, gamma=self.config.gamma)

    def write_pictures(self, run_dir: Path) -> list[Path]:
        """``curve.png``; ``episodes.png``, the return per episode averaged over the runs; and, when the env is a
        grid thorndike knows, ``values.png``: run 0's V heat map with its greedy policy's arrows and Q(s, a)
        triangles."""
        from thorndike import plot

        pictures = super().write_pictures(run_dir)
        pictures += write_episode_curve(self, self.history, run_dir)
        mdp = th_envs.tabular_model(self.env_spec)
        if mdp is not None and mdp.grid is not None and self.q.shape[-1] == len(mdp.grid.action_directions):
            title = f"{self.name} on {th_envs.env_name(self.env_spec)}: run 0 after {self.global_step} steps"
            pictures.append(plot.values(mdp, self.solution(0), run_dir / "values.png", title=title))
        return pictures
