"""Tutorial: optimal liquidation. The Almgren-Chriss closed form, the notes' error, TWAP and VWAP, the efficient
frontier, and an RL agent scored against them on the same price paths.

Run it as a script (``--quick`` is the few-second version the test suite runs):

    .venv/bin/python docs/tutorials/liquidation.py [--quick] [--lam 1e-6] [--steps 3000000] [--out runs/tutorial-liq]

It writes ``liquidation.png`` into ``--out``: the schedules (closed form, the notes' cosh formula, TWAP, VWAP and the
agent's) and the efficient frontier with each schedule's (Var[C], E[C]).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

import thorndike as th  # noqa: E402
from thorndike.envs.finance import (  # noqa: E402
    LIQUIDATION_ID,
    LiquidationParams,
    almgren_chriss,
    continuous_kappa,
    efficient_frontier,
    notes_holdings,
    paired_difference,
    schedule_cost,
    schedule_policy,
    simulate,
    twap,
    vwap,
)

# %% [markdown]
# ## The problem
#
# Sell X shares by time T in N steps. Selling fast costs through the temporary impact (each step's shares sell
# eta n_k / tau below the price); selling slowly leaves the inventory exposed to the price's random walk. With
# holdings x_k after step k (x_0 = X, x_N = 0) and n_k = x_{k-1} - x_k, a fixed schedule's cost C (the
# implementation shortfall, X S_0 minus the cash received) has
#
#     E[C] = 1/2 gamma X^2 + (eta_tilde / tau) sum n_k^2, Var[C] = sigma^2 tau sum x_k^2, eta_tilde = eta - gamma tau/2
#
# and Almgren and Chriss minimise E[C] + lam Var[C]: x_k = X sinh(kappa (T - t_k)) / sinh(kappa T), with
# 2 (cosh(kappa tau) - 1) / tau^2 = lam sigma^2 / eta_tilde. Large kappa T front-loads the sales (risk matters);
# kappa -> 0 (lam -> 0) is the straight line, TWAP.
#
# ## The notes' formula
#
# The notes write x(t) = x_0 cosh(kappa (T - t)) / cosh(kappa T). It satisfies the same x'' = kappa^2 x but with
# x'(T) = 0 instead of x(T) = 0: at T it still holds x_0 / cosh(kappa T) shares (26.6% of them at kappa T = 2). The
# figure draws both. The notes' rate shares_left kappa tanh(kappa time_left) belongs to the cosh schedule; the sinh
# schedule's rate is shares_left kappa / tanh(kappa time_left), which tends to shares_left / time_left (sell the
# rest evenly) as kappa -> 0.
#
# ## TWAP, VWAP and the frontier
#
# TWAP sells X / N each step; VWAP follows a volume profile (here each day's morning half trades 1.5 times its
# afternoon). ``schedule_cost`` scores any static schedule the same way; no static schedule lies below the efficient
# frontier (E[C], Var[C]) traced by the closed form over lam.
#
# ## An agent
#
# ``thorndike/OptimalLiquidation-v0`` observes the inventory left, the time left and the last normalised price moves,
# and chooses the fraction of the remaining shares to sell. Its reward is minus each step's shortfall and risk
# penalty, so for a fixed schedule the expected return is -(E[C] + lam Var[C]) / scale. ``simulate`` plays a policy
# on many paths seeded alike, so the agent, the closed form and TWAP are compared path by path.
# ``benchmarks/liquidation.py`` trains PPO for three risk aversions and several seeds; here one short run.


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a tiny training budget (what the test suite runs)")
    parser.add_argument("--lam", type=float, default=1e-6)
    parser.add_argument("--steps", type=int, default=3_000_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/tutorial-liq")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    p, lam = LiquidationParams(lam=args.lam), args.lam
    market = (p.X, p.T, p.N, p.sigma, p.eta, p.gamma)
    cost_args = (p.T, p.sigma, p.eta, p.gamma)

    ac = almgren_chriss(*market, lam)
    kappa_t = continuous_kappa(p.sigma, p.eta, lam) * p.T
    print(f"lam = {lam:g}: discrete kappa T = {ac.kappa * p.T:.3f} (continuous {kappa_t:.3f}); E[C] = "
          f"{ac.expected_cost:,.0f}, Var[C] = {ac.variance:.4g}, objective {ac.objective(lam):,.0f}")
    volume = np.tile([1.5, 1.0], p.N // 2 + 1)[:p.N]  # each day's morning half trades 1.5 times its afternoon
    schedules = {"TWAP": twap(p.X, p.N), "VWAP (busier mornings)": vwap(p.X, volume)}
    for name, holdings in schedules.items():
        e, v = schedule_cost(holdings, *cost_args)
        print(f"{name}: E[C] = {e:,.0f}, Var[C] = {v:.4g}, objective {e + lam * v:,.0f} "
              f"({(e + lam * v) / ac.objective(lam) - 1:+.1%} vs the optimum)")
    t_fine = np.linspace(0, p.T, 201)
    wrong = notes_holdings(t_fine, p.X, p.T, ac.kappa)
    print(f"the notes' cosh schedule still holds {wrong[-1] / p.X:.1%} of X at T")

    # PPO with the tuned values of thorndike/configs/ppo.yaml: 256 native env copies, one 10-step episode each per
    # rollout; --quick stops after 20 rollouts. It trains on reward="expected" (the step's price-noise term
    # x_k sigma sqrt(tau) xi_k, zero-mean for any policy, left out: the same expected return, far less noise) and
    # without the past returns in the observation (they predict nothing here); it is scored on the real cost.
    steps = 51_200 if args.quick else args.steps
    agent = th.make("ppo", env=LIQUIDATION_ID, env_kwargs={"lam": lam, "reward": "expected", "n_returns": 0},
                    seed=args.seed, run_root=str(out), progress=False, tensorboard=False, pictures=False)
    agent.learn(steps)
    paths = 2_000 if args.quick else 10_000
    learned = simulate(lambda obs: agent.act(obs[:, :2]), paths, seed=1, lam=lam)  # inventory and time left
    closed = simulate(schedule_policy(ac.holdings), paths, seed=1, lam=lam)
    flat = simulate(schedule_policy(schedules["TWAP"]), paths, seed=1, lam=lam)
    estimate, se = learned.objective("control")
    vs_ac, vs_ac_se = paired_difference(learned, closed, "control")
    vs_twap, vs_twap_se = paired_difference(learned, flat, "control")
    print(f"PPO after {steps:,} steps: objective {estimate:,.0f} +/- {se:,.0f} ({estimate / ac.objective(lam) - 1:+.2%}"
          f" vs the optimum); agent - AC {vs_ac:+,.0f} +/- {vs_ac_se:,.0f}, agent - TWAP {vs_twap:+,.0f} +/- "
          f"{vs_twap_se:,.0f} on the same {paths:,} paths")

    fig, (ax, ax_front) = plt.subplots(1, 2, figsize=(12, 4.5), dpi=110)
    ax.plot(ac.times, ac.holdings / p.X, "k-o", ms=3, label=f"Almgren-Chriss (sinh), kappa T = {ac.kappa * p.T:.2f}")
    ax.plot(t_fine, wrong / p.X, "r:", label="notes' cosh formula (never reaches 0)")
    for name, holdings in schedules.items():
        ax.plot(ac.times, holdings / p.X, "-", lw=1, label=name)
    ax.plot(ac.times, learned.holdings.mean(0) / p.X, "b--s", ms=3, label=f"PPO, {steps:,} steps (mean over paths)")
    ax.set(xlabel="time (days)", ylabel="inventory (fraction of X)", title=f"schedules at lam = {lam:g}")
    ax.legend(fontsize=7)
    lams = np.concatenate([[0.0], np.geomspace(1e-8, 1e-4, 200)])
    front = efficient_frontier(*market, lams)
    ax_front.plot(front.variance / 1e12, front.expected_cost / 1e6, "k-", lw=1, label="efficient frontier")
    ax_front.plot(ac.variance / 1e12, ac.expected_cost / 1e6, "ko", label=f"optimum at lam = {lam:g}")
    for name, holdings in schedules.items():
        e, v = schedule_cost(holdings, *cost_args)
        ax_front.plot(v / 1e12, e / 1e6, "o", label=name)
    ax_front.plot(learned.variance()[0] / 1e12, learned.mean_cost()[0] / 1e6, "bs", label="PPO (sample over paths)")
    ax_front.set(xlabel="Var[C] ($^2 x 1e12)", ylabel="E[C] ($ x 1e6)", title="cost against risk", xscale="log")
    ax_front.legend(fontsize=7)
    for axis in (ax, ax_front):
        axis.grid(alpha=0.3)
    fig.tight_layout()
    path = out / "liquidation.png"
    fig.savefig(path)
    plt.close(fig)
    return str(path)


if __name__ == "__main__":
    print(f"figure: {main()}")
