"""The tabular Cross-Entropy Method (CEM): black-box search over a policy matrix pi(a|s) = A[s, a].

Notes: 003 L54-L78 (inventory A39), L97-L103 (learning tricks), 004 L351-L352 (CEM as black-box optimisation: sample
neighbouring policies, keep "a small percentage of the best" to form the new estimate). Each iteration of each run:

    play N sessions (episodes) with the current policy pi(a|s) = A[s, a]     (003 L60, L77; A starts uniform, L56)
    elites = the sessions whose return is >= the run's elite_percentile-th percentile of the N returns
                                                                  (L62-L66: the M best sessions, as (s, a) pairs)
    NewPolicy(a|s) = #(s, a) in the elites / #(s) in the elites              (L68; the elites' action frequencies)
    Policy <- (1 - alpha) Policy + alpha NewPolicy                           (L70, alpha = ``smoothing``)

Parallel sampling (L103) is the many-copies batch below; the entropy regularisation of L101 belongs to the
approximate method (:mod:`thorndike.search.approx_cem`, a loss to regularise) and has no counterpart in this counting
update. Playing the sessions and choosing the elites (the tie rules below) are shared with that method, in
:mod:`thorndike.search.sessions`.

Details the notes leave open, decided here:

- **Unvisited states.** A state that no elite visited has no frequencies; its row keeps the old policy (inventory
  C66). (The well-known practical-RL assignment resets such rows to uniform instead; keeping them lets smoothing work
  and never forgets what earlier iterations learned.)
- **Ties at the percentile.** The threshold is the linearly interpolated percentile (as ``numpy.percentile``) and
  a session is an elite when its return is >= the threshold, so sessions tied at the threshold are all kept (more
  than (100 - percentile)% of the sessions can be elites), and > the run's worst return. The second condition
  matters when the threshold *is* the worst return: with ">=" alone every session would be an elite whenever most
  returns are tied at the bottom (FrozenLake: a few successes among many zero-return sessions give a 70th percentile
  of 0), and the update would learn nothing from the successes. With it, those few successes are the elites; when
  all N returns are equal there is nothing to select and that run's policy does not change.
- **Remembering sessions** of previous iterations (L99, "3-5 previous iterations"): the elites' (s, a) counts of the
  last ``keep_iterations`` iterations (this one included) are summed before normalising. Each iteration's elites
  are chosen among that iteration's sessions; the memory only reuses them.
- **Ranking.** Sessions are ranked by their sum of rewards, as in the notes, or with ``gamma`` < 1 by the discounted
  sum_t gamma^t r_t. Discounting matters where many sessions tie: on FrozenLake every success pays 1, so with
  gamma = 1 a success that bumped into walls for 30 steps is as elite as a 6-step one, the elites' frequencies keep
  those self-loops, and the most probable action of some state on the way can be a bump into the wall (the greedy
  policy then never arrives; the tests show it). Sessions are cut at ``max_episode_steps``.

Many runs at once, as in the tabular learners: ``n_runs`` independent searches, each with its own policy matrix and
``n_sessions`` env copies (``n_env_copies() = n_runs * n_sessions``, copy c belongs to run c // n_sessions). One
iteration steps all copies together until every copy has finished one session; copies that finished early keep
stepping (a vector env steps all its copies) but those transitions are masked out. Each iteration begins with a reset
of all copies, so every session starts from the env's start distribution.

Steps are counted per run, like the tabular learners: an iteration of T lockstep steps adds T * n_sessions to
``global_step`` (every step the run's copies took, also those masked out after a copy's session ended: that is what
the iteration cost). ``learn(total_steps)`` stops at the first iteration boundary at or past ``total_steps``. Every
session is one episode of ``agent.ledger`` (an :class:`~thorndike.core.ledger.EpisodeLedger`: its copy, return,
length and the step count at the end of its iteration).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import gymnasium as gym
import torch
from torch import Tensor

from thorndike import envs as th_envs
from thorndike.agent import Agent
from thorndike.config import check, check_limits, describe
from thorndike.core import exploration
from thorndike.core.resources import require_memory, tensor_bytes
from thorndike.search.sessions import Sessions, elite_steps, play_sessions, select_elites
from thorndike.tabular.base import require_discrete_spaces, run_of_row

__all__ = ["CEMCurves", "CEMTables", "Sessions", "TabularCEM", "TabularCEMConfig", "elite_counts", "new_policy",
           "select_elites"]


@dataclass
class TabularCEMConfig:
    """The tabular CEM's hyperparameters: runs, sessions per iteration, the elite percentile and the smoothing."""

    n_runs: int = describe("independent runs searching at once (one policy matrix and n_sessions env copies each)", 1)
    n_sessions: int = describe("sessions (episodes) each run plays per iteration (N)", 100)
    elite_percentile: float = describe("sessions with return >= this percentile of the run's N returns are elites",
                                       70.0)
    smoothing: float = describe("alpha of Policy <- (1 - alpha) Policy + alpha NewPolicy (1: no smoothing)", 0.5)
    keep_iterations: int = describe("NewPolicy counts the elites of this many latest iterations (1: this one only)",
                                    3)
    max_episode_steps: int = describe("a session still running after this many steps is cut there", 1000)
    gamma: float = describe("sessions are ranked by sum_t gamma^t r_t (1: the plain sum of rewards, as in tabular CEM)",
                            1.0)


    def __post_init__(self) -> None:
        check_limits(self)
        check(self.n_runs >= 1, "n_runs", self.n_runs, ">= 1")
        # one session has nothing to be compared with: it ties with the worst return and is never an elite
        check(self.n_sessions >= 2, "n_sessions", self.n_sessions, ">= 2")
        check(0.0 <= self.elite_percentile <= 100.0, "elite_percentile", self.elite_percentile, "in [0, 100]")
        check(0.0 < self.smoothing <= 1.0, "smoothing", self.smoothing, "in (0, 1]")
        check(self.keep_iterations >= 1, "keep_iterations", self.keep_iterations, ">= 1")
        check(self.max_episode_steps >= 1, "max_episode_steps", self.max_episode_steps, ">= 1")
        check(0.0 < self.gamma <= 1.0, "gamma", self.gamma, "in (0, 1]")


