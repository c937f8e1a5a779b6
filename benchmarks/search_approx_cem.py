"""Approximate CEM on CartPole-v1: steps, sessions and wall time to solve it, seeds 0-9.

    .venv/bin/python benchmarks/search_approx_cem.py [--seeds 0 1 ...] [--budget 200000] [--config '{"lr": 0.01}']

Each seed is one agent with the default config (plus ``--config``, JSON of config fields) and one ``learn(budget)``.
After every iteration the greedy policy is evaluated on 20 episodes (the agent's fixed evaluation seed); the seed is
solved at the first iteration whose mean is >= 475 (the run stops there), and counts as unsolved when ``--budget``
steps (per run, as the agent counts them: lockstep steps times sessions) pass first. The training wall time is the
learn call's less the evaluations. Writes benchmarks/results/search_approx_cem.json.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

import thorndike as th

RESULTS = Path(__file__).parent / "results"
SOLVED = 475.0


def solve(seed: int, budget: int, fields: dict, run_root: str) -> dict:
    """One ``learn(budget)`` that evaluates the greedy policy on 20 episodes after every iteration and stops at the
    first mean >= 475 (the run's own ``eval_every`` / ``stop_return``); the evaluations are timed apart."""
    agent = th.make("approx_cem", env="CartPole-v1", seed=seed, run_root=run_root, progress=False, tensorboard=False,
                    pictures=False, checkpoint_every=budget, eval_every=1, eval_episodes=20, stop_return=SOLVED,
                    **fields)
    evaluate, evals, eval_s = agent.evaluate, [], [0.0]

    def timed_evaluate(episodes: int = 10, **kwargs):
        began = time.perf_counter()
        result = evaluate(episodes, **kwargs)
        eval_s[0] += time.perf_counter() - began
        evals.append(result.mean)
        return result

    agent.evaluate = timed_evaluate
    began = time.perf_counter()
    agent.learn(budget)
    wall = time.perf_counter() - began
    solved = evals[-1] >= SOLVED
    return {"seed": seed, "solved": solved, "steps": agent.global_step if solved else None,
            "sessions": agent.episodes if solved else None, "iterations": agent.iteration,
            "train_s": round(wall - eval_s[0], 2), "eval_s": round(eval_s[0], 2),
            "eval_means": [round(m, 1) for m in evals]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=list(range(10)))
    parser.add_argument("--budget", type=int, default=200_000, help="steps per seed")
    parser.add_argument("--config", default="{}", help="JSON of config fields over the defaults")
    parser.add_argument("--out", default=str(RESULTS / "search_approx_cem.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    fields = json.loads(args.config)
    rows = []
    with tempfile.TemporaryDirectory() as run_root:
        for seed in args.seeds:
            row = solve(seed, args.budget, fields, run_root)
            rows.append(row)
            print(f"seed {seed}: " + (f"solved at {row['steps']} steps, {row['sessions']} sessions, "
                                      f"{row['iterations']} iterations" if row["solved"] else
                                      f"not solved within {args.budget} steps ({row['iterations']} iterations, "
                                      f"last greedy mean {row['eval_means'][-1]})") +
                  f", {row['train_s']} s training", flush=True)
    solved = [r for r in rows if r["solved"]]
    print(f"solved {len(solved)} of {len(rows)}; training wall time max {max(r['train_s'] for r in rows)} s, "
          f"total {sum(r['train_s'] for r in rows):.1f} s")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"config": fields, "budget": args.budget, "runs": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
