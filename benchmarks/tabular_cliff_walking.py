"""SARSA vs Q-learning (and expected SARSA) on CliffWalking, Sutton and Barto example 6.6 / figure 6.4.

epsilon = 0.1 (constant), alpha = 0.5, gamma = 1, 500 episodes, many runs batched in one agent per algorithm. Left:
the sum of rewards per episode (the online return, exploration included), averaged over runs and smoothed over 10
episodes. Right: the greedy path of each method (of the Q table averaged over runs) on the 4 x 12 grid, and how many
runs' own greedy paths are that path.

    .venv/bin/python benchmarks/tabular_cliff_walking.py [--runs 100] [--episodes 500] [--seed 0]

Writes benchmarks/results/tabular_cliff_walking.{png,json}.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

import thorndike as th  # noqa: E402

RESULTS = Path(__file__).parent / "results"
ALGOS = {"sarsa": ("SARSA", "tab:blue", "-"), "q_learning": ("Q-learning", "tab:red", "-"),
         "expected_sarsa": ("expected SARSA", "tab:green", "--")}
HEIGHT, WIDTH, START, GOAL = 4, 12, 36, 47


def greedy_path(successor: torch.Tensor, policy: list[int], max_len: int = 60) -> list[int]:
    """Cells visited from the start by a greedy policy on the deterministic model (cut at ``max_len`` steps)."""
    path = [START]
    while path[-1] != GOAL and len(path) <= max_len:
        path.append(int(successor[path[-1], policy[path[-1]]]))
    return path


def smooth(x: torch.Tensor, window: int = 10) -> torch.Tensor:
    """Trailing moving average (shorter windows for the first episodes)."""
    c = torch.cat([torch.zeros(1, dtype=x.dtype), x.cumsum(0)])
    idx = torch.arange(1, len(x) + 1)
    lo = (idx - window).clamp_min(0)
    return (c[idx] - c[lo]) / (idx - lo)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--episodes", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    successor = th.envs.tabular_model("CliffWalking-v1").P.argmax(-1)
    run_root = tempfile.mkdtemp(prefix="thorndike-cliff-")
    results = {}
    for algo in ALGOS:
        start = time.perf_counter()
        agent = th.make(algo, env="CliffWalking-v1", seed=args.seed, n_runs=args.runs, alpha=0.5, epsilon=0.1,
                        gamma=1.0, progress=False, tensorboard=False, run_root=run_root, log_every=100_000)
        agent.learn_episodes(args.episodes, chunk=2000)
        returns = agent.history.matrix("return", args.runs, args.episodes)
        mean_path = greedy_path(successor, agent.q.mean(0).argmax(-1).tolist())
        paths = [greedy_path(successor, p) for p in agent.greedy_policy().tolist()]
        results[algo] = dict(
            mean_return_per_episode=returns.mean(0).tolist(),
            mean_return_episodes_101_on=float(returns[:, 100:].mean()),
            greedy_path_of_mean_q=mean_path,
            greedy_path_length=len(mean_path) - 1,
            runs_on_that_path=sum(p == mean_path for p in paths) / args.runs,
            runs_away_from_edge=sum(all(c // WIDTH != 2 for c in p if 1 <= c % WIDTH <= 10) for p in paths)
            / args.runs,
            steps_per_run=agent.global_step,
            wall_s=round(time.perf_counter() - start, 1),
        )
        print(algo, {k: v for k, v in results[algo].items() if k != "mean_return_per_episode"}, flush=True)

    RESULTS.mkdir(exist_ok=True)
    meta = dict(env="CliffWalking-v1", runs=args.runs, episodes=args.episodes, seed=args.seed, alpha=0.5,
                epsilon=0.1, gamma=1.0)
    (RESULTS / "tabular_cliff_walking.json").write_text(json.dumps(dict(meta, results=results), indent=1))
    plot(results, args)


def plot(results: dict, args: argparse.Namespace) -> None:
    fig, (ax, grid) = plt.subplots(1, 2, figsize=(14, 4.8), gridspec_kw=dict(width_ratios=[1, 1.25]))
    episodes = torch.arange(1, args.episodes + 1)
    for algo, r in results.items():
        label, color, style = ALGOS[algo]
        curve = smooth(torch.tensor(r["mean_return_per_episode"]))
        ax.plot(episodes, curve, color=color, linestyle=style,
                label=f"{label} (mean over episodes 101-{args.episodes}: {r['mean_return_episodes_101_on']:.1f})")
    ax.set_ylim(-100, 0)
    ax.set_xlim(0, args.episodes)
    ax.set_xlabel("episode")
    ax.set_ylabel("sum of rewards during episode")
    ax.set_title(f"Online return, mean of {args.runs} runs, 10-episode moving average\n"
                 "epsilon = 0.1, alpha = 0.5, gamma = 1 (Sutton & Barto fig. 6.4)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=9)

    # The grid: cliff cells dark, S and G marked; each method's greedy path through the cell centres.
    cells = torch.zeros(HEIGHT, WIDTH)
    cells[3, 1:11] = 1.0
    grid.imshow(cells, cmap="Greys", vmin=0, vmax=1.6, extent=(-0.5, WIDTH - 0.5, HEIGHT - 0.5, -0.5))
    grid.text(5.5, 3, "The Cliff (-100, back to S)", ha="center", va="center", color="white", fontsize=10)
    grid.text(0, 3, "S", ha="center", va="center", fontsize=14, weight="bold")
    grid.text(11, 3, "G", ha="center", va="center", fontsize=14, weight="bold")
    offsets = {"sarsa": -0.12, "q_learning": 0.12, "expected_sarsa": 0.0}
    for algo, r in results.items():
        label, color, style = ALGOS[algo]
        path = r["greedy_path_of_mean_q"]
        d = offsets[algo]
        grid.plot([c % WIDTH + d for c in path], [c // WIDTH + d for c in path], color=color, linestyle=style, lw=2.5,
                  marker="o", ms=3, label=f"{label}: {len(path) - 1} steps; runs whose own greedy path is this one: "
                  f"{100 * r['runs_on_that_path']:.0f}%, keeps off row 2: {100 * r['runs_away_from_edge']:.0f}%")
    grid.set_xticks(range(WIDTH))
    grid.set_yticks(range(HEIGHT))
    grid.set_xticks([x - 0.5 for x in range(1, WIDTH)], minor=True)
    grid.set_yticks([y - 0.5 for y in range(1, HEIGHT)], minor=True)
    grid.grid(which="minor", color="0.7", lw=0.8)
    grid.tick_params(which="minor", length=0)
    grid.set_xlabel("column")
    grid.set_ylabel("row")
    grid.set_title(f"Greedy path of the Q table averaged over {args.runs} runs, after {args.episodes} episodes",
                   fontsize=10)
    grid.legend(loc="upper center", bbox_to_anchor=(0.5, -0.17), fontsize=9, ncol=1, frameon=False)
    fig.tight_layout()
    fig.savefig(RESULTS / "tabular_cliff_walking.png", dpi=120)
    print("wrote", RESULTS / "tabular_cliff_walking.png")


if __name__ == "__main__":
    main()