# ---- the math of one iteration (pure functions, tested by hand) ---------------------------------------------------


def elite_counts(states: Tensor, actions: Tensor, keep: Tensor, run_of_copy: Tensor, n_runs: int, n_states: int,
                 n_actions: int) -> Tensor:
    """How often each run's elites took each action in each state, ``[R, S, A]`` float64.

    ``states``, ``actions`` and ``keep`` are ``[T, N]`` (time, env copy); ``keep`` marks the steps that belong to an
    elite session; ``run_of_copy`` ``[N]`` is the run of each copy. One scatter-add, no loop over runs or copies.
    """
    counts = torch.zeros((n_runs, n_states, n_actions), dtype=torch.float64, device=states.device)
    runs = run_of_copy.expand_as(states)
    index = (runs[keep], states[keep].long(), actions[keep].long())
    counts.index_put_(index, torch.ones(index[0].shape, dtype=torch.float64, device=states.device), accumulate=True)
    return counts


def new_policy(policy: Tensor, counts: Tensor, smoothing: float) -> Tensor:
    """One CEM update of policy matrices ``[..., S, A]`` from elite counts of the same shape (003 L68-L70).

    NewPolicy(.|s) = counts(s, .) / sum_a counts(s, a) where the elites visited s; the result is
    (1 - smoothing) Policy + smoothing NewPolicy there, and exactly the old row where they did not.
    """
    visits = counts.sum(-1, keepdim=True)
    frequencies = counts / visits.clamp_min(1e-300)
    smoothed = (1.0 - smoothing) * policy + smoothing * frequencies
    return torch.where(visits > 0, smoothed, policy)


# ---- state kept across iterations (checkpoint components) --------------------------------------------------------


