"""Time to solve CartPole-v1 with DQN: thorndike against Stable-Baselines3 DQN and sb3-contrib QR-DQN (issue #14).

Two measurements in one run, on CPU with torch on 1 thread, contenders interleaved by seed (the order rotates from
seed to seed, so load from other jobs on a shared machine hits all of them):

1. Time to solve: wall seconds from the start of training to the first evaluation whose mean return over 20 greedy
   episodes is >= 475, evaluation time included, an evaluation due every ``--eval-every`` (5000) env steps (for
   every contender at the first update boundary at or past each multiple), within ``--steps`` (50,000) env steps;
   a run that never gets there counts with its full time and is marked unsolved. Building the agent is not timed.
   Hyperparameters: rl-zoo's for CartPole-v1 for all three (lr 2.3e-3, batch 64, buffer 100k, learning_starts
   1000, gamma 0.99, target_update_interval 10, train_freq 256, gradient_steps 128, epsilon 1 -> 0.04 over 16% of
   50k steps, 256x256 ReLU network; QR-DQN 10 quantiles): thorndike's ``configs/dqn.yaml`` holds the same numbers.
   thorndike also runs with its own CartPole config tuned for wall-clock time (``thorndike-fast``:
   ``thorndike/configs/dqn_cartpole_fast.yaml``, on the native env; time to solve only, since its throughput is the
   library's, measured above at rl-zoo's sizes).
   Evaluation: thorndike's own (``eval_every``, ``stop_return``; 20 env copies played in parallel); SB3 and QR-DQN:
   ``EvalAndStop`` from ``ppo_cartpole_vs_sb3.py`` with ``evaluate_policy`` on a 20-copy ``DummyVecEnv`` (one
   episode per copy, batched predictions: SB3's fastest way to play 20 episodes), stopping the run at the solve.
2. Throughput with one gradient step per env step (train_freq 1, gradient_steps 1, the rest as above, learning
   starting after 1000 steps): env steps per second of ``learn(--throughput-steps)`` (no evaluation).

Warm-up: every contender first trains 1500 steps untimed (learning from step 500), so that torch's one-off setup is
not charged to the first timed run. Ratios are SB3's median over thorndike's (goal: time to solve <= 1/5 of SB3's,
throughput >= 3x SB3's).

    .venv/bin/python -m pip install sb3-contrib -c constraints.txt
    PYTHONPATH=$PWD .venv/bin/python benchmarks/dqn_time_to_solve.py [--seeds 0-4]

Prints one JSON line per run and a Markdown summary; writes ``benchmarks/results/dqn_time_to_solve.{json,md,png}``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import stable_baselines3
import torch
from ppo_cartpole_vs_sb3 import EvalAndStop  # this script's folder is on sys.path
from sb3_contrib import QRDQN
from stable_baselines3 import DQN as SB3DQN
from stable_baselines3.common.env_util import make_vec_env

import thorndike as th
from thorndike.core.logger import read_progress
from thorndike.experiment import parse_seeds

RESULTS = Path(__file__).resolve().parent / "results"
ENV_ID = "CartPole-v1"
SOLVED_RETURN = 475.0
EVAL_EPISODES = 20
EVAL_SEED_OFFSET = 1_000_003

THORNDIKE, FAST, SB3, QR = "thorndike", "thorndike-fast", "sb3-dqn", "sb3-contrib-qrdqn"
CONTENDERS = (THORNDIKE, FAST, SB3, QR)
LABELS = {THORNDIKE: "thorndike DQN", FAST: "thorndike DQN, fast config", SB3: "Stable-Baselines3 DQN",
          QR: "sb3-contrib QR-DQN"}
FAST_CONFIG = "dqn_cartpole_fast"  # thorndike/configs/dqn_cartpole_fast.yaml

# rl-zoo's CartPole-v1 hyperparameters for DQN and QR-DQN (SB3's names); exploration_fraction is of --steps.
ZOO: dict[str, Any] = dict(learning_rate=2.3e-3, batch_size=64, buffer_size=100_000, learning_starts=1000,
                           gamma=0.99, target_update_interval=10, train_freq=256, gradient_steps=128,
                           exploration_fraction=0.16, exploration_final_eps=0.04)


def sb3_model(contender: str, seed: int, steps: int, **changes: Any) -> Any:
    """SB3 DQN or QR-DQN with rl-zoo's hyperparameters (``changes`` override them)."""
    # SB3's epsilon falls over exploration_fraction * total_timesteps: 16% of 50k steps (8000), whatever the budget
    params = {**ZOO, "exploration_fraction": ZOO["exploration_fraction"] * 50_000 / steps, **changes}
    env = make_vec_env(ENV_ID, n_envs=1, seed=seed)
    if contender == QR:
        return QRDQN("MlpPolicy", env, policy_kwargs=dict(net_arch=[256, 256], n_quantiles=10), seed=seed,
                     device="cpu", verbose=0, **params)
    return SB3DQN("MlpPolicy", env, policy_kwargs=dict(net_arch=[256, 256]), seed=seed, device="cpu", verbose=0,
                  **params)


