"""Tutorial: policy gradients on CartPole, from the simplest estimator to PPO's clipped objective.

Run it as a script (``--quick`` is the few-second version the test suite runs):

    .venv/bin/python docs/tutorials/policy_gradient.py [--quick] [--seeds 0 1 2] [--out runs/tutorial-pg]

It writes two figures into ``--out``: ``pg_clip.png``, PPO's clipped objective L^CLIP against the probability
ratio r for a positive and a negative advantage, and ``pg_curves.png``, the greedy return of each method below
against env steps (mean over seeds, thin lines per seed).

The idea (notes 002 part 3, 003 lectures 6-8, 004 "REINFORCE" to "Proximal Policy Optimization"): a stochastic
policy pi_theta(a | s) is improved by gradient ascent on its expected return J(theta) = E_tau[R(tau)]. The gradient
can be estimated from episodes the policy plays itself, with no model of the env, because

    grad J(theta) = E_tau[ sum_t grad log pi_theta(a_t | s_t) R(tau) ]

(the log-derivative trick: grad p = p grad log p, and the env's transition probabilities do not depend on theta, so
their log drops out of the gradient). Every method below is this estimator with less variance, or a way to take
safer and larger steps with it.
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
from thorndike.core.losses import clipped_surrogate, surrogate  # noqa: E402

SOLVED = 475.0  # CartPole-v1 counts as solved at a mean return of 475 (the maximum is 500)

# %% [markdown]
# ## The simplest policy gradient: ``reinforce`` with ``returns="total"``
#
# Play m episodes with pi_theta, then step along
#
#     g_hat = 1/m sum_i sum_t grad log pi_theta(a_t^i | s_t^i) R(tau^i)
#
# (002 part 3). Every action of an episode is pushed up in proportion to the whole episode's return: an action taken
# in a good episode is made more likely even if it came after everything that made the episode good. In code it is
# the gradient of the loss -1/m sum_i sum_t log pi(a_t | s_t) R(tau), with R(tau) a constant (no gradient through
# it). ``th.make("reinforce", ..., returns="total", baseline="none", normalize=False)`` is exactly this.
#
# ## Reward-to-go: ``returns="reward_to_go"``
#
# An action cannot change the rewards that came before it: their terms in g_hat are zero in expectation and add
# only noise. Weighing grad log pi(a_t | s_t) by G_t = sum_{k >= t} gamma^(k - t) r_k, the rewards that followed
# the action, keeps the estimator's mean and lowers its variance (004's credit-assignment quiz;
# ``tests/policy_gradient/test_reinforce.py`` checks both facts on a small MDP whose exact gradient is known).
#
# ## Baselines: ``baseline="mean"`` or ``"value"``, and ``normalize=True``
#
# Subtracting from G_t any b(s_t) that does not depend on the action leaves the mean alone too, because
# E_a[grad log pi(a | s)] = sum_a grad pi(a | s) = grad 1 = 0. A good b makes the weights small where nothing
# surprising happened: the batch's mean return (a constant) or a learned V(s_t), regressed on G_t after each policy
# step. ``normalize=True`` then standardises the weights over the batch, (A - mu) / sigma: the step's scale no
# longer grows with the returns, at the price of a slight bias (mu and sigma are estimated from the same batch).
# ``benchmarks/pg_gradient_variance.py`` measures the variance of all four estimators on one fixed policy.
#
# ## A2C: bootstrap instead of waiting for the episode's end
#
# REINFORCE needs whole episodes. An actor-critic replaces G_t - V(s_t) by an n-step advantage
# A_t = r_t + gamma r_{t+1} + ... + gamma^n V(s_{t+n}) - V(s_t), so it can update every n steps of n_envs copies
# (here 8 x 5 transitions per gradient step), with more bias (V is only an estimate) and much less variance.
#
# ## The surrogate and the importance ratio
#
# One gradient step per batch wastes data; a second step on the same batch is off-policy, since the batch was
# played by the old policy pi_old. Importance sampling corrects for it: with r_t(theta) = pi_theta(a_t | s_t) /
# pi_old(a_t | s_t), the surrogate L(theta) = E_t[r_t(theta) A_t] has, at theta = theta_old (r = 1), the same
# gradient as the policy gradient (003 lecture 8). Maximised far from theta_old it is no longer a good guide: the
# advantages were measured for pi_old. TRPO keeps KL(pi_old || pi_theta) <= delta; PPO does it with first-order steps.
#
# ## PPO-Clip: ``th.make("ppo", ...)``
#
#     L^CLIP(theta) = E_t[ min(r_t A_t, clip(r_t, 1 - eps, 1 + eps) A_t) ]
#
# The figure ``pg_clip.png`` draws it for one sample. With A > 0 (left), the objective rises with r until
# r = 1 + eps and is flat beyond: no incentive to make a good action more than 20% more likely in one update. With
# A < 0 (right), it is flat below r = 1 - eps: no incentive to push a bad action down further. Where the min picks
# the unclipped r A (r < 1 - eps with A > 0, r > 1 + eps with A < 0), the objective is not clipped: a change that
# made the objective worse can always be undone. L^CLIP is never above r A (dashed), a pessimistic bound.
#
# ## PPO with an adaptive KL penalty: ``objective="kl_penalty"``
#
#     L^KLPEN(theta) = E_t[ r_t A_t - beta KL(pi_old(. | s_t) || pi_theta(. | s_t)) ]
#
# the PPO paper's other objective: TRPO's constraint as a penalty. beta adapts after each iteration to the batch's
# mean KL d: halved when d < d_targ / 1.5, doubled when d > 1.5 d_targ (``kl_target``, 0.01 here).

# ## Reading the figure
#
# Steps are env steps of all copies; a point is the greedy policy's mean return over the evaluation episodes. On
# seed 0 at the full budget (100k steps), PPO with the KL penalty stays at 500 from about 25k steps and PPO-Clip
# from about 40k (after a dip at 35k): many epochs per batch use each transition many times. A2C touches 500 as
# early, at 25-30k, then falls back to about 140 before it settles after 60k (one small gradient step per 40
# transitions, with nothing that bounds how far a step moves the policy). REINFORCE with reward-to-go, with or
# without the learned baseline, gets to 500 between 45k and 60k; with the total return it is still below 400 at
# 100k, the price of its variance. One seed says little, and CartPole's greedy returns jump: ``--seeds 0 1 2``
# shows the spread.

# Each method: the algorithm and the fields changed from its defaults (th.make adds the tuned CartPole values of
# thorndike/configs/<algorithm>.yaml where there are some, as for PPO).
METHODS: dict[str, dict] = {
    "REINFORCE, total return": {"algorithm": "reinforce", "returns": "total", "baseline": "none", "normalize": False},
    "REINFORCE, reward-to-go": {"algorithm": "reinforce", "returns": "reward_to_go", "baseline": "none",
                                "normalize": False},
    "REINFORCE, reward-to-go - V, normalised": {"algorithm": "reinforce", "returns": "reward_to_go",
                                                "baseline": "value", "normalize": True},
    "A2C": {"algorithm": "a2c"},
    "PPO-Clip": {"algorithm": "ppo"},
    "PPO, adaptive KL penalty": {"algorithm": "ppo", "objective": "kl_penalty"},
}


def train(label: str, seed: int, steps: int, out: Path, eval_every: int, eval_episodes: int,
          extra: dict) -> dict[str, list[float]]:
    """Train one method for ``steps`` env steps; its greedy return against env steps (every ``eval_every``)."""
    fields = dict(METHODS[label])
    algorithm = fields.pop("algorithm")
    size = extra.get(algorithm, {})  # --quick: smaller batches, so every method takes a few steps
    agent = th.make(algorithm, env="CartPole-v1", seed=seed, run_root=str(out), progress=False, tensorboard=False,
                    pictures=False, eval_every=eval_every, eval_episodes=eval_episodes, **fields, **size)
    agent.learn(steps)
    progress = read_progress(agent.run_dir)
    curve: dict[str, list[float]] = {"step": [], "greedy_return": []}
    for step, eval_mean in zip(progress["step"], progress["eval_mean"], strict=True):
        if not math.isnan(eval_mean):
            curve["step"].append(step)
            curve["greedy_return"].append(eval_mean)
    print(f"{label:42s} seed {seed}: greedy return {curve['greedy_return'][-1]:6.1f} at {agent.global_step} steps "
          f"(best {max(curve['greedy_return']):6.1f})")
    return curve


def plot_clip(path: Path, eps: float = 0.2) -> Path:
    """L^CLIP and the unclipped r A against the ratio r, for A = +1 (left) and A = -1 (right)."""
    ratio = torch.linspace(0.0, 2.0, 401)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.6), dpi=110)
    for ax, advantage in zip(axes, (1.0, -1.0), strict=True):
        adv = torch.full_like(ratio, advantage)
        ax.plot(ratio, surrogate(ratio, adv), color="C7", linestyle="--", linewidth=1.2, label="r A (unclipped)")
        ax.plot(ratio, clipped_surrogate(ratio, adv, eps), color="C0", linewidth=2.2,
                label=f"L^CLIP = min(r A, clip(r, 1-eps, 1+eps) A), eps = {eps}")
        for edge in (1 - eps, 1 + eps):
            ax.axvline(edge, color="black", linestyle=":", linewidth=0.8,
                       label="r = 1 - eps and 1 + eps" if edge < 1 else None)
        ax.axvline(1.0, color="C3", linewidth=0.8, alpha=0.6, label="r = 1: pi_theta = pi_old")
        sign = "A > 0: a better action than average" if advantage > 0 else "A < 0: a worse action than average"
        ax.set(xlabel="probability ratio r = pi_theta(a|s) / pi_old(a|s)", ylabel="objective (to maximise)",
               title=f"{sign} (A = {advantage:+.0f})")
        ax.grid(alpha=0.3)
    fig.legend(*axes[0].get_legend_handles_labels(), loc="lower center", ncol=2, fontsize=8)  # one, below both
    fig.suptitle("PPO's clipped surrogate for one sample: flat (no gradient) beyond 1+eps for A > 0, below 1-eps "
                 "for A < 0", fontsize=10)
    fig.tight_layout(rect=(0, 0.12, 1, 1))
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_curves(curves: dict[str, list[dict[str, list[float]]]], path: Path) -> Path:
    """Greedy return against env steps: the mean over seeds bold, each seed thin."""
    fig, ax = plt.subplots(figsize=(12, 5), dpi=110)
    for i, (label, runs) in enumerate(curves.items()):
        color = f"C{i}"
        n = min(len(r["greedy_return"]) for r in runs)
        mean = torch.tensor([r["greedy_return"][:n] for r in runs]).mean(0)
        ax.plot(runs[0]["step"][:n], mean, color=color, linewidth=2, marker="o", markersize=3,
                label=f"{label} (mean of {len(runs)})")
        for run in runs if len(runs) > 1 else []:
            ax.plot(run["step"], run["greedy_return"], color=color, linewidth=0.7, alpha=0.3)
    ax.axhline(SOLVED, color="black", linestyle="--", linewidth=0.8, label=f"solved ({SOLVED:.0f})")
    ax.set(xlabel="env steps", ylabel="greedy return (mean of evaluation episodes)",
           title="From REINFORCE to PPO on CartPole-v1")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside the curves, not over them
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny budgets, one seed (what the test suite runs)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--out", default="runs/tutorial-pg", help="folder for the runs and the figures")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    plot_clip(out / "pg_clip.png")
    if args.quick:  # smaller batches and networks, so that every method takes a few steps in 1,500 env steps
        seeds, steps, eval_every, eval_episodes = [0], 1_500, 500, 2
        extra = {"reinforce": {"n_episodes": 4, "hidden_sizes": (16,)}, "a2c": {"hidden_sizes": (16,)},
                 "ppo": {"n_envs": 4, "n_steps": 64, "minibatch_size": 64, "n_epochs": 2, "hidden_sizes": (16,)}}
    else:
        seeds, steps, eval_every, eval_episodes, extra = args.seeds, args.steps, 5_000, 10, {}
    curves = {label: [train(label, seed, steps, out, eval_every, eval_episodes, extra) for seed in seeds]
              for label in METHODS}
    return plot_curves(curves, out / "pg_curves.png")


if __name__ == "__main__":
    print(f"figure: {main()}")
