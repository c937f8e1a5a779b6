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

The family's parts are written once here and composed, not inherited: :class:`Tables` (the learned tables and their
counts), :class:`BehaviourPolicy` (epsilon schedule and epsilon-greedy / Boltzmann / UCB sampling over action values
its owner supplies), :class:`RunStepper` (the lockstep step loop: true next states, SARSA's pending a', episode
counts after the update) and :class:`RunHistory` (the env interaction's :class:`~thorndike.core.ledger.EpisodeLedger`
read by run). :class:`TabularAgent`, one level below :class:`~thorndike.agent.Agent`, is the control learners' base;
the prediction learners' base (:mod:`thorndike.tabular.prediction`) and linear Q (:mod:`thorndike.tabular.linear_q`)
sit on ``Agent`` too and use the same parts. Each algorithm file still holds its own config and its own ``learn``
loop (collect -> targets -> update -> log).

Few runs. A step in tensor ops costs about the same for one run as for hundreds (each op's dispatch dominates), ten
times the tutorial loop's step with one run. So Q-learning, SARSA and expected SARSA with few runs (``n_runs *
n_actions`` at most :data:`thorndike.tabular.scalar.MAX_ENTRIES`) on the native tabular env play their steps and
updates on plain Python numbers instead (:mod:`thorndike.tabular.scalar`; each algorithm file gives its target on
plain numbers, ``TabularAgent.scalar_target``). The results are bit for bit those of the tensor path (tables,
counts, epsilon, episode history, log rows, generators, checkpoints), so the choice, made once in
:meth:`TabularAgent.build` (``agent.scalar``, None for the tensor path), shows only in the speed.
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
from thorndike.config import check, check_limits, describe
from thorndike.core import exploration
from thorndike.core.diagnostics import StepChecks
from thorndike.core.ledger import EpisodeLedger
from thorndike.core.resources import require_memory, tensor_bytes
from thorndike.core.targets import incremental_update
from thorndike.interaction import EnvInteraction
from thorndike.planning.result import PlanningResult
from thorndike.tabular.scalar import ScalarLearner, ScalarTarget, scalar_learner

__all__ = ["BehaviourPolicy", "PendingAction", "RunHistory", "RunStepper", "TabularAgent", "TabularConfig", "Tables",
           "Transition", "connect_runs", "exact_values", "learn_episodes", "require_discrete_spaces", "run_of_row",
           "write_episode_curve"]

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


    def __post_init__(self) -> None:
        check_limits(self)
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
        check(self.epsilon_decay_episodes >= 0, "epsilon_decay_episodes", self.epsilon_decay_episodes, ">= 0")
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
    # What the learner acts on at obs and next_obs when the step loop encodes states (linear Q: the active features,
    # [R, n]); None for tables, which act on the states themselves.
    active: Tensor | None = None
    next_active: Tensor | None = None

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
        entries = n_runs * n_states * n_actions
        require_memory("the tables", tensor_bytes(entries * (len(names) + 1), dtype=torch.float64) +
                       tensor_bytes(n_runs * n_states * len(state_names), dtype=torch.float64), device,
                       {"n_runs": n_runs}, f"{n_states:,} states x {n_actions:,} actions x {len(names) + 1} tables")
        self.tensors = {name: torch.full((n_runs, n_states, n_actions), float(q_init), dtype=torch.float64,
                                         device=device) for name in names}
        self.tensors |= {name: torch.full((n_runs, n_states), float(q_init), dtype=torch.float64, device=device)
                         for name in state_names}
        self.visits = torch.zeros((n_runs, n_states, n_actions), dtype=torch.int64, device=device)
        self.episodes = torch.zeros(n_runs, dtype=torch.int64, device=device)
        self.runs = torch.arange(n_runs, device=device)
        self.row_base = self.runs * n_states  # run r's first row in a table seen as [R * S, ...]

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
        # One flat index (r * S + s) * A + a, read with index_select and written with index_copy_: the same
        # entries as advanced indexing with (runs, states, actions), in fewer and cheaper ops per step.
        entry = torch.add(states, self.row_base)
        if actions is not None:
            entry = torch.add(actions, entry, alpha=table.shape[2])
        flat = table.view(-1)
        old = flat.index_select(0, entry)
        new = incremental_update(old, target, alpha)
        if active is not None:
            new = torch.where(active, new, old)
        flat.index_copy_(0, entry, new)
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


