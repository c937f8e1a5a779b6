"""DQN on Atari (Breakout by default) on a CPU: env and training throughput with the Gymnasium ALE chain and with
EnvPool, side by side, then a learning curve for a wall-clock budget.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/atari_dqn.py [--env ALE/Breakout-v5] [--minutes 90]
        [--backend gymnasium] [--seed 0] [--copies 1,8] [--env-steps 4000] [--train-steps 1000] [--chunk 10000]
        [--eval-every 40000] [--eval-episodes 5] [--skip-throughput] [--tag NAME]
    PYTHONPATH=$PWD .venv/bin/python benchmarks/atari_dqn.py --rewrite [--tag NAME]   # md and png from the json

One torch thread throughout (``torch.set_num_threads(1)``). Frames are Atari frames: one env step of the atari
preset is 4 emulator frames (frame skip 4).

1. Throughput. (i) Env frames/s of the preprocessed env (the atari preset: no-op starts, frame skip 4 with the max of
   the last two frames, 84x84 grey, a stack of 4, episodic life, FIRE on reset, clipped rewards) with uniform random
   actions, the Gymnasium chain (``backend="gymnasium"``, the wrappers in Python) against EnvPool
   (``backend="envpool"``, the same preprocessing in C++), at each number of copies in ``--copies``, over
   ``--env-steps`` env steps (all copies together) after a short warm-up. Wall frames/s and frames per CPU second
   (process time, all threads: EnvPool steps its copies in a thread pool, which may use the second core). (ii) DQN
   training frames/s with each backend: the tuned config (``thorndike/configs/dqn.yaml``) with learning_starts 500 and
   a 10k buffer (the speed of a step does not depend on the buffer's size), timed over ``--train-steps`` env steps
   after learning starts (one gradient step per 4 env steps, batch 32, the Nature CNN).
2. The learning curve: ``th.make("dqn", env=ENV, backend=BACKEND, seed=SEED)`` with the tuned config (the Gymnasium
   chain by default: DQN trains no faster with EnvPool on a CPU, where the gradient steps take the time, and
   EnvPool 1.2.5's FIRE on reset does not serve the ball in Breakout with v5's sticky actions, so a policy that never
   presses FIRE itself stalls there until the time limit; the Gymnasium chain's FIRE and RIGHT after each reset
   serve it), learning in chunks of ``--chunk`` env steps until ``--minutes`` of wall clock are spent (checked
   between chunks, so the run ends at most one chunk late). After each chunk a row: env steps, frames, minutes,
   the training score (``return_mean``: the mean raw game score of the last 20 whole games, from the episode
   ledger), epsilon; every ``--eval-every`` env steps and at the end, two evaluations of ``--eval-episodes`` whole
   games each (raw scores, seed 10_000, each game cut at 4,500 agent steps = 18,000 frames, the 5 minutes of play
   of the Nature protocol): greedy, and epsilon-greedy with the final epsilon 0.01 (a greedy policy can stall; the
   report says how many games were cut).

Writes ``benchmarks/results/atari_dqn[_<tag>].{md,json,png}`` after the throughput part and after every chunk (so a
cut run keeps what it measured). The figure: the score against env frames and against minutes.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

import thorndike as th

RESULTS = Path(__file__).parent / "results"
FRAME_SKIP = 4  # emulator frames per env step of the atari preset
EVAL_MAX_STEPS = 4500  # 18,000 frames: 5 minutes of play at 60 frames/s
BACKENDS = ("gymnasium", "envpool")


def env_throughput(env: str, backend: str, copies: int, env_steps: int, seed: int) -> dict[str, Any]:
    """Frames/s of ``copies`` copies of the preprocessed env under uniform random actions (wall and CPU time)."""
    venv = th.envs.make(env, n_envs=copies, backend=backend, seed=seed)
    n_actions = int(venv.single_action_space.n)
    generator = torch.Generator().manual_seed(seed)
    steps = max(1, math.ceil(env_steps / copies))  # vectorised steps
    actions = [torch.randint(n_actions, (copies,), generator=generator) for _ in range(steps + 20)]
    for a in actions[:20]:  # warm-up: the first steps pay for lazy set-up
        venv.step(a)
    wall, cpu = time.perf_counter(), time.process_time()
    for a in actions[20:]:
        venv.step(a)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    venv.close()
    frames = steps * copies * FRAME_SKIP
    return {"backend": backend, "copies": copies, "env_steps": steps * copies, "wall_s": round(wall, 2),
            "frames_per_s": round(frames / wall), "frames_per_cpu_s": round(frames / cpu)}


def training_throughput(env: str, backend: str, train_steps: int, seed: int) -> dict[str, Any]:
    """DQN training frames/s (env steps x 4) over ``train_steps`` env steps after learning starts."""
    starts = 500
    with tempfile.TemporaryDirectory() as root:
        agent = th.make("dqn", env=env, seed=seed, backend=backend, run_root=root, progress=False,
                        tensorboard=False, pictures=False, learning_starts=starts, buffer_size=10_000,
                        log_every=train_steps, checkpoint_every=2**62)
        agent.learn(starts)
        wall, cpu = time.perf_counter(), time.process_time()
        agent.learn(starts + train_steps)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        steps = agent.global_step - starts
        agent.interaction.close()  # the env copies (EnvPool threads, emulators)
    return {"backend": backend, "env_steps": steps, "wall_s": round(wall, 2),
            "frames_per_s": round(steps * FRAME_SKIP / wall), "env_steps_per_s": round(steps / wall, 1),
            "frames_per_cpu_s": round(steps * FRAME_SKIP / cpu)}


def ratios(rows: list[dict[str, Any]], key: tuple[str, ...]) -> list[dict[str, Any]]:
    """EnvPool / Gymnasium frames/s for each group of rows that agree on ``key``."""
    out = []
    for row in rows:
        if row["backend"] != "envpool":
            continue
        base = next((r for r in rows if r["backend"] == "gymnasium" and all(r[k] == row[k] for k in key)), None)
        if base is not None:
            out.append({**{k: row[k] for k in key}, "wall": round(row["frames_per_s"] / base["frames_per_s"], 2),
                        "cpu": round(row["frames_per_cpu_s"] / base["frames_per_cpu_s"], 2)})
    return out


def plot(result: dict[str, Any], path: Path) -> None:
    """Training score (last 20 games) and greedy evaluations against env frames (left) and minutes (right)."""
    from thorndike.plot import _save, plt

    rows = result["curve"]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), dpi=110, sharey=True)
    for ax, x, label in ((axes[0], "frames", "env frames (millions)"), (axes[1], "minutes", "wall-clock minutes")):
        scale = 1e6 if x == "frames" else 1.0
        train = [r for r in rows if not math.isnan(r["return_mean"])]
        ax.plot([r[x] / scale for r in train], [r["return_mean"] for r in train], lw=1.2, color="C0",
                label="training: mean score of the last 20 games")
        for prefix, color, what in (("eval", "C1", "greedy"), ("eps_eval", "C2", "epsilon 0.01")):
            evals = [r for r in rows if r.get(prefix + "_mean") is not None]
            ax.errorbar([r[x] / scale for r in evals], [r[prefix + "_mean"] for r in evals],
                        yerr=[r[prefix + "_std"] for r in evals], fmt="o", ms=4, capsize=2, color=color,
                        label=f"{what} evaluation: mean of {result['eval_episodes']} games (+/- std)")
        ax.set_xlabel(label)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("raw game score")
    axes[0].legend(fontsize=7, loc="upper left")
    speed = result.get("training_throughput") or []
    note = ", ".join(f"{r['backend']} {r['frames_per_s']} frames/s" for r in speed)
    fig.suptitle(f"DQN on {result['env']} ({result['backend']}, seed {result['seed']}, one CPU thread)"
                 + (f"; training speed: {note}" if note else ""), fontsize=9)
    _save(fig, path)


def _section(title: str, columns: list[str], rows: list[list[Any]], notes: list[str]) -> list[str]:
    """A Markdown section: a heading, a table of ``rows`` under ``columns``, then the ``notes`` as a list."""
    lines = [f"## {title}", "", "| " + " | ".join(columns) + " |", "| " + " | ".join(["---"] * len(columns)) + " |"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return lines + [""] + [f"- {note}" for note in notes] + [""]


def write(result: dict[str, Any], name: str) -> None:
    """The results so far: JSON, a Markdown report and (once the curve has a row) the figure."""
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=1))
    lines = [f"# DQN on {result['env']} on a CPU: throughput with and without EnvPool, and a learning curve", "",
             f"`{result['command']}`", "", f"Machine: {result['machine']}; one torch thread.", ""]
    if result["env_throughput"]:
        lines += _section("Env frames/s (preprocessed env, random actions; 1 env step = 4 frames)",
                          ["backend", "copies", "env steps", "wall s", "frames/s", "frames per CPU s"],
                          [[r["backend"], r["copies"], f"{r['env_steps']:,}", r["wall_s"], f"{r['frames_per_s']:,}",
                            f"{r['frames_per_cpu_s']:,}"] for r in result["env_throughput"]],
                          [f"EnvPool / Gymnasium, copies {r['copies']}: {r['wall']}x wall, {r['cpu']}x per CPU second"
                           for r in result["env_ratios"]])
    if result["training_throughput"]:
        lines += _section("DQN training frames/s (tuned config, after learning starts)",
                          ["backend", "env steps", "wall s", "env steps/s", "frames/s", "frames per CPU s"],
                          [[r["backend"], f"{r['env_steps']:,}", r["wall_s"], r["env_steps_per_s"],
                            f"{r['frames_per_s']:,}", f"{r['frames_per_cpu_s']:,}"]
                           for r in result["training_throughput"]],
                          [f"EnvPool / Gymnasium: {r['wall']}x wall, {r['cpu']}x per CPU second"
                           for r in result["training_ratios"]])
    rows = result["curve"]
    if rows:
        evals = [r for r in rows if "eval_mean" in r]
        best = max(evals, key=lambda r: r["eval_mean"]) if evals else None
        last = rows[-1]
        lines += [f"## Learning curve ({result['backend']} backend, seed {result['seed']}, budget "
                  f"{result['minutes']:g} min)", "",
                  f"{last['env_steps']:,} env steps ({last['frames'] / 1e6:.2f}M frames) in {last['minutes']:.1f} min "
                  f"({last['env_steps'] / max(last['minutes'] * 60, 1e-9):.0f} env steps/s with evaluations); "
                  f"training score (last 20 games) {last['return_mean']:.1f}"
                  + (f"; best greedy evaluation {best['eval_mean']:.1f} at {best['env_steps']:,} env steps"
                     if best else "") + ".", "",
                  "| env steps | frames | minutes | games | training score (last 20 games) | epsilon | "
                  "greedy evaluation | epsilon 0.01 evaluation |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
        lines += [f"| {r['env_steps']:,} | {r['frames']:,} | {r['minutes']:.1f} | {r['games']} | "
                  f"{r['return_mean']:.1f} | {r['epsilon']:.3f} | "
                  + " | ".join(f"{r[p + '_mean']:.1f} +/- {r[p + '_std']:.1f}; {r[p + '_length']:,}; {r[p + '_cut']}"
                               if r.get(p + "_mean") is not None else "" for p in ("eval", "eps_eval"))
                  + " |" for r in rows]
        lines += ["", "Evaluations: mean +/- std of the raw scores of the games; their mean length in agent steps; "
                  "how many were cut at 4,500 steps (18,000 frames): a greedy policy can stall (e.g. never serve "
                  "the ball when the reset's FIRE did not); epsilon 0.01 is the agent's final epsilon (the Nature "
                  "paper evaluated with 0.05)."]
        lines += ["", f"Curve: `{name}.png` (score against env frames and against minutes)."]
        plot(result, RESULTS / f"{name}.png")
    (RESULTS / f"{name}.md").write_text("\n".join(lines) + "\n")


def evaluate(agent: Any, episodes: int, deterministic: bool) -> dict[str, Any]:
    """``episodes`` whole games (raw scores), greedy or epsilon-greedy with the final epsilon (0.01): mean, std, mean
    length in agent steps, how many were cut at the step cap, and the seconds it took. Keys ``eval_*`` (greedy) or
    ``eps_eval_*``."""
    start = time.perf_counter()
    result = agent.evaluate(episodes, deterministic=deterministic, seed=10_000, max_episode_steps=EVAL_MAX_STEPS)
    prefix = "eval" if deterministic else "eps_eval"
    return {f"{prefix}_mean": round(result.mean, 2), f"{prefix}_std": round(result.std, 2),
            f"{prefix}_length": round(sum(result.lengths) / len(result.lengths)), f"{prefix}_cut": result.cut,
            f"{prefix}_s": round(time.perf_counter() - start, 1)}


def learning_curve(result: dict[str, Any], name: str, args: argparse.Namespace) -> None:
    """Learn in chunks until the wall-clock budget is spent; a row per chunk, rewritten to disk each time."""
    budget = args.minutes * 60
    with tempfile.TemporaryDirectory() as root:
        agent = th.make("dqn", env=args.env, seed=args.seed, backend=args.backend, run_root=root, progress=False,
                        tensorboard=False, pictures=False, checkpoint_every=2**62)
        start, next_eval, eval_s = time.perf_counter(), args.eval_every, 0.0
        while True:
            agent.learn(agent.global_step + args.chunk)
            steps = agent.global_step
            spent = time.perf_counter() - start
            done = spent >= budget
            columns = agent.episode_columns()
            row = {"env_steps": steps, "frames": steps * FRAME_SKIP, "games": int(columns["episodes"]),
                   "return_mean": round(columns["return_mean"], 2), "epsilon": round(agent.schedule.epsilon(steps), 4)}
            if steps >= next_eval or done:
                next_eval = (steps // args.eval_every + 1) * args.eval_every
                row.update(evaluate(agent, args.eval_episodes, deterministic=True))
                row.update(evaluate(agent, args.eval_episodes, deterministic=False))
                eval_s += row["eval_s"] + row["eps_eval_s"]
            row["minutes"] = round((time.perf_counter() - start) / 60, 2)
            row["training_minutes"] = round((time.perf_counter() - start - eval_s) / 60, 2)
            result["curve"].append(row)
            print(f"{steps:>8,} steps {row['minutes']:6.1f} min  score {row['return_mean']:6.1f}  "
                  f"eps {row['epsilon']:.3f}" + "".join(
                      f"  {p} {row[p + '_mean']:.1f} +/- {row[p + '_std']:.1f} (length {row[p + '_length']}, cut "
                      f"{row[p + '_cut']}, {row[p + '_s']} s)" for p in ("eval", "eps_eval") if p + "_mean" in row),
                  flush=True)
            write(result, name)
            if done:
                break
        agent.interaction.close()  # the env copies (EnvPool threads, emulators)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="ALE/Breakout-v5")
    parser.add_argument("--minutes", type=float, default=90.0, help="wall-clock budget of the learning curve (0: none)")
    parser.add_argument("--backend", default="gymnasium", choices=BACKENDS, help="backend of the learning curve")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--copies", default="1,8", help="numbers of env copies for the env throughput")
    parser.add_argument("--env-steps", type=int, default=4000, help="env steps per env-throughput measurement")
    parser.add_argument("--train-steps", type=int, default=1000, help="env steps per training-throughput measurement")
    parser.add_argument("--chunk", type=int, default=10_000, help="env steps between rows (and clock checks)")
    parser.add_argument("--eval-every", type=int, default=40_000)
    parser.add_argument("--eval-episodes", type=int, default=5)
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--tag", default="")
    parser.add_argument("--rewrite", action="store_true", help="only rewrite the md and png from the json")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    name = "atari_dqn" + (f"_{args.tag}" if args.tag else "")
    if args.rewrite:
        write(json.loads((RESULTS / f"{name}.json").read_text()), name)
        return
    command = "PYTHONPATH=$PWD .venv/bin/python benchmarks/atari_dqn.py " + " ".join(
        sys.argv[1:] if argv is None else argv)
    result: dict[str, Any] = {
        "env": args.env, "backend": args.backend, "seed": args.seed, "minutes": args.minutes, "command": command,
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}",
        "eval_episodes": args.eval_episodes, "eval_max_steps": EVAL_MAX_STEPS,
        "env_throughput": [], "env_ratios": [], "training_throughput": [], "training_ratios": [], "curve": []}
    if not args.skip_throughput:
        for copies in (int(c) for c in args.copies.split(",")):
            for backend in BACKENDS:
                row = env_throughput(args.env, backend, copies, args.env_steps, args.seed)
                result["env_throughput"].append(row)
                print(f"env {backend} x{copies}: {row['frames_per_s']:,} frames/s, {row['frames_per_cpu_s']:,} "
                      "per CPU s", flush=True)
        result["env_ratios"] = ratios(result["env_throughput"], ("copies",))
        for backend in BACKENDS:
            row = training_throughput(args.env, backend, args.train_steps, args.seed)
            result["training_throughput"].append(row)
            print(f"train {backend}: {row['frames_per_s']:,} frames/s ({row['env_steps_per_s']} env steps/s)",
                  flush=True)
        result["training_ratios"] = ratios(result["training_throughput"], ())
        write(result, name)
    if args.minutes > 0:
        learning_curve(result, name, args)


if __name__ == "__main__":
    main()
