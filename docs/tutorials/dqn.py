"""Tutorial: DQN on CartPole, then what each of its extensions changes (double, n-step, prioritised, soft targets).

Run it as a script (``--quick`` is the few-second version the test suite runs):

    .venv/bin/python docs/tutorials/dqn.py [--quick] [--seeds 0 1 2] [--out runs/tutorial-dqn]

It writes ``dqn_curves.png`` into ``--out``: the greedy return of each variant against env steps (mean over seeds,
thin lines per seed), and beside it the mean TD loss.

The idea (notes 000 lecture 2, 001 unit 3, 003 lectures 4-5): Q-learning's update Q(s, a) <- Q(s, a) + alpha (r +
gamma max_a' Q(s', a') - Q(s, a)) with a neural network for Q. Done naively it diverges: consecutive transitions
are strongly correlated, and the target moves with every step of the weights it regresses. DQN adds two things,
a replay buffer (train on minibatches drawn at random from the last transitions) and a target network theta^-
(a copy of the weights that the targets use, refreshed only now and then).
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
# ## DQN
#
# ``th.make("dqn", env="CartPole-v1")`` starts from the tuned CartPole values in ``thorndike/configs/dqn.yaml``
# (rl-zoo's): a 256 x 256 Q-network, Adam with lr 2.3e-3, a 100k-transition buffer. Each env step it acts
# epsilon-greedily (uniformly at random for the first 1000 steps, then epsilon falls from 1 to 0.04 over 8000
# steps) and stores (s, a, r, s', terminated). Every 256 env steps it takes 128 gradient steps on minibatches of
# 64, each regressing Q(s, a; theta) on
#
#     y = r + gamma (1 - terminated) max_a' Q(s', a'; theta^-)
#
# with the Huber loss, and every 10 env steps it copies theta into theta^- (a hard update). ``terminated`` and
# not ``truncated``: at CartPole's 500-step time limit the pole is still up, so the target bootstraps from s'.
#
# ## Double DQN: ``double=True``
#
# max_a' Q(s', a'; theta^-) picks and values a' with the same noisy estimates, so it is biased upwards (the
# maximum of noisy values is above the maximum of their means). Double DQN picks a' with the online network and
# values it with the target network: y = r + gamma Q(s', argmax_a' Q(s', a'; theta); theta^-). Nothing else
# changes; one more forward pass of the online network per minibatch.
#
# ## n-step returns: ``n_step=3``
#
# The target sums n rewards before it bootstraps: y = r_t + gamma r_{t+1} + ... + gamma^(n-1) r_{t+n-1} +
# gamma^n max_a' Q(s_{t+n}, a'; theta^-), cut at an episode's end. Rewards travel back n states per update
# instead of one, at the price of a target that belongs to the behaviour policy's recent actions (off-policy bias:
# the n rewards were collected with more exploration than the greedy policy would do). The replay buffer computes
# the sums and gamma^m when it samples.
#
# ## Prioritised replay: ``prioritized=True``
#
# Transitions are drawn with probability P(i) proportional to (|delta_i| + eps)^alpha, where delta_i is the TD
# error last seen for them, so surprising transitions are replayed more. The sampling changes the distribution
# the loss averages over; importance weights w_i = (N P(i))^-beta (beta annealed to 1) undo that bias by the end.
#
# ## Soft target updates: ``tau=0.005``
#
# Instead of copying theta into theta^- every ``target_update_interval`` steps, every step moves theta^- a
# fraction tau toward theta (Polyak averaging, as in DDPG and SAC): theta^- <- theta^- + tau (theta - theta^-).
# The target drifts smoothly instead of jumping; with tau = 0.005 it lags about 1 / tau = 200 steps behind.

# ## Reading the figure
#
# CartPole's greedy return jumps: a Q-network that balances for 500 steps can drop to 100 after the next 128
# gradient steps and come back (the rl-zoo config trains hard and copies its target every 10 steps). One seed
# says little; the default three, or ``benchmarks/dqn_learning.py`` for DQN over ten, show the spread. The loss
# panel shows what the extensions do to the regression itself: n-step targets sum more reward and bootstrap from
# further away, so their TD errors are larger; prioritised replay's loss is scaled down by its importance weights.

# Each variant: the fields changed from the tuned CartPole config (what the section above describes).
VARIANTS: dict[str, dict] = {
    "DQN": {},
    "double DQN": {"double": True},
    "3-step returns": {"n_step": 3},
    "prioritised replay": {"prioritized": True},
    "soft target (tau 0.005)": {"tau": 0.005},
}


def train(label: str, seed: int, steps: int, out: Path, eval_every: int, eval_episodes: int,
          extra: dict) -> dict[str, list[float]]:
    """Train one variant for ``steps`` env steps; its greedy return (every ``eval_every``) and loss (every 1000)."""
    agent = th.make("dqn", env="CartPole-v1", seed=seed, run_root=str(out), progress=False, tensorboard=False,
                    pictures=False, eval_every=eval_every, eval_episodes=eval_episodes, **VARIANTS[label], **extra)
    agent.learn(steps)
    progress = read_progress(agent.run_dir)
    curve: dict[str, list[float]] = {"eval_step": [], "greedy_return": [], "step": [], "loss": []}
    for step, eval_mean, loss in zip(progress["step"], progress["eval_mean"], progress["loss"], strict=True):
        if not math.isnan(eval_mean):
            curve["eval_step"].append(step)
            curve["greedy_return"].append(eval_mean)
        if not math.isnan(loss):
            curve["step"].append(step)
            curve["loss"].append(loss)
    print(f"{label:26s} seed {seed}: greedy return {curve['greedy_return'][-1]:6.1f} at {agent.global_step} steps "
          f"(best {max(curve['greedy_return']):6.1f})")
    return curve


def plot(curves: dict[str, list[dict[str, list[float]]]], path: Path) -> Path:
    """Left: greedy return against env steps (mean over seeds bold, seeds thin); right: the mean TD loss."""
    fig, (ax, ax_loss) = plt.subplots(1, 2, figsize=(12, 4.5), dpi=110, gridspec_kw={"width_ratios": [3, 2]})
    for i, (label, runs) in enumerate(curves.items()):
        color = f"C{i}"
        n = min(len(r["greedy_return"]) for r in runs)
        mean = torch.tensor([r["greedy_return"][:n] for r in runs]).mean(0)
        ax.plot(runs[0]["eval_step"][:n], mean, color=color, linewidth=2, marker="o", markersize=3,
                label=f"{label} (mean of {len(runs)})")
        for run in runs if len(runs) > 1 else []:
            ax.plot(run["eval_step"], run["greedy_return"], color=color, linewidth=0.7, alpha=0.3)
        m = min(len(r["loss"]) for r in runs)
        loss = torch.tensor([r["loss"][:m] for r in runs]).mean(0)
        ax_loss.plot(runs[0]["step"][:m], loss, color=color, linewidth=1.2, label=label)
    ax.axhline(SOLVED, color="black", linestyle="--", linewidth=0.8, label=f"solved ({SOLVED:.0f})")
    ax.set(xlabel="env steps", ylabel="greedy return (mean of evaluation episodes)",
           title="DQN and its extensions on CartPole-v1")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    ax_loss.set(xlabel="env steps", ylabel="mean TD loss per 1000 steps (log scale)", yscale="log",
                title="TD loss (Huber; prioritised: importance-weighted)")
    ax_loss.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny budgets, one seed (what the test suite runs)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=50_000)
    parser.add_argument("--out", default="runs/tutorial-dqn", help="folder for the runs and the figure")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.quick:  # a smaller network and a short warm-up, so that every variant takes a few gradient steps
        seeds, steps, eval_every, eval_episodes = [0], 1_000, 500, 2
        extra = {"hidden_sizes": (32, 32), "learning_starts": 200, "train_freq": 100, "gradient_steps": 4,
                 "log_every": 500}
    else:
        seeds, steps, eval_every, eval_episodes, extra = args.seeds, args.steps, 2_500, 20, {}
    curves = {label: [train(label, seed, steps, out, eval_every, eval_episodes, extra) for seed in seeds]
              for label in VARIANTS}
    return plot(curves, out / "dqn_curves.png")


if __name__ == "__main__":
    print(f"figure: {main()}")
