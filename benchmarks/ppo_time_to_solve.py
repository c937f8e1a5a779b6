"""Time to solve CartPole-v1 with PPO: thorndike (native torch env and Gymnasium), Stable-Baselines3 and rejax.

Time to solve = wall seconds from the start of training until the first evaluation whose mean return is >= 475,
evaluation time included, with an evaluation due every 8192 env steps (after the update that crosses the mark) for
every contender, and a budget of 100,000 env steps. A run that never gets there counts with its full time. All
contenders run in one invocation, interleaved by seed (the order rotates from seed to seed, so load from other jobs
on a shared machine hits all of them), on CPU (``--device cuda`` puts the two thorndike contenders on the GPU; SB3
and rejax stay on the CPU; ``--contenders`` runs a subset, e.g. ``--contenders thorndike-native``):

1. ``thorndike-native``: thorndike PPO on its batched torch CartPole (``backend="torch"``), with its fast config
   ``thorndike/configs/ppo_cartpole_fast.yaml``: 64 envs x 8 steps, one full-batch minibatch of 512, 6 epochs,
   lr 1.45e-2 constant, gamma 0.98, GAE lambda 0.95, clip 0.3, max_grad_norm 0.5, 32x32 tanh actor and critic,
   running normalisation of observations and returns (vf_coef 0.5, ent_coef 0: the defaults). It was found by a
   random search of about 150 configs on seeds 0-5 (see ``docs/fast_path.md``).
   Evaluation: 16 deterministic episodes (played in parallel env copies); the run stops itself through
   ``stop_return=475``. Time to solve is the session's own clock, the last ``time/elapsed_s`` of ``progress.csv``
   (the row of the solving evaluation when it solved). Building the agent (``th.make``) is not timed.
2. ``thorndike-gymnasium``: the same config on Gymnasium's CartPole (``backend="gymnasium"``).
3. ``sb3``: Stable-Baselines3 PPO with the hyperparameters of ``anchors/sb3_bench.py`` (rl-zoo's): 8 envs x 32
   steps, batch 256, 20 epochs, gamma 0.98, GAE lambda 0.8, ent_coef 0, learning rate 1e-3 and clip range 0.2 both
   linearly annealed to 0, SB3's defaults otherwise (64x64 tanh actor and critic, vf_coef 0.5, max_grad_norm 0.5).
   Evaluation: ``EvalAndStop`` from ``ppo_cartpole_vs_sb3.py`` (10 deterministic episodes with ``evaluate_policy``
   every 8192 steps after the update that crosses the mark; training stops at the first mean >= 475). Torch on
   1 thread (thorndike's default too). Time from SB3's training start; building the model is not timed.
   The goal of the issue (native at most 1/10 of SB3's time) is measured against this contender, the anchor's.
4. ``sb3-fast``: Stable-Baselines3 PPO with thorndike's fast config (the same fields; ``VecNormalize`` for the
   observation and return normalisation, its statistics copied into a frozen ``VecNormalize`` evaluation env before
   each evaluation). It separates what the config buys from what the library does: the "without eval" column
   shows that most of SB3's remaining time is its one-episode-at-a-time evaluation.
5. ``rejax``: rejax 0.1.3 PPO on gymnax 1.0.1 with the hyperparameters of ``anchors/rejax_bench.py`` (8 envs x 32
   steps, 20 epochs, 1 minibatch of 256, lr 1e-3 constant, gamma 0.98, GAE lambda 0.8, clip 0.2, ent_coef 0; rejax's
   defaults otherwise: 64x64 swish networks, vf_coef 0.5, clipped value loss, no gradient clipping), total_timesteps
   100,000 and eval_freq 8192, with the anchor's adapter that folds gymnax 1.0.1's (terminated, truncated) into the
   single ``done`` rejax 0.1.3 expects. It runs in a separate interpreter (``--rejax-python``), a fresh one per
   seed, so every seed pays the compilation. rejax jit-compiles the whole training, evaluations included, so it
   cannot stop early: it trains ceil(100,000 / 8192) = 13 blocks of 8192 steps (106,496 steps). Its built-in
   evaluation plays 128 episodes with actions SAMPLED from the policy (not deterministic), at step 0 and after each
   block of 8192 steps; "solved" is its first evaluation at a step within the 100,000-step budget whose mean is
   >= 475. Its time to solve is compile + train time (the anchor's "compile plus train"), whether or not and
   wherever it solved; the extra column "train-only to the solving step, pro-rata" is train time x solving step /
   steps trained: what it would take with compilation free and an early stop, which rejax cannot do.
   XLA uses its default CPU threading (both cores); torch uses 1 thread.

Warm-up: before any timed run, each thorndike contender and both SB3 contenders train once for 2048 steps with an
evaluation every 1024 (same process, not timed), so that torch's one-off kernel and allocator setup is not charged
to the first timed run. rejax gets no warm-up: its compilation is part of its time by definition; interpreter start
and the imports are not timed for anyone.

"final eval" is 10 deterministic episodes after training on held-out seeds (untimed): thorndike and SB3 stop at
the solving evaluation, so theirs is the policy that solved; rejax's is after its full 106,496 steps.

Training time at the same config (its own section and table; ``--train-time-only`` runs just this part): time to
solve mixes in how many steps each run happened to need, so this measures the wall seconds of ``learn`` for a FIXED
number of env steps (``--train-steps``, default 16,384 and 32,768), evaluation off, thorndike's fast config for
thorndike and for ``sb3-fast`` alike (VecNormalize included), interleaved by seed, medians over ``--seeds``. Only the
``learn`` call is timed (building is not). thorndike runs with its default checkpointing (a checkpoint every tenth
of the run) and without the progress bar, TensorBoard and the end-of-run picture; SB3 saves nothing. The parts of
each ``learn`` (collect, GAE targets, update, checkpoints; "other" is the rest: log rows, the run folder, final.pt)
are timed by wrapping the agent's own methods on the instance (SB3: ``collect_rollouts`` and ``train``), since
``progress.csv`` has no per-phase timing columns. The issue's CPU goal: thorndike-native / sb3-fast <= 0.5.
Writes ``ppo_train_time.{md,json}`` (and the section into ``ppo_time_to_solve.md`` on a full run).

Run it (needs the ``[bench]`` extra; rejax in its own venv):

    python3.11 -m venv /tmp/rejax-venv
    /tmp/rejax-venv/bin/pip install jax==0.10.2 jaxlib==0.10.2 rejax==0.1.3 gymnax==1.0.1 six
    .venv/bin/python benchmarks/ppo_time_to_solve.py --rejax-python /tmp/rejax-venv/bin/python

Only the training-time section, on the held-out seeds:

    .venv/bin/python benchmarks/ppo_time_to_solve.py --train-time-only --seeds 101 202 303 404 505 606 707

Output: one JSON line per run, then the Markdown summary; writes ``benchmarks/results/ppo_time_to_solve.md``,
``.json`` (every run and the summary) and ``.png`` (median time to solve, one dot per seed).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import stable_baselines3
import torch
from ppo_cartpole_vs_sb3 import (  # this script's folder is on sys.path
    FINAL_EVAL_SEED_OFFSET,
    EvalAndStop,
    positive_int,
)
from solve_timing import (
    fmt,
    median_or_none,
    per_seed_table,
    plot_seeds,
    record,
    sb3_time_to_solve,
    thorndike_time_to_solve,
)
from stable_baselines3 import PPO as SB3PPO
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize, sync_envs_normalization

import thorndike as th
from thorndike.core.logger import read_progress
from thorndike.registry import read_config_file

RESULTS = Path(__file__).resolve().parent / "results"
ENV_ID = "CartPole-v1"
SOLVED_RETURN = 475.0
FINAL_EPISODES = 10
EVAL_SEED_OFFSET = 1_000_003  # periodic evaluations (thorndike's default, used for SB3 too)

NATIVE, GYMNASIUM, SB3, SB3_FAST, REJAX = "thorndike-native", "thorndike-gymnasium", "sb3", "sb3-fast", "rejax"
CONTENDERS = (NATIVE, GYMNASIUM, SB3, SB3_FAST, REJAX)
LABELS = {
    NATIVE: "thorndike, native torch env",
    GYMNASIUM: "thorndike, Gymnasium env",
    SB3: "Stable-Baselines3 (rl-zoo params)",
    SB3_FAST: "Stable-Baselines3 (thorndike's fast config)",
    REJAX: "rejax (compile + train)",
}

# thorndike's fast config, shipped as thorndike/configs/ppo_cartpole_fast.yaml; the rest are PPOConfig's defaults.
THORNDIKE_CONFIG: dict[str, Any] = {"tuned": False, **read_config_file("ppo_cartpole_fast")}
THORNDIKE_EVAL_EPISODES = 16
SB3_EVAL_EPISODES = 10


def sb3_model(seed: int) -> tuple[SB3PPO, Any]:
    """anchors/sb3_bench.py's "ppo-cartpole" model, exactly."""
    def lin(value: float) -> Callable[[float], float]:
        return lambda progress_remaining: progress_remaining * value

    env = make_vec_env(ENV_ID, n_envs=8, seed=seed)
    model = SB3PPO("MlpPolicy", env, n_steps=32, batch_size=256, gae_lambda=0.8, gamma=0.98, n_epochs=20,
                   ent_coef=0.0, learning_rate=lin(1e-3), clip_range=lin(0.2), seed=seed, device="cpu", verbose=0)
    return model, env


