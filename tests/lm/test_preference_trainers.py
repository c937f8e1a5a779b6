"""The preference learners and SCST as trainers: the reward model learns the hidden rule, DPO's loss falls and its
margin rises, RLHF-PPO scores with a saved reward model, padding changes no score. (Save/load, exact resume and
config errors are the contract suite's; the math is in test_rlhf_math.py.)"""

import math
from pathlib import Path

import pytest
import torch

import thorndike as th
from thorndike.config import ConfigError
from thorndike.core.logger import read_progress
from thorndike.lm.model import TinyTransformer, TransformerConfig
from thorndike.lm.reward_model import RewardModel

QUIET = dict(progress=False, tensorboard=False, pictures=False)
SMALL = dict(task="addition", task_size=2, d_model=64, n_layers=1, n_heads=4)


def test_reward_model_score_ignores_padding():
    torch.manual_seed(0)
    trunk = TinyTransformer(TransformerConfig(vocab_size=10, d_model=16, n_layers=1, n_heads=2, max_len=12))
    reward = RewardModel(trunk, 16)
    torch.nn.init.normal_(reward.head.weight)
    ids = torch.tensor([[1, 5, 6, 7, 2]])
    alone = reward(ids, torch.ones_like(ids, dtype=torch.bool))
    # the same sequence left-padded by two and right-padded by three (a finished completion), in a batch
    padded = torch.tensor([[0, 0, 1, 5, 6, 7, 2, 0, 0, 0], [1, 4, 4, 4, 4, 4, 4, 4, 4, 2]])
    mask = torch.tensor([[0, 0, 1, 1, 1, 1, 1, 0, 0, 0], [1] * 10], dtype=torch.bool)
    torch.testing.assert_close(reward(padded, mask)[0], alone[0], atol=1e-5, rtol=1e-5)


def test_reward_model_learns_the_hidden_rule_above_chance(tmp_path: Path):
    agent = th.make("reward_model", **SMALL, lr=1e-3, batch_size=32, heldout_pairs=200, log_every=50, seed=0,
                    run_root=str(tmp_path), **QUIET)
    assert agent.evaluate().mean == 0.0  # the zero head scores every completion 0: every pair a tie, none right
    # 500 steps: at 250, seed 0 stayed at chance on one machine (0.465 on an AVX-512 Xeon, where it had passed on
    # another) while seeds 1-7 reached 0.64-0.71; at 500, seeds 0-3 score 0.635-0.795 there (400: seeds 0-7 0.61-0.78)
    agent.learn(500)
    progress = read_progress(agent.run_dir)
    assert progress["loss"][-1] < progress["loss"][0] - 0.02
    # 200 held-out pairs on test-split prompts: chance is 0.5 with std 0.035, so 0.58 is over two std above it
    assert agent.evaluate().mean > 0.58
    # the scores follow the rule on an easy case: the right sum over junk appended to it
    right, junk = agent.score(["12+34=", "12+34="], ["46", "46+=+"])
    assert right > junk


def test_dpo_loss_falls_and_margin_rises(tmp_path: Path):
    agent = th.make("dpo", **SMALL, lr=1e-3, batch_size=16, beta=0.1, log_every=5, heldout_pairs=64,
                    heldout_every=10, win_prompts=32, eval_prompts=32, seed=0, run_root=str(tmp_path), **QUIET)
    reference = {k: v.clone() for k, v in agent.reference.state_dict().items()}
    # The trainer's loss on one fixed batch of 32 pairs, stepped with its optimiser: at the start the policy is the
    # reference (implicit rewards 0, loss log 2); then the loss falls and the chosen-vs-rejected margin rises.
    batch = agent.data.batch(agent.data.sample(32, agent.generator))
    losses, margins = [], []
    for _ in range(30):
        loss, chosen, rejected = agent.pair_loss(batch)
        agent.lm.clip_and_step(agent.optimizer, loss, agent.global_step)
        losses.append(loss.item())
        margins.append((chosen - rejected).mean().item())
    assert losses[0] == pytest.approx(math.log(2), abs=1e-6) and margins[0] == 0.0
    assert losses[-1] < 0.7 * losses[0]
    assert margins[-1] > 0.5 and margins[-1] > max(margins[:10])
    assert all(torch.equal(v, reference[k]) for k, v in agent.reference.state_dict().items())  # frozen
    # learn() logs the same quantities and the held-out columns
    agent.learn(10)
    progress = read_progress(agent.run_dir)
    assert all(math.isfinite(v) for v in progress["loss"] + progress["margin"])
    assert math.isnan(progress["heldout/win_rate"][0])  # not due at step 5: every row has the column
    assert 0.0 <= progress["heldout/pair_accuracy"][-1] <= 1.0 and 0.0 <= progress["heldout/win_rate"][-1] <= 1.0


def test_pairs_from_the_references_samples(tmp_path: Path):
    from thorndike.lm.tasks import split_of

    agent = th.make("dpo", **SMALL, pair_source="mixed", candidates=4, seed=0, run_root=str(tmp_path), **QUIET)
    pairs = agent.data.sample(16, agent.generator)
    assert len(pairs) == 16 and all(split_of(p.prompt) == "train" for p in pairs)
    rule = agent.data.rule
    assert all(rule(p.prompt, p.chosen) > rule(p.prompt, p.rejected) for p in pairs)
    # every pair fits the model (the batch would be refused otherwise), and the sampled half is the reference's:
    # a random model's samples are rarely a number near the answer, the perturbed half always starts with digits
    agent.pair_loss(agent.data.batch(pairs))
    assert all(p.chosen[:1].isdigit() for p in pairs[:8])
    assert not all(p.chosen[:1].isdigit() and p.rejected[:1].isdigit() for p in pairs[8:])


def test_rlhf_ppo_scores_completions_with_a_saved_reward_model(tmp_path: Path):
    reward_run = th.make("reward_model", **SMALL, batch_size=8, heldout_pairs=16, log_every=5, seed=0,
                         run_root=str(tmp_path), **QUIET).learn(10)
    agent = th.make("rlhf_ppo", **SMALL, batch_size=8, n_epochs=1, log_every=2, heldout_pairs=16,
                    reward_from=str(reward_run.run_dir), seed=0, run_root=str(tmp_path), **QUIET)
    # the loaded reward model is the saved one: the same scores as the run that trained it
    prompts, completions = ["12+34=", "5+5="], ["46", "11=="]
    batch = agent.lm.join(prompts, completions)
    torch.testing.assert_close(agent.score(batch), torch.tensor(reward_run.score(prompts, completions)))
    assert not any(p.requires_grad for p in agent.reward_model.parameters())
    agent.learn(4)
    progress = read_progress(agent.run_dir)
    assert all(math.isfinite(v) for v in progress["reward"] + progress["kl"] + progress["hidden_score"])
    # the reward model did not move, and it is saved with the run
    loaded = th.load(agent.run_dir)
    torch.testing.assert_close(loaded.score(batch), agent.score(batch))


def test_rlhf_ppo_refuses_a_reward_from_that_is_no_reward_model(tmp_path: Path):
    sft = th.make("sft", **SMALL, batch_size=4, log_every=2, seed=0, run_root=str(tmp_path), **QUIET).learn(2)
    with pytest.raises(ConfigError, match="reward_from=.*'sft' run"):
        th.make("rlhf_ppo", **SMALL, reward_from=str(sft.run_dir), run_root=str(tmp_path), **QUIET)
    with pytest.raises(ConfigError, match="task"):
        th.make("dpo", task="sorting", run_root=str(tmp_path), **QUIET)