class RunHistory:
    """A tabular agent's finished episodes read by run: its :class:`~thorndike.core.ledger.EpisodeLedger` (env copy
    ``r`` is run ``r``) with the copy column named ``run``. ``matrix("return", R, k)`` gives ``[R, k]``: each run's
    first ``k`` episodes (NaN where a run has fewer), the form learning-curve studies average over runs."""

    def __init__(self, ledger: EpisodeLedger) -> None:
        self.ledger = ledger

    @property
    def columns(self) -> dict[str, Tensor]:
        """run, return, length and step of every finished episode, in the order they ended."""
        return {("run" if name == "copy" else name): column for name, column in self.ledger.columns.items()}

    def __len__(self) -> int:
        return len(self.ledger)

    def of_run(self, run: int, field: str = "return") -> Tensor:
        """All of one run's episodes' ``field`` (return, length or step), in order."""
        return self.ledger.of_copy(run, field)

    def matrix(self, field: str, n_runs: int | None = None, episodes: int | None = None) -> Tensor:
        """``[R, k]`` float64: run r's first k episodes' ``field``; k defaults to the fewest any run finished."""
        return self.ledger.matrix(field, n_runs, episodes)

    def state_dict(self) -> dict[str, Tensor]:
        """A copy of the columns (what the ledger's checkpoint holds, named by run)."""
        return {name: column.clone() for name, column in self.columns.items()}


class BehaviourPolicy:
    """How a learner acts while it learns, over action values its owner supplies (a table's rows, or linear Q).

    epsilon-greedy, Boltzmann, UCB or greedy (``TabularConfig.exploration``); each run's epsilon follows the episodes
    it has finished (``episodes`` ``[R]``, counted by the owner) and is refreshed only when one ends (:meth:`start`,
    :meth:`episodes_ended`), so acting costs no schedule arithmetic. Draws come from ``generator``.
    """

    def __init__(self, config: TabularConfig, episodes: Tensor, generator: torch.Generator) -> None:
        self.config = config
        self.episodes = episodes
        self.generator = generator
        self.current = self.epsilon()

    @property
    def counts_visits(self) -> bool:
        """Whether :meth:`probs` and :meth:`sample` need the visit counts n(s, .) (UCB's bonus)."""
        return self.config.exploration == "ucb"

    def epsilon(self) -> Tensor:
        """Each run's epsilon ``[R]`` from the episodes it has finished (``epsilon_schedule``)."""
        return self.config.epsilon_at(self.episodes)

    def start(self) -> None:
        """Recompute each run's epsilon (at the start of a collect, or after a checkpoint was loaded)."""
        self.current = self.epsilon()

    def episodes_ended(self, done: Tensor) -> None:
        """Refresh the epsilon of the runs whose episode just ended (``done`` ``[R]``)."""
        if self.config.epsilon_varies:
            self.current = torch.where(done, self.epsilon(), self.current)

    def probs(self, q: Tensor, counts: Tensor | None = None) -> Tensor:
        """pi_behaviour(.|s_r) ``[R, A]`` (float64) from each run's action values ``q`` ``[R, A]`` (and, for UCB,
        its visit counts ``counts`` ``[R, A]``)."""
        config = self.config
        return exploration.behaviour_probs(config.exploration, q, self.current, config.temperature, counts,
                                           config.ucb_c)

    def sample(self, q: Tensor, counts: Tensor | None = None) -> Tensor:
        """a ~ pi_behaviour(.|s_r) for each run ``[R]`` (epsilon-greedy breaks ties among the best at random)."""
        if self.config.exploration == "epsilon_greedy":
            return exploration.epsilon_greedy_sample(q, self.current, self.generator)
        return exploration.sample(self.probs(q, counts), self.generator)

    def evaluation_action(self, q: Tensor, runs: Tensor, deterministic: bool,
                          generator: torch.Generator | None) -> Tensor:
        """Acting outside learning, row ``b`` of ``q`` ``[B, A]`` being run ``runs[b]``'s: the greedy action (lowest
        index among ties), or an epsilon-greedy draw with that run's epsilon."""
        if deterministic:
            return exploration.greedy(q)
        return exploration.sample(exploration.epsilon_greedy_probs(q, self.epsilon()[runs]), generator)