class CEMTables:
    """The search's state: each run's policy matrix ``policy`` ``[R, S, A]`` (float64, uniform at first) and the
    elite memory ``memory`` ``[k, R, S, A]`` (the elite counts of the last k iterations, slot ``iteration % k``)."""

    def __init__(self, n_runs: int, n_states: int, n_actions: int, keep_iterations: int,
                 device: torch.device) -> None:
        self.policy = torch.full((n_runs, n_states, n_actions), 1.0 / n_actions, dtype=torch.float64,
                                 device=device)
        self.memory = torch.zeros((keep_iterations, n_runs, n_states, n_actions), dtype=torch.float64, device=device)

    def remember(self, iteration: int, counts: Tensor) -> Tensor:
        """Store this iteration's elite counts over the oldest ones; return the sum over the memory."""
        self.memory[iteration % self.memory.shape[0]] = counts
        return self.memory.sum(0)

    def state_dict(self) -> dict[str, Any]:
        return {"policy": self.policy.clone(), "memory": self.memory.clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name in ("policy", "memory"):
            mine, theirs = getattr(self, name), state[name]
            if mine.shape != theirs.shape:
                raise ValueError(f"checkpoint {name} {tuple(theirs.shape)} does not fit this agent "
                                 f"{tuple(mine.shape)}")
            mine.copy_(theirs)


class CEMCurves:
    """Per iteration and per run: the mean session return, the elite threshold, the elite count and the run's steps
    so far. ``matrix(field)`` gives ``[iterations, R]``, the form a learning-curve figure averages over runs."""

    FIELDS = ("return_mean", "threshold", "elites", "step")

    def __init__(self) -> None:
        self.rows: dict[str, list[Tensor]] = {field: [] for field in self.FIELDS}

    def add(self, **values: Tensor) -> None:
        for field in self.FIELDS:
            self.rows[field].append(values[field].detach().cpu().double())

    def matrix(self, field: str) -> Tensor:
        rows = self.rows[field]
        return torch.stack(rows) if rows else torch.zeros((0, 0), dtype=torch.float64)

    def __len__(self) -> int:
        return len(self.rows["step"])

    def state_dict(self) -> dict[str, Any]:
        return {field: self.matrix(field) for field in self.FIELDS}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rows = {field: list(state[field].unbind(0)) for field in self.FIELDS}


# ---- the agent ---------------------------------------------------------------------------------------------------


class TabularCEM(Agent):
    """Tabular cross-entropy method: a policy matrix pi(a|s) refit to the action frequencies of the best sessions."""

    name = "cem"
    Config = TabularCEMConfig
    action_spaces: ClassVar[tuple[type[gym.Space], ...]] = (gym.spaces.Discrete,)

    @classmethod
    def check_spaces(cls, observation_space: gym.Space, action_space: gym.Space) -> None:
        require_discrete_spaces(cls.name, f"{cls.name} (tabular CEM) keeps a policy matrix pi(a|s)",
                                observation_space, action_space)

    def build(self) -> None:
        config = self.config
        # every session: copy c is run c // N's
        self.connect_env(self.n_env_copies(), ledger_keep=None,
                         sized_by={"n_runs": config.n_runs, "n_sessions": config.n_sessions})
        self.n_states = int(self.envs.single_observation_space.n)
        self.n_actions = int(self.envs.single_action_space.n)
        S, A = self.n_states, self.n_actions
        require_memory("the policy matrices and the elite memory",
                       tensor_bytes((config.keep_iterations + 1) * config.n_runs * S * A, dtype=torch.float64),
                       self.device, {"n_runs": config.n_runs, "keep_iterations": config.keep_iterations},
                       f"{S:,} states x {A:,} actions")
        # one iteration keeps the states, actions and masks of its sessions, [T, N] each, T up to max_episode_steps
        require_memory("one iteration's sessions", tensor_bytes(config.max_episode_steps * self.n_env_copies() * 17,
                                                                 dtype=torch.uint8), self.device,
                       {"max_episode_steps": config.max_episode_steps, "n_runs": config.n_runs,
                        "n_sessions": config.n_sessions})
        self.tables = CEMTables(config.n_runs, self.n_states, self.n_actions, config.keep_iterations, self.device)
        self.curves = CEMCurves()
        self.components |= {"tables": self.tables, "curves": self.curves}
        self.run_of_copy = torch.arange(self.n_env_copies(), device=self.device) // config.n_sessions

    def n_env_copies(self) -> int:
        """n_sessions env copies per run."""
        return self.config.n_runs * self.config.n_sessions

    @property
    def policy_matrix(self) -> Tensor:
        """pi(a|s) of every run, ``[R, S, A]`` (rows are distributions)."""
        return self.tables.policy

    # ---- collect -> elites -> update ----------------------------------------------------------------------------

    def play_sessions(self) -> Sessions:
        """Reset every copy and play one session in each with its run's policy, all copies in lockstep."""
        policy, run_of_copy = self.tables.policy, self.run_of_copy
        # Rewards, states (in range) and final states are checked once per chunk of steps and after the last;
        # until then a state out of range is mapped into it, so indexing the policy never fails or wraps around.

        def choose(obs: Tensor) -> Tensor:
            return exploration.sample(policy[run_of_copy, obs], self.generator)

        sessions, self.obs = play_sessions(self.envs, choose, self.config.max_episode_steps, self.config.gamma,
                                           first_step=self.global_step, step_size=self.config.n_sessions,
                                           where=f"iteration {self.iteration + 1}", n_states=self.n_states)
        return sessions

    def update(self, counts: Tensor) -> None:
        """Remember this iteration's elite counts and move the policy toward the remembered elites' frequencies."""
        remembered = self.tables.remember(self.iteration, counts)
        self.tables.policy = new_policy(self.tables.policy, remembered, self.config.smoothing)

    def learn(self, total_steps: int) -> TabularCEM:
        """Iterate until every run has taken ``total_steps`` env steps (counted per run; see the module docstring)."""
        config = self.config
        R, N = config.n_runs, config.n_sessions
        with self.session(total_steps) as run:
            while run.running():
                sessions = self.play_sessions()
                entropy = self._entropy_along(sessions)  # of the policy that played, before it changes
                returns = sessions.returns.view(R, N)
                elite, threshold = select_elites(sessions.scores.view(R, N), config.elite_percentile)
                keep = elite_steps(sessions, elite)
                counts = elite_counts(sessions.states, sessions.actions, keep, self.run_of_copy, R, self.n_states,
                                      self.n_actions)
                self.update(counts)
                self.global_step += sessions.steps * N
                self.ledger.record(sessions.as_finished_episodes(), self.global_step)
                self.curves.add(return_mean=returns.mean(1), threshold=threshold, elites=elite.sum(1).double(),
                                step=torch.full((R,), float(self.global_step)))
                run.log({
                    # replaces the lifecycle's "last 20 episodes" column: the mean over all runs' sessions
                    "return_mean": float(returns.mean()),
                    "elite_threshold": float(threshold.mean()),
                    "elite_fraction": float(elite.double().mean()),
                    "session_length": float(sessions.lengths.double().mean()),
                    "policy_entropy": entropy,
                })
        return self

    def _entropy_along(self, sessions: Sessions) -> float:
        """Mean entropy of pi(.|s_t) over the steps of the sessions (nats): how random the played policy still is."""
        entropy = -torch.special.xlogy(self.tables.policy, self.tables.policy).sum(-1)  # [R, S]
        along = entropy[self.run_of_copy.expand_as(sessions.states), sessions.states]
        return float(along[sessions.active].mean())

    # ---- acting, results ----------------------------------------------------------------------------------------

    def policy(self, obs: Tensor, deterministic: bool, generator: torch.Generator | None) -> Tensor:
        """The most probable action (deterministic) or a sample of pi(.|s); row ``b`` follows run ``b % n_runs``."""
        obs = obs.long().to(self.device)
        probs = self.tables.policy[run_of_row(len(obs), self.config.n_runs, self.device), obs]
        if deterministic:
            return exploration.greedy(probs)
        return exploration.sample(probs, generator)

    def greedy_policy(self) -> Tensor:
        """Each run's most probable action in every state, ``[R, S]`` (lowest index among ties)."""
        return exploration.greedy(self.tables.policy)

    def exact_values(self, policy: Tensor | None = None, gamma: float | None = None) -> Tensor:
        """V^pi ``[R, S]``, solved exactly on the env's model: of each run's greedy policy, or of ``policy`` (``[R, S]``
        actions or ``[R, S, A]`` probabilities, e.g. ``agent.policy_matrix`` for the stochastic policy itself).

        ``gamma`` defaults to the model's own discount (0.99 for the toy-text envs): with gamma = 1 a policy that
        never reaches a terminal state from some state has no finite value.
        """
        from thorndike.planning import evaluate_policies

        policy = self.greedy_policy() if policy is None else policy
        model = th_envs.require_tabular_model(self.env_spec, self.env_setup.kwargs)
        return evaluate_policies(model, policy, gamma=gamma)
