"""Recommendation as a contextual bandit (issue #19): cumulative regret against the oracle policy for epsilon-greedy,
UCB1, LinUCB (disjoint and shared) and DQN, and off-policy evaluation (IPS, doubly robust) of a new policy from data
logged by the notes' FeatureQ, checked against the new policy's on-policy evaluation.

    .venv/bin/python benchmarks/recommendation_bandit.py [--seeds 0-4] [--steps 10000] [--ope-seeds 0-19]

World: thorndike.envs.recommendation_bandit.recommendation_world() (30 contexts = age x favourite genre, 20 items,
click = rating >= 4, exact expected clicks). Regret is the exact pseudo-regret sum_t max_a E[r | c_t, a] -
E[r | c_t, a_t]. Each seed is one independent run of every agent (its own users, rewards and choices); DQN is
thorndike's ``dqn`` through ``th.make`` on the Gymnasium env ``thorndike/RecommendationBandit-v0`` (one-step
episodes), its regret read from the env's exact tally every 100 steps.

UCB1's textbook bonus sqrt(2 ln N / n) is wide next to click rates in [0, 1] and 600 (context, item) cells, so the
run adds c = 0.25, picked by looking at c in {0.1, 0.25, 0.5} on seeds 0-2 of this world (tuned here, not held out).

Sublinear regret, the test: over the last half of the horizon LinUCB (shared) must add less regret than over the
first half (ratio (R(T) - R(T/2)) / R(T/2) < 1; linear regret gives 1), and the log-log slope of R(t) on
t in [T/10, T] must be below 1 (0.5 for sqrt(T) growth).

OPE, for each OPE seed: FeatureQ (alpha = 1/n) is fitted to 3,000 clicks logged by a uniform policy; the logging
policy is a softmax (temperature 0.1) over its scores. The new (target) policy is greedy on a ridge regression fitted
to the same uniform rows with the shared LinUCB features; that regression is also DR's reward model. 5,000 rows are
logged by FeatureQ; IPS and DR estimate the target's value with 95% intervals; the target is then run on-policy
for 5,000 fresh users. "Matches" means |estimate - on-policy| <= 1.96 sqrt(se_est^2 + se_on^2) (two independent
estimates of one value); the exact value (from the world's table) is reported too. Writes
benchmarks/results/recommendation_bandit.{md,json,png}.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

import thorndike as th  # noqa: E402
from thorndike.bandits import (  # noqa: E402
    UCB,
    EpsilonGreedy,
    LinUCB,
    LinUCBConfig,
    UCBConfig,
    doubly_robust_estimate,
    ips_estimate,
    mean_estimate,
    play,
    ridge_regression,
)
from thorndike.bandits.logging_policy import feature_q_for_world, feature_q_policy, log_interactions  # noqa: E402
from thorndike.callbacks import Callback  # noqa: E402
from thorndike.core.exploration import greedy_probs  # noqa: E402
from thorndike.envs.recommendation_bandit import recommendation_world  # noqa: E402
from thorndike.experiment import parse_seeds  # noqa: E402

RESULTS = Path(__file__).parent / "results"
DQN = "DQN (th.make('dqn'), one-step episodes)"
DQN_EVERY = 100
DQN_SETTINGS = dict(learning_starts=500, train_freq=1, batch_size=64, lr=1e-3, buffer_size=20_000,
                    target_update_interval=250, epsilon_start=1.0, epsilon_end=0.02, epsilon_steps=2000,
                    hidden_sizes=(64,), log_every=DQN_EVERY)


def bandit_agents(world):
    n = world.n_items
    disjoint_features = world.context_features()[:, None].expand(-1, n, -1)
    return {
        "epsilon-greedy (0.1, per context)": lambda: EpsilonGreedy(world),
        "UCB1 (per context)": lambda: UCB(world),
        "UCB (c 0.25, per context)": lambda: UCB(world, UCBConfig(c=0.25)),
        "UCB1 (context-blind)": lambda: UCB(world, UCBConfig(per_context=False)),
        "LinUCB disjoint (alpha 0.5)": lambda: LinUCB(disjoint_features, LinUCBConfig(shared=False)),
        "LinUCB shared (alpha 0.5)": lambda: LinUCB(world.joint_features(), LinUCBConfig(shared=True)),
    }


class RegretTrace(Callback):
    """Reads the env's exact regret tally after every log row (every DQN_EVERY steps)."""

    def __init__(self) -> None:
        self.steps: list[int] = []
        self.regret: list[float] = []

    def on_iteration(self, agent, row) -> None:
        env = agent.envs._venv.envs[0].unwrapped  # the one sync Gymnasium copy: RecommendationBandit
        self.steps.append(env.steps)
        self.regret.append(env.total_regret)


