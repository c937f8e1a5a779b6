"""The approximate Cross-Entropy Method: a neural policy pi_w(a|s) refit to the elite sessions by maximum likelihood.

Notes: 003 L80-L103 (inventory A40, A117). Where the tabular CEM (:mod:`thorndike.search.cem`) sets the policy matrix
to the elites' action frequencies, the approximate method "can't set pi(a|s) explicitly" and fits a network to the
elites' (s, a) pairs instead:

    play N sessions with the current policy pi_w                                (003 L60; parallel sampling, L103)
    Elite = the (s, a) pairs of the sessions whose return is >= the run's elite_percentile-th percentile
    pi = argmax_pi sum_{(s_i, a_i) in Elite} log pi(a_i | s_i)                 (L92)

Discrete actions make the fit a classification (cross-entropy of the elite actions under the categorical policy),
continuous actions a regression ("regression instead of classification", L95): the Gaussian negative
log-likelihood of the elite actions, whose mean term is the squared error (a - mu_w(s))^2 / (2 sigma^2). With the
learning tricks of L97-L103:

- **remember the sessions of previous iterations** (L99, "3-5"): the elite pairs of the last ``keep_iterations``
  iterations (this one included) are fitted together; each iteration's elites are chosen among its own sessions;
- **entropy regularisation** (L101): the loss is the mean negative log-likelihood minus ``entropy_coef`` times the
  policy's mean entropy on the elite states, which keeps the policy from collapsing onto the first lucky elites;
- **parallel sampling** (L103): all sessions of all runs are env copies stepping in lockstep.

    L(w) = -1/|B| sum_{(s, a) in B} log pi_w(a | s) - entropy_coef * 1/|B| sum_{s in B} H[pi_w(. | s)]

The argmax is approximated by ``n_epochs`` shuffled passes of minibatch Adam over the remembered elites, starting
from the current weights: the few steps from the old policy towards the elites' fit play the part of the tabular
method's smoothing, Policy <- (1 - alpha) Policy + alpha NewPolicy (L70).

Shared with the tabular CEM (:mod:`thorndike.search.sessions`): playing the sessions (copies that finished early keep
stepping, masked out; sessions cut at ``max_episode_steps``; each iteration starts with a reset of all copies), and
the elite rule (linearly interpolated percentile, ties at the threshold kept, never the run's worst return, so an
iteration whose N returns are all equal has no elites; ranked by sum_t gamma^t r_t, the notes' plain sum with
``gamma`` = 1). The policy network is :class:`~thorndike.core.policy.PolicyNetwork` (the core encoders, so Box,
Discrete, image and Dict/Tuple observations work), starting near uniform (near zero mean) as the notes' initial
policy; Box actions get a diagonal Gaussian with a learned (``learn_std``) or fixed state-independent std, and the
elites keep the sampled action, before the env clips it to the bounds.

Many runs at once, as the tabular CEM: ``n_runs`` independent searches, each with its own network and ``n_sessions``
env copies (copy c belongs to run c // n_sessions). The runs' networks are a ``ModuleList`` under one Adam: each
run's loss is backpropagated and stepped on its own (Adam skips parameters without a gradient and keeps its moments
per parameter), so the runs are exactly independent optimisers; a run's minibatch loop is a Python loop, so R runs
cost R times one run's update. Steps count per run: an iteration of T lockstep steps adds T * n_sessions to
``global_step``; ``learn(total_steps)`` stops at the first iteration boundary at or past ``total_steps``. Every
session is one episode of the ledger. Acting outside learning: row ``b`` of a batch follows run ``b % n_runs``.

Measured on CartPole-v1 (``benchmarks/search_approx_cem.py``; defaults: N = 20 sessions, 70th percentile, elites of
3 iterations, a 64x64 ReLU network, Adam 0.03, 4 epochs of minibatches of 256, no entropy bonus; solved = greedy
mean of 20 evaluation episodes >= 475, checked after every iteration, budget 200 000 steps per seed): all 10 of seeds
0-9 solved, at 51 280, 51 640, 66 400, 5 220, 20 340, 94 400, 5 260, 1 160, 7 660 and 153 420 steps (300, 240, 380,
80, 160, 440, 80, 20, 100 and 560 sessions; 1-28 iterations), in 0.06-4.95 s of training each (14.8 s for all
ten, the evaluations not counted) on a 2-core CPU shared with other jobs (load average about 6; 9.4 s at most under
a load of 8). Steps count every lockstep step of the copies,
so an iteration costs N times its longest session. Other settings on the same seeds: N = 50 with one 64-unit tanh
layer, Adam 0.01 and 2 epochs solved 5 of 10 within 300 000 (the others stalled at greedy means of 230-460 with the
policy's entropy still near log 2: the elites' action frequencies barely sharpen it); 8 epochs instead of 2, 5 of 10
within 200 000; N = 20 with that network and 8 epochs, 10 of 10 within 200 000 but in up to 28 iterations, and with
an entropy bonus of 0.01 as well, 9 of 10. With the defaults, seeds 10-19 also all solved, 9 of them within 200 000
steps (seed 17 at 207 020, in the iteration that crossed the budget; 24 140 to 162 860 for the others).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import torch
from torch import Tensor, nn

from thorndike.agent import Agent
from thorndike.config import check, check_limits, check_network, describe
from thorndike.core.actor_critic import ACTIVATIONS
from thorndike.core.buffers import minibatches
from thorndike.core.distributions import Categorical, DiagGaussian
from thorndike.core.networks import adam
from thorndike.core.policy import PolicyNetwork
from thorndike.core.resources import require_memory, tensor_bytes
from thorndike.core.spaces import storage_spec
from thorndike.search.sessions import Sessions, elite_steps, play_sessions, select_elites

__all__ = ["ApproxCEM", "ApproxCEMConfig", "EliteMemory", "mle_loss"]


@dataclass
class ApproxCEMConfig:
    """The approximate CEM's hyperparameters: runs and sessions, the elite percentile and memory, the network and
    its maximum-likelihood fit."""

    n_runs: int = describe("independent runs searching at once (one network and n_sessions env copies each)", 1)
    n_sessions: int = describe("sessions (episodes) each run plays per iteration (N)", 20)
    elite_percentile: float = describe("sessions with return >= this percentile of the run's N returns are elites",
                                       70.0)
    keep_iterations: int = describe("the fit uses the elites of this many latest iterations (1: this one only)", 3)
    max_episode_steps: int = describe("a session still running after this many steps is cut there", 1000)
    gamma: float = describe("sessions are ranked by sum_t gamma^t r_t (1: the plain sum of rewards of the notes)",
                            1.0)
    hidden_sizes: tuple[int, ...] = describe("hidden layer widths of the policy network", (64, 64))
    activation: str = describe("hidden activation: tanh or relu", "relu")
    lr: float = describe("Adam learning rate of the maximum-likelihood fit", 3e-2)
    n_epochs: int = describe("shuffled passes over the remembered elite (s, a) pairs per iteration", 4,
                             at_most=100)
    minibatch_size: int = describe("elite (s, a) pairs per gradient step", 256)
    entropy_coef: float = describe("entropy bonus: the loss is NLL - entropy_coef * H[pi(.|s)] (0: none)", 0.0)
    log_std_init: float = describe("initial log std of the Gaussian policy (Box actions)", 0.0)
    learn_std: bool = describe("the Gaussian's log std is fitted too (False: kept at log_std_init)", True)

    def __post_init__(self) -> None:
        check_limits(self)
        check(self.n_runs >= 1, "n_runs", self.n_runs, ">= 1")
        # one session has nothing to be compared with: it ties with the worst return and is never an elite
        check(self.n_sessions >= 2, "n_sessions", self.n_sessions, ">= 2")
        check(0.0 <= self.elite_percentile <= 100.0, "elite_percentile", self.elite_percentile, "in [0, 100]")
        check(self.keep_iterations >= 1, "keep_iterations", self.keep_iterations, ">= 1")
        check(self.max_episode_steps >= 1, "max_episode_steps", self.max_episode_steps, ">= 1")
        check(0.0 < self.gamma <= 1.0, "gamma", self.gamma, "in (0, 1]")
        check_network(self, ACTIVATIONS)
        check(self.lr > 0, "lr", self.lr, "> 0")
        check(self.n_epochs >= 1, "n_epochs", self.n_epochs, ">= 1")
        check(self.minibatch_size >= 1, "minibatch_size", self.minibatch_size, ">= 1")
        check(self.entropy_coef >= 0, "entropy_coef", self.entropy_coef, ">= 0")
        check(-20.0 <= self.log_std_init <= 2.0, "log_std_init", self.log_std_init, "in [-20, 2]")


# ---- the math of one update (a pure function, tested by hand) -----------------------------------------------------


def mle_loss(dist: Categorical | DiagGaussian, actions: Tensor, entropy_coef: float) -> tuple[Tensor, Tensor, Tensor]:
    """The fit's loss on a batch of elite pairs: (NLL - entropy_coef * H, NLL, H), each a scalar.

    NLL = -mean_i log pi(a_i | s_i): the cross-entropy of the elite actions for a categorical policy, the Gaussian
    negative log-likelihood (squared error scaled by the std, plus the log std and log sqrt(2 pi)) for a Gaussian
    one. H = mean_i H[pi(. | s_i)]. Minimising the loss maximises the elites' log-likelihood (003 L92), with the
    entropy bonus of L101.
    """
    nll = -dist.log_prob(actions).mean()
    entropy = dist.entropy().mean()
    return nll - entropy_coef * entropy, nll, entropy


# ---- state kept across iterations (a checkpoint component) ---------------------------------------------------------


class EliteMemory:
    """Each run's elite (s, a) pairs of the last k iterations: run r's slot ``iteration % k`` holds that iteration's
    pairs (``obs`` ``[n, *obs_shape]``, ``actions`` ``[n, *action_shape]``, n varying, 0 for an iteration without
    elites), so the memory grows and shrinks with the elites and a checkpoint holds exactly what is remembered."""

    def __init__(self, n_runs: int, keep_iterations: int, obs_spec: tuple[tuple[int, ...], torch.dtype],
                 action_spec: tuple[tuple[int, ...], torch.dtype], device: torch.device) -> None:
        (obs_shape, obs_dtype), (action_shape, action_dtype) = obs_spec, action_spec
        empty_obs = torch.zeros((0, *obs_shape), dtype=obs_dtype, device=device)
        empty_actions = torch.zeros((0, *action_shape), dtype=action_dtype, device=device)
        self.obs = [[empty_obs] * keep_iterations for _ in range(n_runs)]
        self.actions = [[empty_actions] * keep_iterations for _ in range(n_runs)]

    def remember(self, iteration: int, run: int, obs: Tensor, actions: Tensor) -> None:
        """Store run ``run``'s elite pairs of this iteration over its oldest ones."""
        slot = iteration % len(self.obs[run])
        self.obs[run][slot], self.actions[run][slot] = obs, actions

    def pairs(self, run: int) -> dict[str, Tensor]:
        """Every remembered elite pair of run ``run``: ``{"obs": [n, ...], "actions": [n, ...]}``."""
        return {"obs": torch.cat(self.obs[run]), "actions": torch.cat(self.actions[run])}

    def sizes(self) -> list[int]:
        """How many pairs each run remembers."""
        return [sum(len(t) for t in slots) for slots in self.obs]

    def state_dict(self) -> dict[str, Any]:
        return {"obs": [[t.clone() for t in slots] for slots in self.obs],
                "actions": [[t.clone() for t in slots] for slots in self.actions]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name in ("obs", "actions"):
            mine, theirs = getattr(self, name), state[name]
            if len(theirs) != len(mine) or any(len(a) != len(b) for a, b in zip(theirs, mine, strict=True)):
                raise ValueError(f"checkpoint elite memory {name} has {len(theirs)} runs x {len(theirs[0])} "
                                 f"iterations; this agent remembers {len(mine)} x {len(mine[0])}")
            reference = mine[0][0]
            for r, slots in enumerate(theirs):
                for k, t in enumerate(slots):
                    if t.shape[1:] != reference.shape[1:]:
                        raise ValueError(f"checkpoint elite {name} {tuple(t.shape[1:])} does not fit this agent "
                                         f"{tuple(reference.shape[1:])}")
                    mine[r][k] = t.to(device=reference.device, dtype=reference.dtype).clone()


# ---- the agent ---------------------------------------------------------------------------------------------------


class ApproxCEM(Agent):
    """Approximate cross-entropy method: a neural policy fitted by maximum likelihood to the best sessions."""

    name = "approx_cem"
    Config = ApproxCEMConfig
    action_spaces = (gym.spaces.Discrete, gym.spaces.Box)

    def build(self) -> None:
        config = self.config
        envs = self.connect_env(config.n_runs * config.n_sessions,  # copy c is run c // n_sessions's
                                sized_by={"n_runs": config.n_runs, "n_sessions": config.n_sessions})
        obs_shape, obs_dtype = storage_spec(envs.observation_space)
        obs_bytes = math.prod(obs_shape) * obs_dtype.itemsize
        n_out = int(envs.action_space.n) if isinstance(envs.action_space, gym.spaces.Discrete) \
            else math.prod(envs.action_space.shape)
        sizes = [math.prod(obs_shape), *config.hidden_sizes, n_out]
        n_params = sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:], strict=True))
        require_memory("the policy networks' weights, gradients and Adam moments",
                       tensor_bytes(config.n_runs, 4 * n_params), self.device,
                       {"n_runs": config.n_runs, "hidden_sizes": tuple(config.hidden_sizes)},
                       f"{n_params:,} weights per run x 4 copies")
        # one iteration keeps the observations, actions and masks of its sessions, [T, N] each; the memory keeps
        # up to keep_iterations such iterations' elites
        require_memory("the sessions of an iteration and the elite memory",
                       (config.keep_iterations + 1) * config.max_episode_steps * config.n_runs * config.n_sessions
                       * (obs_bytes + 17), self.device,
                       {"keep_iterations": config.keep_iterations, "max_episode_steps": config.max_episode_steps,
                        "n_runs": config.n_runs, "n_sessions": config.n_sessions})
        self.networks = nn.ModuleList(
            PolicyNetwork(envs.observation_space, envs.action_space, config.hidden_sizes, config.activation,
                          config.log_std_init, config.learn_std) for _ in range(config.n_runs)).to(self.device)
        self.discrete = self.networks[0].discrete
        # One Adam over every run's network; each run is stepped on its own (see the module docstring).
        self.optimizer = adam(self.networks.parameters(), lr=config.lr, device=self.device)
        action_spec = ((), torch.int64) if self.discrete else (envs.action_space.shape, torch.float32)
        self.memory = EliteMemory(config.n_runs, config.keep_iterations, storage_spec(envs.observation_space),
                                  action_spec, self.device)
        self.components = {"networks": self.networks, "optimizer": self.optimizer, "memory": self.memory}

    # ---- collect -> elites -> update -> log ---------------------------------------------------------------------

    @torch.no_grad()
    def sample_sessions_actions(self, obs: Tensor) -> Tensor:
        """a ~ pi_r(. | s) for every copy, run r's network on its block of n_sessions copies."""
        n = self.config.n_sessions
        return torch.cat([net.distribution(obs[r * n:(r + 1) * n]).sample(self.generator)
                          for r, net in enumerate(self.networks)])

    def play_sessions(self) -> Sessions:
        """Reset every copy and play one session in each with its run's stochastic policy, all in lockstep."""
        space = self.envs.single_observation_space
        sessions, self.obs = play_sessions(self.envs, self.sample_sessions_actions, self.config.max_episode_steps,
                                           self.config.gamma, first_step=self.global_step,
                                           step_size=self.config.n_sessions, where=f"iteration {self.iteration + 1}",
                                           n_states=int(space.n) if isinstance(space, gym.spaces.Discrete) else None)
        return sessions

    def remember_elites(self, sessions: Sessions, elite: Tensor) -> None:
        """Put each run's elite (s, a) pairs of this iteration into the memory (one host sync per run)."""
        keep = elite_steps(sessions, elite)
        n = self.config.n_sessions
        for r in range(self.config.n_runs):
            block = slice(r * n, (r + 1) * n)
            run_keep = keep[:, block]
            self.memory.remember(self.iteration, r, sessions.states[:, block][run_keep],
                                 sessions.actions[:, block][run_keep])

    def update(self) -> dict[str, float]:
        """n_epochs shuffled passes of minibatch Adam on each run's remembered elites; the mean NLL and entropy over
        the gradient steps (runs with nothing remembered are left as they are)."""
        config = self.config
        totals = torch.zeros(2, device=self.device)  # summed on the device, read once per iteration
        n_updates = 0
        for r, net in enumerate(self.networks):
            pairs = self.memory.pairs(r)
            if len(pairs["obs"]) == 0:
                continue
            for _ in range(config.n_epochs):
                for mb in minibatches(pairs, config.minibatch_size, self.generator):
                    loss, nll, entropy = mle_loss(net.distribution(mb["obs"]), mb["actions"], config.entropy_coef)
                    self.optimizer.zero_grad(set_to_none=True)  # only run r's parameters get a gradient
                    loss.backward()
                    self.optimizer.step()
                    totals += torch.stack([nll.detach(), entropy.detach()])
                    n_updates += 1
        self.check_finite("loss", totals)
        nll, entropy = (totals / max(n_updates, 1)).tolist()
        return {"nll": nll if n_updates else float("nan"), "entropy": entropy if n_updates else float("nan"),
                "updates": n_updates}

    def learn(self, total_steps: int) -> ApproxCEM:
        """Iterate until every run has taken ``total_steps`` env steps (counted per run; see the module docstring)."""
        config = self.config
        R, N = config.n_runs, config.n_sessions
        with self.session(total_steps) as run:
            while run.running():
                sessions = self.play_sessions()  # collect
                returns = sessions.returns.view(R, N)
                elite, threshold = select_elites(sessions.scores.view(R, N), config.elite_percentile)  # targets
                self.remember_elites(sessions, elite)
                stats = self.update()
                self.global_step += sessions.steps * N
                self.ledger.record(sessions.as_finished_episodes(), self.global_step)
                run.log({
                    # replaces the lifecycle's "last 20 episodes" column: the mean over all runs' sessions
                    "return_mean": float(returns.mean()),
                    "elite_threshold": float(threshold.mean()),
                    "elite_fraction": float(elite.double().mean()),
                    "session_length": float(sessions.lengths.double().mean()),
                    "elite_pairs": sum(self.memory.sizes()) / R,
                    **stats,
                })
        return self

    # ---- acting ------------------------------------------------------------------------------------------------

    @torch.no_grad()
    def policy(self, obs: Tensor, deterministic: bool, generator: torch.Generator | None) -> Tensor:
        """The most probable action (deterministic) or a sample of pi(.|s); row ``b`` follows run ``b % n_runs``."""
        obs = obs.to(self.device)
        R = self.config.n_runs
        actions = None
        for r, net in enumerate(self.networks[:len(obs)]):  # rows r, r + R, r + 2R, ... are run r's
            rows = obs[r::R]
            chosen = net.greedy(rows) if deterministic else net.distribution(rows).sample(generator)
            if actions is None:
                actions = chosen.new_empty((len(obs), *chosen.shape[1:]))
            actions[r::R] = chosen
        return actions
