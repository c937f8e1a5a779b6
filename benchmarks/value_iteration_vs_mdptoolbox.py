"""Side-by-side benchmark: thorndike's value iteration vs pymdptoolbox's, on growing open gridworlds.

The problem: an n x n gridworld without walls (``thorndike.envs.gridworld.open_grid``), noise 0.2 (each action
moves as intended with probability 0.8 and slips sideways with 0.1 each), a +1 exit in the top-right corner, living
reward 0; n*n + 1 states (the last is the absorbing terminal), 4 actions, about 12 stored transitions per state.
Both libraries get the very same model: pymdptoolbox takes the rows of thorndike's sparse P as one scipy CSR
matrix per action and the expected rewards r(s, a).

Same gamma, same stopping rule. thorndike stops when max_s |V_k - V_{k-1}| < tol; pymdptoolbox stops when the span
(max - min) of V_k - V_{k-1} is below epsilon (1 - gamma) / gamma. On this problem V_k grows monotonically from 0
and stays 0 at the terminal state, so the span equals the max-norm, and epsilon = tol * gamma / (1 - gamma) makes
both stop after the same number of sweeps (the table shows both counts). Both V are compared (max |difference|).

What is timed, per library (wall clock, best of ``--repeats``):

* thorndike: ``value_iteration(mdp, gamma, tol)`` on the sparse TabularMDP (building the MDP is reported apart);
* pymdptoolbox "sweeps": ``ValueIteration`` construction and ``run()`` with two set-up steps skipped: its input
  check, whose ``P[a] >= 0`` builds an all-true S x S sparse matrix per action, and its iteration bound, which
  slices every column of every matrix; both cost O(S^2) time, the first also O(S^2) memory. This is the fair
  per-sweep comparison;
* pymdptoolbox "as shipped": the same with those steps, as a user calls it; only up to ``--shipped-max-states``
  states (at 10^6 states the input check alone would need terabytes).

torch runs on ``--threads`` threads (default 1: scipy's sparse products are single-threaded, and the benchmark
machine may be shared).

Run it (needs the ``[bench]`` extra, i.e. pymdptoolbox and scipy):

    .venv/bin/python benchmarks/value_iteration_vs_mdptoolbox.py                  # n = 10, 30, 100, 300, 1000
    .venv/bin/python benchmarks/value_iteration_vs_mdptoolbox.py --sides 10 30 100 --repeats 3
"""

from __future__ import annotations

import argparse
import contextlib
import time
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch

from thorndike.envs.gridworld import open_grid
from thorndike.envs.tabular import TabularMDP
from thorndike.planning import value_iteration

try:
    import mdptoolbox.mdp
    import scipy.sparse
except ImportError:
    mdptoolbox = None