def dqn_regret(seed: int, steps: int, run_root: str) -> tuple[list[int], list[float]]:
    trace = RegretTrace()
    agent = th.make("dqn", env="thorndike/RecommendationBandit-v0", seed=seed, run_root=run_root, progress=False,
                    pictures=False, eval_every=0, **DQN_SETTINGS)
    agent.learn(steps, callbacks=[trace])
    return trace.steps, trace.regret


def sublinearity(curve: torch.Tensor) -> dict[str, float]:
    """Second-half over first-half regret, and the log-log slope of R(t) on t in [T/10, T]."""
    t_total = curve.shape[0]
    half = curve[t_total // 2 - 1].item()
    ratio = (curve[-1].item() - half) / half
    t = torch.arange(t_total // 10, t_total + 1, dtype=torch.float64)
    r = curve[t.long() - 1]
    slope = torch.linalg.lstsq(torch.stack([torch.ones_like(t), t.log()], 1), r.log()[:, None]).solution[1, 0].item()
    return {"half_ratio": ratio, "loglog_slope": slope}


def ope_seed(world, seed: int, n_uniform: int, n_logged: int, n_on: int) -> dict[str, float]:
    g = torch.Generator().manual_seed(1000 + seed)
    uniform = torch.full((world.n_contexts, world.n_items), 1.0 / world.n_items, dtype=torch.float64)
    first = log_interactions(world, uniform, n_uniform, g)
    feature_q = feature_q_for_world(world, alpha_schedule="1/n")
    feature_q.update(first.contexts, first.actions, first.rewards)
    logging = feature_q_policy(feature_q, temperature=0.1)
    x = world.joint_features()
    reward_model = (x @ ridge_regression(x[first.contexts, first.actions], first.rewards)).clamp(0.0, 1.0)
    target = greedy_probs(reward_model)
    logged = log_interactions(world, logging, n_logged, g)
    args = (logged.actions, logged.rewards, logged.propensities, target[logged.contexts])
    ips = ips_estimate(*args)
    dr = doubly_robust_estimate(*args, reward_model[logged.contexts])
    on = mean_estimate(log_interactions(world, target, n_on, g).rewards)
    exact = world.policy_value(target)
    out = {"seed": seed, "exact": exact, "logging_value": world.policy_value(logging),
           "max_weight": float((target[logged.contexts, logged.actions] / logged.propensities).max()),
           "on_policy": on.value, "on_policy_se": on.stderr}
    for name, est in (("ips", ips), ("dr", dr)):
        out[name], out[f"{name}_se"] = est.value, est.stderr
        out[f"{name}_matches_on_policy"] = abs(est.value - on.value) <= 1.96 * math.hypot(est.stderr, on.stderr)
        out[f"{name}_covers_exact"] = est.covers(exact)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=lambda text: parse_seeds([text]), default=list(range(5)))
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--ope-seeds", type=lambda text: parse_seeds([text]), default=list(range(20)))
    parser.add_argument("--logged", type=int, default=5000)
    parser.add_argument("--no-dqn", action="store_true", help="skip DQN (the slowest agent)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    RESULTS.mkdir(exist_ok=True)
    world = recommendation_world()
    steps = args.steps

    # ---- regret ----------------------------------------------------------------------------------------------
    curves: dict[str, torch.Tensor] = {}  # name -> [seeds, steps] cumulative regret
    seconds: dict[str, float] = {}
    for name, build in bandit_agents(world).items():
        start = time.perf_counter()
        runs = [play(world, build(), steps, n_runs=1, seed=seed).cumulative_regret[0] for seed in args.seeds]
        curves[name] = torch.stack(runs)
        seconds[name] = time.perf_counter() - start
        print(f"{name}: R(T) = {curves[name][:, -1].mean():.1f} ({seconds[name]:.0f} s)", flush=True)
    dqn_steps = None
    if not args.no_dqn:
        start = time.perf_counter()
        with tempfile.TemporaryDirectory() as run_root:
            traces = [dqn_regret(seed, steps, run_root) for seed in args.seeds]
        dqn_steps = traces[0][0]
        curves[DQN] = torch.tensor([regret for _, regret in traces], dtype=torch.float64)
        seconds[DQN] = time.perf_counter() - start
        print(f"{DQN}: R(T) = {curves[DQN][:, -1].mean():.1f} ({seconds[DQN]:.0f} s)", flush=True)

    lin = "LinUCB shared (alpha 0.5)"
    tests = [sublinearity(curve) for curve in curves[lin]]
    sublinear = all(t["half_ratio"] < 1.0 and t["loglog_slope"] < 1.0 for t in tests)

    # ---- off-policy evaluation ----------------------------------------------------------------------------
    ope = [ope_seed(world, seed, 3000, args.logged, args.logged) for seed in args.ope_seeds]
    n_ope = len(ope)
    counts = {key: sum(row[key] for row in ope) for key in
              ("ips_matches_on_policy", "dr_matches_on_policy", "ips_covers_exact", "dr_covers_exact")}

    # ---- figure ---------------------------------------------------------------------------------------------
    fig, axes = plt.subplots(1, 3, figsize=(18, 5.2))
    ax = axes[0]
    t_axis = torch.arange(1, steps + 1)
    for name, curve in curves.items():
        x = torch.tensor(dqn_steps) if name == DQN else t_axis
        mean = curve.mean(0)
        line, = ax.plot(x, mean, label=f"{name}: {mean[-1]:.0f}")
        ax.fill_between(x, curve.amin(0), curve.amax(0), color=line.get_color(), alpha=0.2)
    ax.set(xlabel="users (steps)", ylabel="cumulative regret (exact, expected clicks)",
           title=f"Regret against the oracle, {len(args.seeds)} seeds (mean, min-max band)")
    ax.legend(fontsize=8)
    ax = axes[1]
    for curve, test in zip(curves[lin], tests):
        ax.loglog(t_axis, curve, alpha=0.7, label=f"slope {test['loglog_slope']:.2f}, half ratio "
                                                   f"{test['half_ratio']:.2f}")
    ref = t_axis.double()
    scale = curves[lin][:, steps // 10].mean().item() / (steps // 10)
    ax.loglog(ref, scale * ref, "k:", label="linear (slope 1)")
    ax.loglog(ref, curves[lin][:, steps // 10].mean().item() * (ref / (steps // 10)).sqrt(), "k--",
              label="sqrt(t) (slope 0.5)")
    ax.set(xlabel="users (log)", ylabel="cumulative regret (log)", title="LinUCB shared: log-log, one line per seed")
    ax.legend(fontsize=8)
    ax = axes[2]
    seeds = [row["seed"] for row in ope]
    for offset, key, label in ((-0.2, "ips", "IPS"), (0.0, "dr", "DR"), (0.2, "on_policy", "on-policy")):
        ax.errorbar([s + offset for s in seeds], [row[key] for row in ope],
                    yerr=[1.96 * row[f"{key}_se"] for row in ope], fmt="o", ms=3, capsize=2, label=f"{label} (95%)")
    ax.scatter(seeds, [row["exact"] for row in ope], marker="_", s=200, color="k", label="exact value", zorder=3)
    ax.set(xlabel="OPE seed", ylabel="value of the new policy (click rate)",
           title=f"OPE from {args.logged} FeatureQ-logged rows: IPS matches on-policy\nin "
                 f"{counts['ips_matches_on_policy']}/{n_ope} seeds, DR in {counts['dr_matches_on_policy']}/{n_ope}")
    ax.title.set_fontsize(10)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(RESULTS / "recommendation_bandit.png", dpi=110)

    # ---- numbers ----------------------------------------------------------------------------------------------
    command = "python benchmarks/recommendation_bandit.py " + " ".join(sys.argv[1:] if argv is None else argv)
    summary = {
        "command": command.strip(), "steps": steps, "seeds": args.seeds, "oracle_value": world.oracle_value,
        "regret_final": {name: curve[:, -1].tolist() for name, curve in curves.items()},
        "regret_half": {name: curve[:, curve.shape[1] // 2 - 1].tolist() for name, curve in curves.items()},
        "seconds": seconds, "linucb_sublinearity": tests, "linucb_sublinear": sublinear,
        "ope": ope, "ope_counts": counts, "dqn_settings": DQN_SETTINGS,
    }
    (RESULTS / "recommendation_bandit.json").write_text(json.dumps(summary, indent=1) + "\n")
    lines = ["# Recommendation bandit: regret and off-policy evaluation\n", f"    {command.strip()}\n",
             f"World: 30 contexts x 20 items, click reward; oracle value {world.oracle_value:.4f} clicks per user. "
             f"{steps} users per run, seeds {args.seeds}.\n",
             "| agent | R(T/2) mean | R(T) mean | R(T) min-max | seconds (all seeds) |",
             "| --- | --- | --- | --- | --- |"]
    for name, curve in curves.items():
        final = curve[:, -1]
        lines.append(f"| {name} | {curve[:, curve.shape[1] // 2 - 1].mean():.1f} | {final.mean():.1f} | "
                     f"{final.min():.1f}-{final.max():.1f} | {seconds[name]:.0f} |")
    lines += ["", "LinUCB shared, per seed: (R(T) - R(T/2)) / R(T/2) = "
              + ", ".join(f"{t['half_ratio']:.2f}" for t in tests)
              + "; log-log slope of R(t), t in [T/10, T] = " + ", ".join(f"{t['loglog_slope']:.2f}" for t in tests)
              + f". Sublinear (every seed: ratio < 1 and slope < 1): **{sublinear}**.", "",
              f"## Off-policy evaluation ({n_ope} seeds, {args.logged} logged rows, {args.logged} on-policy users)", "",
              f"IPS matches the on-policy evaluation in {counts['ips_matches_on_policy']}/{n_ope} seeds, DR in "
              f"{counts['dr_matches_on_policy']}/{n_ope}; the 95% interval covers the exact value for IPS in "
              f"{counts['ips_covers_exact']}/{n_ope}, DR in {counts['dr_covers_exact']}/{n_ope}. Mean standard "
              f"error: IPS {sum(r['ips_se'] for r in ope) / n_ope:.4f}, DR {sum(r['dr_se'] for r in ope) / n_ope:.4f}, "
              f"on-policy {sum(r['on_policy_se'] for r in ope) / n_ope:.4f}.", "",
              "| seed | logging value | exact | on-policy | IPS | DR | max weight |",
              "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in ope:
        lines.append(f"| {r['seed']} | {r['logging_value']:.3f} | {r['exact']:.3f} | {r['on_policy']:.3f} +- "
                     f"{1.96 * r['on_policy_se']:.3f} | {r['ips']:.3f} +- {1.96 * r['ips_se']:.3f} | {r['dr']:.3f} +- "
                     f"{1.96 * r['dr_se']:.3f} | {r['max_weight']:.1f} |")
    (RESULTS / "recommendation_bandit.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
