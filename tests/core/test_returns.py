import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from thorndike.core.returns import (
    discounted_returns,
    gae,
    lambda_returns,
    n_step_targets,
    normalize,
    reward_to_go,
    td_errors,
)


def t(x, dtype=torch.float64):
    return torch.tensor(x, dtype=dtype)


def b(x):
    return torch.tensor(x, dtype=torch.bool)


def close(actual, expected, atol=1e-6):
    torch.testing.assert_close(actual, t(expected, actual.dtype), atol=atol, rtol=0)


def random_rollout(seed: int, T: int, N: int, p_done: float):
    """Random rollout whose next_values agree with values inside episodes (as a real rollout would)."""
    g = torch.Generator().manual_seed(seed)
    ext = torch.randn(T + 1, N, generator=g, dtype=torch.float64)
    values = ext[:-1]
    rewards = torch.randn(T, N, generator=g, dtype=torch.float64)
    terminated = torch.rand(T, N, generator=g) < p_done
    truncated = torch.rand(T, N, generator=g) < p_done
    done = terminated | truncated
    # Across a boundary the true next state is the episode's final obs, not the reset obs values[t+1].
    final_obs_values = torch.randn(T, N, generator=g, dtype=torch.float64)
    next_values = torch.where(done, final_obs_values, ext[1:])
    return rewards, values, next_values, terminated, truncated


# ---------------------------------------------------------------- reward_to_go


def test_reward_to_go_undiscounted():
    # G2 = 1, G1 = 0 + 1 = 1, G0 = 1 + 1 = 2
    close(reward_to_go(t([1.0, 0.0, 1.0]), 1.0), [2.0, 1.0, 1.0])


def test_reward_to_go_discounted():
    # G2 = 1, G1 = 1 + .99 = 1.99, G0 = 1 + .99 * 1.99 = 2.9701
    close(reward_to_go(t([1.0, 1.0, 1.0]), 0.99), [2.9701, 1.99, 1.0])


def test_reward_to_go_trailing_dims():
    # gamma .5: G1 = [3, 4]; G0 = [1 + .5*3, 2 + .5*4] = [2.5, 4]
    close(reward_to_go(t([[1.0, 2.0], [3.0, 4.0]]), 0.5), [[2.5, 4.0], [3.0, 4.0]])


# ---------------------------------------------------------------- td_errors


def test_td_errors_hand():
    # d0 = 1 + .9*1 - .5 = 1.4 ; d1 = 2 + 0 (terminated) - 1 = 1.0
    d = td_errors(t([1.0, 2.0]), t([0.5, 1.0]), t([1.0, 3.0]), b([False, True]), 0.9)
    close(d, [1.4, 1.0])


def test_terminal_next_value_is_ignored_even_if_nan():
    nv = t([1.0, math.nan])
    term, trunc = b([False, True]), b([False, False])
    r, v = t([1.0, 2.0]), t([0.5, 1.0])
    assert torch.isfinite(td_errors(r, v, nv, term, 0.9)).all()
    assert torch.isfinite(gae(r, v, nv, term, trunc, 0.9, 0.95)).all()
    assert torch.isfinite(lambda_returns(r, nv, term, trunc, 0.9, 0.95)).all()
    assert torch.isfinite(n_step_targets(r, nv, term, trunc, 0.9, 3)).all()


# ---------------------------------------------------------------- gae


def test_gae_no_dones():
    # deltas = [1, 1, 1]; gamma*lam = .9405
    # A2 = 1; A1 = 1 + .9405 = 1.9405; A0 = 1 + .9405 * 1.9405 = 2.82504025
    z = t([0.0, 0.0, 0.0])
    adv = gae(t([1.0, 1.0, 1.0]), z, z, b([False] * 3), b([False] * 3), 0.99, 0.95)
    close(adv, [2.82504025, 1.9405, 1.0])


def test_gae_lambda_one_terminated_at_end():
    # deltas: 1 + .99*.2 - .5 = .698 ; 1 + .99*.1 - .2 = .899 ; 1 + 0 - .1 = .9
    # A2 = .9 ; A1 = .899 + .99*.9 = 1.79 ; A0 = .698 + .99*1.79 = 2.4701
    r, v, nv = t([1.0, 1.0, 1.0]), t([0.5, 0.2, 0.1]), t([0.2, 0.1, 0.0])
    adv = gae(r, v, nv, b([False, False, True]), b([False] * 3), 0.99, 1.0)
    close(adv, [2.4701, 1.79, 0.9])


def test_gae_lambda_zero_is_td_errors():
    r, v, nv, term, trunc = random_rollout(0, 7, 3, 0.2)
    torch.testing.assert_close(gae(r, v, nv, term, trunc, 0.97, 0.0), td_errors(r, v, nv, term, 0.97))


