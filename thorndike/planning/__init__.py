"""Planning with a known model: exact dynamic programming on :class:`~thorndike.envs.tabular.TabularMDP` problems.

Lecture-notes concept: *exact solution methods* (F0 L36-L109, L357-L388; YSDA F3 L159-L243): value iteration and
Q-value iteration, policy evaluation, policy iteration and modified policy iteration, soft (maximum-entropy) value
iteration, real-time dynamic programming, and Monte Carlo tree search over any copyable simulator (``mcts``).
The dynamic-programming planners return a :class:`PlanningResult`.

    mdp = th.envs.gridworld.classic(noise=0.2)
    sol = th.planning.value_iteration(mdp, gamma=0.9)   # sol.V, sol.Q, sol.policy, sol.sweeps, sol.residuals
"""

from thorndike.planning.mcts import MCTSResult, mcts, ucb
from thorndike.planning.policy_iteration import (
    evaluate_policies,
    modified_policy_iteration,
    policy_evaluation,
    policy_iteration,
)
from thorndike.planning.result import PlanningResult
from thorndike.planning.rtdp import rtdp
from thorndike.planning.soft_value_iteration import one_step_max_entropy, soft_value_iteration
from thorndike.planning.value_iteration import q_value_iteration, tail_bound, value_iteration

__all__ = [
    "evaluate_policies",
    "MCTSResult",
    "PlanningResult",
    "mcts",
    "modified_policy_iteration",
    "one_step_max_entropy",
    "policy_evaluation",
    "policy_iteration",
    "q_value_iteration",
    "rtdp",
    "soft_value_iteration",
    "tail_bound",
    "ucb",
    "value_iteration",
]
