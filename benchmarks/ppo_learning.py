"""PPO learning across seeds: CartPole-v1 (solve = deterministic 10-episode mean >= 475 within 100k steps) and
Pendulum-v1 (deterministic 10-episode mean >= -250 after 300k steps), with thorndike's tuned configs.

    .venv/bin/python benchmarks/ppo_learning.py [--seeds 0 1 2 3 4] [--envs CartPole-v1 Pendulum-v1] [--workers 2]
        [--backend gymnasium|torch]

Prints one JSON line per run and a Markdown table, writes benchmarks/results/ppo_learning.{md,png}.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

TASKS = {
    # env: (step budget, threshold, evaluate every, stop at the first evaluation that reaches the threshold)
    "CartPole-v1": (100_000, 475.0, 8192, True),
    "Pendulum-v1": (300_000, -250.0, 50_000, False),
}
RESULTS = Path(__file__).parent / "results"


def run(env: str, seed: int, run_root: str, backend: str) -> dict:
    import torch

    import thorndike as th

    torch.set_num_threads(1)
    budget, threshold, every, stop = TASKS[env]
    start = time.perf_counter()
    agent = th.make("ppo", env=env, seed=seed, backend=backend, eval_every=every, eval_episodes=10,
                    stop_return=threshold if stop else None, progress=False, run_root=run_root)
    agent.learn(budget)
    final = agent.evaluate(episodes=10)
    return dict(env=env, seed=seed, steps=agent.global_step, wall_s=round(time.perf_counter() - start, 1),
                final_eval=round(final.mean, 1), passed=final.mean >= threshold, run_dir=str(agent.run_dir))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--envs", nargs="+", default=list(TASKS), choices=list(TASKS))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--backend", default="gymnasium", choices=["gymnasium", "torch", "auto"],
                        help="env backend (the README's table was measured on gymnasium)")
    args = parser.parse_args()
    run_root = tempfile.mkdtemp(prefix="thorndike-ppo-learning-")
    jobs = [(env, seed) for env in args.envs for seed in args.seeds]
    with ProcessPoolExecutor(args.workers) as pool:
        futures = [pool.submit(run, env, seed, run_root, args.backend) for env, seed in jobs]
        results = []
        for future in futures:
            results.append(future.result())
            print(json.dumps(results[-1]), flush=True)

    lines = ["| env | seed | steps | final eval (10 det. episodes) | threshold | passed | wall s |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in results:
        threshold = TASKS[r["env"]][1]
        lines.append(f"| {r['env']} | {r['seed']} | {r['steps']:,} | {r['final_eval']} | {threshold:g} | "
                     f"{'yes' if r['passed'] else 'no'} | {r['wall_s']} |")
    for env in args.envs:
        passed = sum(r["passed"] for r in results if r["env"] == env)
        lines.append(f"\n{env}: {passed}/{sum(r['env'] == env for r in results)} seeds passed")
    table = "\n".join(lines)
    print(table)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "ppo_learning.md").write_text(table + "\n")

    from thorndike.plot import learning_curves

    for env in args.envs:
        runs = [r["run_dir"] for r in results if r["env"] == env]
        learning_curves(runs, RESULTS / f"ppo_learning_{env}.png", title=f"PPO on {env}, {len(runs)} seeds")


if __name__ == "__main__":
    main()
