"""Does the DQN family (dqn, c51, qr_dqn, rainbow) solve CartPole-v1 with its tuned config? Per seed, the env steps
until the greedy mean return of 20 evaluation episodes first reaches 475.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/dqn_family_learning.py [--algos c51,qr_dqn,rainbow] [--seeds 0-2]
        [--budget 50000] [--eval-every 5000] [--set algo.field=value ...]

Each run is ``th.make(algo, env="CartPole-v1", seed=s)`` (the tuned values in ``thorndike/configs/<algo>.yaml``,
``--set`` overriding single fields); every ``--eval-every`` env steps its greedy policy plays 20 episodes on fresh
env copies (seed 10_000, the same starts each time; evaluation changes nothing training does next). A seed is
solved at the first evaluation with mean >= 475; the run stops there or at the budget. Prints one line per run.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch
import yaml

import thorndike as th
from thorndike.experiment import parse_seeds

THRESHOLD = 475.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--algos", default="c51,qr_dqn,rainbow")
    parser.add_argument("--seeds", default="0-2")
    parser.add_argument("--budget", type=int, default=50_000)
    parser.add_argument("--eval-every", type=int, default=5000)
    parser.add_argument("--set", nargs="*", default=[], help="algo.field=value (YAML value)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    overrides: dict[str, dict] = {}
    for item in args.set:
        key, _, value = item.partition("=")
        algo, _, field = key.partition(".")
        overrides.setdefault(algo, {})[field] = yaml.safe_load(value)
    for algo in args.algos.split(","):
        for seed in parse_seeds([args.seeds]):
            with tempfile.TemporaryDirectory() as root:
                agent = th.make(algo, env="CartPole-v1", seed=seed, run_root=root, progress=False, tensorboard=False,
                                pictures=False, **overrides.get(algo, {}))
                start, solved_at, curve = time.perf_counter(), None, []
                for steps in range(args.eval_every, args.budget + 1, args.eval_every):
                    agent.learn(steps)
                    mean = agent.evaluate(20, deterministic=True, seed=10_000).mean
                    curve.append(round(mean))
                    if mean >= THRESHOLD:
                        solved_at = steps
                        break
                wall = time.perf_counter() - start
                print(f"{algo} seed {seed}: solved at {solved_at} env steps; eval means {curve}; {wall:.0f} s",
                      flush=True)


if __name__ == "__main__":
    main()
