"""Dyna-Q on the Dyna maze with 0, 5 and 50 planning steps, Sutton and Barto example 8.1 / figure 8.2.

thorndike/DynaMaze-v0: 6 x 9 grid with walls, +1 on reaching the goal, gamma = 0.95, alpha = 0.1, epsilon = 0.1,
Q initialised to 0; the shortest path is 14 steps. Each curve is the mean over runs (batched in one agent) of the
steps each episode took; the first episode is a random walk for every method (all values 0 until the goal is found).

    .venv/bin/python benchmarks/tabular_dyna_maze.py [--runs 30] [--episodes 50] [--planning 0 5 50] [--seed 0]

Writes benchmarks/results/tabular_dyna_maze.{png,json}.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

import thorndike as th  # noqa: E402

RESULTS = Path(__file__).parent / "results"
ENV = "thorndike/DynaMaze-v0"
SHORTEST = 14
START, GOAL = 18, 8  # cells (2, 0) and (0, 8) of the 6 x 9 maze


def greedy_path_length(successor: torch.Tensor, policy: list[int], max_len: int = 200) -> int:
    """Steps the greedy policy takes from S to G on the deterministic maze (``max_len`` if it never arrives)."""
    state, steps = START, 0
    while state != GOAL and steps < max_len:
        state, steps = int(successor[state, policy[state]]), steps + 1
    return steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--planning", type=int, nargs="+", default=[0, 5, 50])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    successor = th.envs.tabular_model(ENV).P.argmax(-1)
    run_root = tempfile.mkdtemp(prefix="thorndike-dyna-")
    results = {}
    for n in args.planning:
        start = time.perf_counter()
        agent = th.make("dyna_q", env=ENV, seed=args.seed, n_runs=args.runs, planning_steps=n, alpha=0.1,
                        epsilon=0.1, gamma=0.95, progress=False, tensorboard=False, run_root=run_root,
                        log_every=100_000)
        agent.learn_episodes(args.episodes)
        lengths = agent.history.matrix("length", args.runs, args.episodes)
        mean = lengths.mean(0)
        greedy = [greedy_path_length(successor, p) for p in agent.greedy_policy().tolist()]
        results[str(n)] = dict(
            steps_per_episode=mean.tolist(),
            first_episode=float(mean[0]),
            episodes_2_10=float(mean[1:10].mean()),
            last_10=float(mean[-10:].mean()),
            first_episode_within_2_of_the_last_10_mean=int(
                (mean <= mean[-10:].mean() + 2).nonzero()[0]) + 1,
            runs_with_shortest_greedy_path=sum(g == SHORTEST for g in greedy) / args.runs,
            real_steps_per_run=agent.global_step,
            wall_s=round(time.perf_counter() - start, 1),
        )
        print(n, {k: v for k, v in results[str(n)].items() if k != "steps_per_episode"}, flush=True)

    RESULTS.mkdir(exist_ok=True)
    meta = dict(env=ENV, runs=args.runs, episodes=args.episodes, seed=args.seed, alpha=0.1, epsilon=0.1,
                gamma=0.95, shortest_path=SHORTEST)
    (RESULTS / "tabular_dyna_maze.json").write_text(json.dumps(dict(meta, results=results), indent=1))

    fig, ax = plt.subplots(figsize=(8.5, 5))
    colors = {0: "tab:blue", 5: "tab:green", 50: "tab:red"}
    episodes = torch.arange(2, args.episodes + 1)
    for n in args.planning:
        r = results[str(n)]
        ax.plot(episodes, r["steps_per_episode"][1:], color=colors.get(n), lw=1.8,
                label=f"{n} planning steps (episodes 2-10: {r['episodes_2_10']:.0f} steps/episode)")
    ax.axhline(SHORTEST, color="black", linestyle="--", lw=1, label=f"shortest path: {SHORTEST} steps")
    ax.set_yscale("log")
    ax.set_yticks([14, 20, 50, 100, 200, 400, 800])
    ax.set_yticklabels(["14", "20", "50", "100", "200", "400", "800"])
    ax.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xlim(2, args.episodes)
    ax.set_xlabel("episode")
    ax.set_ylabel("steps per episode (log scale)")
    first = ", ".join(f"{n}: {results[str(n)]['first_episode']:.0f}" for n in args.planning)
    ax.set_title(f"Dyna-Q on the Dyna maze (Sutton & Barto fig. 8.2), mean of {args.runs} runs\n"
                 f"alpha = 0.1, epsilon = 0.1, gamma = 0.95; episode 1 (not shown) took {first} steps", fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(loc="upper right", fontsize=9)
    fig.tight_layout()
    fig.savefig(RESULTS / "tabular_dyna_maze.png", dpi=120)
    print("wrote", RESULTS / "tabular_dyna_maze.png")


if __name__ == "__main__":
    main()
