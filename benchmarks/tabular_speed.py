"""How long a multi-seed tabular study takes: thorndike's batched runs against the usual one-run-at-a-time loop.

The peer is the loop of the Hugging Face course (001 unit 2) and most tutorials: a Gymnasium env, a NumPy Q table,
epsilon-greedy with ``np.argmax``, one step at a time, one seed after another. thorndike steps all runs at once as
tensor ops (``th.make("q_learning", n_runs=R)``). Both do Q-learning on FrozenLake-v1 (slippery) with the same
hyperparameters for the same number of steps per run; the table reports seconds and the ratio peer / thorndike, and
the exact value of each learned greedy policy (mean over runs) so that both visibly learned the same thing.

    .venv/bin/python benchmarks/tabular_speed.py [--runs 1 10 30 100 1000] [--steps 20000]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

import thorndike as th
from thorndike.planning import policy_evaluation

RESULTS = Path(__file__).parent / "results"
ALPHA, GAMMA, EPSILON = 0.05, 0.99, 0.5


def peer_q_learning(seed: int, steps: int) -> np.ndarray:
    """One run of the tutorial loop: Gymnasium env, NumPy table, epsilon-greedy with random tie-breaking."""
    env = gym.make("FrozenLake-v1")
    rng = np.random.default_rng(seed)
    q = np.zeros((env.observation_space.n, env.action_space.n))
    state, _ = env.reset(seed=seed)
    for _ in range(steps):
        if rng.random() < EPSILON:
            action = int(rng.integers(env.action_space.n))
        else:
            best = np.flatnonzero(q[state] == q[state].max())
            action = int(rng.choice(best))
        next_state, reward, terminated, truncated, _ = env.step(action)
        target = reward + (0.0 if terminated else GAMMA * q[next_state].max())
        q[state, action] += ALPHA * (target - q[state, action])
        state = next_state
        if terminated or truncated:
            state, _ = env.reset()
    return q


def exact_start_value(mdp: th.envs.TabularMDP, q: torch.Tensor) -> float:
    return float(policy_evaluation(mdp, q.argmax(-1), gamma=GAMMA)[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, nargs="+", default=[1, 10, 30, 100, 1000])
    parser.add_argument("--steps", type=int, default=20_000, help="steps per run")
    parser.add_argument("--peer-max-runs", type=int, default=30,
                        help="time at most this many peer runs and scale linearly (the peer's runs are sequential)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    mdp = th.envs.tabular_model("FrozenLake-v1")
    rows = []
    for n_runs in args.runs:
        start = time.perf_counter()
        # No pictures: drawing them (and importing matplotlib, about a second) is not learning, and the peer
        # draws none. The run folder, progress.csv and checkpoints are still written and timed.
        agent = th.make("q_learning", env="FrozenLake-v1", seed=0, n_runs=n_runs, alpha=ALPHA, gamma=GAMMA,
                        epsilon=EPSILON, progress=False, run_root="/tmp/thorndike-bench-runs", log_every=5000,
                        pictures=False)
        agent.learn(args.steps)
        ours = time.perf_counter() - start
        our_value = float(agent.exact_values()[:, 0].mean())

        timed = min(n_runs, args.peer_max_runs)
        start = time.perf_counter()
        peer_tables = [peer_q_learning(seed, args.steps) for seed in range(timed)]
        peer = (time.perf_counter() - start) * n_runs / timed
        peer_value = float(np.mean([exact_start_value(mdp, torch.from_numpy(q)) for q in peer_tables]))
        rows.append({"runs": n_runs, "steps_per_run": args.steps, "thorndike_s": ours, "peer_s": peer,
                     "peer_timed_runs": timed, "ratio_peer_over_thorndike": peer / ours,
                     "thorndike_mean_V_start": our_value, "peer_mean_V_start": peer_value})
        print(f"{n_runs:5d} runs x {args.steps} steps: thorndike {ours:7.2f} s, tutorial loop {peer:8.2f} s"
              f"{'' if timed == n_runs else f' (scaled from {timed} runs)'}, ratio {peer / ours:6.1f}x; "
              f"mean exact V(start) {our_value:.3f} vs {peer_value:.3f}", flush=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "tabular_speed.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