def sb3_fast_model(seed: int) -> tuple[SB3PPO, Any]:
    """SB3 PPO with thorndike's fast config: the same fields, VecNormalize for the running normalisation."""
    cfg = THORNDIKE_CONFIG
    hidden = list(cfg["hidden_sizes"])
    env = VecNormalize(make_vec_env(ENV_ID, n_envs=cfg["n_envs"], seed=seed), gamma=cfg["gamma"],
                       norm_obs=cfg["normalize_obs"], norm_reward=cfg["normalize_reward"])
    model = SB3PPO("MlpPolicy", env, n_steps=cfg["n_steps"], batch_size=cfg["minibatch_size"],
                   n_epochs=cfg["n_epochs"], learning_rate=cfg["lr"], gamma=cfg["gamma"], gae_lambda=cfg["gae_lambda"],
                   clip_range=cfg["clip"], max_grad_norm=cfg["max_grad_norm"], ent_coef=0.0,
                   policy_kwargs=dict(net_arch=dict(pi=hidden, vf=hidden)), seed=seed, device="cpu", verbose=0)
    return model, env


def sb3_eval_env(normalized: bool, seed: int) -> Any:
    """One CartPole for SB3's evaluate_policy; behind a frozen VecNormalize when the training env normalises
    (EvalAndStop copies the training statistics into it before each evaluation)."""
    if not normalized:
        env = Monitor(gym.make(ENV_ID))
        env.reset(seed=seed)  # later resets go on from this seeded generator
        return env
    env = VecNormalize(DummyVecEnv([lambda: Monitor(gym.make(ENV_ID))]), training=False, norm_reward=False)
    env.seed(seed)
    return env