def thorndike_agent(seed: int, run_root: str, **fields: Any) -> Any:
    """thorndike DQN with its CartPole config (= rl-zoo's, configs/dqn.yaml); ``fields`` override it."""
    return th.make("dqn", env=ENV_ID, seed=seed, device="cpu", threads=1, progress=False, tensorboard=False,
                   pictures=False, checkpoint_every=10**15, run_root=run_root, **fields)


def time_to_solve(contender: str, seed: int, steps: int, eval_every: int, run_root: str) -> dict[str, Any]:
    if contender in (THORNDIKE, FAST):
        config = {"config": FAST_CONFIG} if contender == FAST else {}
        agent = thorndike_agent(seed, run_root, eval_every=eval_every, eval_episodes=EVAL_EPISODES,
                                stop_return=SOLVED_RETURN, **config)
        agent.learn(steps)
        progress = read_progress(agent.run_dir)
        curve = [(int(s), m) for s, m in zip(progress["step"], progress["eval_mean"], strict=True)
                 if not math.isnan(m)]
        solved_at = next((s for s, m in curve if m >= SOLVED_RETURN), None)
        # with stop_return the session ends right after the solving evaluation: its last row is that evaluation's
        seconds, steps_run = progress["time/elapsed_s"][-1], agent.global_step
    else:
        model = sb3_model(contender, seed, steps)
        eval_env = make_vec_env(ENV_ID, n_envs=EVAL_EPISODES, seed=seed + EVAL_SEED_OFFSET)
        callback = EvalAndStop(eval_env, eval_every, EVAL_EPISODES, SOLVED_RETURN)
        start = time.perf_counter()
        model.learn(steps, callback=callback)
        total = time.perf_counter() - start
        curve, solved_at = callback.eval_means, callback.solved_at
        seconds = callback.stop_time if callback.stop_time is not None else total
        steps_run = model.num_timesteps
    return {"measure": "time_to_solve", "contender": contender, "seed": seed, "solved": solved_at is not None,
            "solved_at_step": solved_at, "time_to_solve_s": round(seconds, 2), "steps_run": steps_run,
            "eval_curve": [[s, round(m, 1)] for s, m in curve]}


def throughput(contender: str, seed: int, steps: int, run_root: str) -> dict[str, Any]:
    """Env steps per second of ``steps`` steps with one gradient step per env step after 1000 random steps."""
    if contender == THORNDIKE:
        agent = thorndike_agent(seed, run_root, train_freq=1, gradient_steps=1)
        start = time.perf_counter()
        agent.learn(steps)
    else:
        model = sb3_model(contender, seed, steps, train_freq=1, gradient_steps=1)
        start = time.perf_counter()
        model.learn(steps)
    seconds = time.perf_counter() - start
    return {"measure": "throughput", "contender": contender, "seed": seed, "steps": steps,
            "seconds": round(seconds, 2), "steps_per_s": round(steps / seconds, 1)}


def warm_up(run_root: str) -> None:
    thorndike_agent(0, run_root, learning_starts=500).learn(1500)
    thorndike_agent(0, run_root, config=FAST_CONFIG, learning_starts=500).learn(1500)
    for contender in (SB3, QR):
        sb3_model(contender, 0, 1500, learning_starts=500).learn(1500)


