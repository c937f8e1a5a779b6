"""The recommendation bandit world: its expected rewards by hand and by simulation, its features, the Gymnasium env."""

from __future__ import annotations

import math
import pickle

import gymnasium as gym
import pytest
import torch

import thorndike as th
from thorndike.envs.recommendation_bandit import AGE_SHARES, RecommendationBandit, recommendation_world
from thorndike.envs.recommender import AGE_ERA, AGE_GENRE, LIKES_FAVOURITE


def normal_cdf(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def test_mean_rating_and_expected_click_by_hand():
    world = recommendation_world(n_items=8, reward="click", noise=0.8, taste_sd=0.6, world_seed=3)
    s = math.sqrt(0.8**2 + 0.6**2)
    assert world.scale == pytest.approx(s)
    for age, fav, item in [(0, 0, 0), (1, 3, 5), (4, 5, 7), (2, 1, 2)]:
        c = age * 6 + fav
        genre, era = (int(v) for v in world.item_attributes[item])
        mu = (3.0 + LIKES_FAVOURITE * (fav == genre) + AGE_GENRE[age][genre] + AGE_ERA[age][era]
              + float(world.quality[item]))
        assert float(world.mu[c, item]) == pytest.approx(mu, abs=1e-12)
        assert float(world.expected[c, item]) == pytest.approx(1.0 - normal_cdf((3.5 - mu) / s), abs=1e-12)


def test_expected_rating_by_hand():
    world = recommendation_world(n_items=5, reward="rating", world_seed=1)
    mu, s = float(world.mu[7, 2]), world.scale
    # P(rating = k): the Gaussian's mass in [k - 0.5, k + 0.5), the ends taking the tails (clip to 1..5).
    edges = [-math.inf, 1.5, 2.5, 3.5, 4.5, math.inf]
    probs = [normal_cdf((edges[k] - mu) / s) - normal_cdf((edges[k - 1] - mu) / s) for k in range(1, 6)]
    assert float(world.expected[7, 2]) == pytest.approx(sum(k * p for k, p in zip(range(1, 6), probs)), abs=1e-12)


@pytest.mark.parametrize("reward", ["click", "rating"])
def test_simulated_rewards_match_the_expected_table(reward):
    world = recommendation_world(n_items=6, reward=reward, world_seed=2)
    g = torch.Generator().manual_seed(0)
    n = 200_000
    contexts = torch.tensor([0, 13, 29]).repeat_interleave(n)
    actions = torch.tensor([1, 4, 5]).repeat_interleave(n)
    rewards = world.sample_rewards(contexts, actions, g).view(3, n)
    mean, se = rewards.mean(1), rewards.std(1) / math.sqrt(n)
    expected = world.expected[torch.tensor([0, 13, 29]), torch.tensor([1, 4, 5])]
    assert ((mean - expected).abs() < 4 * se).all(), (mean, expected, se)


def test_contexts_and_oracle():
    world = recommendation_world()
    assert world.context_probs.sum().item() == pytest.approx(1.0)
    assert world.context_probs[6 * 3 + 2].item() == pytest.approx(AGE_SHARES[3] / 6)
    counts = torch.bincount(world.sample_contexts(300_000, torch.Generator().manual_seed(1)), minlength=30)
    assert (counts / 300_000 - world.context_probs).abs().max() < 0.003
    uniform = torch.full((30, world.n_items), 1.0 / world.n_items)
    oracle = torch.nn.functional.one_hot(world.expected.argmax(1), world.n_items)
    assert world.policy_value(oracle) == pytest.approx(world.oracle_value)
    assert world.policy_value(uniform) < world.oracle_value - 0.2
    assert (world.regret(torch.arange(30), world.expected.argmax(1)) == 0).all()


def test_mean_rating_is_linear_in_the_features():
    """mu is exactly linear in the shared (context, item) features, and, item by item, in the context's features:
    least squares fits it to rounding."""
    world = recommendation_world()
    x = world.joint_features().reshape(-1, world.joint_features().shape[-1])
    fit = torch.linalg.lstsq(x, world.mu.reshape(-1, 1), driver="gelsd").solution
    assert (x @ fit - world.mu.reshape(-1, 1)).abs().max() < 1e-9
    xc = world.context_features()
    fit_c = torch.linalg.lstsq(xc, world.mu, driver="gelsd").solution  # one column per item
    assert (xc @ fit_c - world.mu).abs().max() < 1e-9


def test_gymnasium_env_one_step_episodes_and_regret_tally():
    env = gym.make("thorndike/RecommendationBandit-v0", n_items=10)
    raw = env.unwrapped
    assert isinstance(raw, RecommendationBandit)
    obs, info = env.reset(seed=4)
    assert obs.shape == (11,) and obs.sum() == 2 and env.observation_space.contains(obs)
    total = 0.0
    for a in (0, 3, 9):
        c = info["context"]
        obs, reward, terminated, truncated, info = env.step(a)
        assert terminated and not truncated and reward in (0.0, 1.0)
        assert info["regret"] == pytest.approx(float(raw.world.best_value[c] - raw.world.expected[c, a]))
        total += info["regret"]
        obs, info = env.reset()
    assert raw.steps == 3 and raw.total_regret == pytest.approx(total)
    with pytest.raises(ValueError, match="item index"):
        env.step(10)
    with pytest.raises(ValueError, match="reward must be one of"):
        recommendation_world(reward="like")


def test_dqn_takes_the_bandit_through_make(tmp_path):
    """One-step episodes end with terminated, so DQN's target is the reward alone whatever gamma."""
    agent = th.make("dqn", env="thorndike/RecommendationBandit-v0", seed=0, learning_starts=40, train_freq=1,
                    batch_size=16, hidden_sizes=(16,), log_every=60, run_root=str(tmp_path), progress=False,
                    pictures=False, eval_every=0)
    agent.learn(120)
    env = agent.envs._venv.envs[0].unwrapped
    largest_gap = float((env.world.best_value[:, None] - env.world.expected).amax())
    assert env.steps == 120 and 0.0 < env.total_regret < 120 * largest_gap


def test_the_env_passes_thorndikes_env_checker():
    report = th.envs.check("thorndike/RecommendationBandit-v0", steps=100)
    assert "all checks passed" in str(report)


def test_a_pickled_env_goes_on_identically():
    """Checkpoints pickle the env copies; the copy's generator state travels with it, so a resumed run meets the
    same users and rewards."""
    env = RecommendationBandit()
    env.reset(seed=3)
    for _ in range(5):
        env.step(1)
    copy = pickle.loads(pickle.dumps(env))
    for _ in range(5):
        assert env.step(2)[1:] == copy.step(2)[1:] and env.reset()[1] == copy.reset()[1]
    assert env.total_regret == copy.total_regret