def run_thorndike(backend: str, seed: int, steps: int, eval_every: int, run_root: str, device: str = "cpu"
                  ) -> dict[str, Any]:
    start = time.perf_counter()
    agent = th.make("ppo", env=ENV_ID, seed=seed, backend=backend, eval_every=eval_every,
                    eval_episodes=THORNDIKE_EVAL_EPISODES, stop_return=SOLVED_RETURN, progress=False,
                    tensorboard=False, run_root=run_root, device=device, **THORNDIKE_CONFIG)
    setup_s = time.perf_counter() - start
    return thorndike_time_to_solve(NATIVE if backend == "torch" else GYMNASIUM, agent, seed, steps, SOLVED_RETURN,
                                   THORNDIKE_EVAL_EPISODES, FINAL_EPISODES, setup_s)


def run_sb3(seed: int, steps: int, eval_every: int, fast: bool = False) -> dict[str, Any]:
    start = time.perf_counter()
    model, env = sb3_fast_model(seed) if fast else sb3_model(seed)
    eval_env = sb3_eval_env(fast, seed + EVAL_SEED_OFFSET)
    final_env = sb3_eval_env(fast, seed + FINAL_EVAL_SEED_OFFSET)
    setup_s = time.perf_counter() - start
    return sb3_time_to_solve(SB3_FAST if fast else SB3, model, eval_env, final_env, seed, steps, eval_every,
                             SOLVED_RETURN, SB3_EVAL_EPISODES, FINAL_EPISODES, setup_s,
                             before_final=(lambda: sync_envs_normalization(env, final_env)) if fast else None)


def warm_up(run_root: str, contenders: list[str], device: str = "cpu") -> None:
    """One short untimed run of each in-process contender in ``contenders`` (torch kernels, allocator, env
    construction paths; on CUDA also the context and the kernels' first launches)."""
    for name, backend in ((NATIVE, "torch"), (GYMNASIUM, "gymnasium")):
        if name not in contenders:
            continue
        agent = th.make("ppo", env=ENV_ID, seed=123, backend=backend, eval_every=1024,
                        eval_episodes=THORNDIKE_EVAL_EPISODES, progress=False, tensorboard=False, run_root=run_root,
                        device=device, **THORNDIKE_CONFIG)
        agent.learn(2048)
    for name, fast in ((SB3, False), (SB3_FAST, True)):
        if name not in contenders:
            continue
        model, env = sb3_fast_model(123) if fast else sb3_model(123)
        eval_env = sb3_eval_env(fast, 123)
        model.learn(2048, callback=EvalAndStop(eval_env, 1024, SB3_EVAL_EPISODES, SOLVED_RETURN))
        env.close()
        eval_env.close()


# Run by the rejax interpreter: argv = seed, total_timesteps, eval_freq, final episodes, final-eval seed.
# Prints one JSON line. The adapter is anchors/rejax_bench.py's FiveTupleEnv.
REJAX_SCRIPT = r"""
import json, sys, time
from importlib.metadata import version
import jax, jax.numpy as jnp, gymnax
from rejax import PPO
from rejax.evaluate import evaluate

seed, total, eval_freq, final_episodes, final_seed = (int(a) for a in sys.argv[1:6])


class FiveTupleEnv:
    # gymnax 1.0.1's step returns (obs, state, reward, terminated, truncated, info); rejax 0.1.3 unpacks 5 values
    def __init__(self, env):
        self._env = env

    def __getattr__(self, name):
        if name.startswith("__") or name == "_env":
            raise AttributeError(name)
        return getattr(self._env, name)

    def step(self, key, state, action, params=None):
        obs, state, reward, terminated, truncated, info = self._env.step(key, state, action, params)
        return obs, state, reward, jnp.logical_or(terminated, truncated), info

    def reset(self, key, params=None):
        return self._env.reset(key, params)


start = time.perf_counter()
env, env_params = gymnax.make("CartPole-v1")
env = FiveTupleEnv(env)
algo = PPO.create(env=env, env_params=env_params, total_timesteps=total, eval_freq=eval_freq, num_envs=8,
                  num_steps=32, num_epochs=20, num_minibatches=1, learning_rate=1e-3, gamma=0.98, gae_lambda=0.8,
                  clip_eps=0.2, ent_coef=0.0)
create_s = time.perf_counter() - start
start = time.perf_counter()
compiled = jax.jit(algo.train).lower(jax.random.PRNGKey(seed)).compile()
compile_s = time.perf_counter() - start
start = time.perf_counter()
ts, (lengths, returns) = compiled(jax.random.PRNGKey(seed))
jax.block_until_ready(returns)
train_s = time.perf_counter() - start

iteration = algo.num_envs * algo.num_steps
block = -(-eval_freq // iteration) * iteration  # rejax trains ceil(eval_freq / iteration) iterations per evaluation
means = [float(m) for m in returns.mean(axis=1)]
first = 0 if not algo.skip_initial_evaluation else 1
eval_steps = [(i + first) * block for i in range(len(means))]
params = ts.actor_ts.params


def greedy(obs, rng):
    dist = algo.actor.apply(params, jnp.expand_dims(obs, 0), method="_action_dist")
    return jnp.squeeze(dist.mode())


_, final_returns = evaluate(greedy, jax.random.PRNGKey(final_seed), env, env_params, final_episodes,
                            env_params.max_steps_in_episode)
print(json.dumps({
    "versions": {p: version(p) for p in ("jax", "jaxlib", "rejax", "gymnax")}, "devices": str(jax.devices()),
    "create_s": create_s, "compile_s": compile_s, "train_s": train_s, "steps_run": int(ts.global_step),
    "eval_episodes": int(returns.shape[1]), "eval_steps": eval_steps, "eval_means": means,
    "final_eval_mean": float(final_returns.mean()),
}))
"""


