"""TD versus Monte Carlo prediction on the 5-state random walk (Sutton & Barto example 6.2, figures 6.2 and 12.3).

Left panel (S&B figure 6.2, right): the RMS error of the learned V against the true values 1/6 .. 5/6, averaged over
the 5 states and over the runs, after each of the first 100 episodes, for TD(0) with alpha in {0.05, 0.1, 0.15} and
constant-alpha Monte Carlo (every-visit, the book's equation 6.1) with alpha in {0.01, 0.02, 0.03, 0.04}. Every V
starts at 0.5 (``q_init=0.5``), gamma = 1, the policy is the walk itself (one action).

Right panel (S&B figure 12.3 style, on the 5-state walk): the RMS error after 10 episodes against alpha for online
TD(lambda) with accumulating traces, lambda in {0, 0.4, 0.8, 0.9, 1}.

All runs of one configuration are one agent (``n_runs``); ``curve_episodes`` keeps each run's V after each episode.
Every configuration uses the same seed, and the evaluated policy does not depend on V, so all of them see exactly
the same walks: the comparison between methods is paired (common random numbers).

    .venv/bin/python benchmarks/tabular_random_walk.py [--runs 100] [--episodes 100]

Writes benchmarks/results/tabular_random_walk.png and tabular_random_walk.json, prints a table, and times a 30-run,
100-episode study of each method (speed sanity).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import tempfile
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

import thorndike as th  # noqa: E402

RESULTS = Path(__file__).parent / "results"
ENV = "thorndike/RandomWalk-v0"
TRUE_V = torch.arange(1, 6, dtype=torch.float64) / 6
SETUP = dict(gamma=1.0, q_init=0.5, log_every=10**6, progress=False, tensorboard=False)
TD_ALPHAS = (0.05, 0.1, 0.15)
MC_ALPHAS = (0.01, 0.02, 0.03, 0.04)
LAMBDAS = (0.0, 0.4, 0.8, 0.9, 1.0)
LAMBDA_ALPHAS = (0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)


def value_curve(algo: str, runs: int, episodes: int, seed: int, run_root: str, **fields: object) -> tuple:
    """Each run's V after 0..``episodes`` episodes ``[runs, episodes + 1, S]``, the wall time and the steps."""
    agent = th.make(algo, env=ENV, seed=seed, n_runs=runs, curve_episodes=episodes, run_root=run_root, **SETUP,
                    **fields)
    start = time.perf_counter()
    steps = 12 * episodes  # an episode lasts 9 steps on average; go on until every run has finished `episodes`
    while True:
        agent.learn(steps)
        if int(agent.tables.episodes.min()) >= episodes:
            break
        steps += 4 * episodes
    return agent.value_curve(), time.perf_counter() - start, agent.global_step


def rms(curve: torch.Tensor) -> torch.Tensor:
    """RMS error over the 5 non-terminal states ``[runs, episodes + 1]``."""
    return (curve[..., 1:6] - TRUE_V).pow(2).mean(-1).sqrt()