class RunStepper:
    """The step loop of the tabular learners and linear Q: ``R`` runs, one env copy each, stepped in lockstep.

    :meth:`collect` yields one :class:`Transition` per step, with s' the true next state (``final_obs`` where an
    episode ended), and after the caller's update counts the step: visits ``n(s, a)`` (``visits`` ``[R, S, A]``, for
    tables), each run's finished ``episodes`` ``[R]`` and the behaviour's epsilon, and the agent's ``global_step``
    (its env interaction moves ``obs`` on and records the finished episodes in the ledger). ``encode`` turns states
    into what the learner acts on (linear Q: the active features), once per state; without it the states are used as
    they are. SARSA's a' (``next_action=True``) is drawn before the update and is the next step's action where the
    episode goes on (``pending_action``, a checkpoint component, so a resumed run takes the action it had already
    drawn).
    """

    def __init__(self, agent: Agent, episodes: Tensor, visits: Tensor | None = None,
                 behaviour: BehaviourPolicy | None = None, encode: Callable[[Tensor], Tensor] | None = None) -> None:
        self.agent = agent
        self.episodes = episodes
        self.visits = visits
        self.behaviour = behaviour
        self.encode = encode
        self.pending_action = PendingAction(agent.device)
        self.runs = torch.arange(len(episodes), device=agent.device)
        # n(s, a) grows by one at flat entry (r * S + s) * A + a: one index_add_ on the flat view, several
        # microseconds a step cheaper than index_put_ with three index tensors when there are few runs.
        self.ones = torch.ones(len(episodes), dtype=torch.int64, device=agent.device)
        self.row_base = None if visits is None else self.runs * visits.shape[1]
        space = agent.interaction.observation_space
        self.checks = StepChecks(int(space.n) if isinstance(space, gym.spaces.Discrete) else None)

    def collect(self, steps: int, choose: Callable[[Tensor], Tensor],
                next_action: bool = False) -> Iterator[Transition]:
        """Step every run ``steps`` times, acting with ``choose`` (encoded states ``[R, ...]`` -> actions ``[R]``)."""
        agent, encode, checks = self.agent, self.encode, self.checks
        where = f"iteration {agent.iteration + 1}"
        if self.behaviour is not None:
            self.behaviour.start()
        state = agent.obs if encode is None else encode(agent.obs)
        for _ in range(steps):
            obs = agent.obs
            pending = self.pending_action.value
            action = choose(state) if pending is None else pending
            agent.global_step += 1
            reset_obs, reward, terminated, truncated, info = agent.interaction.step(action, agent.global_step)
            # Checked once per chunk of steps (and at the end); until then, states out of range or NaN are mapped
            # to harmless ones so that no table index fails or wraps around before the check names them.
            if checks.add(agent.global_step, observation=reset_obs, final_observation=info["final_obs"],
                          reward=reward):
                checks.check(where)
            reset_obs, next_obs = checks.safe(reset_obs), checks.safe(info["final_obs"])
            agent.interaction.obs = reset_obs
            done = info["done"]
            if encode is None:
                next_state, reset_state = next_obs, reset_obs
            else:  # one encoding for both the true next states and the states the runs go on from
                both = encode(torch.cat([next_obs, reset_obs]))
                next_state, reset_state = both[: len(done)], both[len(done):]
            t = Transition(obs, action, reward.double(), next_obs, terminated, truncated, reset_obs,
                           active=None if encode is None else state, next_active=None if encode is None else next_state)
            if next_action:
                t.next_action = choose(next_state)
            yield t
            if self.visits is not None:
                entry = torch.add(action, torch.add(obs, self.row_base), alpha=self.visits.shape[2])
                self.visits.view(-1).index_add_(0, entry, self.ones)
            # Episodes count after the update, so the update of an episode's last step still used its epsilon.
            self.episodes += done
            if self.behaviour is not None:
                self.behaviour.episodes_ended(done)
            if next_action:
                self.pending_action.value = torch.where(done, choose(reset_state), t.next_action)
            state = reset_state
        checks.check(where)


def run_of_row(n_rows: int, n_runs: int, device: torch.device) -> Tensor:
    """The run whose policy acts on each row of a batch of observations outside learning: row ``b`` -> ``b % R``."""
    return torch.arange(n_rows, device=device) % n_runs