def best_time(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    """The smallest wall time of ``repeats`` calls, and the last call's result."""
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def peer_model(mdp: TabularMDP) -> tuple[list[Any], np.ndarray]:
    """pymdptoolbox's input for the same MDP: one scipy CSR [S, S] per action, and r(s, a) as an [S, A] array."""
    S, A = mdp.n_states, mdp.n_actions
    flat = scipy.sparse.csr_matrix(
        (mdp.P.values().numpy(), mdp.P.col_indices().numpy(), mdp.P.crow_indices().numpy()), shape=(S * A, S)
    )
    return [flat[a::A].tocsr() for a in range(A)], mdp.r.numpy().copy()


@contextlib.contextmanager
def peer_setup_skipped() -> Iterator[None]:
    """Skip pymdptoolbox's O(S^2) input check and iteration bound, as its later ``skip_check`` option does."""
    check, bound = mdptoolbox.mdp._util.check, mdptoolbox.mdp.ValueIteration._boundIter
    mdptoolbox.mdp._util.check = lambda *args, **kwargs: None
    mdptoolbox.mdp.ValueIteration._boundIter = lambda self, epsilon: None
    try:
        yield
    finally:
        mdptoolbox.mdp._util.check, mdptoolbox.mdp.ValueIteration._boundIter = check, bound


def run_peer(P: list[Any], R: np.ndarray, gamma: float, epsilon: float, skip_setup: bool) -> tuple[np.ndarray, int]:
    """pymdptoolbox's ValueIteration from V = 0; returns (V, sweeps)."""
    if skip_setup:
        with peer_setup_skipped():
            vi = mdptoolbox.mdp.ValueIteration(P, R, gamma, epsilon=epsilon, max_iter=10**6)
            vi.max_iter = 10**6
    else:
        vi = mdptoolbox.mdp.ValueIteration(P, R, gamma, epsilon=epsilon, max_iter=10**6)
    vi.run()
    return np.asarray(vi.V), vi.iter


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sides", type=int, nargs="+", default=[10, 30, 100, 300, 1000], help="grid sides n")
    parser.add_argument("--gamma", type=float, default=0.99)
    parser.add_argument("--tol", type=float, default=1e-8, help="max-norm change of V that stops both")
    parser.add_argument("--noise", type=float, default=0.2)
    parser.add_argument("--repeats", type=int, default=1, help="timed runs per library and size (best is kept)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--shipped-max-states", type=int, default=20_000,
                        help="largest S for which pymdptoolbox also runs as shipped (its set-up is O(S^2))")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", message=".*[Ss]parse.*")
    if mdptoolbox is None:
        print("pymdptoolbox is not installed (pip install -e '.[bench]'); timing thorndike alone.\n")
    epsilon = args.tol * args.gamma / (1.0 - args.gamma)  # pymdptoolbox's threshold is epsilon (1 - gamma) / gamma

    print(f"value iteration, open n x n gridworld, noise {args.noise}, gamma {args.gamma}, tol {args.tol:g}, "
          f"torch threads {args.threads}, best of {args.repeats}\n")
    header = ("| states | transitions | sweeps (th / peer) | thorndike build s | thorndike VI s | peer sweeps s "
              "| peer as shipped s | speed-up (sweeps) | speed-up (as shipped) | max abs dV |")
    print(header)
    print("|" + "|".join("---" for _ in range(header.count("|") - 1)) + "|")
    for n in args.sides:
        build_s, mdp = best_time(lambda n=n: open_grid(n, noise=args.noise, gamma=args.gamma, sparse=True), 1)
        th_s, sol = best_time(lambda mdp=mdp: value_iteration(mdp, gamma=args.gamma, tol=args.tol), args.repeats)
        row = {"peer_s": "-", "shipped_s": "-", "ratio": "-", "ratio_shipped": "-", "diff": "-", "peer_sweeps": "-"}
        if mdptoolbox is not None:
            P, R = peer_model(mdp)
            peer_s, (V_peer, peer_sweeps) = best_time(lambda P=P, R=R: run_peer(P, R, args.gamma, epsilon, True),
                                                      args.repeats)
            row.update(peer_s=f"{peer_s:.3f}", ratio=f"{peer_s / th_s:.1f}x", peer_sweeps=str(peer_sweeps),
                       diff=f"{np.abs(V_peer - sol.V.numpy()).max():.1e}")
            if mdp.n_states <= args.shipped_max_states:
                shipped_s, _ = best_time(lambda P=P, R=R: run_peer(P, R, args.gamma, epsilon, False), args.repeats)
                row.update(shipped_s=f"{shipped_s:.3f}", ratio_shipped=f"{shipped_s / th_s:.0f}x")
            else:
                row.update(shipped_s="not run (O(S^2))")
        print(f"| {mdp.n_states:,} | {mdp.P.values().numel():,} | {sol.sweeps} / {row['peer_sweeps']} "
              f"| {build_s:.2f} | {th_s:.3f} | {row['peer_s']} | {row['shipped_s']} | {row['ratio']} "
              f"| {row['ratio_shipped']} | {row['diff']} |", flush=True)


if __name__ == "__main__":
    main()