def rejax_python(option: str | None) -> tuple[str | None, str]:
    """The interpreter that can run rejax, or None and the reason why not."""
    if not option:
        return None, ("rejax not run: no --rejax-python given (install jax, rejax 0.1.3 and gymnax 1.0.1 in a separate "
                      "venv, see the module docstring); its column is left empty")
    try:
        probe = subprocess.run([option, "-c", "import jax, gymnax, rejax"], capture_output=True, text=True,
                               env={**os.environ, "JAX_PLATFORMS": "cpu"})
    except OSError as err:
        return None, f"rejax not run: --rejax-python {option} cannot be started: {err}"
    if probe.returncode != 0:
        reason = probe.stderr.strip().splitlines()[-1] if probe.stderr.strip() else f"exit {probe.returncode}"
        return None, f"rejax not run: jax/gymnax/rejax cannot be imported by --rejax-python {option}: {reason}"
    return option, ""


def run_rejax(python: str, seed: int, steps: int, eval_every: int, versions: dict[str, Any]) -> dict[str, Any]:
    # No persistent compilation cache: every seed pays the compilation, as a fresh run of rejax does.
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "JAX_ENABLE_COMPILATION_CACHE": "false"}
    args = [str(a) for a in (seed, steps, eval_every, FINAL_EPISODES, seed + FINAL_EVAL_SEED_OFFSET)]
    out = subprocess.run([python, "-c", REJAX_SCRIPT, *args], capture_output=True, text=True, env=env)
    if out.returncode != 0:
        sys.exit(f"rejax run failed (seed {seed}, exit {out.returncode}):\n{out.stderr[-3000:]}")
    report = json.loads(out.stdout.strip().splitlines()[-1])
    versions.update(report["versions"], devices=report["devices"])
    curve = list(zip(report["eval_steps"], report["eval_means"]))
    solved_at = next((s for s, m in curve if m >= SOLVED_RETURN and s <= steps), None)
    compile_s, train_s, steps_run = report["compile_s"], report["train_s"], report["steps_run"]
    pro_rata = None if solved_at is None else round(train_s * solved_at / steps_run, 3)
    return record(REJAX, seed, solved_at, compile_s + train_s, steps_run, report["final_eval_mean"], curve,
                  report["eval_episodes"], compile_s=round(compile_s, 3), train_s=round(train_s, 3),
                  train_to_solve_pro_rata_s=pro_rata, setup_s=round(report["create_s"], 3))


# ---- training time at the same config, evaluation off ------------------------------------------------------------

TRAIN_STEPS = (16_384, 32_768)
NATIVE_COMPILED = "thorndike-native-compiled"  # training time only: the run option compile=True
LABELS[NATIVE_COMPILED] = "thorndike, native torch env, compile=True"
TRAIN_CONTENDERS = (NATIVE, NATIVE_COMPILED, GYMNASIUM, SB3_FAST)  # the ones that train thorndike's fast config
THORNDIKE_PARTS = ("collect", "targets", "update", "checkpoint", "other")
SB3_PARTS = ("collect", "update", "other")


class PhaseTimer:
    """Wall seconds spent in named methods of one object, by wrapping them on the instance: the benchmark's own
    instrumentation (``progress.csv`` has no per-phase timing columns). On CUDA each timed call ends with a
    synchronisation, so the seconds are the GPU's work and not just its launches."""

    def __init__(self, device: str) -> None:
        self.seconds: dict[str, float] = {}
        self.sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)

    def wrap(self, owner: Any, method: str, label: str) -> None:
        inner = getattr(owner, method)
        self.seconds[label] = 0.0

        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                self.sync()
                self.seconds[label] += time.perf_counter() - start

        setattr(owner, method, timed)

    def parts(self, total: float) -> dict[str, float]:
        """The timed parts and "other", the rest of ``total``, rounded to the millisecond."""
        parts = {k: round(v, 4) for k, v in self.seconds.items()}
        parts["other"] = round(total - sum(self.seconds.values()), 4)
        return parts


def thorndike_train_time(backend: str, seed: int, steps: int, run_root: str, device: str = "cpu",
                         compile: bool = False) -> dict[str, Any]:
    """Seconds of ``agent.learn(steps)`` for the fast config, evaluation off, and its parts. With ``compile`` (the
    run option: PPO's loss, and on the native env its rollouts, through torch.compile), one untimed iteration first
    compiles (its seconds reported as ``compile_s``), then ``steps`` more are timed; torch's compiled-code cache is
    cleared before, so each run compiles its own (torch stops compiling after a few instances of the same code)."""
    if compile:
        torch._dynamo.reset()
    agent = th.make("ppo", env=ENV_ID, seed=seed, backend=backend, progress=False, tensorboard=False, pictures=False,
                    run_root=run_root, device=device, compile=compile, **THORNDIKE_CONFIG)
    compile_s, first = None, 0
    if compile:
        first = agent.config.n_envs * agent.config.n_steps
        start = time.perf_counter()
        agent.learn(first)
        compile_s = round(time.perf_counter() - start, 2)
    timer = PhaseTimer(device)
    for method in ("collect", "targets", "update"):
        timer.wrap(agent, method, method)
    timer.wrap(agent.run, "checkpoint", "checkpoint")  # the session calls run.checkpoint every tenth of the run
    start = time.perf_counter()
    agent.learn(first + steps)
    timer.sync()
    learn_s = time.perf_counter() - start
    progress = read_progress(agent.run_dir)
    contender = NATIVE_COMPILED if compile else NATIVE if backend == "torch" else GYMNASIUM
    return {"contender": contender, "seed": seed, "steps": steps, "steps_run": agent.global_step - first,
            "learn_s": round(learn_s, 4), "parts": timer.parts(learn_s), "compile_s": compile_s,
            "train_return_mean": round(float(progress["return_mean"][-1]), 1), "device": device}


