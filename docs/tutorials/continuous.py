"""Tutorial: SAC on Pendulum, and what its temperature does (the entropy it holds the policy to, and how fast).

Run it as a script (``--quick`` is the few-second version the test suite runs):

    .venv/bin/python docs/tutorials/continuous.py [--quick] [--seeds 0 1 2] [--steps 20000] [--out runs/tutorial-sac]

It writes ``sac_curves.png`` into ``--out``: the greedy return against env steps, the temperature alpha, and the
policy's entropy against its target; and ``sac_pendulum.mp4``, a video of the first seed's policy swinging the
pendulum up from hanging down.

The idea (notes 003 lecture 9, 002 for the Gaussian policy): maximum-entropy RL adds the policy's entropy to every
reward, J(pi) = E[sum_t gamma^t (r_t + alpha H(pi(.|s_t)))], so the policy stays as random as it can while it
collects reward. Soft actor-critic learns it off-policy from a replay buffer, like DQN, but for continuous actions.
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
from thorndike.envs.video import record_video  # noqa: E402

GOOD = -200.0  # the bar for Pendulum-v1: a mean return of -200 (swung up and held; the best is about -150)

# %% [markdown]
# ## SAC in one gradient step
#
# ``th.make("sac", env="Pendulum-v1")`` starts from the tuned values in ``thorndike/configs/sac.yaml`` (rl-zoo's,
# with 64 x 64 networks): Adam with lr 1e-3, a 1M-transition buffer, 100 warm-up steps of uniform actions, then one
# gradient step on a minibatch of 256 per env step. Each gradient step does, with a' ~ pi(.|s'):
#
#     critics:      y = r + gamma (1 - terminated) (min_i Q'_i(s', a') - alpha log pi(a'|s'))
#                   both critics regress Q_i(s, a) on y (one batched forward and backward for the two)
#     actor:        minimise alpha log pi(a|s) - min_i Q_i(s, a) at a = tanh(mu(s) + sigma(s) eps), eps ~ N(0, I)
#     temperature:  minimise -log alpha (log pi(a|s) + H_bar)
#     targets:      theta'_i <- theta'_i + tau (theta_i - theta'_i), tau = 0.005
#
# Two critics and the minimum of their targets fight the overestimation a maximising actor breeds (as in TD3).
# The actor's action is a differentiable function of the noise eps (the reparameterisation trick), so the gradient of
# Q flows through the action into mu and sigma. The tanh squashes the Gaussian into [-1, 1]; its log-density carries
# the change-of-variables term -sum_d log(1 - tanh(u_d)^2). Pendulum's torque bounds are [-2, 2]: the algorithm
# works in [-1, 1] and the action is scaled only on its way to the env.
#
# ## The temperature
#
# alpha weighs entropy against reward. Fixed, it would need tuning per env (rewards of different scales want
# different alphas). SAC learns it: the temperature loss pushes log alpha up when the policy's entropy
# -E[log pi] is below the target H_bar = -|A| (= -1 for Pendulum's one torque) and down when it is above. So alpha
# is not a schedule but a controller: it falls fast while the random initial policy has more entropy than it needs,
# then settles where the entropy holds near H_bar. The entropy of a squashed Gaussian can be negative (a density
# concentrated in a short interval); -1 means about as spread as a uniform density on an interval of length e^-1.
#
# ## Reading the figure
#
# The greedy return (the policy's mean action tanh(mu(s)), no sampling) climbs from about -1,700 (the pendulum
# left hanging or spun) to about -150 once the policy has learnt to swing up and balance: seed 0 passes -200 by
# 5,000 env steps and holds -150 to the end of 20,000. alpha starts at 1 and falls to about 0.2 within 3,000 steps,
# while the entropy drops from the initial policy's +0.6 to the target -1; from then on the entropy stays within
# about 0.1 of -1 and alpha drifts slowly down (to about 0.06 at 20,000 steps), the controller holding the entropy
# where the target puts it; where the entropy dips below -1, alpha rises again (the bumps in its curve).
# ``benchmarks/continuous_learning.py`` measures the -200 bar over ten seeds.


def train(seed: int, steps: int, out: Path, eval_every: int, eval_episodes: int, extra: dict) -> dict:
    """Train SAC for ``steps`` env steps; its greedy return (every ``eval_every``), alpha and entropy (every log row),
    and the agent (for the video)."""
    agent = th.make("sac", env="Pendulum-v1", seed=seed, run_root=str(out), progress=False, tensorboard=False,
                    pictures=False, eval_every=eval_every, eval_episodes=eval_episodes, **extra)
    agent.learn(steps)
    progress = read_progress(agent.run_dir)
    curve: dict = {"eval_step": [], "greedy_return": [], "step": [], "alpha": [], "entropy": [], "agent": agent,
                   "target_entropy": agent.target_entropy}
    for step, eval_mean, alpha, entropy in zip(progress["step"], progress["eval_mean"], progress["alpha"],
                                               progress["entropy"], strict=True):
        if not math.isnan(eval_mean):
            curve["eval_step"].append(step)
            curve["greedy_return"].append(eval_mean)
        if not math.isnan(alpha):  # rows of the warm-up have no update yet
            curve["step"].append(step)
            curve["alpha"].append(alpha)
            curve["entropy"].append(entropy)
    print(f"seed {seed}: greedy return {curve['greedy_return'][-1]:7.1f} at {agent.global_step} steps (best "
          f"{max(curve['greedy_return']):7.1f}); alpha {curve['alpha'][-1]:.4f}, entropy {curve['entropy'][-1]:.2f}")
    return curve


def hanging_seed(candidates: range = range(10)) -> int:
    """The reset seed among ``candidates`` whose pendulum starts nearest hanging straight down (the smallest cos theta,
    the first observation), so that the video shows a swing-up and not a start near the top."""
    return min(candidates, key=lambda s: float(th.envs.make("Pendulum-v1", 1, seed=s).reset(seed=s)[0, 0]))


def plot(runs: list[dict], path: Path) -> Path:
    """Greedy return, alpha (log scale) and the policy's entropy with its target, one colour per seed."""
    fig, (ax, ax_alpha, ax_entropy) = plt.subplots(1, 3, figsize=(15, 4.3), dpi=110)
    for i, run in enumerate(runs):
        label = f"seed {run['agent'].seed}"
        ax.plot(run["eval_step"], run["greedy_return"], color=f"C{i}", marker="o", markersize=3, label=label)
        ax_alpha.plot(run["step"], run["alpha"], color=f"C{i}", label=label)
        ax_entropy.plot(run["step"], run["entropy"], color=f"C{i}", label=label)
    ax.axhline(GOOD, color="black", linestyle="--", linewidth=0.8, label=f"{GOOD:.0f}")
    ax.set(xlabel="env steps", ylabel="greedy return (mean of evaluation episodes)", title="SAC on Pendulum-v1")
    ax_alpha.set(xlabel="env steps", ylabel="alpha (mean per log row, log scale)", yscale="log",
                 title="the temperature alpha")
    ax_entropy.axhline(runs[0]["target_entropy"], color="black", linestyle="--", linewidth=0.8,
                       label=f"target H_bar = {runs[0]['target_entropy']:g}")
    ax_entropy.set(xlabel="env steps", ylabel="-mean log pi(a|s) on the minibatch", title="the policy's entropy")
    for axis in (ax, ax_alpha, ax_entropy):
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a tiny budget, one seed (what the test suite runs)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--out", default="runs/tutorial-sac", help="folder for the runs, the figure and the video")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.quick:  # smaller networks and minibatches, and 300 gradient steps (about a second; each costs ~3 ms
        # of eager overhead at any small size); a buffer of the run's size, as the checkpoints hold it
        seeds, steps, eval_every, eval_episodes, frames = [0], 400, 200, 2, 40
        extra = {"hidden_sizes": (32, 32), "batch_size": 64, "buffer_size": 1_000, "log_every": 50}
    else:
        seeds, steps, eval_every, eval_episodes, frames, extra = args.seeds, args.steps, 1_000, 10, 200, {}
    runs = [train(seed, steps, out, eval_every, eval_episodes, extra) for seed in seeds]
    video = record_video(runs[0]["agent"], out / "sac_pendulum.mp4", seed=hanging_seed(), max_frames=frames)
    print(f"video: {video}")
    return plot(runs, out / "sac_curves.png")


if __name__ == "__main__":
    print(f"figure: {main()}")
