"""Time to solve CartPole-v1 with thorndike's policy-gradient family against Stable-Baselines3 A2C and sb3-contrib
TRPO (issue #16).

Time to solve = wall seconds from the start of training until the first evaluation whose mean return over 16
deterministic episodes is >= 475, evaluation time included (and reported without), with an evaluation due every
``--eval-every`` (8192) env steps, after the update that crosses the mark, for every contender. A run that never
gets there within its budget counts with its full time. Medians over ``--seeds`` (0-9). All contenders run in one
invocation on CPU with torch on 1 thread, interleaved by seed (the order rotates from seed to seed, so load from
other jobs on a shared machine hits all of them); the results are rewritten after every seed, so a cut run keeps the
seeds it finished.

thorndike (native batched torch CartPole, ``backend="torch"``), each with its tuned CartPole-v1 config, the section
``CartPole-v1`` of ``thorndike/configs/<algo>.yaml`` that ``th.make(algo, env="CartPole-v1")`` starts from:

- ``reinforce``: REINFORCE with reward-to-go and a baseline (configs/reinforce.yaml);
- ``vpg``: vanilla policy gradient with GAE and a separately fitted V (configs/vpg.yaml);
- ``a2c``: synchronous advantage actor-critic (configs/a2c.yaml);
- ``trpo``: trust region policy optimisation (configs/trpo.yaml);
- ``a3c``: asynchronous advantage actor-critic with 2 workers, included automatically once ``"a3c"`` is a
  registered algorithm (its tuned config; ``n_workers=2`` when its Config has that field).

Evaluation: thorndike's own (``eval_every``, ``eval_episodes=16``, ``stop_return=475``: the 16 episodes play in
parallel env copies and the run stops itself at the solve). Time to solve is the session's clock (the last
``time/elapsed_s`` of ``progress.csv``). Building the agent is not timed.

Stable-Baselines3, with the rl-baselines3-zoo hyperparameters for CartPole-v1 (github.com/DLR-RM/rl-baselines3-zoo,
``hyperparams/a2c.yml`` and ``hyperparams/trpo.yml``), their defaults otherwise:

- ``sb3-a2c``: SB3 ``A2C``: n_envs 8, ent_coef 0.0, n_timesteps 5e5 (defaults: n_steps 5, RMSprop lr 7e-4,
  gamma 0.99, gae_lambda 1, vf_coef 0.5, max_grad_norm 0.5, 64x64 tanh actor and critic);
- ``sb3-contrib-trpo``: sb3-contrib ``TRPO``: n_envs 2, n_steps 512, batch_size 512, cg_damping 1e-3,
  gae_lambda 0.98, gamma 0.99, learning_rate 1e-3, n_critic_updates 20, n_timesteps 1e5 (defaults: cg_max_steps
  15, target_kl 0.01, line search 10 x 0.8, 64x64 tanh).

Evaluation: ``EvalAndStop`` from ``ppo_cartpole_vs_sb3.py`` with ``evaluate_policy`` on a 16-copy ``DummyVecEnv``
(one deterministic episode per copy, batched predictions: SB3's fastest way to play 16 episodes); training stops
at the first mean >= 475. Time from SB3's training start; building the model is not timed.

Budgets (env steps; ``--budget`` sets one for all): the zoo's n_timesteps for the SB3 contenders (A2C 500,000,
TRPO 100,000) and ``THORNDIKE_BUDGET`` (100,000) for every thorndike algorithm.

Ratios: median time to solve of each thorndike algorithm over its peer's (reinforce, vpg, a2c, a3c: SB3 A2C; trpo:
sb3-contrib TRPO), and over both. Goals of the issue: each thorndike algorithm solves in at most 30 s, and in at most
1/5 of its peer's time.

Warm-up: before any timed run, every contender trains once for 2048 steps with an evaluation every 1024 (untimed),
so that torch's one-off kernel and allocator setup is not charged to the first timed run.

Run it (needs the ``[bench]`` extra and sb3-contrib):

    .venv/bin/python -m pip install sb3-contrib -c constraints.txt
    PYTHONPATH=$PWD .venv/bin/python benchmarks/pg_time_to_solve.py [--seeds 0 1] [--contenders a2c sb3-a2c]

Output: one JSON line per run, then the Markdown summary; writes ``benchmarks/results/pg_time_to_solve.md``,
``.json`` (every run and the summary) and ``.png`` (median time to solve, one dot per seed).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import sb3_contrib
import stable_baselines3
import torch
from ppo_cartpole_vs_sb3 import FINAL_EVAL_SEED_OFFSET, EvalAndStop, positive_int  # this folder is on sys.path
from sb3_contrib import TRPO as SB3TRPO
from solve_timing import fmt, median_or_none, per_seed_table, plot_seeds, sb3_time_to_solve, thorndike_time_to_solve
from stable_baselines3 import A2C as SB3A2C
from stable_baselines3.common.env_util import make_vec_env

import thorndike as th
from thorndike.registry import ALGORITHMS, get_algorithm, tuned_config

RESULTS = Path(__file__).resolve().parent / "results"
ENV_ID = "CartPole-v1"
SOLVED_RETURN = 475.0
EVAL_EPISODES = 16  # every contender's periodic evaluation
FINAL_EPISODES = 10
EVAL_SEED_OFFSET = 1_000_003  # periodic evaluations (thorndike's default, used for SB3 too)
THORNDIKE_BUDGET = 100_000
A3C_WORKERS = 2

SB3_A2C, SB3_TRPO = "sb3-a2c", "sb3-contrib-trpo"
THORNDIKE_ALGOS = ("reinforce", "vpg", "a2c", "trpo", "a3c")
PEER = {"reinforce": SB3_A2C, "vpg": SB3_A2C, "a2c": SB3_A2C, "a3c": SB3_A2C, "trpo": SB3_TRPO}
LABELS = {"reinforce": "thorndike REINFORCE", "vpg": "thorndike VPG", "a2c": "thorndike A2C",
          "a3c": f"thorndike A3C ({A3C_WORKERS} workers)", "trpo": "thorndike TRPO",
          SB3_A2C: "Stable-Baselines3 A2C (rl-zoo)", SB3_TRPO: "sb3-contrib TRPO (rl-zoo)"}

# rl-baselines3-zoo, hyperparams/a2c.yml and hyperparams/trpo.yml, section CartPole-v1 (SB3's names); n_timesteps is
# the budget, n_envs the number of copies, the rest go to the model.
ZOO: dict[str, dict[str, Any]] = {
    SB3_A2C: {"n_envs": 8, "n_timesteps": 500_000, "ent_coef": 0.0},
    SB3_TRPO: {"n_envs": 2, "n_timesteps": 100_000, "n_steps": 512, "batch_size": 512, "cg_damping": 1e-3,
               "gae_lambda": 0.98, "gamma": 0.99, "learning_rate": 1e-3, "n_critic_updates": 20},
}


def available_contenders() -> list[str]:
    """thorndike's algorithms that are registered (a3c once it is), then the SB3 peers."""
    return [a for a in THORNDIKE_ALGOS if a in ALGORITHMS] + [SB3_A2C, SB3_TRPO]


