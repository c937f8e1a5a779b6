"""A3C: asynchronous advantage actor-critic with n-step returns.

Notes: 003 lecture 7 (asynchronous actor-critic: several workers, each with its own copy of the environment, compute
n-step advantage gradients and apply them to one shared model), 004 ("A3C with n-step returns (typically 5-20) and
the entropy bonus"; A2C is its synchronous version), Mnih et al. 2016. Each worker repeats:

    theta' <- theta                                   (sync the local copy from the shared model)
    run n_steps in each of its n_envs copies with pi_theta'
    R_t = r_t + gamma r_t+1 + ... + gamma^(n-t) V(s_n)   (0 after a termination; V(final obs) after a truncation)
    A_t = R_t - V(s_t)                                 (with gae_lambda = 1: the sum of discounted TD errors)
    L = -mean[log pi(a_t|s_t) A_t] + c_v mean[(V(s_t) - R_t)^2] - c_e mean[H(pi(.|s_t))]
    theta <- optimiser step with grad_theta' L          (on the SHARED parameters and SHARED optimiser statistics)

with no lock between workers (Hogwild): a worker's gradient may be applied to parameters other workers have moved
since it read them. The n-step advantages are :func:`thorndike.core.on_policy.gae_targets` with ``gae_lambda = 1``,
the function A2C uses (its equivalence with summed discounted TD errors is tested in tests/core/test_returns.py).

Processes. The workers are ``torch.multiprocessing`` processes started with "fork" (Linux): a forked worker begins
with the parent's memory, so it needs no re-import of torch (seconds per process with "spawn") and inherits its env
copies and the shared model as they are; it sets one torch thread and never touches the parent's threads, and the
parent never steps the envs it forked. The model's parameters and the optimiser's statistics
(:mod:`thorndike.core.shared_optim`) are in shared memory. The main process owns the run's lifecycle: it hands each
worker ``updates_per_iteration`` updates, waits for their reports (losses, finished episodes, the state of their env
copies and generator), then writes the log row, evaluates the shared model, checkpoints, and hands out the next
iteration, until the step budget or ``stop_return``. Workers are asynchronous within an iteration and meet at its
end, so log rows, evaluations and checkpoints see a quiescent shared state. The global step is a shared counter:
each worker reserves the step numbers of its rollout before collecting it, and the finished episodes carry them.

Shutdown. Ctrl-C reaches the main process (workers ignore SIGINT); an error in a worker is sent to the main process
with its traceback and re-raised there with the same type. Either way the main process sets the stop event, the
workers stop between updates and are joined (terminated if they do not end within seconds), and the last checkpoint,
written at an iteration boundary, is left as it was and resumes. A worker whose parent died (SIGKILL) ends by itself.

What "exact" resume can mean here. A checkpoint holds the shared model, the shared optimiser statistics, the step
counters, and each worker's env copies (with observations) and generator: every state the run has at an iteration
boundary, so a resumed run starts from exactly the saved state. Whether it then continues as the uninterrupted run
would have depends on the interleaving of the workers: with ``n_workers >= 2``, which worker's gradient lands on
which version of the parameters is decided by the OS scheduler, so two runs from the same seed, or a run and its
resume, differ after their first common iteration. Nothing can make that exact short of serialising the workers,
which would no longer be A3C. With ``n_workers = 1`` there is no interleaving: the run is deterministic and a resume
is bit for bit, which the contract suite checks (its example uses one worker); with two workers the tests check that
the resumed state equals the saved one and that training continues from it.
"""

from __future__ import annotations

import io
import multiprocessing
import os
import pickle
import queue
import signal
import time
import traceback
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import torch
from torch import Tensor, nn

from thorndike.agent import Agent
from thorndike.config import ConfigError, check, check_limits, describe
from thorndike.core.actor_critic import ActorCritic
from thorndike.core.buffers import RolloutBuffer
from thorndike.core.diagnostics import check_finite, explained_variance
from thorndike.core.on_policy import gae_targets, rollout_buffer
from thorndike.core.resources import PROBE_COPIES
from thorndike.core.returns import normalize
from thorndike.core.rollout import collect_rollout
from thorndike.core.shared_optim import SharedAdam, SharedRMSprop
from thorndike.interaction import EnvInteraction, check_env_copies
from thorndike.policy_gradient.base import check_family_fields

__all__ = ["A3C", "A3CConfig", "a3c_loss"]

