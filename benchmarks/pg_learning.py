"""Does VPG / TRPO learn CartPole-v1 (or Pendulum-v1)? Train with the tuned config (``thorndike/configs/<algo>.yaml``,
plus ``--set field=value`` overrides) for each seed, and after every ``--every`` env steps evaluate the greedy
policy over 20 episodes; print one line per evaluation and, per seed, the first step at which the mean reached the
target (CartPole 475, Pendulum -300) and the final mean.

    PYTHONPATH=. .venv/bin/python benchmarks/pg_learning.py trpo --env CartPole-v1 --steps 100000 --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import ast
import tempfile
import time

import torch

import thorndike as th

TARGETS = {"CartPole-v1": 475.0, "Pendulum-v1": -300.0}


def parse_value(text: str) -> object:
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("algo")
    parser.add_argument("--env", default="CartPole-v1")
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--every", type=int, default=10_000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--set", nargs="*", default=[], help="field=value overrides of the tuned config")
    args = parser.parse_args()
    torch.set_num_threads(1)
    fields = {k: parse_value(v) for k, v in (s.split("=", 1) for s in args.set)}
    target = TARGETS.get(args.env, float("inf"))
    for seed in args.seeds:
        start, solved_at = time.time(), None
        with tempfile.TemporaryDirectory() as root:
            agent = th.make(args.algo, env=args.env, seed=seed, run_root=root, progress=False, tensorboard=False,
                            pictures=False, **fields)
            for mark in range(args.every, args.steps + 1, args.every):
                agent.learn(mark)
                mean = agent.evaluate(episodes=20).mean
                print(f"{args.algo} {args.env} seed {seed} step {agent.global_step} greedy mean {mean:.1f} "
                      f"({time.time() - start:.0f} s)", flush=True)
                if solved_at is None and mean >= target:
                    solved_at = agent.global_step
        print(f"RESULT {args.algo} {args.env} seed {seed} {fields} first >= {target}: {solved_at}, final {mean:.1f}",
              flush=True)


if __name__ == "__main__":
    main()