def thorndike_fields(algo: str) -> dict[str, Any]:
    """What the benchmark adds to the tuned config: A3C's worker count."""
    if algo == "a3c" and "n_workers" in {f.name for f in dataclasses.fields(get_algorithm(algo).Config)}:
        return {"n_workers": A3C_WORKERS}
    return {}


def thorndike_agent(algo: str, seed: int, run_root: str, **options: Any) -> Any:
    """``th.make(algo, env="CartPole-v1")`` on the native torch env with its tuned config, on 1 thread."""
    return th.make(algo, env=ENV_ID, seed=seed, backend="torch", device="cpu", threads=1, progress=False,
                   tensorboard=False, run_root=run_root, **thorndike_fields(algo), **options)


def sb3_model(contender: str, seed: int) -> Any:
    """SB3 A2C or sb3-contrib TRPO with the zoo's CartPole-v1 hyperparameters."""
    params = {k: v for k, v in ZOO[contender].items() if k not in ("n_envs", "n_timesteps")}
    env = make_vec_env(ENV_ID, n_envs=ZOO[contender]["n_envs"], seed=seed)
    cls = SB3A2C if contender == SB3_A2C else SB3TRPO
    return cls("MlpPolicy", env, seed=seed, device="cpu", verbose=0, **params)


def budget(contender: str, override: int | None) -> int:
    if override is not None:
        return override
    return ZOO[contender]["n_timesteps"] if contender in ZOO else THORNDIKE_BUDGET