def learn_episodes(agent: Agent, finished: Tensor, episodes: int, chunk: int, max_steps: int | None) -> None:
    """Call ``agent.learn`` ``chunk`` more steps at a time until every run has finished ``episodes`` episodes
    (``finished`` ``[R]``, counted by the agent); ``max_steps`` (per run) stops a policy that never ends one."""
    if episodes < 1 or chunk < 1:
        raise ValueError(f"episodes and chunk must be >= 1, got {episodes} and {chunk}")
    while int(finished.min()) < episodes:
        if max_steps is not None and agent.global_step >= max_steps:
            raise RuntimeError(f"after {agent.global_step} steps run {int(finished.argmin())} has "
                               f"finished only {int(finished.min())} of {episodes} episodes; raise "
                               "max_steps or give the env a time limit")
        target = agent.global_step + chunk
        agent.learn(target if max_steps is None else min(target, max_steps))


def exact_values(agent: Agent, policy: Tensor) -> Tensor:
    """V^pi ``[R, S]`` of ``policy`` (``[R, S]`` actions or ``[R, S, A]`` probabilities), solved exactly on the
    agent's env model with its gamma: a learned policy or value judged without sampling noise."""
    from thorndike.planning import evaluate_policies

    model = th_envs.require_tabular_model(agent.env_spec, agent.env_setup.kwargs)
    return evaluate_policies(model, policy, gamma=agent.config.gamma)

def connect_runs(agent: Agent) -> EnvInteraction:
    """Connect one env copy per run, the ledger keeping every episode (the per-run histories)."""
    return agent.connect_env(agent.config.n_runs, ledger_keep=None, sized_by={"n_runs": agent.config.n_runs})


def require_discrete_spaces(name: str, who: str, observation_space: gym.Space, action_space: gym.Space) -> None:
    """Refuse anything but Discrete observations and actions, listing the algorithms that support the spaces."""
    if not isinstance(action_space, gym.spaces.Discrete) or not isinstance(observation_space, gym.spaces.Discrete):
        from thorndike.registry import alternatives

        raise ValueError(
            f"{who}: it needs Discrete observations and Discrete actions, got observations {observation_space} and "
            f"actions {action_space}. Use it on FrozenLake, Taxi, CliffWalking or a TabularMDP; "
            f"{alternatives(name, observation_space, action_space)}"
        )


