"""Optimal liquidation (issue #19): PPO or SAC against the Almgren-Chriss optimum and TWAP, for several risk aversions.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/liquidation.py [--lams 3e-8 3e-7 1e-6] [--seeds 0-4] [--steps 30000]
        [--eval-paths 10000] [--eval-seed 12345] [--workers 1] [--set field=value ...] [--env-set field=value ...]
        [--tag NAME]

The market is :class:`thorndike.envs.finance.LiquidationParams`' default: the Almgren & Chriss (2000) example (sell
X = 1e6 shares at S_0 = $50 with sigma = 0.95 $/share/day^1/2, i.e. 30% a year, permanent impact gamma = 2.5e-7,
temporary impact eta = 2.5e-6, in T = 5 days), traded in N = 10 steps of half a day. For each risk aversion lam and
seed, ``th.make(algo, env="thorndike/OptimalLiquidation-v0", env_kwargs={"lam": lam, **env_set}, seed=s)`` (the
tuned values of ``thorndike/configs/<algo>.yaml``) trains for ``--steps`` env steps; ``--env-set`` defaults to
``reward=expected n_returns=0``: the reward without its zero-mean price-noise term (same expected return for every
policy, far less variance) and no past returns in the observation (they predict nothing under this model). Its
deterministic policy, the closed-form schedule and TWAP then play the same ``--eval-paths`` price paths of the
default env (the same seed, so the comparison is paired) and are scored on the real cost.

Two estimates of E[C] + lam Var[C] are reported per policy (see ``PathCosts.influence``): ``sample`` (the sample mean
plus lam times the sample variance of the cost) and ``control`` (the same expectation with the zero-mean price-noise
term taken out: exact for a static schedule, low-noise for the agent). A seed *passes* when, on the control estimate,
its objective is within 2% of the closed-form optimum (the analytic value) and it beats TWAP: the paired difference
agent - TWAP is below zero by more than two standard errors. Near the TWAP limit (small kappa T) the whole gain over
TWAP is a fraction of a percent, so the 2% criterion alone would pass TWAP itself; the paired difference is the test.
A deterministic policy that sees only the inventory and the time is a static schedule: its control estimate is then
its exact objective (standard error 0), and so is its difference to TWAP; the sample estimates keep their noise.
Writes ``benchmarks/results/liquidation[_<tag>].{json,md,png}``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from thorndike.experiment import parse_seeds

RESULTS = Path(__file__).parent / "results"
ENV_ID = "thorndike/OptimalLiquidation-v0"
ALGO = "ppo"
GAP = 0.02  # within 2% of the optimum
Z = 2.0  # "beats TWAP": the paired difference is more than Z standard errors below 0


def score(policy: Any, lam: float, paths: int, seed: int) -> dict[str, Any]:
    """Play ``policy`` on ``paths`` paths (seeded: the same paths for every policy) and summarise what matters."""
    from thorndike.envs.finance import simulate

    costs = simulate(policy, paths, seed, lam=lam)
    return {"costs": costs, "sample": costs.objective("sample"), "control": costs.objective("control"),
            "mean_cost": costs.mean_cost(), "variance": costs.variance(),
            "mean_holdings": (costs.holdings.mean(0) / costs.holdings[0, 0]).tolist(),
            "sd_holdings": (costs.holdings.std(0) / costs.holdings[0, 0]).tolist()}


def run_seed(algo: str, lam: float, seed: int, steps: int, eval_paths: int, eval_seed: int, fields: dict[str, Any],
             env_fields: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train one seed for one lam (on the env with ``env_fields`` on top of the market's defaults), then score it,
    the closed form and TWAP on the same paths of the default env (the real cost; an agent trained with fewer
    observed returns sees the first columns of the observation)."""
    import torch

    import thorndike as th
    from thorndike.envs.finance import LiquidationParams, almgren_chriss, paired_difference, schedule_policy, twap

    torch.set_num_threads(1)
    p = LiquidationParams(lam=lam)
    trained = LiquidationParams(**{**(env_fields or {}), "lam": lam})
    width = 2 + trained.n_returns
    with tempfile.TemporaryDirectory() as root:
        started = time.perf_counter()
        agent = th.make(algo, env=ENV_ID, env_kwargs={**(env_fields or {}), "lam": lam}, seed=seed, run_root=root,
                        threads=1, progress=False, tensorboard=False, pictures=False, checkpoint_every=2**62,
                        **fields)
        agent.learn(steps)
        wall = time.perf_counter() - started
        learned = score(lambda obs: agent.act(obs[:, :width]), lam, eval_paths, eval_seed)
    ac = almgren_chriss(p.X, p.T, p.N, p.sigma, p.eta, p.gamma, lam)
    closed = score(schedule_policy(ac.holdings), lam, eval_paths, eval_seed)
    flat = score(schedule_policy(twap(p.X, p.N)), lam, eval_paths, eval_seed)
    row: dict[str, Any] = {"lam": lam, "seed": seed, "wall_s": wall, "kappa_T": ac.kappa * p.T,
                           "optimum": ac.objective(lam), "optimum_holdings": (ac.holdings / p.X).tolist()}
    for name, result in (("agent", learned), ("ac", closed), ("twap", flat)):
        row[name] = {k: v for k, v in result.items() if k != "costs"}
    for estimator in ("sample", "control"):
        row[f"vs_ac_{estimator}"] = paired_difference(learned["costs"], closed["costs"], estimator)
        row[f"vs_twap_{estimator}"] = paired_difference(learned["costs"], flat["costs"], estimator)
    diff, se = row["vs_twap_control"]
    row["gap"] = learned["control"][0] / row["optimum"] - 1
    row["within_2pct"] = row["gap"] <= GAP
    row["beats_twap"] = diff + Z * se < 0
    row["passes"] = row["within_2pct"] and row["beats_twap"]
    return row


