"""Maximisation bias: Q-learning vs double Q-learning, Sutton and Barto example 6.7 / figure 6.5.

thorndike/MaximizationBias-v0: from A, left (action 0) goes to B with reward 0 and every other action ends the episode
with reward 0; from B every action ends the episode with reward -0.1 +/- 1. Going left is worth -0.1, so right is
optimal, but Q-learning's max over B's noisy estimates makes left look good for a while. epsilon = 0.1, alpha = 0.1,
gamma = 1, 300 episodes, many runs batched in one agent.

The optimal line: A has n_actions actions (10 here) and only one of them is left, so epsilon-greedy whose greedy
action is right goes left with probability epsilon / n_actions = 0.1 / 10 = 1% (the book's A has 2 actions: 5%).

    .venv/bin/python benchmarks/tabular_maximization_bias.py [--runs 1000] [--episodes 300] [--seed 0]

Writes benchmarks/results/tabular_maximization_bias.{png,json}.
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
ENV = "thorndike/MaximizationBias-v0"
ALGOS = {"q_learning": ("Q-learning", "tab:red"), "double_q_learning": ("double Q-learning", "tab:green")}
EPSILON = 0.1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--episodes", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    n_actions = th.envs.tabular_model(ENV).n_actions
    optimal = EPSILON / n_actions
    run_root = tempfile.mkdtemp(prefix="thorndike-maxbias-")
    results = {}
    for algo in ALGOS:
        start = time.perf_counter()
        agent = th.make(algo, env=ENV, seed=args.seed, n_runs=args.runs, alpha=0.1, epsilon=EPSILON, gamma=1.0,
                        progress=False, tensorboard=False, run_root=run_root, log_every=100_000)
        agent.learn_episodes(args.episodes, chunk=2 * args.episodes)  # an episode is 1 step (right) or 2 (left)
        left = (agent.history.matrix("length", args.runs, args.episodes) == 2).double()
        per_episode = left.mean(0)
        results[algo] = dict(
            left_fraction_per_episode=per_episode.tolist(),
            left_fraction_episodes_1_100=float(per_episode[:100].mean()),
            left_fraction_last_100=float(per_episode[-100:].mean()),
            peak=float(per_episode.max()),
            peak_episode=int(per_episode.argmax()) + 1,
            q_A_left_mean=float(agent.q[:, 0, 0].mean()),
            wall_s=round(time.perf_counter() - start, 1),
        )
        print(algo, {k: v for k, v in results[algo].items() if k != "left_fraction_per_episode"}, flush=True)

    RESULTS.mkdir(exist_ok=True)
    meta = dict(env=ENV, runs=args.runs, episodes=args.episodes, seed=args.seed, alpha=0.1, epsilon=EPSILON,
                gamma=1.0, n_actions=n_actions, optimal_left_fraction=optimal)
    (RESULTS / "tabular_maximization_bias.json").write_text(json.dumps(dict(meta, results=results), indent=1))

    fig, ax = plt.subplots(figsize=(8.5, 5))
    episodes = torch.arange(1, args.episodes + 1)
    for algo, r in results.items():
        label, color = ALGOS[algo]
        ax.plot(episodes, 100 * torch.tensor(r["left_fraction_per_episode"]), color=color,
                label=f"{label} (episodes 1-100: {100 * r['left_fraction_episodes_1_100']:.1f}%, "
                f"last 100: {100 * r['left_fraction_last_100']:.1f}%)")
    ax.axhline(100 * optimal, color="black", linestyle="--", lw=1,
               label=f"optimal: epsilon / n_actions = {EPSILON} / {n_actions} = {100 * optimal:.0f}%")
    ax.set_xlim(1, args.episodes)
    ax.set_ylim(0, 100)
    ax.set_xlabel("episode")
    ax.set_ylabel("% left actions from A")
    ax.set_title(f"Maximisation bias (Sutton & Barto ex. 6.7), {args.runs} runs: % of runs going left in each episode\n"
                 f"epsilon = {EPSILON}, alpha = 0.1, gamma = 1; A has {n_actions} actions (1 left), so the optimal "
                 f"epsilon-greedy policy\ngoes left {100 * optimal:.0f}% of the time (the book's A has 2 actions: 5%)",
                 fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right", fontsize=9)
    fig.tight_layout()
    fig.savefig(RESULTS / "tabular_maximization_bias.png", dpi=120)
    print("wrote", RESULTS / "tabular_maximization_bias.png")


if __name__ == "__main__":
    main()