def write_episode_curve(agent: Agent, history: RunHistory, run_dir: Path) -> list[Path]:
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
    """Base of the tabular control learners: Discrete observations and actions, ``n_runs`` runs, ``q`` tables
    ``[R, S, A]``, acting with the :class:`BehaviourPolicy`.

    A subclass sets ``Config`` (a :class:`TabularConfig`), optionally ``table_names`` (action-value tables other
    than ``q``) and ``scalar_target`` (its one-step target on plain numbers, for the few-runs path), and writes
    ``learn``. It reads its data from :meth:`collect`, updates with ``self.tables.update``
    and logs with the session. ``evaluate`` plays greedy policies: env copy ``b`` follows run ``b % n_runs``.
    """

    action_spaces: ClassVar[tuple[type[gym.Space], ...]] = (gym.spaces.Discrete,)
    table_names: ClassVar[tuple[str, ...]] = ("q",)
    # The algorithm's one-step target on plain numbers, for the few-runs path (thorndike.tabular.scalar); None: the
    # tensor path always.
    scalar_target: ClassVar[ScalarTarget | None] = None

    # ---- spaces and tables ----------------------------------------------------------------------------------

    @classmethod
    def check_spaces(cls, observation_space: gym.Space, action_space: gym.Space) -> None:
        require_discrete_spaces(cls.name, f"{cls.name} is tabular", observation_space, action_space)

    def build(self) -> None:
        envs = connect_runs(self)
        self.n_states, self.n_actions = int(envs.observation_space.n), int(envs.action_space.n)
        self.tables = Tables(self.config.n_runs, self.n_states, self.n_actions, self.config.q_init, self.device,
                             self.table_names)
        self.history = RunHistory(self.ledger)
        self.behaviour = BehaviourPolicy(self.config, self.tables.episodes, self.generator)
        self.stepper = RunStepper(self, self.tables.episodes, self.tables.visits, self.behaviour)
        self.pending_action = self.stepper.pending_action
        self.components |= {"tables": self.tables, "pending_action": self.pending_action}
        # With few runs, the same steps and updates in plain Python when the algorithm and env allow it (decided
        # here, once; see thorndike.tabular.scalar): ``learn`` then calls ``self.scalar.learn`` instead of collect.
        self.scalar: ScalarLearner | None = scalar_learner(self, type(self).scalar_target)

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
        return self.behaviour.epsilon()

    def visit_counts(self, states: Tensor) -> Tensor | None:
        """n(s_r, .) ``[R, A]`` when the behaviour needs them (UCB), else None."""
        return self.tables.visits[self.tables.runs, states] if self.behaviour.counts_visits else None

    def behaviour_probs(self, states: Tensor) -> Tensor:
        """pi_behaviour(.|s_r) for each run, ``[R, A]`` (float64)."""
        return self.behaviour.probs(self.behaviour_q(states), self.visit_counts(states))

    def behaviour_action(self, states: Tensor) -> Tensor:
        """a ~ pi_behaviour(.|s_r) for each run ``[R]``."""
        return self.behaviour.sample(self.behaviour_q(states), self.visit_counts(states))

    def alpha(self, states: Tensor, actions: Tensor) -> Tensor | float:
        """The step size of this update for each run: alpha, or 1 / n(s, a) counting this update."""
        if self.config.alpha_schedule == "1/n":
            return 1.0 / (self.tables.visits[self.tables.runs, states, actions] + 1).double()
        return self.config.alpha

    # ---- collecting -----------------------------------------------------------------------------------------

    def collect(self, steps: int, next_action: bool = False,
                choose: Callable[[Tensor], Tensor] | None = None) -> Iterator[Transition]:
        """Step every run ``steps`` times with the behaviour policy (or ``choose``), yielding each transition
        (see :class:`RunStepper`; ``next_action=True`` draws SARSA's a'). Visit counts ``n(s, a)`` grow after the
        caller's update (``alpha()`` counts the current update itself)."""
        return self.stepper.collect(steps, choose or self.behaviour_action, next_action)

    def learn_episodes(self, episodes: int, chunk: int = 1000, max_steps: int | None = None) -> TabularAgent:
        """Learn until every run has finished ``episodes`` episodes (textbook curves are drawn per episode), in
        ``learn`` calls of ``chunk`` more steps; ``max_steps`` (per run) stops a policy that never ends an episode."""
        learn_episodes(self, self.tables.episodes, episodes, chunk, max_steps)
        return self

    def log_stats(self) -> dict[str, float]:
        """The row every tabular learner logs: epsilon, mean |Q| and episodes per run."""
        return {"epsilon": float(self.epsilon().mean()), "q_abs_mean": float(self.q.abs().mean()),
                "episodes_per_run": float(self.tables.episodes.double().mean())}

    # ---- acting, results ------------------------------------------------------------------------------------

    def policy(self, obs: Tensor, deterministic: bool, generator: torch.Generator | None) -> Tensor:
        """Greedy (or behaviour, when not deterministic) actions; row ``b`` of ``obs`` follows run ``b % n_runs``."""
        obs = obs.long().to(self.device)
        runs = run_of_row(len(obs), self.config.n_runs, self.device)
        return self.behaviour.evaluation_action(self.q[runs, obs], runs, deterministic, generator)

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
        return th_envs.require_tabular_model(self.env_spec, self.env_setup.kwargs)

    def exact_values(self, policy: Tensor | None = None) -> Tensor:
        """V^pi ``[R, S]`` of each run's greedy policy (or of ``policy``: ``[R, S]`` actions or ``[R, S, A]``
        probabilities), solved exactly on the env's model with this agent's gamma: the learned policy judged
        without sampling noise."""
        return exact_values(self, self.greedy_policy() if policy is None else policy)

    def write_pictures(self, run_dir: Path) -> list[Path]:
        """``curve.png``; ``episodes.png``, the return per episode averaged over the runs; and, when the env is a
        grid thorndike knows, ``values.png``: run 0's V heat map with its greedy policy's arrows and Q(s, a)
        triangles."""
        from thorndike import plot

        pictures = super().write_pictures(run_dir)
        pictures += write_episode_curve(self, self.history, run_dir)
        mdp = th_envs.tabular_model(self.env_spec, self.env_setup.kwargs)
        if mdp is not None and mdp.grid is not None and self.q.shape[-1] == len(mdp.grid.action_directions):
            title = f"{self.name} on {th_envs.env_name(self.env_spec)}: run 0 after {self.global_step} steps"
            pictures.append(plot.values(mdp, self.solution(0), run_dir / "values.png", title=title))
        return pictures
