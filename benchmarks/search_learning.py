"""Learning curves of the black-box policy searches (issue #17): greedy return against training episodes, per seed.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/search_learning.py [--env CartPole-v1] [--methods hill_climbing,es]
        [--seeds 0-9] [--budget method=episodes ...] [--set method.field=value ...] [--until-solved] [--tag NAME]
        [--plot-only]

Each method (hill_climbing, param_cem, es, and approx_cem when it is registered) is made with ``th.make(method,
env=ENV, seed=s)``, so it starts from the tuned values for that env in ``thorndike/configs/<method>.yaml``; ``--set``
overrides single fields (for tuning). It learns until its episode budget is spent (every candidate's episode counts:
the ledger's episode count), and at fixed episode checkpoints (every ``eval_every`` episodes, rounded up to whole
iterations, which each add candidates x episodes_per_candidate episodes, so all seeds of a method are evaluated at
the same episode counts) its acting weights are evaluated greedily: the mean return of ``--eval-episodes`` (20)
episodes on fresh env copies with random starts (the same start states at every checkpoint; evaluation never changes
what training does next). A seed is *solved* at the first checkpoint whose evaluation mean reaches the env's
threshold (CartPole-v1 475, Pendulum-v1 -200, MountainCarContinuous-v0 90).

Prints a table per method (episodes and steps to solve, final and best evaluation return, wall time of learning
without the evaluations) and writes ``benchmarks/results/search_learning_<env>[_<tag>].{json,md,png}``: the figure
is the mean evaluation return over seeds against episodes with its 25-75% band over seeds, one line per method,
the threshold dashed, and beside it the fraction of seeds solved so far.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
import yaml  # noqa: E402

import thorndike as th  # noqa: E402
from thorndike.experiment import parse_seeds  # noqa: E402
from thorndike.registry import ALGORITHMS  # noqa: E402

RESULTS = Path(__file__).parent / "results"
METHODS = ("hill_climbing", "param_cem", "es", "approx_cem")
COLORS = {"hill_climbing": "tab:blue", "param_cem": "tab:orange", "es": "tab:green", "approx_cem": "tab:red"}

# Per env: the solve threshold, the methods run by default, and per method the episode budget and how often (in
# episodes) to evaluate.
ENVS: dict[str, dict[str, Any]] = {
    "CartPole-v1": {"threshold": 475.0, "methods": METHODS,
                    "budget": {"hill_climbing": 1000, "param_cem": 600, "es": 2500, "approx_cem": 2000},
                    "eval_every": {"hill_climbing": 20, "param_cem": 50, "es": 50, "approx_cem": 50}},
    "Pendulum-v1": {"threshold": -200.0, "methods": ("param_cem", "es"),
                    "budget": {"hill_climbing": 20_000, "param_cem": 150_000, "es": 150_000, "approx_cem": 20_000},
                    "eval_every": {"hill_climbing": 1000, "param_cem": 5000, "es": 5000, "approx_cem": 1000}},
    "MountainCarContinuous-v0": {"threshold": 90.0, "methods": ("param_cem", "es"),
                                 "budget": {"hill_climbing": 1000, "param_cem": 1000, "es": 1000, "approx_cem": 1000},
                                 "eval_every": {"hill_climbing": 50, "param_cem": 50, "es": 50, "approx_cem": 50}},
}


def parse_pairs(items: list[str]) -> dict[str, Any]:
    """``key=value`` pairs, the value read as YAML (so ``0.5`` is a float and ``true`` a bool)."""
    pairs = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"expected key=value, got {item!r}")
        pairs[key] = yaml.safe_load(value)
    return pairs


def episodes_per_iteration(agent) -> int:
    """Every iteration plays each run's candidates for k episodes each (approx_cem: its n_sessions sessions)."""
    if not hasattr(agent, "candidates_per_run"):
        return agent.config.n_sessions * agent.config.n_runs
    return agent.candidates_per_run() * agent.config.episodes_per_candidate * agent.config.n_runs