def run(contender: str, seed: int, steps: int, eval_every: int, run_root: str) -> dict[str, Any]:
    start = time.perf_counter()
    if contender in ZOO:
        model = sb3_model(contender, seed)
        eval_env = make_vec_env(ENV_ID, n_envs=EVAL_EPISODES, seed=seed + EVAL_SEED_OFFSET)
        final_env = make_vec_env(ENV_ID, n_envs=FINAL_EPISODES, seed=seed + FINAL_EVAL_SEED_OFFSET)
        setup_s = time.perf_counter() - start
        return sb3_time_to_solve(contender, model, eval_env, final_env, seed, steps, eval_every, SOLVED_RETURN,
                                 EVAL_EPISODES, FINAL_EPISODES, setup_s)
    agent = thorndike_agent(contender, seed, run_root, eval_every=eval_every, eval_episodes=EVAL_EPISODES,
                            stop_return=SOLVED_RETURN)
    setup_s = time.perf_counter() - start
    return thorndike_time_to_solve(contender, agent, seed, steps, SOLVED_RETURN, EVAL_EPISODES, FINAL_EPISODES,
                                   setup_s)


def warm_up(contenders: list[str], run_root: str) -> None:
    """One short untimed run of each contender (torch kernels, allocator, env construction paths)."""
    for contender in contenders:
        if contender in ZOO:
            model = sb3_model(contender, 123)
            eval_env = make_vec_env(ENV_ID, n_envs=EVAL_EPISODES, seed=123)
            model.learn(2048, callback=EvalAndStop(eval_env, 1024, EVAL_EPISODES, SOLVED_RETURN))
            model.get_env().close()
            eval_env.close()
        else:
            thorndike_agent(contender, 123, run_root, eval_every=1024, eval_episodes=EVAL_EPISODES).learn(2048)


# ---- summary ------------------------------------------------------------------------------------------------------


def summarise(results: list[dict[str, Any]], contenders: list[str]) -> dict[str, Any]:
    rows: dict[str, Any] = {}
    for name in contenders:
        runs = [r for r in results if r["contender"] == name]
        if not runs:
            continue
        rows[name] = {
            "time_to_solve_s": median_or_none([r["time_to_solve_s"] for r in runs]),
            "without_eval_s": median_or_none([r["time_to_solve_s"] - r["eval_s"] for r in runs]),
            # a run that did not solve counts with the steps it ran
            "steps_to_solve": median_or_none([r["solved_at_step"] if r["solved"] else r["steps_run"] for r in runs]),
            "solved": sum(r["solved"] for r in runs),
            "runs": len(runs),
            "final_eval_mean": median_or_none([r["final_eval_mean"] for r in runs]),
        }
    ratios: dict[str, dict[str, float]] = {}
    goals: dict[str, dict[str, Any]] = {}
    for name in rows:
        if name in ZOO:
            continue
        time_s = rows[name]["time_to_solve_s"]
        ratios[name] = {peer: time_s / rows[peer]["time_to_solve_s"] for peer in ZOO if peer in rows}
        peer = PEER[name]
        goals[name] = {"peer": peer, "at_most_30_s": time_s <= 30.0,
                       "ratio_to_peer": ratios[name].get(peer),
                       "at_most_fifth_of_peer": ratios[name][peer] <= 0.2 if peer in ratios[name] else None}
    return {"contenders": rows, "ratios": ratios, "goals": goals}