OPTIMIZERS = ("rmsprop", "adam")
# fork where the OS has it (Linux): workers start in milliseconds with the parent's memory. Elsewhere spawn, which
# pickles the worker's arguments (shared tensors travel as shared memory).
START_METHOD = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
JOIN_SECONDS = 5.0  # how long a stopping worker may take to finish its update before it is terminated
POLL_SECONDS = 0.25  # how often a waiting process checks that the other side is still alive


@dataclass
class A3CConfig:
    """A3C's hyperparameters (the A3C paper's shared RMSprop by default)."""

    n_workers: int = describe("worker processes, each stepping its own env copies and updating the shared model", 2,
                              at_most=64)
    n_envs: int = describe("env copies per worker", 4)
    n_steps: int = describe("steps per copy before each of a worker's updates: the n of the n-step returns", 5)
    updates_per_iteration: int = describe("updates each worker makes between two log rows (where the main process "
                                          "evaluates and checkpoints)", 25)
    lr: float = describe("learning rate", 7e-4)
    optimizer: str = describe("rmsprop (shared statistics, the A3C paper's) or adam (shared moments)", "rmsprop")
    rms_alpha: float = describe("RMSprop's smoothing constant", 0.99)
    rms_eps: float = describe("RMSprop's epsilon", 1e-5)
    gamma: float = describe("discount factor", 0.99)
    gae_lambda: float = describe("1: n-step advantages (A3C); below 1: GAE", 1.0)
    vf_coef: float = describe("value-loss coefficient c_v", 0.5)
    ent_coef: float = describe("entropy-bonus coefficient c_e", 0.01)
    max_grad_norm: float | None = describe("clip each worker's gradient to this global norm (None: off)", 0.5)
    normalize_advantages: bool = describe("standardise the advantages of each worker's batch", False)
    hidden_sizes: tuple[int, ...] = describe("hidden layer widths of the actor and the critic", (64, 64))
    activation: str = describe("hidden activation: tanh or relu", "tanh")
    log_std_init: float = describe("initial log std of the Gaussian policy (continuous actions)", 0.0)

    def __post_init__(self) -> None:
        check_limits(self)
        check_family_fields(self)
        check(self.n_workers >= 1, "n_workers", self.n_workers, ">= 1")
        check(self.updates_per_iteration >= 1, "updates_per_iteration", self.updates_per_iteration, ">= 1")
        check(self.lr > 0, "lr", self.lr, "> 0")
        check(self.optimizer in OPTIMIZERS, "optimizer", self.optimizer, " or ".join(OPTIMIZERS))
        check(0 <= self.rms_alpha < 1, "rms_alpha", self.rms_alpha, "in [0, 1)")
        check(self.rms_eps > 0, "rms_eps", self.rms_eps, "> 0")
        check(self.vf_coef >= 0, "vf_coef", self.vf_coef, ">= 0")
        check(self.ent_coef >= 0, "ent_coef", self.ent_coef, ">= 0")
        check(self.max_grad_norm is None or self.max_grad_norm > 0, "max_grad_norm", self.max_grad_norm,
              "> 0 or None")


# ---- the loss of one worker's rollout --------------------------------------------------------------------------


def a3c_loss(model: ActorCritic, batch: dict[str, Tensor], vf_coef: float, ent_coef: float,
             normalize_advantages: bool = False) -> tuple[Tensor, Tensor]:
    """L = policy loss + c_v value loss - c_e entropy on a flat batch (``obs``, ``actions``, ``advantages``,
    ``returns``); returns L and its three parts, detached, as one tensor (read by the caller once per iteration)."""
    dist, values = model.distribution_and_value(batch["obs"])
    advantages = normalize(batch["advantages"]) if normalize_advantages else batch["advantages"]
    policy_loss = -(dist.log_prob(batch["actions"]) * advantages).mean()
    value_loss = (values - batch["returns"]).square().mean()
    entropy = dist.entropy().mean()
    loss = policy_loss + vf_coef * value_loss - ent_coef * entropy
    return loss, torch.stack([policy_loss, value_loss, entropy]).detach()


# ---- one worker ------------------------------------------------------------------------------------------------


