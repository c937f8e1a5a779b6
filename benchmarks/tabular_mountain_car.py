"""Linear (tile-coded) semi-gradient SARSA and Q-learning on MountainCar-v0, like Sutton & Barto figures 10.1 and 10.2.

Setup as S&B 10.1: 8 tilings of 8x8 tiles over (position, velocity), epsilon = 0, Q initialised to 0 (optimistic:
every reward is -1), gamma = 1, step size alpha / 8 per weight. One difference: Gymnasium's MountainCar-v0 ends an
episode after 200 steps (S&B's has no limit), so no episode is longer than 200 steps and the first successes come
only after several truncated episodes; truncated steps bootstrap from the true last state.

    .venv/bin/python benchmarks/tabular_mountain_car.py [--runs 50] [--episodes 500] [--map-episodes 1000]

Writes benchmarks/results/tabular_mountain_car.{png,json} (steps per episode vs episode: mean over runs and a band
of +/- one standard error, for alpha = 0.1, 0.2, 0.5 (/8) with SARSA and alpha = 0.5 with Q-learning) and
tabular_mountain_car_cost_to_go.png (-max_a Q over position x velocity of one SARSA run after step 428 and after
episodes 12, 104 and the last).
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

import thorndike as th  # noqa: E402

RESULTS = Path(__file__).parent / "results"
ENV = "MountainCar-v0"
SETUP = dict(epsilon=0.0, q_init=0.0, gamma=1.0, n_tilings=8, tiles=8)
CURVES = [("sarsa", 0.1), ("sarsa", 0.2), ("sarsa", 0.5), ("q_learning", 0.5)]


def learning_curve(target: str, alpha: float, runs: int, episodes: int, seed: int, run_root: str) -> dict:
    """Steps per episode ``[runs, episodes]`` of ``runs`` independent learners (stepped together)."""
    agent = th.make("linear_q", env=ENV, seed=seed, n_runs=runs, alpha=alpha, target=target, log_every=10_000,
                    progress=False, tensorboard=False, run_root=run_root, **SETUP)
    start = time.perf_counter()
    # An episode lasts at most 200 steps, so 200 * episodes steps give every run at least `episodes` episodes.
    agent.learn(200 * episodes)
    wall = time.perf_counter() - start
    lengths = agent.history.matrix("length", runs, episodes)
    assert not bool(torch.isnan(lengths).any()), "some run finished fewer episodes than asked"
    return {"target": target, "alpha": alpha, "lengths": lengths, "wall_s": wall, "steps_per_run": agent.global_step}


def cost_to_go_maps(episodes: int, seed: int, run_root: str) -> list[tuple[str, torch.Tensor]]:
    """-max_a Q on a 120 x 120 grid of one SARSA run (alpha = 0.5) after step 428 and episodes 12, 104, ``episodes``."""
    agent = th.make("linear_q", env=ENV, seed=seed, n_runs=1, alpha=0.5, target="sarsa", progress=False,
                    tensorboard=False, run_root=run_root, **SETUP)
    position = torch.linspace(-1.2, 0.6, 120, dtype=torch.float64)
    velocity = torch.linspace(-0.07, 0.07, 120, dtype=torch.float64)
    grid = torch.cartesian_prod(position, velocity)  # [P*V, 2], velocity fastest

    def snapshot() -> torch.Tensor:
        return -agent.action_values(grid).amax(-1).reshape(len(position), len(velocity))

    maps = []
    marks = [12, 104, episodes]
    agent.total_steps = 10**9
    # The body of LinearQ.learn, stepped one transition at a time so pictures can be taken between two steps.
    for t in agent.collect(10**9):
        agent.update(t.active, t.action, agent.targets(t))
        done_episodes = int(agent.weights.episodes[0]) + int(t.done[0])
        if agent.global_step == 428:
            maps.append((f"step 428 (episode {done_episodes + 1})", snapshot()))
        if bool(t.done[0]) and done_episodes == marks[0]:
            maps.append((f"after episode {done_episodes} (step {agent.global_step:,})", snapshot()))
            marks.pop(0)
            if not marks:
                break
    return maps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--episodes", type=int, default=500)
    parser.add_argument("--map-episodes", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    run_root = tempfile.mkdtemp(prefix="thorndike-mountain-car-")
    RESULTS.mkdir(exist_ok=True)

    curves = []
    for target, alpha in CURVES:
        curve = learning_curve(target, alpha, args.runs, args.episodes, args.seed, run_root)
        curves.append(curve)
        mean = curve["lengths"].mean(0)
        print(f"{target} alpha={alpha}/8: episodes 1-10 {mean[:10].mean():.1f}, 91-100 {mean[90:100].mean():.1f}, "
              f"last 10 {mean[-10:].mean():.1f} steps ({curve['wall_s']:.0f} s)", flush=True)

    fig, ax = plt.subplots(figsize=(7.5, 4.8), dpi=120)
    episodes = torch.arange(1, args.episodes + 1)
    for curve in curves:
        lengths = curve["lengths"]
        mean, se = lengths.mean(0), lengths.std(0) / math.sqrt(lengths.shape[0])
        style = "--" if curve["target"] == "q_learning" else "-"
        name = "SARSA" if curve["target"] == "sarsa" else "Q-learning"
        (line,) = ax.plot(episodes, mean, style, lw=1.2, label=f"{name}, alpha = {curve['alpha']}/8")
        ax.fill_between(episodes, mean - se, mean + se, color=line.get_color(), alpha=0.25, lw=0)
    ax.axhline(200, color="grey", lw=0.8, ls=":", label="time limit (200 steps)")
    ax.set_yscale("log")
    ax.set_yticks([100, 120, 150, 200], labels=["100", "120", "150", "200"])
    ax.set_ylim(95, 210)
    ax.set_xlabel("episode")
    ax.set_ylabel("steps per episode (log scale)")
    ax.set_title(f"Tile-coded linear Q on {ENV}: mean over {args.runs} runs (band: +/- 1 s.e.)\n"
                 "8 tilings of 8x8, epsilon = 0, Q initialised to 0, gamma = 1", fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(RESULTS / "tabular_mountain_car.png")
    plt.close(fig)

    maps = cost_to_go_maps(args.map_episodes, args.seed, run_root)
    fig, axes = plt.subplots(1, len(maps), figsize=(4.2 * len(maps), 4.0), dpi=110)
    for ax, (title, values) in zip(axes, maps):
        image = ax.imshow(values.T, origin="lower", aspect="auto", extent=(-1.2, 0.6, -0.07, 0.07), cmap="viridis")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("position")
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.03, label="-max_a Q(s, a)")
    axes[0].set_ylabel("velocity")
    fig.suptitle(f"Learned cost-to-go -max_a Q(s, a) of one run (SARSA, alpha = 0.5/8) on {ENV}", fontsize=11)
    fig.tight_layout()
    fig.savefig(RESULTS / "tabular_mountain_car_cost_to_go.png")
    plt.close(fig)

    summary = {
        "env": ENV, "runs": args.runs, "episodes": args.episodes, "seed": args.seed, "setup": SETUP,
        "curves": [
            {"target": c["target"], "alpha_over_8": c["alpha"], "wall_s": round(c["wall_s"], 1),
             "steps_per_run": c["steps_per_run"],
             "mean_steps_per_episode": [round(v, 2) for v in c["lengths"].mean(0).tolist()],
             "mean_episodes_1_10": round(float(c["lengths"][:, :10].mean()), 2),
             "mean_episodes_91_100": round(float(c["lengths"][:, 90:100].mean()), 2),
             "mean_episodes_191_200": round(float(c["lengths"][:, 190:200].mean()), 2),
             "mean_last_10": round(float(c["lengths"][:, -10:].mean()), 2)}
            for c in curves
        ],
        "cost_to_go_max": {title: round(float(v.max()), 2) for title, v in maps},
    }
    (RESULTS / "tabular_mountain_car.json").write_text(json.dumps(summary, indent=1) + "\n")


if __name__ == "__main__":
    main()