def test_gae_termination_in_middle_resets():
    # gamma = lam = 1, all deltas 1; episode ends at t=1: A = [2, 1 | 2, 1]
    z = t([0.0] * 4)
    adv = gae(t([1.0] * 4), z, z, b([False, True, False, False]), b([False] * 4), 1.0, 1.0)
    close(adv, [2.0, 1.0, 2.0, 1.0])


def test_gae_truncation_bootstraps_and_resets():
    # gamma .5, lam 1, V = 0, next_values = [0, 5, 0], truncated at t=1
    # deltas: 1 ; 1 + .5*5 = 3.5 ; 1.  A2 = 1 ; A1 = 3.5 (no carry) ; A0 = 1 + .5*3.5 = 2.75
    r, v, nv = t([1.0, 1.0, 1.0]), t([0.0, 0.0, 0.0]), t([0.0, 5.0, 0.0])
    adv = gae(r, v, nv, b([False] * 3), b([False, True, False]), 0.5, 1.0)
    close(adv, [2.75, 3.5, 1.0])


def test_gae_envs_are_independent():
    r, v, nv, term, trunc = random_rollout(1, 6, 4, 0.3)
    full = gae(r, v, nv, term, trunc, 0.9, 0.8)
    for i in range(4):
        col = gae(r[:, i], v[:, i], nv[:, i], term[:, i], trunc[:, i], 0.9, 0.8)
        torch.testing.assert_close(full[:, i], col)


# ---------------------------------------------------------------- lambda_returns


def test_lambda_returns_hand():
    # gamma = lam = .5, nv = [2, 4, 8]
    # G2 = 1 + .5*(.5*8 + .5*8) = 5 ; G1 = 1 + .5*(.5*4 + .5*5) = 3.25 ; G0 = 1 + .5*(.5*2 + .5*3.25) = 2.3125
    r, nv, no = t([1.0] * 3), t([2.0, 4.0, 8.0]), b([False] * 3)
    close(lambda_returns(r, nv, no, no, 0.5, 0.5), [2.3125, 3.25, 5.0])


def test_lambda_returns_truncation_and_termination():
    r, nv, no = t([1.0] * 3), t([2.0, 4.0, 8.0]), b([False] * 3)
    # truncated at t=0: G0 = 1 + .5*(.5*2 + .5*2) = 2
    close(lambda_returns(r, nv, no, b([True, False, False]), 0.5, 0.5), [2.0, 3.25, 5.0])
    # terminated at t=1: G1 = 1 ; G0 = 1 + .5*(.5*2 + .5*1) = 1.75
    close(lambda_returns(r, nv, b([False, True, False]), no, 0.5, 0.5), [1.75, 1.0, 5.0])


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    T=st.integers(1, 12),
    N=st.integers(1, 4),
    gamma=st.floats(0.0, 1.0),
    lam=st.floats(0.0, 1.0),
    p_done=st.sampled_from([0.0, 0.1, 0.5]),
)
def test_lambda_returns_equals_gae_plus_values(seed, T, N, gamma, lam, p_done):
    r, v, nv, term, trunc = random_rollout(seed, T, N, p_done)
    torch.testing.assert_close(
        lambda_returns(r, nv, term, trunc, gamma, lam), gae(r, v, nv, term, trunc, gamma, lam) + v
    )


# ---------------------------------------------------------------- discounted_returns


def test_discounted_returns_hand():
    # gamma .5, nv[2] = 10 bootstraps the tail: G2 = 3 + 5 = 8 ; G1 = 2 + 4 = 6 ; G0 = 1 + 3 = 4
    r, nv, no = t([1.0, 2.0, 3.0]), t([0.0, 0.0, 10.0]), b([False] * 3)
    close(discounted_returns(r, nv, no, no, 0.5), [4.0, 6.0, 8.0])
    # terminated at t=0: G0 = 1
    close(discounted_returns(r, nv, b([True, False, False]), no, 0.5), [1.0, 6.0, 8.0])


def test_discounted_returns_single_episode_is_reward_to_go():
    r = t([1.0, 2.0, 3.0, -1.0])
    term = b([False, False, False, True])
    nv = t([9.0, 9.0, 9.0, 9.0])  # ignored at the terminal step; inside the episode lam=1 never uses it
    torch.testing.assert_close(discounted_returns(r, nv, term, b([False] * 4), 0.9), reward_to_go(r, 0.9))


# ---------------------------------------------------------------- n_step_targets


def test_n_step_one_is_td_target():
    r, v, nv, term, trunc = random_rollout(2, 9, 3, 0.3)
    expected = r + 0.9 * (~term).double() * nv
    torch.testing.assert_close(n_step_targets(r, nv, term, trunc, 0.9, 1), expected)


def test_n_step_long_horizon_is_mc_return():
    # one episode, terminated at the end, gamma .5: G2 = 3 ; G1 = 2 + 1.5 = 3.5 ; G0 = 1 + .5*3.5 = 2.75
    r, nv = t([1.0, 2.0, 3.0]), t([7.0, 7.0, 7.0])
    y = n_step_targets(r, nv, b([False, False, True]), b([False] * 3), 0.5, 5)
    close(y, [2.75, 3.5, 3.0])


