"""Trading and portfolio agents (issue #19, part B): PPO on thorndike/Trading-v0 and thorndike/Portfolio-v0.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/trading.py [--seeds 0-4] [--tuned 0] [--trading-steps 150000]
        [--portfolio-steps 200000] [--eval-episodes 1000] [--workers 1] [--tag NAME]

Three questions, each answered per seed by ``th.make("ppo", env=..., seed=s)`` trained once and evaluated with its
deterministic policy on held-out paths (reset seeds 100,000 + i, never used in training):

1. **Mean-reverting prices** (OU on the log price, theta 0.1 per step, sigma 0.01, cost 0.001, lam 0, Discrete(3)):
   does the agent beat buy-and-hold after costs? Passes when the mean paired difference (agent minus buy-and-hold,
   on the same price paths) exceeds 2 standard errors.
2. **Driftless random walk** (GBM, mu 0, sigma 0.01, cost 0.001, lam 0): nothing predicts the next return, so every
   trade only pays costs. Does it learn to trade little? Passes when its turnover |a_t - a_{t-1}| per step is below
   0.1 (a uniformly random policy turns over 8/9 per step, always switching long/short 2).
3. **Static portfolio** (three correlated assets, returns N(mu, Sigma) i.i.d., lam 2, cost 0.001, no budget): the
   agent's weights and objective w . mu - lam w' Sigma w (computed exactly from its weights at every evaluation
   step) against the Markowitz oracle. Passes when the gap is within 5% of the oracle's objective.

``--tuned`` names the seeds whose results the settings were chosen on (reported, so the others count as held out).
Writes ``benchmarks/results/trading[_TAG].{md,json,png}``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from thorndike.experiment import parse_seeds

RESULTS = Path(__file__).parent / "results"
MEAN_REVERTING = {"process": "ou", "process_params": {"theta": 0.1, "sigma": 0.01}, "cost": 0.001, "lam": 0.0}
RANDOM_WALK = {"process": "gbm", "process_params": {"mu": 0.0, "sigma": 0.01}, "cost": 0.001, "lam": 0.0}
PORTFOLIO = {"cost": 0.001, "lam": 2.0}
PPO_TRADING = {"n_envs": 8, "n_steps": 128, "gamma": 0.9, "normalize_obs": True}
PPO_PORTFOLIO = {"n_envs": 8, "n_steps": 256, "gamma": 0.5, "normalize_obs": True, "log_std_init": -1.0}
EVAL_SEED = 100_000
TURNOVER_LIMIT = 0.1
PORTFOLIO_GAP_LIMIT = 0.05


def lockstep(make_env: Callable[[], Any], policy: Callable[[np.ndarray, int], np.ndarray], episodes: int,
             ) -> dict[str, np.ndarray]:
    """Play ``episodes`` fixed-length episodes in lockstep (one batched policy call per step), reset seeds
    EVAL_SEED + i; per episode: the return, turnover per step, and the infos of every step."""
    envs = [make_env() for _ in range(episodes)]
    obs = np.stack([env.reset(seed=EVAL_SEED + i)[0] for i, env in enumerate(envs)])
    returns, turnover, infos = np.zeros(episodes), np.zeros(episodes), []
    truncated, t = False, 0
    while not truncated:
        actions = policy(obs, t)
        steps = [env.step(a) for env, a in zip(envs, actions)]
        obs = np.stack([s[0] for s in steps])
        returns += [s[1] for s in steps]
        turnover += [s[4]["turnover"] for s in steps]
        infos.append([s[4] for s in steps])
        truncated, t = steps[0][3], t + 1
    return {"returns": returns, "turnover": turnover / t, "infos": infos}


def mean_se(x: np.ndarray) -> tuple[float, float]:
    return float(np.mean(x)), float(np.std(x, ddof=1) / math.sqrt(len(x)))


def train(env: str, env_kwargs: dict[str, Any], seed: int, steps: int, fields: dict[str, Any]) -> tuple[Any, float]:
    import thorndike as th

    with tempfile.TemporaryDirectory() as root:
        started = time.perf_counter()
        agent = th.make("ppo", env=env, env_kwargs=env_kwargs, seed=seed, run_root=root, threads=1, progress=False,
                        tensorboard=False, pictures=False, checkpoint_every=2**62, **fields)
        agent.learn(steps)
    return agent, time.perf_counter() - started


def trading_case(env_kwargs: dict[str, Any], seed: int, steps: int, episodes: int) -> dict[str, Any]:
    """Train on ``env_kwargs`` and evaluate the agent and the baselines on the same held-out paths."""
    from thorndike.envs.finance import TradingEnv

    agent, wall = train("thorndike/Trading-v0", env_kwargs, seed, steps, PPO_TRADING)
    rng = np.random.default_rng(seed)
    policies = {
        "agent": lambda obs, t: agent.act(obs),
        "buy_and_hold": lambda obs, t: np.full(len(obs), 2),
        "flat": lambda obs, t: np.full(len(obs), 1),
        "random": lambda obs, t: rng.integers(0, 3, len(obs)),
        "always_switching": lambda obs, t: np.full(len(obs), 2 if t % 2 == 0 else 0),
    }
    out: dict[str, Any] = {"wall_s": wall}
    played = {}
    for name, policy in policies.items():
        played[name] = lockstep(lambda: TradingEnv(**env_kwargs), policy, episodes)
        mean, se = mean_se(played[name]["returns"])
        out[name] = {"return_mean": mean, "return_se": se, "turnover_per_step": float(played[name]["turnover"].mean())}
    diff = played["agent"]["returns"] - played["buy_and_hold"]["returns"]
    out["agent_minus_buy_and_hold"] = dict(zip(("mean", "se"), mean_se(diff)))
    out["agent"]["cost_per_episode"] = float(np.mean([sum(i["cost"] for i in step) for step in
                                                      zip(*played["agent"]["infos"])]))
    # one episode to draw: the price and the agent's position on held-out path 0
    example = TradingEnv(**env_kwargs)
    example.reset(seed=EVAL_SEED)
    out["example"] = {"prices": example.prices.tolist(), "window": example.window,
                      "positions": [step[0]["position"] for step in played["agent"]["infos"]]}
    return out


def portfolio_case(seed: int, steps: int, episodes: int) -> dict[str, Any]:
    import torch

    from thorndike.envs.finance import PortfolioEnv, markowitz_weights, portfolio_objective
    from thorndike.envs.finance.portfolio import DEFAULT_COV, DEFAULT_MU

    agent, wall = train("thorndike/Portfolio-v0", PORTFOLIO, seed, steps, PPO_PORTFOLIO)
    mu, cov = torch.tensor(DEFAULT_MU, dtype=torch.float64), torch.tensor(DEFAULT_COV, dtype=torch.float64)
    lam = PORTFOLIO["lam"]
    oracle = markowitz_weights(mu, cov, lam)
    make_env = lambda: PortfolioEnv(**PORTFOLIO)  # noqa: E731
    oracle_action = (oracle / make_env().max_weight).numpy()
    played = lockstep(make_env, lambda obs, t: agent.act(obs), episodes)
    by_oracle = lockstep(make_env, lambda obs, t: np.tile(oracle_action, (len(obs), 1)), episodes)
    weights = torch.tensor(np.array([[i["weights"] for i in step] for step in played["infos"]]))  # [T, E, K]
    objective = portfolio_objective(weights, mu, cov, lam)  # exact, per step and episode: no return noise
    best = portfolio_objective(oracle, mu, cov, lam).item()
    diff = played["returns"] - by_oracle["returns"]
    return {"wall_s": wall, "oracle_weights": oracle.tolist(), "oracle_objective": best,
            "agent_weights_mean": weights.mean((0, 1)).tolist(), "agent_weights_sd": weights.std((0, 1)).tolist(),
            "agent_objective": objective.mean().item(), "gap": (best - objective.mean().item()) / best,
            "agent_turnover_per_step": float(played["turnover"].mean()),
            "episode_return": dict(zip(("mean", "se"), mean_se(played["returns"]))),
            "oracle_episode_return": dict(zip(("mean", "se"), mean_se(by_oracle["returns"]))),
            "agent_minus_oracle_return": dict(zip(("mean", "se"), mean_se(diff)))}


def run_seed(seed: int, trading_steps: int, portfolio_steps: int, episodes: int) -> dict[str, Any]:
    import torch

    torch.set_num_threads(1)
    return {"seed": seed,
            "mean_reverting": trading_case(MEAN_REVERTING, seed, trading_steps, episodes),
            "random_walk": trading_case(RANDOM_WALK, seed, trading_steps, episodes),
            "portfolio": portfolio_case(seed, portfolio_steps, max(episodes // 5, 50))}


def passes(row: dict[str, Any]) -> dict[str, bool]:
    d = row["mean_reverting"]["agent_minus_buy_and_hold"]
    return {"beats_buy_and_hold": d["mean"] > 2 * d["se"],
            "trades_little": row["random_walk"]["agent"]["turnover_per_step"] < TURNOVER_LIMIT,
            "near_markowitz": row["portfolio"]["gap"] < PORTFOLIO_GAP_LIMIT}


def draw(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(12, 8.5))
    seeds = [r["seed"] for r in rows]
    x = np.arange(len(rows))
    ax = axes[0, 0]
    for k, (name, colour) in enumerate((("agent", "C0"), ("buy_and_hold", "C1"), ("random", "C3"))):
        means = [r["mean_reverting"][name]["return_mean"] for r in rows]
        ses = [r["mean_reverting"][name]["return_se"] for r in rows]
        ax.errorbar(x + (k - 1) * 0.2, means, yerr=ses, fmt="o", color=colour, capsize=3, label=name)
    ax.axhline(0, color="grey", lw=0.8)
    ax.set(xticks=x, xticklabels=seeds, xlabel="seed", ylabel="episode return (100 steps), mean +/- se",
           title="mean-reverting prices (OU): return after costs")
    low = min(r["mean_reverting"]["random"]["return_mean"] for r in rows)
    ax.set_ylim(bottom=1.8 * min(low, -0.01))  # room under the points for the legend
    ax.legend(loc="lower center", ncol=3, fontsize=8)
    ax = axes[0, 1]
    ax.bar(x, [r["random_walk"]["agent"]["turnover_per_step"] for r in rows], color="C0", label="agent")
    for name, colour in (("random", "C3"), ("always_switching", "C4")):
        ax.axhline(np.mean([r["random_walk"][name]["turnover_per_step"] for r in rows]), color=colour, ls="--",
                   label=name)
    ax.axhline(TURNOVER_LIMIT, color="k", ls=":", label=f"pass: < {TURNOVER_LIMIT}")
    ax.set(yscale="log", xticks=x, xticklabels=seeds, xlabel="seed", ylabel="turnover |a_t - a_(t-1)| per step",
           title="driftless random walk: how much it trades")
    ax.legend(fontsize=8)
    ax = axes[1, 0]
    example = rows[0]["mean_reverting"]["example"]
    prices, w = np.array(example["prices"]), example["window"]
    steps = np.arange(len(example["positions"]))
    ax.plot(np.arange(-w, len(prices) - w), np.log(prices / 100.0), color="C7", label="log(price / 100)")
    ax.set(xlabel="step", ylabel="log price - mean", title=f"seed {rows[0]['seed']}: one held-out OU episode")
    twin = ax.twinx()
    twin.step(steps, example["positions"], where="post", color="C0", label="agent position")
    twin.set(ylabel="position", ylim=(-1.3, 1.3), yticks=(-1, 0, 1))
    ax.legend(loc="upper left", fontsize=8)
    twin.legend(loc="upper right", fontsize=8)
    ax = axes[1, 1]
    oracle = np.array(rows[0]["portfolio"]["oracle_weights"])
    K = len(oracle)
    ax.bar(np.arange(K), oracle, width=0.5, color="C2", alpha=0.5, label="Markowitz oracle")
    for j, r in enumerate(rows):
        ax.errorbar(np.arange(K) + (j - (len(rows) - 1) / 2) * 0.06, r["portfolio"]["agent_weights_mean"],
                    yerr=r["portfolio"]["agent_weights_sd"], fmt="o", ms=4, color="C0",
                    label="agent per seed (mean +/- sd over steps)" if j == 0 else None)
    gaps = ", ".join(f"{100 * r['portfolio']['gap']:.1f}%" for r in rows)
    ax.set(xticks=np.arange(K), xticklabels=[f"asset {i}" for i in range(K)], ylabel="weight",
           title=f"static portfolio: agent vs Markowitz weights\nobjective gap per seed: {gaps}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0-4")
    parser.add_argument("--tuned", default="0", help="seeds the settings were chosen on")
    parser.add_argument("--trading-steps", type=int, default=150_000)
    parser.add_argument("--portfolio-steps", type=int, default=200_000)
    parser.add_argument("--eval-episodes", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--tag", default="")
    parser.add_argument("--redraw", action="store_true", help="redraw the figure and table from the saved json")
    args = parser.parse_args(argv)
    name = f"trading{'_' + args.tag if args.tag else ''}"
    if args.redraw:
        summary = json.loads((RESULTS / f"{name}.json").read_text())
        draw(summary["rows"], RESULTS / f"{name}.png")
        (RESULTS / f"{name}.md").write_text(report(summary))
        return
    seeds, tuned = parse_seeds([args.seeds]), set(parse_seeds([args.tuned]))
    rows = []
    with ProcessPoolExecutor(args.workers) as pool:
        futures = [pool.submit(run_seed, s, args.trading_steps, args.portfolio_steps, args.eval_episodes)
                   for s in seeds]
        for future in futures:
            row = future.result()
            row["passes"] = passes(row)
            rows.append(row)
            mr, rw, pf = row["mean_reverting"], row["random_walk"], row["portfolio"]
            print(f"seed {row['seed']}: OU agent {mr['agent']['return_mean']:.4f} vs buy-and-hold "
                  f"{mr['buy_and_hold']['return_mean']:.4f} (diff {mr['agent_minus_buy_and_hold']['mean']:.4f} +/- "
                  f"{mr['agent_minus_buy_and_hold']['se']:.4f}); random walk turnover "
                  f"{rw['agent']['turnover_per_step']:.3f}; portfolio gap {100 * pf['gap']:.2f}%; {row['passes']}",
                  flush=True)
    command = "PYTHONPATH=$PWD .venv/bin/python benchmarks/trading.py " + " ".join(sys.argv[1:] if argv is None
                                                                                    else argv)
    RESULTS.mkdir(exist_ok=True)
    counts = {k: sum(r["passes"][k] for r in rows) for k in rows[0]["passes"]}
    held_out = [r for r in rows if r["seed"] not in tuned]
    counts_held = {k: sum(r["passes"][k] for r in held_out) for k in rows[0]["passes"]}
    summary = {"name": name, "command": command, "seeds": seeds, "tuned_on": sorted(tuned),
               "trading_steps": args.trading_steps, "portfolio_steps": args.portfolio_steps,
               "eval_episodes": args.eval_episodes,
               "mean_reverting": MEAN_REVERTING, "random_walk": RANDOM_WALK, "portfolio": PORTFOLIO,
               "ppo_trading": PPO_TRADING, "ppo_portfolio": PPO_PORTFOLIO, "passes": counts,
               "passes_held_out": counts_held, "rows": rows}
    (RESULTS / f"{name}.json").write_text(json.dumps(summary, indent=1))
    draw(rows, RESULTS / f"{name}.png")
    (RESULTS / f"{name}.md").write_text(report(summary))
    print(json.dumps({"passes": counts, "passes_held_out": counts_held, "seeds": len(rows),
                      "held_out_seeds": len(held_out)}))


def report(summary: dict[str, Any]) -> str:
    rows, n, episodes = summary["rows"], len(summary["rows"]), summary["eval_episodes"]
    held = n - sum(r["seed"] in summary["tuned_on"] for r in rows)
    p, ph = summary["passes"], summary["passes_held_out"]
    lines = [
        "# Trading and portfolio agents (PPO): mean reversion, a random walk, and the Markowitz oracle", "",
        f"`{summary['command']}`", "",
        f"Seeds {summary['seeds']}; settings chosen on seed(s) {summary['tuned_on']} ({held} seeds not tuned on). "
        f"PPO {summary['trading_steps']:,} steps per trading run, {summary['portfolio_steps']:,} on the portfolio; "
        f"deterministic policies evaluated on {episodes} held-out price paths, the same for every seed and policy "
        f"(portfolio: {max(episodes // 5, 50)} episodes of 20 steps). Episode = 100 decisions, cost 0.001 per unit of "
        "position changed, lam 0.", "",
        f"- beats buy-and-hold on OU after costs (paired diff > 2 se): **{p['beats_buy_and_hold']}/{n}** "
        f"(held-out {ph['beats_buy_and_hold']}/{held})",
        f"- trades little on the driftless random walk (turnover per step < {TURNOVER_LIMIT}): "
        f"**{p['trades_little']}/{n}** (held-out {ph['trades_little']}/{held})",
        f"- static portfolio within {100 * PORTFOLIO_GAP_LIMIT:.0f}% of the Markowitz objective: "
        f"**{p['near_markowitz']}/{n}** (held-out {ph['near_markowitz']}/{held})", "",
        "## Mean-reverting prices (OU on log price, theta 0.1, sigma 0.01 per step)", "",
        "| seed | agent return | buy-and-hold | agent - B&H | random | agent turnover/step | agent cost/episode "
        "| train s |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        m = r["mean_reverting"]
        d = m["agent_minus_buy_and_hold"]
        lines.append(f"| {r['seed']} | {m['agent']['return_mean']:.4f} +/- {m['agent']['return_se']:.4f} | "
                     f"{m['buy_and_hold']['return_mean']:.4f} +/- {m['buy_and_hold']['return_se']:.4f} | "
                     f"{d['mean']:.4f} +/- {d['se']:.4f} | {m['random']['return_mean']:.4f} | "
                     f"{m['agent']['turnover_per_step']:.3f} | {m['agent']['cost_per_episode']:.4f} | "
                     f"{m['wall_s']:.0f} |")
    lines += ["", "## Driftless random walk (GBM, mu 0, sigma 0.01 per step)", "",
              "| seed | agent turnover/step | random | always switching | agent return | buy-and-hold | flat "
              "| train s |",
              "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        m = r["random_walk"]
        lines.append(f"| {r['seed']} | {m['agent']['turnover_per_step']:.4f} | {m['random']['turnover_per_step']:.3f}"
                     f" | {m['always_switching']['turnover_per_step']:.3f} | {m['agent']['return_mean']:.4f} +/- "
                     f"{m['agent']['return_se']:.4f} | {m['buy_and_hold']['return_mean']:.4f} +/- "
                     f"{m['buy_and_hold']['return_se']:.4f} | {m['flat']['return_mean']:.4f} | {m['wall_s']:.0f} |")
    oracle = rows[0]["portfolio"]
    lines += ["", "## Static portfolio (3 assets, lam 2, cost 0.001, no budget)", "",
              f"Markowitz oracle w* = Sigma^-1 mu / (2 lam) = {np.round(oracle['oracle_weights'], 3).tolist()}, "
              f"objective {oracle['oracle_objective']:.5f} per step. The agent's objective is computed exactly from "
              "its weights at every evaluation step (mean over steps), so it carries no return noise; the episode "
              "returns (realised, with costs) are paired with the oracle's on the same paths.", "",
              "| seed | agent mean weights | agent objective | gap | turnover/step | episode return agent - oracle "
              "| train s |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        m = r["portfolio"]
        d = m["agent_minus_oracle_return"]
        lines.append(f"| {r['seed']} | {np.round(m['agent_weights_mean'], 3).tolist()} | {m['agent_objective']:.5f}"
                     f" | {100 * m['gap']:.2f}% | {m['agent_turnover_per_step']:.3f} | {d['mean']:.4f} +/- "
                     f"{d['se']:.4f} | {m['wall_s']:.0f} |")
    walk = [r["random_walk"]["agent"] for r in rows]
    folio = [r["portfolio"]["agent_turnover_per_step"] for r in rows]
    lines += ["", "## Reading it", "",
              "- Buy-and-hold is the same for every seed: every seed and policy is evaluated on the same held-out "
              "paths.",
              f"- On the random walk no policy can earn anything in expectation; the agent's returns "
              f"({min(w['return_mean'] for w in walk):.4f} to {max(w['return_mean'] for w in walk):.4f}) are below "
              "flat's 0 by about what its remaining trades cost (turnover x cost x 100 steps = "
              f"{min(w['turnover_per_step'] for w in walk) * 0.1:.4f} to "
              f"{max(w['turnover_per_step'] for w in walk) * 0.1:.4f}): it learned to trade little, not never.",
              "- In the static portfolio the last returns carry no information, yet the deterministic policy's weights "
              f"move with them (turnover {min(folio):.3f}-{max(folio):.3f} per step, the sd in the figure). Weights "
              "off w* are the objective gap (x 20 steps, most of the episode-return shortfall against the oracle, "
              "which trades once); the extra trading costs cost x turnover x 20 = "
              f"{min(folio) * PORTFOLIO['cost'] * 20:.4f}-{max(folio) * PORTFOLIO['cost'] * 20:.4f} per episode.",
              "- Training wall times were taken with other jobs sharing the machine's 2 cores (one torch thread "
              "per run).",
              "", f"![trading]({summary['name']}.png)", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