def sb3_train_time(seed: int, steps: int) -> dict[str, Any]:
    """Seconds of ``model.learn(steps)`` for SB3 with thorndike's fast config (no callback), and its parts."""
    model, env = sb3_fast_model(seed)
    timer = PhaseTimer("cpu")
    timer.wrap(model, "collect_rollouts", "collect")
    timer.wrap(model, "train", "update")
    start = time.perf_counter()
    model.learn(steps)
    learn_s = time.perf_counter() - start
    returns = [info["r"] for info in model.ep_info_buffer]  # SB3's last 100 training episodes, raw (Monitor)
    env.close()
    return {"contender": SB3_FAST, "seed": seed, "steps": steps, "steps_run": int(model.num_timesteps),
            "learn_s": round(learn_s, 4), "parts": timer.parts(learn_s),
            "train_return_mean": round(float(sum(returns) / len(returns)), 1) if returns else None, "device": "cpu"}


def train_time_runs(contenders: list[str], seeds: list[int], steps_list: list[int], run_root: str, device: str
                    ) -> list[dict[str, Any]]:
    """Every contender at every step count for every seed, the order of the contenders rotating from one (seed,
    steps) pair to the next; one JSON line per run."""
    runners: dict[str, Callable[[int, int], dict[str, Any]]] = {
        NATIVE: lambda seed, steps: thorndike_train_time("torch", seed, steps, run_root, device),
        NATIVE_COMPILED: lambda seed, steps: thorndike_train_time("torch", seed, steps, run_root, device, True),
        GYMNASIUM: lambda seed, steps: thorndike_train_time("gymnasium", seed, steps, run_root, device),
        SB3_FAST: lambda seed, steps: sb3_train_time(seed, steps),
    }
    for name in contenders:  # untimed warm-up, as for time to solve
        runners[name](123, 2048)
    results, turn = [], 0
    for seed in seeds:
        for steps in steps_list:
            order = contenders[turn % len(contenders):] + contenders[:turn % len(contenders)]
            turn += 1
            for name in order:
                res = runners[name](seed, steps)
                results.append(res)
                print(json.dumps(res), flush=True)
    return results


def summarise_train_time(results: list[dict[str, Any]], contenders: list[str], steps_list: list[int]
                         ) -> dict[str, Any]:
    """Medians per (contender, steps): learn seconds, its parts, the final training return; and the ratios to
    sb3-fast."""
    rows: dict[str, dict[str, Any]] = {}
    for name in contenders:
        for steps in steps_list:
            runs = [r for r in results if r["contender"] == name and r["steps"] == steps]
            if not runs:
                continue
            learn = [r["learn_s"] for r in runs]
            rows[f"{name}@{steps}"] = {
                "contender": name, "steps": steps, "runs": len(runs), "learn_s": median_or_none(learn),
                "learn_min_s": min(learn), "learn_max_s": max(learn),
                "parts": {part: median_or_none([r["parts"][part] for r in runs]) for part in runs[0]["parts"]},
                "train_return_mean": median_or_none([r["train_return_mean"] for r in runs
                                                     if r["train_return_mean"] is not None]),
            }
    ratios = {}
    for steps in steps_list:
        base = rows.get(f"{SB3_FAST}@{steps}")
        for name in (NATIVE, NATIVE_COMPILED, GYMNASIUM):
            row = rows.get(f"{name}@{steps}")
            if base and row:
                ratios[f"{name} / {SB3_FAST} @ {steps}"] = row["learn_s"] / base["learn_s"]
    compile_s = [r["compile_s"] for r in results if r.get("compile_s") is not None]
    return {"rows": rows, "ratios": ratios, "compile_s": compile_s}


