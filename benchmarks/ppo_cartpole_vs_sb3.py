"""Side-by-side benchmark: thorndike PPO vs Stable-Baselines3 PPO on CartPole-v1.

What it measures, per library and seed, with identical hyperparameters and budget:

* wall time to solve: seconds of training (``learn``) until the first periodic evaluation whose mean return is
  >= 475, evaluation time included; a run that never gets there reports its total training time instead;
* steps/s: env steps done up to that point divided by that wall time (also without evaluation time, as
  ``train_steps_per_s`` in the JSON lines);
* final return: the mean of 10 deterministic episodes played after training, on a held-out seed (not timed).

Hyperparameters are rl-zoo's CartPole PPO (thorndike's tuned ``configs/ppo.yaml`` uses the same): 8 envs x 32
steps, minibatch 256, 20 epochs, gamma 0.98, GAE lambda 0.8, learning rate 1e-3 linearly annealed to 0 over the
budget, clip 0.2, ent_coef 0, vf_coef 0.5, max_grad_norm 0.5, separate 64x64 tanh actor and critic. Budget:
100,000 env steps. Both libraries evaluate every 8192 env steps (10 deterministic episodes) after the update
that crosses the mark, and stop at the first evaluation that reaches 475. Torch runs on 1 CPU thread. Runs are
interleaved (seed by seed, alternating which library goes first) so that load from other jobs hits both.

Known differences that remain: SB3's value loss is mean((V - R)^2) while thorndike's is 0.5 * mean((V - R)^2),
so at the same vf_coef SB3's critic gradient is twice as large before the shared gradient-norm clip; SB3 folds the
truncation bootstrap into the reward, thorndike into the next value; SB3 evaluates with ``evaluate_policy`` on a
single env (episodes one after another), thorndike plays the 10 episodes in parallel env copies.

Run it (needs the ``[bench]`` extra: ``pip install -e '.[bench]'``, or ``make bench`` which also runs it):

    .venv/bin/python benchmarks/ppo_cartpole_vs_sb3.py
    .venv/bin/python benchmarks/ppo_cartpole_vs_sb3.py --seeds 0 1 2 3 4 --steps 100000 --eval-every 8192

Output: one JSON line per run, then a Markdown table of per-library medians over seeds and the ratios
thorndike / SB3 of the median time to solve and of the median steps/s.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

try:
    import stable_baselines3
except ImportError:
    sys.exit(
        "stable-baselines3 is not installed; this benchmark needs the [bench] extra: "
        "pip install -e '.[bench]' (or `make bench`)"
    )

import gymnasium as gym
import torch
from stable_baselines3 import PPO as SB3PPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import VecNormalize, sync_envs_normalization
from torch import nn

import thorndike as th
from thorndike.core.logger import read_progress

ENV_ID = "CartPole-v1"
SOLVED_RETURN = 475.0
EVAL_EPISODES = 10
FINAL_EVAL_SEED_OFFSET = 2_000_003  # final evaluation on seeds that neither training nor the periodic evals use

# rl-zoo's CartPole-v1 PPO; each library gets these under its own names below.
N_ENVS = 8
N_STEPS = 32
BATCH_SIZE = 256
N_EPOCHS = 20
GAMMA = 0.98
GAE_LAMBDA = 0.8
LEARNING_RATE = 1e-3  # linearly annealed to 0 over the budget
CLIP = 0.2
ENT_COEF = 0.0
VF_COEF = 0.5
MAX_GRAD_NORM = 0.5
HIDDEN = (64, 64)


def learn_timing_evaluation(agent: Any, steps: int) -> tuple[float, float]:
    """``agent.learn(steps)``; returns the seconds spent in evaluation and the seconds of the whole call."""
    evaluate, eval_time = agent.evaluate, 0.0

    def timed_evaluate(*args: Any, **kwargs: Any) -> Any:
        nonlocal eval_time
        start = time.perf_counter()
        try:
            return evaluate(*args, **kwargs)
        finally:
            eval_time += time.perf_counter() - start

    agent.evaluate = timed_evaluate  # the training session looks the method up on the instance
    start = time.perf_counter()
    try:
        agent.learn(steps)
    finally:
        agent.evaluate = evaluate
    return eval_time, time.perf_counter() - start


def run_thorndike(seed: int, steps: int, eval_every: int, run_root: str) -> dict[str, Any]:
    agent = th.make(
        "ppo", env=ENV_ID, seed=seed, tuned=False,
        n_envs=N_ENVS, n_steps=N_STEPS, minibatch_size=BATCH_SIZE, n_epochs=N_EPOCHS, gamma=GAMMA,
        gae_lambda=GAE_LAMBDA, lr=LEARNING_RATE, anneal_lr=True, clip=CLIP, ent_coef=ENT_COEF, vf_coef=VF_COEF,
        max_grad_norm=MAX_GRAD_NORM, hidden_sizes=HIDDEN, activation="tanh",
        threads=1, device="cpu", eval_every=eval_every, eval_episodes=EVAL_EPISODES, stop_return=SOLVED_RETURN,
        progress=False, tensorboard=False, run_root=run_root,
    )
    eval_time, learn_call_s = learn_timing_evaluation(agent, steps)

    # The session's own clock (time/elapsed_s) stops right after the evaluation that ended the run, before the
    # run folder's final.pt and curve.png are written; learn_call_s includes those.
    progress = read_progress(agent.run_dir)
    eval_means = [(int(s), m) for s, m in zip(progress["step"], progress["eval_mean"]) if not math.isnan(m)]
    solved_at = next((s for s, m in eval_means if m >= SOLVED_RETURN), None)
    final = agent.evaluate(episodes=EVAL_EPISODES, seed=seed + FINAL_EVAL_SEED_OFFSET)
    return result("thorndike", seed, solved_at, int(progress["step"][-1]), progress["time/elapsed_s"][-1],
                  eval_time, learn_call_s, final.mean, eval_means)


class EvalAndStop(BaseCallback):
    """Every ``eval_every`` env steps, after the update that crosses the mark, evaluate ``episodes``
    deterministic episodes; stop training at the first mean >= ``target``. Records steps and wall time."""

    def __init__(self, eval_env: gym.Env, eval_every: int, episodes: int, target: float):
        super().__init__()
        self.eval_env = eval_env
        self.eval_every = eval_every
        self.episodes = episodes
        self.target = target
        self.next_eval = eval_every
        self.start = 0.0
        self.stop_time: float | None = None
        self.stop_step: int | None = None
        self.solved_at: int | None = None
        self.eval_time = 0.0
        self.eval_means: list[tuple[int, float]] = []

    def _on_training_start(self) -> None:
        self.start = time.perf_counter()

    def _on_rollout_start(self) -> None:
        # Called at the start of each collection, i.e. after the previous rollout's update: the same point at
        # which thorndike evaluates (after the iteration whose steps reach the mark).
        self._maybe_evaluate()

    def _maybe_evaluate(self) -> None:
        if self.solved_at is not None or self.num_timesteps < self.next_eval:
            return
        self.next_eval += self.eval_every
        t0 = time.perf_counter()
        if isinstance(self.eval_env, VecNormalize):  # evaluate with the training env's current statistics
            sync_envs_normalization(self.training_env, self.eval_env)
        mean, _ = evaluate_policy(self.model, self.eval_env, n_eval_episodes=self.episodes, deterministic=True)
        now = time.perf_counter()
        self.eval_time += now - t0
        self.eval_means.append((self.num_timesteps, float(mean)))
        if mean >= self.target:
            self.solved_at = self.num_timesteps
            self.stop_step = self.num_timesteps
            self.stop_time = now - self.start

    def _on_step(self) -> bool:
        # SB3 can only stop from on_step, so a solved run takes one more vector step (untimed) before it stops.
        return self.solved_at is None

    def _on_training_end(self) -> None:
        self._maybe_evaluate()  # after the last update, as thorndike does when the last iteration crosses a mark
        if self.stop_time is None:
            self.stop_time = time.perf_counter() - self.start
            self.stop_step = self.num_timesteps


def run_sb3(seed: int, steps: int, eval_every: int) -> dict[str, Any]:
    def learning_rate(progress_remaining: float) -> float:
        return LEARNING_RATE * progress_remaining  # SB3's progress goes 1 -> 0 over total_timesteps

    env = make_vec_env(ENV_ID, n_envs=N_ENVS, seed=seed)
    model = SB3PPO(
        "MlpPolicy", env, n_steps=N_STEPS, batch_size=BATCH_SIZE, n_epochs=N_EPOCHS, gamma=GAMMA,
        gae_lambda=GAE_LAMBDA, learning_rate=learning_rate, clip_range=CLIP, ent_coef=ENT_COEF, vf_coef=VF_COEF,
        max_grad_norm=MAX_GRAD_NORM, seed=seed, device="cpu", verbose=0,
        policy_kwargs={"net_arch": {"pi": list(HIDDEN), "vf": list(HIDDEN)}, "activation_fn": nn.Tanh},
    )
    eval_env = Monitor(gym.make(ENV_ID))
    eval_env.reset(seed=seed + 1_000_003)  # later resets go on from this seeded generator
    callback = EvalAndStop(eval_env, eval_every, EVAL_EPISODES, SOLVED_RETURN)
    start = time.perf_counter()
    model.learn(steps, callback=callback)
    learn_call_s = time.perf_counter() - start

    final_env = Monitor(gym.make(ENV_ID))
    final_env.reset(seed=seed + FINAL_EVAL_SEED_OFFSET)
    final_mean, _ = evaluate_policy(model, final_env, n_eval_episodes=EVAL_EPISODES, deterministic=True)
    env.close()
    eval_env.close()
    final_env.close()
    return result("sb3", seed, callback.solved_at, callback.stop_step, callback.stop_time, callback.eval_time,
                  learn_call_s, float(final_mean), callback.eval_means)


def result(library: str, seed: int, solved_at: int | None, steps: int, wall_s: float, eval_s: float,
           learn_call_s: float, final_eval_mean: float, eval_means: list[tuple[int, float]]) -> dict[str, Any]:
    return {
        "library": library,
        "seed": seed,
        "solved_at_step": solved_at,
        "wall_s": round(wall_s, 3),
        "steps_per_s": round(steps / wall_s, 1),
        "final_eval_mean": round(final_eval_mean, 2),
        "steps": steps,
        "eval_s": round(eval_s, 3),
        "train_steps_per_s": round(steps / max(wall_s - eval_s, 1e-9), 1),
        "learn_call_s": round(learn_call_s, 3),
        "eval_curve": [[s, round(m, 1)] for s, m in eval_means],
    }


def summary(results: list[dict[str, Any]], n_seeds: int) -> str:
    libraries = ("thorndike", "sb3")
    med = {lib: {} for lib in libraries}
    lines = [
        "| library | wall time to solve (s) | steps/s | final eval return | solved |",
        "|---|---:|---:|---:|---:|",
    ]
    for lib in libraries:
        runs = [r for r in results if r["library"] == lib]
        for key in ("wall_s", "steps_per_s", "final_eval_mean", "train_steps_per_s"):
            med[lib][key] = statistics.median(r[key] for r in runs)
        solved = sum(r["solved_at_step"] is not None for r in runs)
        name = "thorndike" if lib == "thorndike" else "Stable-Baselines3"
        lines.append(f"| {name} | {med[lib]['wall_s']:.2f} | {med[lib]['steps_per_s']:.0f} | "
                     f"{med[lib]['final_eval_mean']:.1f} | {solved}/{n_seeds} |")
    ratio = {key: med["thorndike"][key] / med["sb3"][key] for key in ("wall_s", "steps_per_s", "train_steps_per_s")}
    lines += [
        "",
        "Medians over seeds; a run that never reached the target counts with its full-budget time.",
        "",
        f"time to solve thorndike/SB3 = {ratio['wall_s']:.2f}",
        f"steps/s thorndike/SB3 = {ratio['steps_per_s']:.2f}",
        f"steps/s without evaluation time thorndike/SB3 = {ratio['train_steps_per_s']:.2f}",
    ]
    return "\n".join(lines)


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds to run (default: 0 1 2)")
    parser.add_argument("--steps", type=positive_int, default=100_000, help="env-step budget per run")
    parser.add_argument("--eval-every", type=positive_int, default=8192, help="env steps between evaluations")
    args = parser.parse_args()

    torch.set_num_threads(1)
    results = []
    with tempfile.TemporaryDirectory(prefix="thorndike-bench-") as run_root:
        for i, seed in enumerate(args.seeds):
            runners = [
                lambda seed=seed: run_thorndike(seed, args.steps, args.eval_every, str(Path(run_root))),
                lambda seed=seed: run_sb3(seed, args.steps, args.eval_every),
            ]
            for runner in runners if i % 2 == 0 else reversed(runners):
                res = runner()
                results.append(res)
                print(json.dumps(res), flush=True)
    print()
    print(f"PPO on {ENV_ID}: {args.steps} env steps budget, evaluation every {args.eval_every} steps "
          f"({EVAL_EPISODES} deterministic episodes), solved = mean >= {SOLVED_RETURN:g}, "
          f"torch {torch.__version__} with 1 thread, stable-baselines3 {stable_baselines3.__version__}")
    print()
    print(summary(results, len(args.seeds)))


if __name__ == "__main__":
    main()