def summary(runs: list[dict[str, Any]], args: argparse.Namespace) -> tuple[str, dict[str, Any]]:
    lines = ["| contender | solved | median time to solve s | per seed (s; * = not solved) | median steps to "
             "solve | env steps/s, 1 grad step per env step (median) |", "|---|---:|---:|---|---:|---:|"]
    stats: dict[str, Any] = {}
    for c in CONTENDERS:
        solve = [r for r in runs if r["contender"] == c and r["measure"] == "time_to_solve"]
        speed = [r for r in runs if r["contender"] == c and r["measure"] == "throughput"]
        if not solve and not speed:
            continue
        solved = [r for r in solve if r["solved"]]
        stats[c] = {"median_time_s": statistics.median(r["time_to_solve_s"] for r in solve) if solve else None,
                    "solved": len(solved), "runs": len(solve),
                    "median_steps": statistics.median(r["solved_at_step"] for r in solved) if solved else None,
                    "steps_per_s": statistics.median(r["steps_per_s"] for r in speed) if speed else None}
        per_seed = ", ".join(f"{r['time_to_solve_s']:.1f}{'' if r['solved'] else '*'}" for r in solve)
        s = stats[c]
        speed_cell = "-" if s["steps_per_s"] is None else f"{s['steps_per_s']:.0f}"
        lines.append(f"| {LABELS[c]} | {s['solved']}/{s['runs']} | {s['median_time_s'] or 0:.1f} | {per_seed} | "
                     f"{s['median_steps'] or '-'} | {speed_cell} |")
    ratios = []
    ours, fast = stats.get(THORNDIKE), stats.get(FAST)
    for c in (SB3, QR):
        if c not in stats:
            continue
        peer = stats[c]
        parts = []
        for key, mine, what in (("time_ratio", ours, "with the rl-zoo config"),
                                ("fast_time_ratio", fast, f"with its fast config ({FAST_CONFIG}.yaml)")):
            if mine and mine["median_time_s"] and peer["median_time_s"]:
                peer[key] = peer["median_time_s"] / mine["median_time_s"]
                parts.append(f"thorndike's median time to solve {what} is 1/{peer[key]:.2f} of its")
        if ours and ours["steps_per_s"] and peer["steps_per_s"]:
            peer["speed_ratio"] = ours["steps_per_s"] / peer["steps_per_s"]
            parts.append(f"its throughput with one gradient step per env step is {peer['speed_ratio']:.2f}x")
        if parts:
            ratios.append(f"- against {LABELS[c]}: " + "; ".join(parts) + " (goals for SB3 DQN: time to solve "
                          "1/5 or less, throughput 3x or more)")
    return "\n".join(lines) + "\n\n" + "\n".join(ratios), stats