def train_time_markdown(summary: dict[str, Any], seeds: list[int], device: str, heading: str = "##") -> list[str]:
    """The section's lines: the table of medians and parts, the ratios and the issue's CPU goal."""
    lines = [
        f"{heading} Training time at the same config, evaluation off",
        "",
        f"Wall seconds of `learn` for a fixed number of env steps, thorndike's fast config "
        f"(`ppo_cartpole_fast.yaml`) for every row (SB3 with `VecNormalize`), no evaluation; medians over seeds "
        f"{', '.join(map(str, seeds))}, interleaved. thorndike on {device} with its default checkpoints (one per "
        "tenth of the run), no progress bar, TensorBoard or picture; SB3 on the CPU, saving nothing. The parts are "
        "medians of each part (they need not add up to the median total). Training return: mean return of the last "
        "training episodes at the end (thorndike: its log's `return_mean`; SB3: its last 100 episodes).",
        "",
        "| contender | env steps | learn (s) | min-max (s) | steps/s | collect | targets | update | checkpoint "
        "| other | training return |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in summary["rows"].values():
        parts = row["parts"]
        cells = [fmt(parts.get(k), ".3f") for k in ("collect", "targets", "update", "checkpoint", "other")]
        lines.append(f"| {LABELS[row['contender']]} | {row['steps']:,} | {row['learn_s']:.3f} "
                     f"| {row['learn_min_s']:.3f}-{row['learn_max_s']:.3f} | {row['steps'] / row['learn_s']:,.0f} "
                     f"| {' | '.join(cells)} | {fmt(row['train_return_mean'], '.1f')} |")
    lines += ["", "Ratios of median learn seconds:", ""]
    for key, value in summary["ratios"].items():
        lines.append(f"- {key} = {value:.3f}")
    for name in (NATIVE, NATIVE_COMPILED):
        native = [v for k, v in summary["ratios"].items() if k.startswith(f"{name} / ")]
        if native and device == "cpu":
            verdict = "met" if max(native) <= 0.5 else "NOT met"
            lines += ["", f"Goal of the issue (CPU): {name} / sb3-fast <= 0.5 at the same config: {verdict} "
                      f"(largest ratio {max(native):.3f})."]
    compile_s = summary.get("compile_s")
    if compile_s:
        lines += ["", f"{NATIVE_COMPILED}: torch.compile of the rollout programs, GAE and the captured gradient step "
                  f"took {min(compile_s):.1f}-{max(compile_s):.1f} s per run, in one untimed iteration before the "
                  "timed steps (not in the learn seconds above)."]
    return lines


# ---- summary ------------------------------------------------------------------------------------------------------


def summarise(results: list[dict[str, Any]], contenders: list[str], n_seeds: int) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for name in contenders:
        runs = [r for r in results if r["contender"] == name]
        solved = [r for r in runs if r["solved"]]
        summary[name] = {
            "time_to_solve_s": median_or_none([r["time_to_solve_s"] for r in runs]),
            # a run that did not solve counts with the steps it ran
            "steps_to_solve": median_or_none([r["solved_at_step"] if r["solved"] else r["steps_run"] for r in runs]),
            "solved": len(solved),
            "runs": len(runs),
            "final_eval_mean": median_or_none([r["final_eval_mean"] for r in runs]),
            # time to solve without the evaluations (rejax evaluates inside its compiled program: not separable)
            "without_eval_s": median_or_none([r["time_to_solve_s"] - r["eval_s"] for r in runs if "eval_s" in r]),
        }
        if name == REJAX:
            summary[name]["compile_s"] = median_or_none([r["compile_s"] for r in runs])
            summary[name]["train_s"] = median_or_none([r["train_s"] for r in runs])
            summary[name]["train_to_solve_pro_rata_s"] = median_or_none(
                [r["train_to_solve_pro_rata_s"] for r in solved])
    ratios = {}
    if NATIVE in summary:  # a subset run (--contenders) may leave the native contender out
        native = summary[NATIVE]["time_to_solve_s"]
        ratios = {f"{NATIVE} / {other}": native / summary[other]["time_to_solve_s"]
                  for other in (GYMNASIUM, SB3, SB3_FAST, REJAX) if other in summary}
    return {"contenders": summary, "ratios": ratios, "n_seeds": n_seeds}


def markdown(summary: dict[str, Any], results: list[dict[str, Any]], seeds: list[int], steps: int, eval_every: int,
             notes: list[str], command: str, device: str = "cpu") -> str:
    rows = summary["contenders"]
    lines = [
        "# Time to solve CartPole-v1 with PPO",
        "",
        *([f"thorndike's contenders on {device}; SB3 and rejax on the CPU.", ""] if device != "cpu" else []),
        "Wall seconds from the start of training to the first evaluation with mean return >= 475 (evaluation every "
        f"{eval_every:,} env steps for every contender, evaluation time included; budget {steps:,} env steps). "
        f"Medians over seeds {', '.join(map(str, seeds))}; a run that did not solve counts with its full time and "
        "the steps it ran. rejax cannot stop early: its time to solve is compile + train of the whole budget.",
        "",
        "| contender | time to solve (s) | without eval (s) | steps to solve | solved | final eval | evaluation |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    evaluation = {NATIVE: "16 deterministic episodes", GYMNASIUM: "16 deterministic episodes",
                  SB3: "10 deterministic episodes", SB3_FAST: "10 deterministic episodes",
                  REJAX: "128 sampled-action episodes (built in)"}
    for name, row in rows.items():
        lines.append(f"| {LABELS[name]} | {fmt(row['time_to_solve_s'], '.2f')} | {fmt(row['without_eval_s'], '.2f')} "
                     f"| {fmt(row['steps_to_solve'], ',.0f')} "
                     f"| {row['solved']}/{row['runs']} | {fmt(row['final_eval_mean'], '.1f')} | {evaluation[name]} |")
    if REJAX in rows:
        r = rows[REJAX]
        trained = max(run["steps_run"] for run in results if run["contender"] == REJAX)
        lines += [
            "",
            "rejax's parts (medians): compile "
            f"{fmt(r['compile_s'], '.2f')} s, train (all {trained:,} steps, "
            f"evaluations included) {fmt(r['train_s'], '.2f')} s; **train-only time to the solving step, pro-rata** "
            f"(train s x solving step / steps trained, over solved seeds; not achievable with rejax, which cannot "
            f"stop early and must compile): {fmt(r['train_to_solve_pro_rata_s'], '.2f')} s.",
        ]
    elif REJAX not in rows and summary.get("rejax_skipped"):
        lines += ["", "rejax: not run (see notes); its column is empty."]
    lines += ["", "Ratios of median time to solve:", ""]
    for key, value in summary["ratios"].items():
        lines.append(f"- {key.replace(REJAX, 'rejax (compile + train)')} = {value:.3f}")
    sb3_ratio = summary["ratios"].get(f"{NATIVE} / {SB3}")
    rejax_ratio = summary["ratios"].get(f"{NATIVE} / {REJAX}")
    lines += ["", "Goals of the issue:", ""]
    if sb3_ratio is not None:
        lines.append(f"- native time to solve <= 1/10 of SB3's: {'met' if sb3_ratio <= 0.1 else 'NOT met'} "
                     f"(native / SB3 = {sb3_ratio:.3f}, i.e. {1 / sb3_ratio:.1f}x faster)")
    if rejax_ratio is not None:
        lines.append(f"- native time to solve < rejax's compile + train: {'met' if rejax_ratio < 1 else 'NOT met'} "
                     f"(native / rejax = {rejax_ratio:.3f})")
    elif NATIVE in rows:
        lines.append("- native time to solve < rejax's compile + train: not measured (rejax not run)")
    lines += per_seed_table(list(rows), LABELS, results, seeds, command, notes)
    return "\n".join(lines)


def plot(path: Path, summary: dict[str, Any], results: list[dict[str, Any]], eval_every: int, device: str = "cpu"
         ) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = summary["contenders"]
    names = list(rows)
    colors = {NATIVE: "tab:blue", GYMNASIUM: "tab:cyan", SB3: "tab:orange", SB3_FAST: "tab:red", REJAX: "tab:green"}
    fig, ax = plt.subplots(figsize=(9, 5.5))
    for x, name in enumerate(names):
        median = rows[name]["time_to_solve_s"]
        if name == REJAX:
            compile_s = rows[name]["compile_s"]
            ax.bar(x, compile_s, color=colors[name], alpha=0.35, hatch="//", edgecolor=colors[name],
                   label="rejax compile (median)")
            ax.bar(x, median - compile_s, bottom=compile_s, color=colors[name], alpha=0.6,
                   label="rejax train, all steps (median)")
        else:
            ax.bar(x, median, color=colors[name], alpha=0.6)
        plot_seeds(ax, x, median, [r for r in results if r["contender"] == name],
                   f"{rows[name]['solved']}/{rows[name]['runs']} solved")
    if SB3 in rows:
        goal = rows[SB3]["time_to_solve_s"] / 10
        ax.axhline(goal, color="tab:orange", linestyle="--", linewidth=1, label=f"SB3 median / 10 = {goal:.2f} s")
    ax.plot([], [], "o", color="black", label="one seed (solved)")
    ax.plot([], [], "o", color="red", markerfacecolor="none", label="one seed (not solved: full time)")
    ax.set_xticks(range(len(names)), ["\n".join(textwrap.wrap(LABELS[n], 17)) for n in names], fontsize=9)
    ax.set_ylabel("wall seconds to first eval >= 475 (median bar)")
    where = "CPU" if device == "cpu" else f"thorndike on {device}, SB3/rejax on CPU"
    ax.set_title(f"PPO on CartPole-v1: time to solve ({where}, eval every {eval_every:,} steps)")
    ax.set_ylim(0, max(r["time_to_solve_s"] for r in results) * 1.2)
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def device_name(device: str) -> str:
    """``device`` with the GPU's name when it is CUDA."""
    return f"{device} ({torch.cuda.get_device_name()})" if device.startswith("cuda") else device


def write_train_time(out: Path, results: list[dict[str, Any]], contenders: list[str], seeds: list[int],
                     steps_list: list[int], device: str, command: str) -> str:
    """``ppo_train_time.{md,json}`` in ``out``, the command that reproduces them at the top; returns the Markdown."""
    summary = summarise_train_time(results, contenders, steps_list)
    load = os.getloadavg()
    versions = (f"{datetime.date.today()}, {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
                f"Python {platform.python_version()}, torch {torch.__version__} (1 thread), thorndike "
                f"{th.__version__} on {device_name(device)}, stable-baselines3 {stable_baselines3.__version__}, "
                f"gymnasium {gym.__version__}; load average (1 min) after: {load[0]:.2f}")
    lines = ["# PPO on CartPole-v1: training time at the same config", "", "Command:", "", f"    {command}", "",
             *train_time_markdown(summary, seeds, device), "", versions, ""]
    text = "\n".join(lines)
    (out / "ppo_train_time.md").write_text(text)
    meta = {"command": command, "date": str(datetime.date.today()), "versions": versions, "device": device,
            "thorndike_config": THORNDIKE_CONFIG, "seeds": seeds, "steps": steps_list}
    (out / "ppo_train_time.json").write_text(
        json.dumps({"meta": meta, "summary": summary, "runs": results}, indent=1) + "\n")
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=list(range(10)), help="seeds (default: 0-9)")
    parser.add_argument("--steps", type=positive_int, default=100_000, help="env-step budget per run")
    parser.add_argument("--eval-every", type=positive_int, default=8192, help="env steps between evaluations")
    parser.add_argument("--rejax-python", default=None, help="interpreter with jax, gymnax and rejax installed")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for ppo_time_to_solve.{md,json,png}")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"),
                        help="device of the thorndike contenders (SB3 and rejax stay on the CPU)")
    parser.add_argument("--contenders", nargs="+", choices=(*CONTENDERS, NATIVE_COMPILED), default=None,
                        help="run only these (default: all; rejax only with --rejax-python)")
    parser.add_argument("--train-time-only", action="store_true",
                        help="run only the training-time section (fixed steps, evaluation off)")
    parser.add_argument("--train-steps", type=positive_int, nargs="+", default=list(TRAIN_STEPS),
                        help="env steps of the training-time runs")
    args = parser.parse_args()
    command = " ".join(["python", *(os.path.relpath(a) if a == sys.argv[0] else a for a in sys.argv)])
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda but no CUDA device is available here: run with --device cpu")

    torch.set_num_threads(1)
    chosen = list(args.contenders or (*CONTENDERS, NATIVE_COMPILED))
    train_contenders = [name for name in TRAIN_CONTENDERS if name in chosen]
    args.out.mkdir(parents=True, exist_ok=True)
    if args.train_time_only:
        with tempfile.TemporaryDirectory(prefix="thorndike-train-time-") as run_root:
            train_results = train_time_runs(train_contenders, args.seeds, args.train_steps, run_root, args.device)
        text = write_train_time(args.out, train_results, train_contenders, args.seeds, args.train_steps,
                                args.device, command)
        print()
        print(text)
        return
    python, reason = (None, "") if REJAX not in chosen else rejax_python(args.rejax_python)
    if REJAX in chosen and python is None:
        print(reason, flush=True)
    contenders = [name for name in chosen if name not in (REJAX, NATIVE_COMPILED)] + ([REJAX] if python else [])
    rejax_versions: dict[str, Any] = {}
    load_before = os.getloadavg()
    results = []
    with tempfile.TemporaryDirectory(prefix="thorndike-tts-") as run_root:
        warm_up(run_root, contenders, args.device)
        runners = {
            NATIVE: lambda seed: run_thorndike("torch", seed, args.steps, args.eval_every, run_root, args.device),
            GYMNASIUM: lambda seed: run_thorndike("gymnasium", seed, args.steps, args.eval_every, run_root,
                                                  args.device),
            SB3: lambda seed: run_sb3(seed, args.steps, args.eval_every),
            SB3_FAST: lambda seed: run_sb3(seed, args.steps, args.eval_every, fast=True),
            REJAX: lambda seed: run_rejax(python, seed, args.steps, args.eval_every, rejax_versions),
        }
        for i, seed in enumerate(args.seeds):
            order = contenders[i % len(contenders):] + contenders[:i % len(contenders)]
            for name in order:
                res = runners[name](seed)
                results.append(res)
                print(json.dumps(res), flush=True)
        train_results = train_time_runs(train_contenders, args.seeds, args.train_steps, run_root, args.device)
    load_after = os.getloadavg()

    results.sort(key=lambda r: (contenders.index(r["contender"]), r["seed"]))
    summary = summarise(results, contenders, len(args.seeds))
    summary["rejax_skipped"] = REJAX in chosen and not python
    rejax_steps = ", ".join(sorted({f"{r['steps_run']:,}" for r in results if r["contender"] == REJAX})) or "—"
    notes = [
        f"{datetime.date.today()}, {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}, torch {torch.__version__} (1 thread), thorndike on {device_name(args.device)}, "
        "stable-baselines3 "
        f"{stable_baselines3.__version__}, gymnasium {gym.__version__}, thorndike {th.__version__}"
        + (", " + ", ".join(f"{k} {v}" for k, v in rejax_versions.items() if k != "devices") if rejax_versions
           else ""),
        f"load average (1 min) {load_before[0]:.2f} before and {load_after[0]:.2f} after the benchmark (shared "
        "machine: figures move between runs)",
        "runs interleaved by seed, the order of the contenders rotating from seed to seed; one untimed warm-up run "
        "(2048 steps, evaluation every 1024) of each thorndike and SB3 contender before the timed runs",
        "evaluations differ in size and kind: thorndike 16 deterministic episodes in parallel env copies, SB3 10 "
        "deterministic episodes one after another, rejax 128 episodes with sampled actions inside its compiled "
        f"program; the 475 threshold and the {args.eval_every:,}-step interval are the same for all",
        "hyperparameters differ by design: thorndike runs its fast config (ppo_cartpole_fast.yaml: 64 envs x 8 steps, "
        "6 epochs of one 512-sample minibatch, lr 1.45e-2, 32x32 networks, observation and return normalisation), "
        "SB3 and rejax the anchors' rl-zoo values (8 envs, 20 epochs, lr 1e-3); rejax additionally uses swish "
        "activations, a constant lr, a clipped value loss and no gradient clipping (its defaults, as in the anchor)",
        "building the agent/model is untimed for every contender (JSON: setup_s); thorndike's time is the session "
        "clock, which also leaves out writing final.pt and curve.png after the stop (JSON: learn_call_s)",
        "final eval: 10 deterministic episodes on held-out seeds after training, untimed",
    ]
    if python:
        notes.append(
            f"rejax trains whole blocks of {args.eval_every:,} steps ({rejax_steps} steps) against the "
            f"{args.steps:,}-step budget; an evaluation after step {args.steps:,} does not count as solved. It runs "
            "in a fresh interpreter per seed with the persistent compilation cache off; XLA uses both CPU cores while "
            "torch uses 1 thread; interpreter start and imports are untimed")
    elif reason:
        notes.append(reason)
    text = markdown(summary, results, args.seeds, args.steps, args.eval_every, notes, command, args.device)
    write_train_time(args.out, train_results, train_contenders, args.seeds, args.train_steps, args.device, command)
    train_summary = summarise_train_time(train_results, train_contenders, args.train_steps)
    text += "\n" + "\n".join(train_time_markdown(train_summary, args.seeds, args.device)) + "\n"
    (args.out / "ppo_time_to_solve.md").write_text(text)
    meta = {"command": command, "date": str(datetime.date.today()), "load_before": load_before,
            "load_after": load_after, "torch": torch.__version__, "stable_baselines3": stable_baselines3.__version__,
            "gymnasium": gym.__version__, "thorndike": th.__version__, "rejax": rejax_versions or None,
            "thorndike_config": {**THORNDIKE_CONFIG, "eval_episodes": THORNDIKE_EVAL_EPISODES}, "notes": notes,
            "device": args.device}
    (args.out / "ppo_time_to_solve.json").write_text(
        json.dumps({"meta": meta, "summary": summary, "runs": results,
                    "train_time": {"summary": train_summary, "runs": train_results}}, indent=1) + "\n")
    plot(args.out / "ppo_time_to_solve.png", summary, results, args.eval_every, args.device)
    print()
    print(text)


if __name__ == "__main__":
    main()