def figure(rows: list[dict[str, Any]], lams: list[float], path: Path, algo: str) -> None:
    """Top row, per lam: the learned (each seed, mean over paths), optimal and TWAP inventory trajectories; bottom
    row: the same minus TWAP's (near the TWAP limit the curves overlap); last column: every agent's (Var, E) on the
    efficient frontier."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from thorndike.envs.finance import LiquidationParams, efficient_frontier, twap

    p = LiquidationParams()
    n = len(lams)
    fig = plt.figure(figsize=(4.3 * (n + 1), 7.6))
    grid = fig.add_gridspec(2, n + 1)
    t = np.linspace(0, p.T, p.N + 1)
    flat = twap(1.0, p.N)
    for i, lam in enumerate(lams):
        mine = [r for r in rows if r["lam"] == lam]
        ax, ax_diff = fig.add_subplot(grid[0, i]), fig.add_subplot(grid[1, i])
        for j, r in enumerate(mine):
            label = f"{algo.upper()} seeds (mean over paths)" if j == 0 else None
            ax.plot(t, r["agent"]["mean_holdings"], color="tab:blue", alpha=0.6, lw=1, label=label)
            ax_diff.plot(t, np.array(r["agent"]["mean_holdings"]) - flat, color="tab:blue", alpha=0.6, lw=1,
                         label=label)
        optimum = np.array(mine[0]["optimum_holdings"])
        ax.plot(t, optimum, "k--", lw=2, label="Almgren-Chriss")
        ax.plot(t, flat, color="tab:orange", lw=1.5, label="TWAP")
        ax_diff.plot(t, optimum - flat, "k--", lw=2, label="Almgren-Chriss")
        ax_diff.axhline(0.0, color="tab:orange", lw=1.5, label="TWAP")
        passed = sum(r["passes"] for r in mine)
        ax.set_title(f"lam = {lam:g}, kappa T = {mine[0]['kappa_T']:.2f}: {passed}/{len(mine)} pass")
        ax.set_ylabel("inventory (fraction of X)")
        ax_diff.set_ylabel("inventory minus TWAP's")
        ax_diff.set_xlabel("time (days)")
        for axis in (ax, ax_diff):
            axis.grid(alpha=0.3)
            axis.legend(fontsize=7)
    ax = fig.add_subplot(grid[:, n])
    lam_grid = np.geomspace(min(lams) / 10, max(lams) * 10, 200)
    front = efficient_frontier(p.X, p.T, p.N, p.sigma, p.eta, p.gamma, np.concatenate([[0.0], lam_grid]))
    ax.plot(front.variance / 1e12, front.expected_cost / 1e6, "k-", lw=1, label="efficient frontier")
    markers = dict(zip(lams, "o^s*Dv"))
    for lam in lams:
        mine = [r for r in rows if r["lam"] == lam]
        ac = mine[0]["ac"]
        ax.plot(ac["variance"][0] / 1e12, ac["mean_cost"][0] / 1e6, markers[lam], mfc="none", mec="k", ms=11,
                label=f"AC, lam={lam:g}")
        ax.plot([r["agent"]["variance"][0] / 1e12 for r in mine], [r["agent"]["mean_cost"][0] / 1e6 for r in mine],
                markers[lam], color="tab:blue", alpha=0.7, ls="none", label=f"{algo.upper()} seeds, lam={lam:g}")
    twap_row = rows[0]["twap"]
    ax.plot(twap_row["variance"][0] / 1e12, twap_row["mean_cost"][0] / 1e6, "o", color="tab:orange", label="TWAP")
    ax.set_xlabel("Var[C] ($^2 x 1e12, sample over the paths)")
    ax.set_ylabel("E[C] ($ x 1e6, sample mean)")
    ax.set_title("agents on the efficient frontier")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--algo", default=ALGO, choices=["ppo", "sac"])
    parser.add_argument("--lams", nargs="+", type=float, default=[3e-8, 3e-7, 1e-6])
    parser.add_argument("--seeds", default="0-4")
    parser.add_argument("--steps", type=int, default=30_000)
    parser.add_argument("--eval-paths", type=int, default=10_000)
    parser.add_argument("--eval-seed", type=int, default=12345)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE")
    parser.add_argument("--env-set", nargs="*", default=["reward=expected", "n_returns=0"], metavar="FIELD=VALUE",
                        help="training env fields (LiquidationParams); the default drops the reward's zero-mean price"
                        " noise and the uninformative returns")
    parser.add_argument("--tag", default="")
    parser.add_argument("--replot", action="store_true", help="redraw the figure from the results' JSON, no runs")
    args = parser.parse_args(argv)
    name = f"liquidation{'_' + args.tag if args.tag else ''}"
    if args.replot:
        saved = json.loads((RESULTS / f"{name}.json").read_text())
        lams = sorted({r["lam"] for r in saved["rows"]})
        figure(saved["rows"], lams, RESULTS / f"{name}.png", saved["algo"])
        return
    fields = {k: yaml.safe_load(v) for k, _, v in (item.partition("=") for item in args.set)}
    env_fields = {k: yaml.safe_load(v) for k, _, v in (item.partition("=") for item in args.env_set)}
    seeds = parse_seeds([args.seeds])
    rows = []
    with ProcessPoolExecutor(args.workers) as pool:
        futures = [pool.submit(run_seed, args.algo, lam, s, args.steps, args.eval_paths, args.eval_seed, fields,
                               env_fields)
                   for lam in args.lams for s in seeds]
        for future in futures:
            r = future.result()
            rows.append(r)
            d, se = r["vs_twap_control"]
            print(f"lam {r['lam']:g} seed {r['seed']}: agent {r['agent']['control'][0]:,.0f} +/- "
                  f"{r['agent']['control'][1]:,.0f} (sample {r['agent']['sample'][0]:,.0f} +/- "
                  f"{r['agent']['sample'][1]:,.0f}), optimum {r['optimum']:,.0f}, gap {r['gap']:+.2%}, "
                  f"vs TWAP {d:+,.0f} +/- {se:,.0f}: {'PASS' if r['passes'] else 'fail'} ({r['wall_s']:.0f} s)",
                  flush=True)
    command = "PYTHONPATH=$PWD .venv/bin/python benchmarks/liquidation.py " + " ".join(sys.argv[1:])
    RESULTS.mkdir(exist_ok=True)
    figure(rows, args.lams, RESULTS / f"{name}.png", args.algo)
    summary = {"algo": args.algo, "command": command, "steps": args.steps, "eval_paths": args.eval_paths,
               "eval_seed": args.eval_seed, "fields": fields, "env_fields": env_fields,
               "criteria": {"gap": GAP, "z": Z}, "rows": rows}
    (RESULTS / f"{name}.json").write_text(json.dumps(summary, indent=1))
    passed = sum(r["passes"] for r in rows)
    lines = [f"# {args.algo.upper()} on optimal liquidation: {passed}/{len(rows)} runs within {GAP:.0%} of "
             f"the Almgren-Chriss optimum and beating TWAP", "", f"`{command}`", "",
             f"Objective E[C] + lam Var[C] in $ over {args.eval_paths:,} paired paths (eval seed {args.eval_seed}); "
             "'control' and 'sample' are the two estimators (see the script's docstring); +/- one standard error. "
             "Pass: control gap <= 2% and agent - TWAP < -2 s.e.", "",
             "| lam | kappa T | seed | agent (control) | agent (sample) | optimum | TWAP | gap | agent - TWAP (paired)"
             " | agent - AC (paired, sample) | pass | wall s |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        lines.append(
            f"| {r['lam']:g} | {r['kappa_T']:.2f} | {r['seed']} | {r['agent']['control'][0]:,.0f} +/- "
            f"{r['agent']['control'][1]:,.0f} | {r['agent']['sample'][0]:,.0f} +/- {r['agent']['sample'][1]:,.0f} | "
            f"{r['optimum']:,.0f} | {r['twap']['control'][0]:,.0f} | {r['gap']:+.2%} | {r['vs_twap_control'][0]:+,.0f}"
            f" +/- {r['vs_twap_control'][1]:,.0f} | {r['vs_ac_sample'][0]:+,.0f} +/- {r['vs_ac_sample'][1]:,.0f} | "
            f"{'yes' if r['passes'] else 'no'} | {r['wall_s']:.0f} |")
    lines += ["", "Passing runs per lam: " + ", ".join(
        f"{lam:g}: {sum(r['passes'] for r in rows if r['lam'] == lam)}/{sum(r['lam'] == lam for r in rows)}"
        for lam in args.lams)]
    (RESULTS / f"{name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines[-1:]))


if __name__ == "__main__":
    main()