def plot(payload: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, ax_speed) = plt.subplots(1, 2, figsize=(12, 4.5))
    runs, stats = payload["runs"], payload["stats"]
    names = [c for c in CONTENDERS if c in stats]
    for i, c in enumerate(names):
        points = [r for r in runs if r["contender"] == c and r["measure"] == "time_to_solve"]
        ax.barh(i, stats[c]["median_time_s"] or 0, color=f"C{i}", alpha=0.5)
        ax.scatter([r["time_to_solve_s"] for r in points], [i] * len(points), color=f"C{i}",
                   marker="o", zorder=3, label=None)
        ax.scatter([r["time_to_solve_s"] for r in points if not r["solved"]],
                   [i] * sum(not r["solved"] for r in points), facecolor="none", edgecolor="black", s=90, zorder=4)
        ax_speed.barh(i, stats[c]["steps_per_s"] or 0, color=f"C{i}", alpha=0.7)
        if stats[c]["steps_per_s"] is None:
            ax_speed.text(10, i, "not measured (the same update as thorndike DQN)", va="center", fontsize=8)
    for a in (ax, ax_speed):
        a.set_yticks(range(len(names)), [LABELS[c] for c in names])
        a.grid(axis="x", alpha=0.3)
    ax.set(xlabel="seconds to a greedy 20-episode mean >= 475 (bar: median; dots: seeds; ringed: not solved)",
           title=f"Time to solve {ENV_ID}")
    ax_speed.set(xlabel="env steps per second", title="One gradient step per env step")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write(runs: list[dict[str, Any]], args: argparse.Namespace, command: str, load_before: tuple[float, ...],
          out: Path) -> str:
    """The JSON, Markdown and PNG of the runs so far (written after every seed, so a cut run keeps its seeds)."""
    load_after = os.getloadavg()
    text, stats = summary(runs, args)
    seeds = sorted({r["seed"] for r in runs})
    payload = {"command": command, "date": datetime.datetime.now(datetime.UTC).isoformat(), "seeds_done": seeds,
               "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
               "load_avg_before": load_before, "load_avg_after": load_after, "torch": torch.__version__,
               "stable_baselines3": stable_baselines3.__version__, "runs": runs, "stats": stats}
    report = [f"# DQN: time to solve {ENV_ID}\n", f"`{command}` ({payload['date'][:16]} UTC; seeds done: {seeds}; "
              f"{payload['machine']}, shared; load average before {load_before[0]:.2f}, after "
              f"{load_after[0]:.2f}; torch {torch.__version__}, SB3 {stable_baselines3.__version__})\n",
              f"Solved: a greedy evaluation of {EVAL_EPISODES} episodes with mean >= {SOLVED_RETURN:g}, checked "
              f"every {args.eval_every:,} env steps, within {args.steps:,} env steps (time includes evaluations). "
              f"Throughput: {args.throughput_steps:,} env steps with train_freq 1, gradient_steps 1 (learning from "
              f"step 1000). rl-zoo hyperparameters for all but thorndike's fast config ({FAST_CONFIG}.yaml); see "
              "the script's docstring.\n", text + "\n"]
    out.mkdir(parents=True, exist_ok=True)
    (out / "dqn_time_to_solve.json").write_text(json.dumps(payload, indent=1))
    (out / "dqn_time_to_solve.md").write_text("\n".join(report))
    plot(payload, out / "dqn_time_to_solve.png")
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", default="0-4")
    parser.add_argument("--steps", type=int, default=50_000)
    parser.add_argument("--eval-every", type=int, default=5_000)
    parser.add_argument("--throughput-steps", type=int, default=5_000)
    parser.add_argument("--contenders", default=",".join(CONTENDERS))
    parser.add_argument("--out", default=str(RESULTS))
    parser.add_argument("--plot-only", action="store_true")
    parser.add_argument("--from-log", default=None, help="rebuild the results from the JSON lines a run printed "
                        "(with the run's own --seeds ... options: the report names them)")
    parser.add_argument("--load-before", type=float, default=None, help="with --from-log: the load when it began")
    args = parser.parse_args()
    out = Path(args.out)
    if args.plot_only:
        plot(json.loads((out / "dqn_time_to_solve.json").read_text()), out / "dqn_time_to_solve.png")
        return
    command = " ".join(["python", *sys.argv])
    if args.from_log:
        runs = [json.loads(line) for line in Path(args.from_log).read_text().splitlines() if line.startswith("{")]
        done = [seed for seed in {r["seed"] for r in runs}  # whole seeds only: both measures of every contender
                if sum(r["seed"] == seed for r in runs) == sum(2 - (c == FAST) for c in args.contenders.split(","))]
        runs = [r for r in runs if r["seed"] in done]
        load = (args.load_before,) * 3 if args.load_before is not None else os.getloadavg()
        print(write(runs, args, command, load, out))
        return
    torch.set_num_threads(1)
    contenders = args.contenders.split(",")
    run_root = tempfile.mkdtemp(prefix="thorndike-dqn-tts-")
    load_before = os.getloadavg()
    warm_up(run_root)
    runs = []
    for k, seed in enumerate(parse_seeds([args.seeds])):
        order = contenders[k % len(contenders):] + contenders[:k % len(contenders)]
        for c in order:
            if c != FAST:  # the same library and update as "thorndike": throughput is measured at rl-zoo's sizes
                runs.append(throughput(c, seed, args.throughput_steps, run_root))
                print(json.dumps(runs[-1]), flush=True)
        for c in order:
            runs.append(time_to_solve(c, seed, args.steps, args.eval_every, run_root))
            print(json.dumps({k: v for k, v in runs[-1].items() if k != "eval_curve"}), flush=True)
        text = write(runs, args, command, load_before, out)
    print(text)
    print(f"wrote {out}/dqn_time_to_solve.json, .md, .png")


if __name__ == "__main__":
    main()