def _finite(value: object) -> object:
    """JSON has no inf / NaN (diverging TD(1) at large alpha overflows): write them as null."""
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    RESULTS.mkdir(exist_ok=True)
    run_root = tempfile.mkdtemp(prefix="thorndike-random-walk-")

    curves: dict[str, dict] = {}
    per_run: dict[str, torch.Tensor] = {}
    for algo, alphas, fields in (("td0", TD_ALPHAS, {}), ("mc_prediction", MC_ALPHAS, {"visit": "every"})):
        for alpha in alphas:
            curve, wall, steps = value_curve(algo, args.runs, args.episodes, args.seed, run_root, alpha=alpha,
                                             **fields)
            errors = rms(curve)
            label = f"{'TD(0)' if algo == 'td0' else 'MC'} alpha={alpha:g}"
            per_run[label] = errors
            curves[label] = {"algo": algo, "alpha": alpha, "mean": errors.mean(0).tolist(),
                             "stderr": (errors.std(0) / args.runs**0.5).tolist(), "wall_s": wall,
                             "steps_per_run": steps}

    sweep: dict[str, dict] = {}
    for lam in LAMBDAS:
        after, first10 = [], []
        for alpha in LAMBDA_ALPHAS:
            curve, _, _ = value_curve("td_lambda", args.runs, 10, args.seed, run_root, alpha=alpha, lam=lam,
                                      mode="online", trace="accumulating")
            errors = rms(curve)
            after.append(float(errors[:, 10].mean()))
            first10.append(float(errors[:, 1:11].mean()))
        sweep[f"{lam:g}"] = {"alphas": list(LAMBDA_ALPHAS), "rms_after_10": after, "rms_mean_episodes_1_10": first10}

    # Speed sanity: a 30-run study of 100 episodes per run, whole learn() calls (run folder, pictures) included.
    speed = {}
    for name, algo, fields in (("TD(0)", "td0", {"alpha": 0.1}),
                               ("MC constant alpha", "mc_prediction", {"alpha": 0.02}),
                               ("MC mean", "mc_prediction", {"step_size": "mean"}),
                               ("TD(lambda) online", "td_lambda", {"alpha": 0.1, "lam": 0.8}),
                               ("lambda-return", "td_lambda", {"alpha": 0.1, "lam": 0.8, "mode": "lambda_return"})):
        _, wall, steps = value_curve(algo, 30, 100, args.seed + 1, run_root, **fields)
        speed[name] = {"wall_s": wall, "steps_per_run": steps}

    marks = [m for m in (1, 5, 10, 25, 50, 100) if m <= args.episodes]
    best_td = {m: min(c["mean"][m] for c in curves.values() if c["algo"] == "td0") for m in marks}
    best_mc = {m: min(c["mean"][m] for c in curves.values() if c["algo"] != "td0") for m in marks}
    td_beats_mc = {m: best_td[m] < best_mc[m] for m in marks}
    # Paired comparison (the same walks in every run): best TD(0) minus best MC at each mark, with its std error.
    paired = {}
    for m in marks:
        td_label = min((k for k in curves if k.startswith("TD")), key=lambda k: curves[k]["mean"][m])
        mc_label = min((k for k in curves if k.startswith("MC")), key=lambda k: curves[k]["mean"][m])
        diff = per_run[td_label][:, m] - per_run[mc_label][:, m]
        paired[m] = {"td": td_label, "mc": mc_label, "difference": float(diff.mean()),
                     "stderr": float(diff.std() / args.runs**0.5)}

    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5), layout="constrained")
    x = range(args.episodes + 1)
    td_colors = plt.get_cmap("Blues")([0.5, 0.7, 0.9])
    mc_colors = plt.get_cmap("Reds")([0.4, 0.55, 0.7, 0.85])
    for color, alpha in zip(td_colors, TD_ALPHAS, strict=True):
        left.plot(x, curves[f"TD(0) alpha={alpha:g}"]["mean"], color=color, label=f"TD(0), alpha = {alpha:g}")
    for color, alpha in zip(mc_colors, MC_ALPHAS, strict=True):
        left.plot(x, curves[f"MC alpha={alpha:g}"]["mean"], color=color, linestyle="--",
                  label=f"MC (every visit), alpha = {alpha:g}")
    left.set(xlabel="episodes (walks)", ylabel="RMS error, averaged over the 5 states",
             title=f"TD(0) vs constant-alpha MC, mean of {args.runs} runs (V starts at 0.5)", ylim=(0, 0.25),
             xlim=(0, args.episodes))
    left.grid(alpha=0.3)
    left.legend(fontsize=8)
    lam_colors = plt.get_cmap("viridis")([0.0, 0.25, 0.5, 0.7, 0.9])
    for color, lam in zip(lam_colors, LAMBDAS, strict=True):
        right.plot(LAMBDA_ALPHAS, sweep[f"{lam:g}"]["rms_after_10"], marker="o", markersize=3, color=color,
                   label=f"lambda = {lam:g}")
    right.set(xlabel="alpha", ylabel="RMS error after 10 episodes (clipped at 0.55)",
              title=f"Online TD(lambda), accumulating traces, mean of {args.runs} runs", ylim=(0, 0.55),
              xlim=(0, 1.0))
    right.grid(alpha=0.3)
    right.legend(fontsize=8)
    fig.suptitle("5-state random walk (Sutton & Barto example 6.2): prediction error of V, true V = 1/6 .. 5/6")
    png = RESULTS / "tabular_random_walk.png"
    fig.savefig(png, dpi=120)

    out = {"runs": args.runs, "episodes": args.episodes, "seed": args.seed, "true_values": TRUE_V.tolist(),
           "curves": curves, "td_lambda_sweep": sweep, "best_td_at": best_td, "best_mc_at": best_mc,
           "td_beats_mc_at": td_beats_mc, "paired_td_minus_mc": paired, "speed_30_runs_100_episodes": speed,
           "load_average": os.getloadavg(), "torch": torch.__version__}
    (RESULTS / "tabular_random_walk.json").write_text(json.dumps(_finite(out), indent=1))

    print(f"RMS error (mean of {args.runs} runs) after k episodes")
    print(f"{'method':<22}" + "".join(f"{m:>8}" for m in marks) + f"{'mean 1-100':>12}")
    for label, c in curves.items():
        print(f"{label:<22}" + "".join(f"{c['mean'][m]:8.4f}" for m in marks)
              + f"{sum(c['mean'][1:]) / args.episodes:12.4f}")
    print("best TD(0) beats best MC at episodes:", {m: bool(v) for m, v in td_beats_mc.items()})
    for m, p in paired.items():
        print(f"  episode {m:>3}: {p['td']} - {p['mc']} = {p['difference']:+.4f} +/- {p['stderr']:.4f} (paired)")
    print("\nOnline TD(lambda): RMS error after 10 episodes")
    print(f"{'lambda':<8}" + "".join(f"{a:>7g}" for a in LAMBDA_ALPHAS))
    for lam, row in sweep.items():
        print(f"{lam:<8}" + "".join(f"{v:7.3f}" if v < 100 else f"{v:7.0e}" for v in row["rms_after_10"]))
    print("\n30 runs x 100 episodes (wall seconds, whole learn() calls):")
    for name, s in speed.items():
        print(f"  {name:<20} {s['wall_s']:.2f} s ({s['steps_per_run']} steps per run)")
    print(f"load average {os.getloadavg()}; wrote {png} and {RESULTS / 'tabular_random_walk.json'}")


if __name__ == "__main__":
    main()
