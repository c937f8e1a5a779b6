"""Exploration policies (notes: 000 L127/L269-L271/L391, 003 L289-L298; INVENTORY C12, C17, C18)."""

import math

import pytest
import torch

from thorndike.core import exploration
from thorndike.planning import ucb


def test_epsilon_greedy_probabilities_by_hand():
    q = torch.tensor([[1.0, 3.0, 2.0]])
    # greedy action 1 gets 1 - eps + eps/3, the others eps/3 (eps = 0.3)
    probs = exploration.epsilon_greedy_probs(q, 0.3)
    assert torch.allclose(probs, torch.tensor([[0.1, 0.8, 0.1]], dtype=torch.float64))
    # eps = 1 is uniform (C17: epsilon starts at 1)
    assert torch.allclose(exploration.epsilon_greedy_probs(q, 1.0), torch.full((1, 3), 1 / 3, dtype=torch.float64))


def test_ties_share_the_greedy_probability():
    q = torch.tensor([[0.0, 0.0, -1.0, 0.0]])
    assert torch.allclose(exploration.greedy_probs(q), torch.tensor([[1 / 3, 1 / 3, 0.0, 1 / 3]]))
    # per-row epsilon broadcasts over a batch
    probs = exploration.epsilon_greedy_probs(torch.zeros(2, 2), torch.tensor([0.0, 1.0]))
    assert torch.allclose(probs, torch.full((2, 2), 0.5, dtype=torch.float64))


def test_sampled_frequencies_match_epsilon_greedy():
    # C17: the greedy action's frequency tends to 1 - eps + eps/|A|
    q = torch.tensor([2.0, 1.0, 0.0, -1.0]).expand(200_000, 4)
    g = torch.Generator().manual_seed(0)
    actions = exploration.sample(exploration.epsilon_greedy_probs(q, 0.2), g)
    freq = torch.bincount(actions, minlength=4).double() / len(actions)
    expected = torch.tensor([0.85, 0.05, 0.05, 0.05], dtype=torch.float64)
    assert torch.allclose(freq, expected, atol=0.004)  # 4 standard errors of a proportion near 0.85


def test_sample_never_picks_zero_probability_actions():
    probs = torch.tensor([[0.0, 0.5, 0.0, 0.5], [0.0, 0.0, 0.0, 1.0], [1.0, 0.0, 0.0, 0.0]]).repeat(5000, 1)
    actions = exploration.sample(probs, torch.Generator().manual_seed(1)).view(5000, 3)
    assert set(actions[:, 0].tolist()) == {1, 3}
    assert (actions[:, 1] == 3).all() and (actions[:, 2] == 0).all()


def test_boltzmann_by_hand_and_limits():
    # C18: Q = [1, 2], tau = 1 -> [0.268941, 0.731059]
    probs = exploration.boltzmann_probs(torch.tensor([1.0, 2.0]), 1.0)
    assert torch.allclose(probs, torch.tensor([0.268941, 0.731059], dtype=torch.float64), atol=1e-6)
    # tau -> 0 is greedy (tau = 0 exactly as well); large Q stays finite
    assert torch.allclose(exploration.boltzmann_probs(torch.tensor([1.0, 2.0]), 1e-4),
                          torch.tensor([0.0, 1.0], dtype=torch.float64))
    assert torch.equal(exploration.boltzmann_probs(torch.tensor([1.0, 2.0]), 0.0),
                       torch.tensor([0.0, 1.0], dtype=torch.float64))
    big = exploration.boltzmann_probs(torch.tensor([1000.0, 1001.0]), 1.0)
    assert torch.isfinite(big).all() and torch.allclose(big, probs)
    with pytest.raises(ValueError, match="temperature"):
        exploration.boltzmann_probs(torch.tensor([1.0]), -1.0)


def test_ucb_scores_match_the_notes_formula():
    # C12: Q = 0.5, c = sqrt(2), N = 10, n = 2 -> 0.5 + sqrt(2) * sqrt(ln 10 / 2) = 2.017427; n = 0 -> +inf
    q = torch.tensor([0.5, 0.5, 0.0])
    counts = torch.tensor([2, 8, 0])
    scores = exploration.ucb_scores(q, counts, math.sqrt(2))
    assert scores[0].item() == pytest.approx(2.017427, abs=1e-6)
    assert scores[0].item() == pytest.approx(ucb(0.5, math.sqrt(2), 10, 2))  # the planning module's scalar UCB
    assert scores[2].item() == math.inf and exploration.greedy(scores).item() == 2  # untried first
    assert scores[1] < scores[0]  # the bonus shrinks with visits


def test_the_fast_epsilon_greedy_sampler_has_the_same_distribution():
    # two best actions (0 and 2) share 1 - eps; eps = 0.3 over 4 actions -> (0.425, 0.075, 0.425, 0.075)
    q = torch.tensor([1.0, 0.0, 1.0, -2.0], dtype=torch.float64).expand(200_000, 4)
    actions = exploration.epsilon_greedy_sample(q, torch.full((200_000,), 0.3), torch.Generator().manual_seed(2))
    freq = torch.bincount(actions, minlength=4).double() / len(actions)
    assert torch.allclose(freq, exploration.epsilon_greedy_probs(q[:1], 0.3)[0], atol=0.005)


def test_decayed_epsilon_and_the_notes_rtdp_numbers():
    # C11: 0.9 * 0.995^1000 = 0.0059886; floored at end
    eps = exploration.decayed_epsilon(0.9, 0.995, 0.0, torch.tensor([0, 1000]))
    assert eps[1].item() == pytest.approx(0.0059886, rel=1e-4) and eps[0].item() == 0.9
    assert exploration.decayed_epsilon(0.9, 0.995, 0.01, torch.tensor([1000])).item() == 0.01


def test_behaviour_probs_dispatch_and_errors():
    q = torch.tensor([[0.0, 1.0]])
    assert torch.equal(exploration.behaviour_probs("greedy", q), torch.tensor([[0.0, 1.0]]))
    with pytest.raises(ValueError, match="visit counts"):
        exploration.behaviour_probs("ucb", q)
    with pytest.raises(ValueError, match="unknown exploration"):
        exploration.behaviour_probs("softmax", q)


def test_linear_and_glie_epsilon_schedules_by_hand():
    k = torch.tensor([0, 5, 10, 20])
    # linear from 1.0 to 0.1 over 10 episodes: 1.0, 0.55, 0.1, 0.1
    linear = exploration.decayed_epsilon(1.0, 1.0, 0.1, k, "linear", horizon=10)
    assert torch.allclose(linear, torch.tensor([1.0, 0.55, 0.1, 0.1], dtype=torch.float64))
    # GLIE: 1 / (1 + k) = 1, 1/6, 1/11, 1/21 (floored at 0.05 -> 0.05 for k = 20)
    glie = exploration.decayed_epsilon(1.0, 1.0, 0.05, k, "glie")
    assert torch.allclose(glie, torch.tensor([1.0, 1 / 6, 1 / 11, 0.05], dtype=torch.float64))
    with pytest.raises(ValueError, match="horizon"):
        exploration.decayed_epsilon(1.0, 1.0, 0.1, k, "linear")
    with pytest.raises(ValueError, match="unknown epsilon schedule"):
        exploration.decayed_epsilon(1.0, 1.0, 0.1, k, "cosine")
