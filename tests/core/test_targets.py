"""One-step TD targets, the DQN family's targets and the incremental update (INVENTORY C13, C15, C19, C26, C28)."""

import torch

from thorndike.core.targets import (
    double_dqn_target,
    double_q_target,
    dqn_target,
    expected_sarsa_target,
    incremental_update,
    q_learning_target,
    sarsa_target,
)

T, F = torch.tensor([True]), torch.tensor([False])


def test_q_learning_update_by_hand():
    # C13: Q = 0, alpha = 0.5, R = 1, gamma = 0.9, max Q(s') = 2 -> target 2.8, Q -> 1.4
    q_next = torch.tensor([[2.0, -1.0]])
    target = q_learning_target(torch.tensor([1.0]), 0.9, q_next, F)
    assert torch.allclose(target, torch.tensor([2.8]))
    assert torch.allclose(incremental_update(torch.tensor([0.0]), target, 0.5), torch.tensor([1.4]))
    # a terminal next state: the target is the reward alone (000 L123, 001 L88)
    assert torch.equal(q_learning_target(torch.tensor([1.0]), 0.9, q_next, T), torch.tensor([1.0]))


def test_two_forms_of_the_incremental_update_agree():
    # C15: V + a (G - V) == (1 - a) V + a G
    g = torch.Generator().manual_seed(0)
    v, target, alpha = torch.randn(100, generator=g), torch.randn(100, generator=g), torch.rand(100, generator=g)
    assert torch.allclose(incremental_update(v, target, alpha), (1 - alpha) * v + alpha * target)


def test_sarsa_and_expected_sarsa_by_hand():
    q_next = torch.tensor([[1.0, 4.0, 2.0]])
    r = torch.tensor([0.5])
    # SARSA uses the action actually taken next: 0.5 + 0.9 * 2
    assert torch.allclose(sarsa_target(r, 0.9, q_next, torch.tensor([2]), F), torch.tensor([2.3]))
    # Expected SARSA under eps-greedy with eps = 0.3: probs (0.1, 0.8, 0.1) -> E = 0.1 + 3.2 + 0.2 = 3.5
    probs = torch.tensor([[0.1, 0.8, 0.1]])
    assert torch.allclose(expected_sarsa_target(r, 0.9, q_next, probs, F), torch.tensor([0.5 + 0.9 * 3.5]))
    # C19: with a greedy pi, Expected SARSA's target is Q-learning's
    greedy = torch.tensor([[0.0, 1.0, 0.0]])
    assert torch.allclose(expected_sarsa_target(r, 0.9, q_next, greedy, F), q_learning_target(r, 0.9, q_next, F))


def test_double_q_target_selects_with_one_table_and_evaluates_with_the_other():
    # C28: argmax of the selector is action 0; the evaluator's value there is -1 (its own max would be 5)
    selector = torch.tensor([[3.0, 1.0]])
    evaluator = torch.tensor([[-1.0, 5.0]])
    target = double_q_target(torch.tensor([0.0]), 1.0, selector, evaluator, F)
    assert torch.equal(target, torch.tensor([-1.0]))
    assert torch.equal(double_q_target(torch.tensor([2.0]), 1.0, selector, evaluator, T), torch.tensor([2.0]))


def test_dqn_and_double_dqn_targets_by_hand():
    # gamma = 0.9. Row 0 ongoing; row 1 terminal (discount 0, and its next values may be anything, even NaN);
    # row 2 truncated by a time limit: still bootstrapped from the true last state (discount gamma); row 3 a 2-step
    # transition: reward 1 + 0.9 * 0.5 = 1.45 already summed, discount gamma^2 = 0.81.
    nan = float("nan")
    reward = torch.tensor([1.0, 2.0, -1.0, 1.45])
    discount = torch.tensor([0.9, 0.0, 0.9, 0.81])
    online = torch.tensor([[1.0, 3.0, 2.0], [0.0, 1.0, 2.0], [0.0, 1.0, 5.0], [4.0, 0.0, 0.0]])
    target = torch.tensor([[5.0, 0.0, 4.0], [nan, nan, nan], [2.0, 3.0, 1.0], [1.0, 2.0, 0.0]])
    # DQN: the target network's max: 1 + 0.9 * 5; 2; -1 + 0.9 * 3; 1.45 + 0.81 * 2
    torch.testing.assert_close(dqn_target(reward, discount, target), torch.tensor([5.5, 2.0, 1.7, 3.07]))
    # double DQN: the online network picks actions 1, 2, 2, 0 and the target network values them 0, -, 1, 1:
    # 1 + 0.9 * 0; 2; -1 + 0.9 * 1; 1.45 + 0.81 * 1
    torch.testing.assert_close(double_dqn_target(reward, discount, online, target),
                               torch.tensor([1.0, 2.0, -0.1, 2.26]))
    # with the online network as its own evaluator, double DQN is DQN
    torch.testing.assert_close(double_dqn_target(reward, discount, target.nan_to_num(), target.nan_to_num()),
                               dqn_target(reward, discount, target.nan_to_num()))
