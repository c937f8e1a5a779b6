"""Time to solve CartPole-v1 with A3C (2 workers), and optionally Stable-Baselines3's A2C for reference.

Time to solve = wall seconds from the start of training until the first evaluation whose mean return over 10
deterministic episodes is >= 475, evaluation time included. A run that never gets there counts with its full time.

1. ``a3c``: thorndike's A3C with its tuned CartPole values (``thorndike/configs/a3c.yaml``), 2 worker processes
   (one torch thread each) on the native torch CartPole (``backend="torch"``); the main process evaluates the shared
   model at the first iteration boundary past every ``--eval-every`` steps and stops the run through
   ``stop_return=475``. Time to solve is the session's own clock (``time/elapsed_s`` of the solving row of
   ``progress.csv``); building the agent is not timed. Two workers' interleaving is the OS's, so a seed does not fix
   a run: repeating this script gives other numbers (run it twice to see the spread).
2. ``sb3-a2c`` (``--sb3``): the anchor's Stable-Baselines3 A2C (``/work/shared/anchors/sb3_bench.py``,
   "a2c-cartpole": rl-zoo's 8 envs, ent_coef 0, SB3's defaults otherwise: 5 steps, RMSprop 7e-4, 64x64 tanh), torch on
   one thread, evaluated by ``EvalAndStop`` (10 deterministic episodes every 10,000 steps, the anchor's interval).

Each contender is warmed up once (2,000 steps, untimed) before its timed runs. Output: one JSON line per run, then a
Markdown table; writes ``benchmarks/results/a3c_time_to_solve.{md,json}``.

    .venv/bin/python benchmarks/a3c_time_to_solve.py            # seeds 0-9
    .venv/bin/python benchmarks/a3c_time_to_solve.py --sb3 0,1,2   # and SB3 A2C on seeds 0-2
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

import thorndike as th
from thorndike.experiment import parse_seeds
from thorndike.registry import tuned_config

RESULTS = Path(__file__).resolve().parent / "results"
ENV_ID = "CartPole-v1"
SOLVED = 475.0
EPISODES = 10
QUIET = dict(progress=False, tensorboard=False, pictures=False)


def run_a3c(seed: int, budget: int, eval_every: int, run_root: str) -> dict[str, Any]:
    agent = th.make("a3c", env=ENV_ID, seed=seed, run_root=run_root, backend="torch", eval_every=eval_every,
                    eval_episodes=EPISODES, stop_return=SOLVED, **QUIET)
    agent.learn(budget)
    with open(agent.run_dir / "progress.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    solved = [r for r in rows if r["eval_mean"] != "nan" and float(r["eval_mean"]) >= SOLVED]
    last = solved[0] if solved else rows[-1]
    evals = [float(r["eval_mean"]) for r in rows if r["eval_mean"] != "nan"]
    return {"contender": "a3c", "seed": seed, "solved": bool(solved), "step": int(last["step"]),
            "wall_s": round(float(last["time/elapsed_s"]), 2), "steps_per_s": round(float(last["time/steps_per_s"])),
            "evals": evals}


def run_sb3(seed: int, budget: int) -> dict[str, Any]:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import gymnasium as gym
    from ppo_cartpole_vs_sb3 import EvalAndStop
    from stable_baselines3 import A2C
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.monitor import Monitor

    env = make_vec_env(ENV_ID, n_envs=8, seed=seed)
    model = A2C("MlpPolicy", env, ent_coef=0.0, seed=seed, device="cpu")
    eval_env = Monitor(gym.make(ENV_ID))
    eval_env.reset(seed=seed + 1_000_003)
    callback = EvalAndStop(eval_env, 10_000, EPISODES, SOLVED)
    start = time.perf_counter()
    model.learn(budget, callback=callback)
    wall = time.perf_counter() - start
    solved = callback.solved_at is not None
    return {"contender": "sb3-a2c", "seed": seed, "solved": solved,
            "step": callback.solved_at if solved else model.num_timesteps,
            "wall_s": round(callback.stop_time if solved else wall, 2),
            "steps_per_s": round(model.num_timesteps / wall), "evals": [m for _, m in callback.eval_means]}


def table(results: list[dict[str, Any]]) -> str:
    lines = ["| contender | solved | median time to solve (s) | median steps | max time (s) |",
             "| --- | ---: | ---: | ---: | ---: |"]
    for name in dict.fromkeys(r["contender"] for r in results):
        runs = [r for r in results if r["contender"] == name]
        lines.append(f"| {name} | {sum(r['solved'] for r in runs)}/{len(runs)} | "
                     f"{statistics.median(r['wall_s'] for r in runs):.2f} | "
                     f"{statistics.median(r['step'] for r in runs):,.0f} | {max(r['wall_s'] for r in runs):.2f} |")
    lines += ["", "Per seed: time to solve in s (step; - = not solved within the budget)", "",
              "| contender | seed | solved | step | time (s) | steps/s |",
              "| --- | ---: | :---: | ---: | ---: | ---: |"]
    for r in results:
        lines.append(f"| {r['contender']} | {r['seed']} | {'yes' if r['solved'] else '-'} | {r['step']:,} | "
                     f"{r['wall_s']:.2f} | {r['steps_per_s']:,} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=lambda text: parse_seeds([text]), default=list(range(10)))
    parser.add_argument("--budget", type=int, default=200_000)
    parser.add_argument("--eval-every", type=int, default=5_000)
    parser.add_argument("--sb3", type=lambda text: parse_seeds([text]), default=[],
                        help="seeds for SB3's A2C (none by default)")
    parser.add_argument("--sb3-budget", type=int, default=500_000)
    parser.add_argument("--out", default="a3c_time_to_solve")
    args = parser.parse_args()
    torch.set_num_threads(1)
    results = []
    with tempfile.TemporaryDirectory() as run_root:
        th.make("a3c", env=ENV_ID, run_root=run_root, backend="torch", **QUIET).learn(2_000)  # warm-up, untimed
        for seed in args.seeds:
            results.append(run_a3c(seed, args.budget, args.eval_every, run_root))
            print(json.dumps(results[-1]), flush=True)
    if args.sb3:
        run_sb3(0, 2_000)  # warm-up, untimed
        for seed in args.sb3:
            results.append(run_sb3(seed, args.sb3_budget))
            print(json.dumps(results[-1]), flush=True)
    config = tuned_config("a3c", ENV_ID)
    header = (f"# A3C time to solve {ENV_ID}\n\nConfig (thorndike/configs/a3c.yaml): {config}; budget "
              f"{args.budget:,} steps, evaluation ({EPISODES} deterministic episodes) at the first iteration boundary "
              f"past every {args.eval_every:,} steps. Measured on a shared 2-core CPU; the numbers move with its "
              "load and, for A3C, with the workers' interleaving.\n\n")
    text = header + table(results) + "\n"
    print(text)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.out}.md").write_text(text)
    (RESULTS / f"{args.out}.json").write_text(json.dumps({"config": config, "runs": results}, indent=1) + "\n")


if __name__ == "__main__":
    main()