def run_seed(method: str, env: str, seed: int, budget: int, eval_every: int, eval_episodes: int, threshold: float,
             fields: dict[str, Any], until_solved: bool, run_root: str) -> dict[str, Any]:
    """Learn one seed to ``budget`` episodes, evaluating greedily every ``eval_every`` episodes (rounded up to whole
    iterations)."""
    agent = th.make(method, env=env, seed=seed, run_root=run_root, progress=False, tensorboard=False, pictures=False,
                    checkpoint_every=10**15, **fields)
    per_iteration = episodes_per_iteration(agent)
    every = math.ceil(eval_every / per_iteration) * per_iteration
    budget = math.ceil(budget / per_iteration) * per_iteration
    curve = {"episodes": [], "steps": [], "returns": []}
    timing = {"learn": 0.0, "eval": 0.0}
    solved: dict[str, int] | None = None
    holder: dict[str, Any] = {}

    def evaluate() -> float:
        began = time.perf_counter()
        mean = agent.evaluate(episodes=eval_episodes).mean
        timing["eval"] += time.perf_counter() - began
        curve["episodes"].append(agent.episodes)
        curve["steps"].append(agent.global_step)
        curve["returns"].append(mean)
        return mean

    # Learn is one session with an unreachable step budget; after every iteration (the session's log) the episode
    # count decides whether to evaluate and whether the episode budget is spent, which ends the session.
    original_session = agent.session

    @contextlib.contextmanager
    def session(total_steps: int):
        with original_session(total_steps) as s:
            original_log = s.log

            def log(stats: dict[str, float]) -> None:
                nonlocal solved
                original_log(stats)
                episodes = agent.episodes
                if episodes % every == 0:
                    timing["learn"] += time.perf_counter() - holder["began"]
                    mean = evaluate()
                    if solved is None and mean >= threshold:
                        solved = {"episodes": episodes, "steps": agent.global_step}
                    holder["began"] = time.perf_counter()
                if episodes >= budget or (until_solved and solved is not None):
                    s.stopped = True

            s.log = log
            yield s

    agent.session = session
    evaluate()  # the starting point (zero weights)
    holder["began"] = time.perf_counter()
    agent.learn(10**15)
    timing["learn"] += time.perf_counter() - holder["began"]
    returns = curve["returns"]
    return {"seed": seed, "solved_episodes": solved and solved["episodes"], "solved_steps": solved and solved["steps"],
            "final_return": returns[-1], "best_return": max(returns), "episodes": agent.episodes,
            "steps": agent.global_step, "learn_s": round(timing["learn"], 2), "eval_s": round(timing["eval"], 2),
            "curve": curve, "config": dataclasses.asdict(agent.config), "eval_every": every, "budget": budget}


def fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}" if isinstance(value, float) else f"{value:,}"


def table(method: str, runs: list[dict[str, Any]], threshold: float) -> str:
    """A Markdown table of one method's seeds and a summary line."""
    lines = ["| seed | episodes to solve | steps to solve | final return | best return | learn s |",
             "|---:|---:|---:|---:|---:|---:|"]
    for r in runs:
        lines.append(f"| {r['seed']} | {fmt(r['solved_episodes'])} | {fmt(r['solved_steps'])} | "
                     f"{fmt(r['final_return'])} | {fmt(r['best_return'])} | {fmt(r['learn_s'])} |")
    solved = [r for r in runs if r["solved_episodes"] is not None]
    final_ok = sum(r["final_return"] >= threshold for r in runs)
    median = statistics.median(r["solved_episodes"] for r in solved) if solved else None
    lines.append(f"\n{method}: solved {len(solved)}/{len(runs)} (median {fmt(median, 0)} episodes to solve), "
                 f"{final_ok}/{len(runs)} at or above {threshold:g} at the budget "
                 f"({runs[0]['budget']:,} episodes); learning {sum(r['learn_s'] for r in runs):.0f} s in all")
    return "\n".join(lines)


