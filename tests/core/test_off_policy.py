"""The off-policy schedule (warm-up, update and target-update counts, epsilon) and target-network updates."""

import pytest
import torch
from torch import nn

from thorndike.core.off_policy import Due, OffPolicySchedule, hard_update, soft_update
from thorndike.core.schedules import Linear


class Net(nn.Module):
    def __init__(self, value: float) -> None:
        super().__init__()
        self.linear = nn.Linear(2, 2)
        nn.init.constant_(self.linear.weight, value)
        nn.init.constant_(self.linear.bias, value)
        self.register_buffer("count", torch.tensor(int(value)))


def test_hard_update_copies_parameters_and_buffers():
    target, source = Net(0.0), Net(3.0)
    hard_update(target, source)
    assert target.linear.weight.tolist() == [[3.0, 3.0], [3.0, 3.0]] and int(target.count) == 3
    with torch.no_grad():
        source.linear.weight.add_(1.0)
    assert target.linear.weight[0, 0] == 3.0  # copied, not shared


def test_soft_update_by_hand():
    target, source = Net(0.0), Net(1.0)
    soft_update(target, source, 0.1)  # 0 + .1 (1 - 0) = .1
    torch.testing.assert_close(target.linear.bias, torch.tensor([0.1, 0.1]))
    soft_update(target, source, 0.1)  # .1 + .1 (1 - .1) = .19
    torch.testing.assert_close(target.linear.weight, torch.full((2, 2), 0.19))
    assert int(target.count) == 1  # a buffer is copied
    assert not target.linear.weight.requires_grad or target.linear.weight.grad_fn is None
    soft_update(target, source, 1.0)
    assert torch.equal(target.linear.weight, source.linear.weight)


def test_target_updates_refuse_other_modules_and_bad_tau():
    with pytest.raises(ValueError, match="differ"):
        hard_update(Net(0.0), nn.Linear(2, 3))
    with pytest.raises(ValueError, match="tau"):
        soft_update(Net(0.0), Net(1.0), 1.5)


def brute_force(n_envs, learning_starts, train_freq, gradient_steps, interval, vector_steps):
    """Count env step by env step: the j-th env step (1-based) trains when j - learning_starts is a positive
    multiple of train_freq, and updates the target when it is a positive multiple of the interval."""
    out = []
    for v in range(vector_steps):
        grads = targets = 0
        for j in range(v * n_envs + 1, (v + 1) * n_envs + 1):
            past = j - learning_starts
            grads += gradient_steps * (past > 0 and past % train_freq == 0)
            targets += past > 0 and past % interval == 0
        out.append(Due(grads, targets))
    return out


def test_schedule_by_hand():
    schedule = OffPolicySchedule(n_envs=1, learning_starts=2, train_freq=2, gradient_steps=3,
                                 target_update_interval=4)
    assert [schedule.random_actions(s) for s in range(4)] == [True, True, False, False]
    # env steps 3, 4, ... are the 1st, 2nd, ... past learning_starts: updates at the 2nd, 4th, ...; targets at the 4th
    due = [schedule.due(s) for s in range(8)]
    assert [d.gradient_steps for d in due] == [0, 0, 0, 3, 0, 3, 0, 3]
    assert [d.target_updates for d in due] == [0, 0, 0, 0, 0, 1, 0, 0]


@pytest.mark.parametrize("n_envs, learning_starts, train_freq, gradient_steps, interval",
                         [(4, 10, 3, 2, 7), (3, 0, 1, 1, 1), (8, 5, 16, 4, 100), (1, 0, 4, 1, 10)])
def test_schedule_counts_env_steps_and_resumes_exactly(n_envs, learning_starts, train_freq, gradient_steps,
                                                        interval):
    schedule = OffPolicySchedule(n_envs, learning_starts, train_freq, gradient_steps, interval)
    expected = brute_force(n_envs, learning_starts, train_freq, gradient_steps, interval, 60)
    assert [schedule.due(v * n_envs) for v in range(60)] == expected
    # the schedule keeps no state: a fresh one (a resumed run) asked at step 37 * n_envs answers the same
    resumed = OffPolicySchedule(n_envs, learning_starts, train_freq, gradient_steps, interval)
    assert [resumed.due(v * n_envs) for v in range(37, 60)] == expected[37:]
    # the replay ratio: gradient_steps / train_freq per env step once learning started
    total = sum(d.gradient_steps for d in expected)
    assert total == gradient_steps * ((60 * n_envs - learning_starts) // train_freq)


def test_epsilon_schedule_of_env_steps():
    schedule = OffPolicySchedule(n_envs=4, epsilon=Linear(1.0, 0.05, 1000))
    assert schedule.epsilon(0) == 1.0
    assert schedule.epsilon(500) == pytest.approx(0.525)
    assert schedule.epsilon(5000) == pytest.approx(0.05)
    assert OffPolicySchedule(n_envs=1, epsilon=0.1).epsilon(10**6) == 0.1


def test_schedule_bad_arguments():
    with pytest.raises(ValueError, match="train_freq"):
        OffPolicySchedule(n_envs=1, train_freq=0)
    with pytest.raises(ValueError, match="learning_starts"):
        OffPolicySchedule(n_envs=1, learning_starts=-1)
    with pytest.raises(ValueError, match="n_envs"):
        OffPolicySchedule(n_envs=True)
    with pytest.raises(TypeError, match="Schedule"):
        OffPolicySchedule(n_envs=1, epsilon="0.1")