class WorkerState:
    """What a worker carries from one iteration to the next: its env copies (observations, ledger) and generator.

    The main process holds one per worker, updated from every report, so a checkpoint (a component of the agent)
    and the workers of the next ``learn`` call start from where the workers stopped.
    """

    def __init__(self, interaction: EnvInteraction, generator: torch.Generator) -> None:
        self.interaction, self.generator = interaction, generator

    def state_dict(self) -> dict[str, Any]:
        return {"interaction": self.interaction.state_dict(), "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.interaction.load_state_dict(state["interaction"])
        self.generator.set_state(state["generator"])


class WorkerStates:
    """The workers' states as one checkpoint component."""

    def __init__(self, states: list[WorkerState]) -> None:
        self.states = states

    def __getitem__(self, index: int) -> WorkerState:
        return self.states[index]

    def state_dict(self) -> dict[str, Any]:
        return {str(w): s.state_dict() for w, s in enumerate(self.states)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for w, s in enumerate(self.states):
            s.load_state_dict(state[str(w)])


class Worker:
    """One A3C worker, in its own process: n-step rollouts of its env copies with a local copy of the shared model,
    each followed by an update of the shared model with the local gradient."""

    def __init__(self, index: int, config: A3CConfig, shared: ActorCritic, optimizer: torch.optim.Optimizer,
                 state: WorkerState, buffer: RolloutBuffer, counter: Any) -> None:
        self.index, self.config, self.shared, self.optimizer = index, config, shared, optimizer
        self.state, self.buffer, self.counter = state, buffer, counter
        self.local = ActorCritic(state.interaction.observation_space, state.interaction.action_space,
                                 config.hidden_sizes, config.activation, config.log_std_init)
        self.local.load_state_dict(shared.state_dict())
        # The parameter lists once: walking the modules on every update costs more than the copies themselves.
        self.shared_params, self.local_params = list(shared.parameters()), list(self.local.parameters())

    def sample(self, obs: Tensor) -> tuple[Tensor, Tensor]:
        dist = self.local.distribution(obs)
        actions = dist.sample(self.state.generator)
        return actions, dist.log_prob(actions)

    def reserve_steps(self, n: int) -> int:
        """The global step before this rollout: the shared counter, advanced by the rollout's n steps at once."""
        with self.counter.get_lock():
            first = self.counter.value
            self.counter.value = first + n
        return first

    def update(self, iteration: int) -> Tensor:
        """Sync, collect, n-step targets, and one step of the shared optimiser with this worker's gradient."""
        config, buffer = self.config, self.buffer
        with torch.no_grad():  # theta' <- theta (no buffers to copy: A3C's model keeps no observation statistics)
            torch._foreach_copy_(self.local_params, self.shared_params)
        first = self.reserve_steps(config.n_steps * config.n_envs)
        collect_rollout(self.state.interaction, buffer, self.sample, self.local.value, first,
                        where=f"iteration {iteration}")
        advantages, returns = gae_targets(buffer, config.gamma, config.gae_lambda)
        batch = buffer.flat(advantages=advantages, returns=returns)
        loss, parts = a3c_loss(self.local, batch, config.vf_coef, config.ent_coef, config.normalize_advantages)
        for local in self.local_params:
            local.grad = None
        loss.backward()
        if config.max_grad_norm is not None:
            nn.utils.clip_grad_norm_(self.local_params, config.max_grad_norm, foreach=True)
        for shared, local in zip(self.shared_params, self.local_params, strict=True):
            shared.grad = local.grad  # this process's view of the shared parameters; the data stays shared
        self.optimizer.step()  # in place on shared parameters and shared statistics, no lock (Hogwild)
        return torch.cat([parts, explained_variance(batch["values"], batch["returns"]).reshape(1)])

    def iterate(self, n_updates: int, iteration: int, stop: Any) -> bytes:
        """``n_updates`` updates (fewer when told to stop), then the report: losses, finished episodes, state."""
        sums, done = torch.zeros(4), 0
        for _ in range(n_updates):
            if stop.is_set():
                break
            sums += self.update(iteration)
            done += 1
        check_finite("loss", sums[:3], where=f"iteration {iteration}")  # one host sync per iteration
        ledger = self.state.interaction.ledger
        episodes = ledger.columns
        ledger.load_state_dict({**{k: v[:0] for k, v in episodes.items()}, "total": 0})  # sent: start afresh
        report = {"updates": done, "sums": sums, "episodes": episodes, "state": self.state.state_dict()}
        out = io.BytesIO()
        torch.save(report, out)  # plain bytes through the queue: no shared-memory handle per tensor
        return out.getvalue()


def worker_main(index: int, config: A3CConfig, shared: ActorCritic, optimizer: torch.optim.Optimizer,
                state: WorkerState, buffer: RolloutBuffer, counter: Any, commands: Any, results: Any, stop: Any,
                parent: int) -> None:
    """A worker process: wait for an iteration's number of updates, do them, report; until told to stop."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the main process's to handle: it stops the workers
    torch.set_num_threads(1)
    try:
        worker = Worker(index, config, shared, optimizer, state, buffer, counter)
        while (command := next_command(commands, stop, parent)) is not None:
            n_updates, iteration = command
            results.put(("report", index, worker.iterate(n_updates, iteration, stop)))
    except BaseException as err:  # noqa: BLE001  (everything goes to the main process, which re-raises it)
        results.put(("error", index, portable(err), traceback.format_exc()))
        results.close()
        results.join_thread()  # the error must reach the pipe before this process ends
    else:
        results.cancel_join_thread()  # stopping: a report nobody will read must not hold up the exit


def next_command(commands: Any, stop: Any, parent: int) -> tuple[int, int] | None:
    """The next iteration's (updates, iteration number), or None when told to stop or orphaned."""
    while True:
        try:
            return commands.get(timeout=POLL_SECONDS)
        except queue.Empty:
            if stop.is_set() or os.getppid() != parent:
                return None


def portable(err: BaseException) -> BaseException:
    """The error itself when it survives pickling (so the main process raises the same type), else its text."""
    try:
        pickle.loads(pickle.dumps(err))
    except Exception:  # noqa: BLE001
        return RuntimeError(f"{type(err).__name__}: {err}")
    return err


class WorkerPool:
    """The worker processes of one ``learn`` call: started on entry; on any exit (the budget, ``stop_return``, an
    error in a worker, Ctrl-C) told to stop, joined, and terminated if they do not end within seconds."""

    def __init__(self, agent: A3C) -> None:
        self.agent = agent
        self.processes: list[Any] = []

    def __enter__(self) -> WorkerPool:
        agent, config = self.agent, self.agent.config
        ctx = torch.multiprocessing.get_context(START_METHOD)
        self.counter = ctx.Value("q", agent.global_step)
        self.results = ctx.Queue()
        self.commands = [ctx.Queue() for _ in range(config.n_workers)]
        self.stop = ctx.Event()
        try:
            for w in range(config.n_workers):
                process = ctx.Process(target=worker_main, name=f"a3c-worker-{w}", daemon=True, args=(
                    w, config, agent.model, agent.optimizer, agent.workers[w], agent.buffers[w], self.counter,
                    self.commands[w], self.results, self.stop, os.getpid()))
                process.start()
                self.processes.append(process)
        except BaseException:
            self.close()
            raise
        return self

    def iterate(self, n_updates: int, iteration: int) -> list[dict[str, Any]]:
        """Every worker makes ``n_updates`` updates; their reports, in worker order. A worker's error is raised
        here, with its type and its traceback as a note."""
        for commands in self.commands:
            commands.put((n_updates, iteration))
        reports: dict[int, dict[str, Any]] = {}
        while len(reports) < len(self.processes):
            try:
                kind, w, *payload = self.results.get(timeout=POLL_SECONDS)
            except queue.Empty:
                ended = [w for w, p in enumerate(self.processes) if w not in reports and p.exitcode is not None]
                if ended and self.results.empty():  # what it sent before it ended has been read by now
                    w = ended[0]
                    raise RuntimeError(f"a3c worker {w} ended without a report (exit code "
                                       f"{self.processes[w].exitcode})") from None
                continue
            if kind == "error":
                err, trace = payload
                err.add_note(f"raised in a3c worker {w} (all workers were stopped); its traceback:\n{trace}")
                raise err
            reports[w] = torch.load(io.BytesIO(payload[0]))
        return [reports[w] for w in range(len(self.processes))]

    def close(self) -> None:
        self.stop.set()
        for commands in self.commands:
            commands.cancel_join_thread()
            commands.put(None)
        deadline = time.monotonic() + JOIN_SECONDS
        for process in self.processes:
            while process.is_alive() and time.monotonic() < deadline:
                self.drain()  # a worker blocked on writing its last report to a full pipe can then end
                process.join(0.05)
        for process in self.processes:
            if process.is_alive():
                process.terminate()
                process.join()
        self.results.cancel_join_thread()
        for q in [*self.commands, self.results]:
            q.close()

    def drain(self) -> None:
        try:
            while True:
                self.results.get_nowait()
        except (queue.Empty, OSError, ValueError):
            pass

    def __exit__(self, *exc: object) -> None:
        self.close()


# ---- the agent: the main process -------------------------------------------------------------------------------


class A3C(Agent):
    """Asynchronous advantage actor-critic: worker processes update one shared model; the main process runs the
    lifecycle (log rows, evaluation of the shared model, checkpoints) between their iterations."""

    name = "a3c"
    Config = A3CConfig
    action_spaces = (gym.spaces.Discrete, gym.spaces.Box)

    def build(self) -> None:
        config, setup = self.config, self.env_setup
        if self.device.type != "cpu":
            raise ConfigError(f"invalid config: device={self.options.device!r}; a3c runs on the CPU (its workers are "
                              "forked processes sharing the model in CPU shared memory): use device='cpu'")
        if setup is not None and setup.vectorization != "sync":
            raise ConfigError(f"invalid config: vectorization={setup.vectorization!r}; a3c's workers are processes "
                              "already: use vectorization='sync'")
        cores = os.cpu_count() or 1
        check(config.n_workers <= 4 * cores, "n_workers", config.n_workers,
              f"at most {4 * cores} (4 x this machine's {cores} cores: more workers only take turns on them)")
        copies = config.n_workers * config.n_envs
        if copies > PROBE_COPIES and setup is not None:  # every worker's copies, refused by name before any is built
            check_env_copies(setup, copies, self.device, {"n_workers": config.n_workers, "n_envs": config.n_envs},
                             self.check_spaces)
        # The main process's own env: the spaces, acting, evaluation, and the ledger the workers' episodes go into.
        envs = self.connect_env(1)
        self.model = ActorCritic(envs.observation_space, envs.action_space, config.hidden_sizes, config.activation,
                                 config.log_std_init)
        self.model.share_memory()
        if config.optimizer == "rmsprop":
            self.optimizer: torch.optim.Optimizer = SharedRMSprop(self.model.parameters(), lr=config.lr,
                                                                  alpha=config.rms_alpha, eps=config.rms_eps)
        else:
            self.optimizer = SharedAdam(self.model.parameters(), lr=config.lr)
        # Worker w's copies are the run's copies w * n_envs ... (w + 1) * n_envs - 1, seeded seed + copy index as
        # one VecEnv of all of them would be; its generator's seed is drawn from the run's generator.
        seeds = torch.randint(2**62, (config.n_workers,), generator=self.generator).tolist()
        self.workers = WorkerStates([
            WorkerState(EnvInteraction(setup, config.n_envs, self.seed + w * config.n_envs, self.device,
                                       ledger_keep=None), torch.Generator().manual_seed(seeds[w]))
            for w in range(config.n_workers)])
        self.buffers = [rollout_buffer(s.interaction, self.model, config.n_steps, config.n_envs, self.device)
                        for s in self.workers.states]
        self.components = {"model": self.model, "optimizer": self.optimizer, "workers": self.workers}

    # ---- the loop: hand out an iteration, take the reports, log ------------------------------------------------

    def updates_this_iteration(self) -> int:
        """Each worker's updates this iteration: ``updates_per_iteration``, fewer when the budget ends sooner."""
        config = self.config
        per_update = config.n_workers * config.n_steps * config.n_envs
        remaining = -(-(self.total_steps - self.global_step) // per_update)
        return max(1, min(config.updates_per_iteration, remaining))

    def take_reports(self, reports: list[dict[str, Any]], global_step: int) -> dict[str, float]:
        """The workers' states into their components, their episodes into the ledger, the log row's statistics."""
        n_envs = self.config.n_envs
        episodes: dict[str, list[Tensor]] = {"copy": [], "return": [], "length": [], "step": []}
        for w, report in enumerate(reports):
            self.workers[w].load_state_dict(report["state"])
            for key in episodes:
                column = report["episodes"][key]
                episodes[key].append(column + w * n_envs if key == "copy" else column)
        merged = {key: torch.cat(columns) for key, columns in episodes.items()}
        order = torch.argsort(merged["step"] * (self.config.n_workers * n_envs) + merged["copy"])
        self.ledger.append(*(merged[key][order].tolist() for key in ("copy", "return", "length", "step")))
        self.global_step = global_step
        updates = sum(report["updates"] for report in reports)
        means = (torch.stack([report["sums"] for report in reports]).sum(0) / max(updates, 1)).tolist()
        return {"policy_loss": means[0], "value_loss": means[1], "entropy": means[2],
                "explained_variance": means[3], "updates": updates}

    def learn(self, total_steps: int) -> A3C:
        """Train until ``total_steps`` env steps (all workers' copies together) or the run's ``stop_return``."""
        with self.session(total_steps) as run, WorkerPool(self) as pool:
            while run.running():
                reports = pool.iterate(self.updates_this_iteration(), self.iteration + 1)
                run.log(self.take_reports(reports, pool.counter.value))
        return self

    # ---- acting ------------------------------------------------------------------------------------------------

    def policy(self, obs: Tensor, deterministic: bool, generator: torch.Generator | None) -> Tensor:
        """The most probable action (deterministic) or a sample of pi(. | s), of the shared model."""
        if deterministic:
            return self.model.greedy(obs)
        return self.model.distribution(obs).sample(generator)