def plot(payload: dict[str, Any], path: Path) -> None:
    env, threshold = payload["env"], payload["threshold"]
    fig, (ax, ax_solved) = plt.subplots(1, 2, figsize=(13, 5), gridspec_kw={"width_ratios": [2, 1]})
    for method, runs in payload["methods"].items():
        color = COLORS.get(method, "tab:gray")
        x = torch.tensor(runs[0]["curve"]["episodes"], dtype=torch.float64)
        n = min(len(r["curve"]["returns"]) for r in runs)  # every seed has the same checkpoints unless cut short
        values = torch.tensor([r["curve"]["returns"][:n] for r in runs], dtype=torch.float64)  # [seeds, points]
        x = x[:n]
        q25, q75 = torch.quantile(values, 0.25, dim=0), torch.quantile(values, 0.75, dim=0)
        ax.plot(x, values.mean(0), color=color, lw=1.8, label=f"{method} (mean of {len(runs)} seeds)")
        ax.fill_between(x, q25, q75, color=color, alpha=0.2, lw=0)
        solved = sorted(r["solved_episodes"] for r in runs if r["solved_episodes"] is not None)
        steps_x = [0.0] + [float(e) for e in solved] + [float(max(r["budget"] for r in runs))]
        fraction = [0.0] + [(i + 1) / len(runs) for i in range(len(solved))] + [len(solved) / len(runs)]
        ax_solved.step(steps_x, fraction, where="post", color=color, lw=1.8, label=method)
    ax.axhline(threshold, color="black", ls="--", lw=1, label=f"solved ({threshold:g})")
    ax.set(xlabel="training episodes (every candidate's)", ylabel="greedy evaluation return",
           title=f"{env}: mean over seeds (line), 25-75% of seeds (band)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=9)
    ax_solved.set(xlabel="training episodes", ylabel="fraction of seeds solved", ylim=(-0.02, 1.02),
                  title="seeds solved so far")
    ax_solved.grid(alpha=0.3)
    ax_solved.legend(loc="lower right", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--env", default="CartPole-v1", choices=sorted(ENVS))
    parser.add_argument("--methods", default=None, help="comma-separated (default: all four on CartPole-v1, param_cem "
                        "and es on the others); unregistered ones are skipped")
    parser.add_argument("--seeds", default="0-9")
    parser.add_argument("--budget", nargs="*", default=[], help="method=episodes, overriding the env's default")
    parser.add_argument("--eval-every", nargs="*", default=[], help="method=episodes, overriding the env's default")
    parser.add_argument("--eval-episodes", type=int, default=20)
    parser.add_argument("--set", nargs="*", default=[], dest="fields", help="method.field=value config overrides")
    parser.add_argument("--until-solved", action="store_true", help="stop a seed at its first solved checkpoint")
    parser.add_argument("--tag", default="", help="suffix of the result files")
    parser.add_argument("--out", default=str(RESULTS), help="folder of the result files")
    parser.add_argument("--plot-only", action="store_true", help="redraw the PNG from the JSON")
    parser.add_argument("--merge", action="store_true",
                        help="keep the other methods of an existing result file (a method run again replaces its own)")
    args = parser.parse_args()
    out = Path(args.out)
    stem = f"search_learning_{args.env}" + (f"_{args.tag}" if args.tag else "")
    if args.plot_only:
        plot(json.loads((out / f"{stem}.json").read_text()), out / f"{stem}.png")
        return
    torch.set_num_threads(1)
    spec = ENVS[args.env]
    budgets = {**spec["budget"], **parse_pairs(args.budget)}
    evals = {**spec["eval_every"], **parse_pairs(args.eval_every)}
    overrides: dict[str, dict[str, Any]] = {}
    for key, value in parse_pairs(args.fields).items():
        method, _, field = key.partition(".")
        overrides.setdefault(method, {})[field] = value
    seeds = parse_seeds([args.seeds])
    run_root = tempfile.mkdtemp(prefix="thorndike-search-learning-")
    payload: dict[str, Any] = {"command": " ".join(["python", *sys.argv]), "env": args.env,
                               "threshold": spec["threshold"], "eval_episodes": args.eval_episodes,
                               "torch": torch.__version__, "methods": {}}
    report = [f"# Black-box searches on {args.env}\n", f"`{payload['command']}`\n",
              f"Solved: greedy evaluation mean of {args.eval_episodes} episodes >= {spec['threshold']:g}, checked "
              "at fixed episode checkpoints. Learn s: wall time of learning without the evaluations (2 shared CPU "
              "cores, torch.set_num_threads(1)).\n"]
    for method in (args.methods.split(",") if args.methods else spec["methods"]):
        if method not in ALGORITHMS:
            print(f"{method} is not registered here: skipped", flush=True)
            continue
        runs = []
        for seed in seeds:
            result = run_seed(method, args.env, seed, budgets[method], evals[method], args.eval_episodes,
                              spec["threshold"], overrides.get(method, {}), args.until_solved, run_root)
            runs.append(result)
            print(f"{method} seed {seed}: solved at {fmt(result['solved_episodes'])} episodes / "
                  f"{fmt(result['solved_steps'])} steps; final {result['final_return']:.1f}, best "
                  f"{result['best_return']:.1f}; {result['learn_s']} s learning", flush=True)
        payload["methods"][method] = runs
        config = {k: v for k, v in runs[0]["config"].items() if k != "n_runs"}
        text = table(method, runs, spec["threshold"])
        print(text, flush=True)
        report += [f"## {method}\n", f"Config: `{json.dumps(config)}`; budget {runs[0]['budget']:,} episodes, "
                   f"evaluated every {runs[0]['eval_every']} episodes.\n", text + "\n"]
    if not payload["methods"]:
        return
    if args.merge and (out / f"{stem}.json").exists():
        previous = json.loads((out / f"{stem}.json").read_text())
        commands = previous.get("commands", [previous["command"]])
        payload["commands"] = [c for c in commands if c != payload["command"]] + [payload["command"]]
        kept = {m: runs for m, runs in previous["methods"].items() if m not in payload["methods"]}
        payload["methods"] = {**kept, **payload["methods"]}
        report[1] = "".join(f"`{c}`\n" for c in payload["commands"])
        report = report[:3]
        for method, runs in payload["methods"].items():
            config = {k: v for k, v in runs[0]["config"].items() if k != "n_runs"}
            report += [f"## {method}\n", f"Config: `{json.dumps(config)}`; budget {runs[0]['budget']:,} episodes, "
                       f"evaluated every {runs[0]['eval_every']} episodes.\n",
                       table(method, runs, spec["threshold"]) + "\n"]
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.json").write_text(json.dumps(payload, indent=1))
    (out / f"{stem}.md").write_text("\n".join(report))
    plot(payload, out / f"{stem}.png")
    print(f"wrote {out / stem}.json, .md, .png")


if __name__ == "__main__":
    main()