def markdown(summary: dict[str, Any], results: list[dict[str, Any]], seeds: list[int], eval_every: int,
             budgets: dict[str, int], notes: list[str], command: str) -> str:
    rows = summary["contenders"]
    lines = [
        "# Time to solve CartPole-v1 with the policy-gradient family",
        "",
        "Wall seconds from the start of training to the first evaluation with mean return >= 475 over "
        f"{EVAL_EPISODES} deterministic episodes (due every {eval_every:,} env steps for every contender, after the "
        "update that crosses the mark; evaluation time included, and left out in the second column). Medians over "
        f"seeds {', '.join(map(str, seeds))}; a run that did not solve within its budget counts with its full time "
        "and the steps it ran. thorndike on its native torch CartPole with each algorithm's tuned config; SB3 with "
        "rl-baselines3-zoo's hyperparameters.",
        "",
        "| contender | budget (steps) | time to solve (s) | without eval (s) | steps to solve | solved | final eval |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, row in rows.items():
        lines.append(f"| {LABELS[name]} | {budgets[name]:,} | {fmt(row['time_to_solve_s'], '.2f')} "
                     f"| {fmt(row['without_eval_s'], '.2f')} | {fmt(row['steps_to_solve'], ',.0f')} "
                     f"| {row['solved']}/{row['runs']} | {fmt(row['final_eval_mean'], '.1f')} |")
    peers = [p for p in ZOO if p in rows]
    if summary["ratios"] and peers:
        lines += ["", "Ratios of median time to solve (thorndike / SB3; the peer's column in bold):", "",
                  "| thorndike | " + " | ".join(f"/ {LABELS[p]}" for p in peers) + " |",
                  "| --- | " + " | ".join("---:" for _ in peers) + " |"]
        for name, ratio in summary["ratios"].items():
            cells = [(f"**{ratio[p]:.3f}**" if p == PEER[name] else f"{ratio[p]:.3f}") for p in peers]
            lines.append(f"| {LABELS[name]} | " + " | ".join(cells) + " |")
    lines += ["", "Goals of the issue (each thorndike algorithm: at most 30 s; at most 1/5 of its peer's time):", ""]
    for name, goal in summary["goals"].items():
        ratio = goal["ratio_to_peer"]
        peer_text = ("peer not run" if ratio is None else
                     f"{'met' if goal['at_most_fifth_of_peer'] else 'NOT met'} ({ratio:.3f} of {LABELS[goal['peer']]},"
                     f" {f'{1 / ratio:.1f}x faster' if ratio <= 1 else f'{ratio:.1f}x slower'})")
        lines.append(f"- {LABELS[name]}: <= 30 s {'met' if goal['at_most_30_s'] else 'NOT met'} "
                     f"({rows[name]['time_to_solve_s']:.2f} s); <= 1/5 of the peer: {peer_text}")
    lines += per_seed_table(list(rows), LABELS, results, seeds, command, notes)
    return "\n".join(lines)


def plot(path: Path, summary: dict[str, Any], results: list[dict[str, Any]], eval_every: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = summary["contenders"]
    names = list(rows)
    peer_colors = {SB3_A2C: "tab:orange", SB3_TRPO: "tab:red"}
    fig, ax = plt.subplots(figsize=(10, 5.5))
    for x, name in enumerate(names):
        median = rows[name]["time_to_solve_s"]
        edge = peer_colors[name] if name in ZOO else peer_colors[PEER[name]]  # each thorndike bar: its peer's colour
        ax.bar(x, median, color=edge if name in ZOO else "tab:blue", alpha=0.6, edgecolor=edge, linewidth=2)
        plot_seeds(ax, x, median, [r for r in results if r["contender"] == name],
                   f"{rows[name]['solved']}/{rows[name]['runs']}", spread=0.06, markersize=4, fontsize=8)
    ax.axhline(30, color="black", linestyle=":", linewidth=1, label="goal: 30 s")
    for peer, color in peer_colors.items():
        if peer in rows:
            goal = rows[peer]["time_to_solve_s"] / 5
            ax.axhline(goal, color=color, linestyle="--", linewidth=1,
                       label=f"goal: {LABELS[peer]} median / 5 = {goal:.2f} s (bars edged in this colour)")
    ax.plot([], [], "o", color="black", label="one seed (solved)")
    ax.plot([], [], "o", color="red", markerfacecolor="none", label="one seed (not solved: full time)")
    ax.set_xticks(range(len(names)), ["\n".join(textwrap.wrap(LABELS[n], 16)) for n in names], fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("wall seconds to first eval >= 475 (median bar, log scale)")
    ax.set_title(f"Policy gradients on CartPole-v1: time to solve (CPU, 1 thread, eval every {eval_every:,} steps)")
    shown = [r["time_to_solve_s"] for r in results] + [rows[p]["time_to_solve_s"] / 5 for p in peer_colors if p in rows]
    ax.set_ylim(min(shown) / 2, max(shown + [30.0]) * 3)
    ax.grid(True, axis="y", which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write(results: list[dict[str, Any]], contenders: list[str], args: argparse.Namespace, budgets: dict[str, int],
          load_before: tuple[float, ...], command: str) -> str:
    """The Markdown, JSON and PNG of the runs so far (rewritten after every seed)."""
    load_after = os.getloadavg()
    results = sorted(results, key=lambda r: (contenders.index(r["contender"]), r["seed"]))
    seeds = [s for s in args.seeds if any(r["seed"] == s for r in results)]
    summary = summarise(results, contenders)
    notes = [
        f"{datetime.date.today()}, {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}, torch {torch.__version__} (1 thread), stable-baselines3 "
        f"{stable_baselines3.__version__}, sb3-contrib {sb3_contrib.__version__}, gymnasium {gym.__version__}, "
        f"thorndike {th.__version__}",
        f"load average (1 min) {load_before[0]:.2f} before and {load_after[0]:.2f} after the benchmark (shared "
        "machine: figures move between runs)",
        "runs interleaved by seed, the order of the contenders rotating from seed to seed; one untimed warm-up run "
        "(2048 steps, evaluation every 1024) of every contender before the timed runs",
        f"evaluation: {EVAL_EPISODES} deterministic episodes for all; thorndike plays them in parallel copies of its "
        f"native env, SB3 on a {EVAL_EPISODES}-copy DummyVecEnv with batched predictions",
        "thorndike's configs: " + "; ".join(
            f"{a}: {json.dumps({**tuned_config(a, ENV_ID), **thorndike_fields(a)})}" for a in contenders
            if a not in ZOO),
        "SB3's configs (rl-baselines3-zoo, CartPole-v1): " + "; ".join(
            f"{c}: {json.dumps(ZOO[c])}" for c in contenders if c in ZOO),
        "building the agent/model is untimed for every contender (JSON: setup_s); thorndike's time is the session "
        "clock, which leaves out writing final.pt and curve.png after the stop (JSON: learn_call_s)",
        "final eval: 10 deterministic episodes on held-out seeds after training, untimed",
    ]
    if "a3c" not in ALGORITHMS:
        notes.append("A3C: not registered in this checkout, so not run")
    args.out.mkdir(parents=True, exist_ok=True)
    text = markdown(summary, results, seeds, args.eval_every, budgets, notes, command)
    (args.out / "pg_time_to_solve.md").write_text(text)
    meta = {"command": command, "date": str(datetime.date.today()), "load_before": load_before,
            "load_after": load_after, "torch": torch.__version__, "stable_baselines3": stable_baselines3.__version__,
            "sb3_contrib": sb3_contrib.__version__, "gymnasium": gym.__version__, "thorndike": th.__version__,
            "budgets": budgets, "eval_every": args.eval_every, "eval_episodes": EVAL_EPISODES, "notes": notes}
    (args.out / "pg_time_to_solve.json").write_text(
        json.dumps({"meta": meta, "summary": summary, "runs": results}, indent=1) + "\n")
    plot(args.out / "pg_time_to_solve.png", summary, results, args.eval_every)
    return text


def main() -> None:
    available = available_contenders()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=list(range(10)), help="seeds (default: 0-9)")
    parser.add_argument("--contenders", nargs="+", choices=available, default=available,
                        help=f"which to run (default: all of {', '.join(available)})")
    parser.add_argument("--budget", type=positive_int, default=None,
                        help=f"env-step budget of every run (default: the zoo's n_timesteps for SB3, "
                             f"{THORNDIKE_BUDGET:,} for thorndike)")
    parser.add_argument("--eval-every", type=positive_int, default=8192, help="env steps between evaluations")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for pg_time_to_solve.{md,json,png}")
    args = parser.parse_args()
    command = " ".join(["python", *(os.path.relpath(a) if a == sys.argv[0] else a for a in sys.argv)])

    torch.set_num_threads(1)
    contenders = [c for c in available if c in args.contenders]
    budgets = {c: budget(c, args.budget) for c in contenders}
    load_before = os.getloadavg()
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="thorndike-pg-tts-") as run_root:
        warm_up(contenders, run_root)
        for i, seed in enumerate(args.seeds):
            order = contenders[i % len(contenders):] + contenders[:i % len(contenders)]
            for name in order:
                results.append(run(name, seed, budgets[name], args.eval_every, run_root))
                print(json.dumps({k: v for k, v in results[-1].items() if k != "eval_curve"}), flush=True)
            text = write(results, contenders, args, budgets, load_before, command)
    print()
    print(text)


if __name__ == "__main__":
    main()
