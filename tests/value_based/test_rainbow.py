"""Rainbow's own oracles: a gradient step's loss is C51's, double, importance-weighted, composed by hand from the core
functions; noisy exploration (actions change with the noise draws, greedy evaluation with the mean weights does
not); and a short run whose loss falls (the contract suite covers saving, exact resume and bad configs)."""

from __future__ import annotations

from pathlib import Path

import torch

import thorndike as th
from tests.value_based.test_c51 import QUIET, logged_losses
from thorndike.core.distributional import (
    action_distribution,
    categorical_cross_entropy,
    categorical_expectation,
    categorical_projection,
)


def rainbow(tmp_path: Path, **fields):
    return th.make("rainbow", env="CartPole-v1", seed=0, tuned=False, run_root=str(tmp_path), **{**QUIET, **fields})


def test_a_gradient_step_is_the_weighted_double_c51_loss(tmp_path: Path) -> None:
    agent = rainbow(tmp_path, learning_starts=300, hidden_sizes=(16, 16), n_atoms=11, v_min=0.0, v_max=10.0,
                    per_beta=1.0, batch_size=32).learn(300)
    state = agent.generator.get_state()
    # by hand: new noise for both networks, a prioritised minibatch (beta = 1), the online network picks a*
    agent.q.reset_noise(agent.generator)
    agent.q_target.reset_noise(agent.generator)
    batch = agent.buffer.sample(32, agent.generator, 1.0)
    with torch.no_grad():
        support = torch.linspace(0.0, 10.0, 11)
        best = categorical_expectation(torch.softmax(agent.q(batch["next_obs"]), -1), support).argmax(-1)
        next_probs = action_distribution(torch.softmax(agent.q_target(batch["next_obs"]), -1), best)
        discounts = torch.where(batch["terminated"], 0.0, batch["discounts"])
        m = categorical_projection(next_probs, batch["rewards"], discounts, support)
        logits = action_distribution(agent.q(batch["obs"]), batch["actions"].long())
        expected = (batch["weights"] * categorical_cross_entropy(logits, m)).mean()
    agent.generator.set_state(state)
    torch.testing.assert_close(agent.gradient_step(), expected)


def test_noisy_actions_change_between_draws_and_greedy_evaluation_does_not(tmp_path: Path) -> None:
    agent = rainbow(tmp_path, learning_starts=0, hidden_sizes=(32, 32), n_atoms=11)
    obs = torch.randn(512, 4)
    first, second = agent.act_noisy(obs), agent.act_noisy(obs)
    assert (first != second).any()  # each acting step draws new weight noise
    state = agent.generator.get_state()
    again = agent.act_noisy(obs)
    agent.generator.set_state(state)
    assert torch.equal(agent.act_noisy(obs), again)  # the draws come from the agent's generator
    greedy = agent.policy(obs, True, None)
    agent.q.reset_noise(torch.Generator().manual_seed(1))
    assert torch.equal(agent.policy(obs, True, None), greedy)  # mu alone: the noise does not matter
    agent.q.eval()
    mean_q = (torch.softmax(agent.q(obs), -1) * torch.linspace(-10.0, 10.0, 11)).sum(-1)
    agent.q.train()
    assert torch.equal(greedy, mean_q.argmax(-1))
    noise = [b.clone() for b in agent.q.buffers()]
    agent.policy(obs, False, torch.Generator().manual_seed(2))  # a stochastic action leaves the training noise
    assert all(torch.equal(a, b) for a, b in zip(noise, agent.q.buffers(), strict=True))


def test_a_short_cartpole_run_lowers_the_loss(tmp_path: Path) -> None:
    # gamma 0.5 keeps the returns' scale near 2, so the targets settle within the 300 gradient steps
    agent = rainbow(tmp_path, gamma=0.5, learning_starts=100, train_freq=1, target_update_interval=50,
                    hidden_sizes=(32,), n_atoms=21, v_min=0.0, v_max=4.0, batch_size=32, log_every=100).learn(400)
    losses = logged_losses(agent)
    assert len(losses) == 3 and losses[-1] < 0.7 * losses[0]