def test_n_step_two_with_truncation_and_termination():
    # gamma .5, n 2, nv = [10, 20, 30, 40]
    # truncated at t=1:
    #   y0 = 1 + .5*2 + .25*20 = 7     (window t=0,1 ends at the truncation, bootstrap nv[1])
    #   y1 = 2 + .5*20 = 12            (episode ends at t=1: m = 1)
    #   y2 = 3 + .5*4 + .25*40 = 15
    #   y3 = 4 + .5*40 = 24            (rollout ends: m = 1)
    # terminated at t=1 instead: y0 = 1 + .5*2 = 2 ; y1 = 2 ; the rest unchanged
    r, nv = t([1.0, 2.0, 3.0, 4.0]), t([10.0, 20.0, 30.0, 40.0])
    flag, no = b([False, True, False, False]), b([False] * 4)
    close(n_step_targets(r, nv, no, flag, 0.5, 2), [7.0, 12.0, 15.0, 24.0])
    close(n_step_targets(r, nv, flag, no, 0.5, 2), [2.0, 2.0, 15.0, 24.0])
    # batched over N: column 0 truncated, column 1 terminated
    r2, nv2 = torch.stack([r, r], 1), torch.stack([nv, nv], 1)
    y = n_step_targets(r2, nv2, torch.stack([no, flag], 1), torch.stack([flag, no], 1), 0.5, 2)
    close(y, [[7.0, 2.0], [12.0, 2.0], [15.0, 15.0], [24.0, 24.0]])


@pytest.mark.parametrize("seed", range(5))
def test_n_step_beyond_rollout_is_discounted_return(seed):
    r, v, nv, term, trunc = random_rollout(seed, 8, 3, 0.25)
    torch.testing.assert_close(
        n_step_targets(r, nv, term, trunc, 0.95, 8), discounted_returns(r, nv, term, trunc, 0.95)
    )
    torch.testing.assert_close(
        n_step_targets(r, nv, term, trunc, 0.95, 20), discounted_returns(r, nv, term, trunc, 0.95)
    )


def test_n_step_rejects_zero():
    with pytest.raises(ValueError):
        n_step_targets(t([1.0]), t([1.0]), b([False]), b([False]), 0.9, 0)


# ---------------------------------------------------------------- normalize


def test_normalize_population_std():
    # mean 2, population std sqrt(2/3) = .816497 -> +-1/.816497 = +-1.224745
    close(normalize(t([1.0, 2.0, 3.0])), [-1.224745, 0.0, 1.224745])


def test_normalize_constant_is_zero():
    close(normalize(t([5.0, 5.0, 5.0])), [0.0, 0.0, 0.0], atol=0)
    # 0.1 is not exact in float32, so the mean can be off by an ulp; still exactly zero, no NaN.
    y = normalize(torch.full((7, 3), 0.1, dtype=torch.float32))
    assert torch.equal(y, torch.zeros(7, 3))
    assert torch.equal(normalize(t([3.0])), t([0.0]))


def test_normalize_statistics():
    x = torch.randn(50, 4, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 3 + 7
    y = normalize(x)
    assert abs(y.mean().item()) < 1e-12
    assert abs(y.std(correction=0).item() - 1.0) < 1e-6


# ---------------------------------------------------------------- n-step advantages (A2C, A3C)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_n_step_advantages_are_sums_of_discounted_td_errors_with_episode_ends_inside_the_window(seed):
    """003's equivalence: the n-step advantage R_t^(n) - V(s_t), with R_t^(n) = sum_{k<m} gamma^k r_{t+k} +
    gamma^m V(s_{t+m}) (m: up to the window's end, or the episode's, with no bootstrap after a termination and the
    final observation's value after a truncation), equals sum_{k<m} gamma^k delta_{t+k}; A2C's advantages are that,
    computed as gae(lambda = 1) over a rollout whose end is the window's end."""
    T, N, gamma = 7, 5, 0.9
    rewards, values, next_values, terminated, truncated = random_rollout(seed, T, N, p_done=0.25)
    advantages = gae(rewards, values, next_values, terminated, truncated, gamma, 1.0)
    deltas = td_errors(rewards, values, next_values, terminated, gamma)
    done = terminated | truncated
    for n in range(N):
        for start in range(T):
            # the n-step return written out step by step, the window closing at an episode end or the rollout end
            ret, discount, k = 0.0, 1.0, start
            while True:
                ret += discount * float(rewards[k, n])
                discount *= gamma
                if done[k, n] or k == T - 1:
                    ret += 0.0 if terminated[k, n] else discount * float(next_values[k, n])
                    break
                k += 1
            summed = sum(gamma ** (j - start) * float(deltas[j, n]) for j in range(start, k + 1))
            assert advantages[start, n].item() == pytest.approx(ret - float(values[start, n]), abs=1e-9)
            assert advantages[start, n].item() == pytest.approx(summed, abs=1e-9)
