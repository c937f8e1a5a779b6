"""Tutorial: black-box policy search on CartPole, from hill climbing to evolution strategies.

Run it as a script (``--quick`` is the few-second version the test suite runs):

    .venv/bin/python docs/tutorials/search.py [--quick] [--out runs/tutorial-search]

It writes ``search_curves.png`` into ``--out``: the greedy return of each method against the episodes it played.

The idea (notes 004, "Hill climbing" to "Evolution strategies"; 003 lecture 1, "CEM"): a policy is a vector of
weights theta, and a search needs nothing but the return G(theta) of an episode played with them. No gradient of
the policy, no value function, no Bellman equation: perturb, play, keep what works. Every method below plays its
candidates as one batch, a population of P weight vectors applied with one batched matrix multiply per step on P
copies of the env stepped together (no Python loop over candidates).
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

import thorndike as th  # noqa: E402
from thorndike.core.logger import read_progress  # noqa: E402

SOLVED = 475.0  # CartPole-v1 counts as solved at a mean return of 475 (the maximum is 500)

# %% [markdown]
# ## The policy being searched
#
# ``policy="linear"`` (the default) maps CartPole's four numbers (cart position and velocity, pole angle and
# angular velocity) to two action scores with a 4 x 2 matrix and a bias: 10 weights. The action is the higher
# score. Every search starts from theta = 0 and plays candidates theta + noise.
#
# ## Hill climbing: keep a perturbation if it does better
#
# The notes' pseudocode: theta' = theta_best + sigma * eps; play one episode; keep theta' if its return G beats
# G_best. The return of one episode is only an estimate of the policy's expected return J(theta), because
# CartPole starts from a random state: a lucky episode can set a G_best that no neighbour beats again. The
# variants change how many neighbours are tried (``steepest``), how the radius sigma moves (``annealing``,
# ``adaptive``) and on how many episodes a candidate is judged (``episodes_per_candidate``, G versus J).
#
# ## Cross-entropy method: refit a Gaussian to the elites
#
# ``param_cem`` samples a population from N(mu, sigma^2) over the weights, keeps the best 20% (the elites) and
# refits mu and sigma to them, adding a little variance that decays so the Gaussian does not collapse too soon.
# ``approx_cem`` is the approximate CEM of 003 lecture 1: a small neural policy plays the sessions and is trained
# by maximum likelihood on the (state, action) pairs of the elite sessions, a classification problem.
#
# ## Evolution strategies: a gradient estimated from returns
#
# ``es`` estimates the gradient of the smoothed return from mirrored perturbations (antithetic sampling),
# weighting each by the rank of its return (centred ranks), and steps theta with Adam.

# Each method with its tuned CartPole settings (``th.make`` applies them for this env id); ``eval_every`` is how
# often (in env steps) the greedy policy is evaluated: after every iteration for the population methods, every
# 1000 steps for hill climbing, whose iterations are single episodes.
METHODS: dict[str, dict] = {
    "hill climbing": {"algorithm": "hill_climbing", "eval_every": 1000},
    "hill climbing, adaptive noise": {"algorithm": "hill_climbing", "variant": "adaptive", "n_neighbours": 1,
                                      "eval_every": 1000},
    "parameter-space CEM": {"algorithm": "param_cem", "eval_every": 1},
    "approximate CEM": {"algorithm": "approx_cem", "eval_every": 1},
    "evolution strategies": {"algorithm": "es", "eval_every": 1},
}


def search(label: str, seed: int, steps: int, out: Path, eval_episodes: int) -> dict[str, list[float]]:
    """Run one method on CartPole until it is solved or has spent ``steps``; its greedy return against episodes."""
    fields = dict(METHODS[label])
    algorithm = fields.pop("algorithm")
    agent = th.make(algorithm, env="CartPole-v1", seed=seed, run_root=str(out), progress=False, tensorboard=False,
                    pictures=False, eval_episodes=eval_episodes, stop_return=SOLVED, **fields)
    agent.learn(steps)
    progress = read_progress(agent.run_dir)
    curve = {"episodes": [], "greedy_return": []}
    for episodes, eval_mean in zip(progress["episodes"], progress["eval_mean"], strict=True):
        if not math.isnan(eval_mean):
            curve["episodes"].append(episodes)
            curve["greedy_return"].append(eval_mean)
    final = agent.evaluate(episodes=eval_episodes, seed=1000 + seed).mean
    print(f"{label:32s} seed {seed}: {int(curve['episodes'][-1]):6d} episodes, {agent.global_step:8d} steps, "
          f"greedy return {final:6.1f}")
    return curve


def plot(curves: dict[str, list[dict[str, list[float]]]], path: Path) -> Path:
    """Each method's greedy return against episodes, one thin line per seed and the first seed's line bold."""
    fig, ax = plt.subplots(figsize=(7.5, 4.5), dpi=110)
    for i, (label, runs) in enumerate(curves.items()):
        color = f"C{i}"
        for j, run in enumerate(runs):
            # A run stopped when solved: draw its last value on to the longest run's end, so lines do not vanish.
            ax.step(run["episodes"], run["greedy_return"], where="post", color=color, alpha=1.0 if j == 0 else 0.35,
                    linewidth=1.8 if j == 0 else 0.9, label=label if j == 0 else None)
    ax.axhline(SOLVED, color="black", linestyle="--", linewidth=0.8, label=f"solved ({SOLVED:.0f})")
    ax.set_xscale("log")
    ax.set_xlabel("episodes played (log scale)")
    ax.set_ylabel("greedy return (mean of evaluation episodes)")
    ax.set_title("Black-box policy search on CartPole-v1")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny budgets, one seed (what the test suite runs)")
    parser.add_argument("--out", default="runs/tutorial-search", help="folder for the runs and the figure")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    seeds, steps, eval_episodes = ([0], 3_000, 5) if args.quick else ([0, 1, 2], 200_000, 20)
    curves = {label: [search(label, seed, steps, out, eval_episodes) for seed in seeds] for label in METHODS}
    return plot(curves, out / "search_curves.png")


if __name__ == "__main__":
    print(f"figure: {main()}")
