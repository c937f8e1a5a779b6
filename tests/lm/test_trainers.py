"""The shared parts of the LM trainers (thorndike/lm/common.py), SFT and GRPO: oracles on hand-made batches and
small learning runs on 1-digit addition (each well under 5 s)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import thorndike as th
from thorndike.config import ConfigError
from thorndike.lm.grpo import grpo_advantages, grpo_loss
from thorndike.lm.losses import group_advantages
from thorndike.lm.model import sequence_logprobs
from thorndike.lm.tasks import split_of

QUIET = dict(progress=False, tensorboard=False, pictures=False)
TINY = dict(task="addition", task_size=1, d_model=32, n_layers=2, n_heads=2, **QUIET)


def make(algo: str, tmp_path: Path, seed: int = 0, **fields) -> th.Agent:
    return th.make(algo, seed=seed, run_root=str(tmp_path), tuned=False, **{**TINY, **fields})


# ---- the shared parts -----------------------------------------------------------------------------------------------


def test_join_left_pads_and_masks_the_completion(tmp_path: Path) -> None:
    lm = make("sft", tmp_path).lm
    tok = lm.tokenizer
    batch = lm.join(["1+2=", "10+20="], ["3", "30"])
    bos, eos, pad = tok.bos_id, tok.eos_id, tok.pad_id
    first = [pad, pad, pad, bos, *tok.encode("1+2="), *tok.encode("3"), eos]
    second = [bos, *tok.encode("10+20="), *tok.encode("30"), eos]
    assert batch.ids.tolist() == [first, second]
    assert batch.attention_mask.tolist() == [[False] * 3 + [True] * 7, [True] * 10]
    assert batch.completion_mask.tolist() == [[False] * 8 + [True] * 2, [False] * 7 + [True] * 3]
    assert batch.token_mask.shape == (2, 9)


def test_sample_groups_are_prompt_major_and_reproducible(tmp_path: Path) -> None:
    lm = make("grpo", tmp_path).lm
    draws = [lm.sample(["1+2=", "3+4="], 3, torch.Generator().manual_seed(7)) for _ in range(2)]
    assert draws[0].prompts == ["1+2="] * 3 + ["3+4="] * 3
    assert draws[0].texts == draws[1].texts and torch.equal(draws[0].ids, draws[1].ids)
    # the completion mask marks exactly the generated tokens up to and including EOS (or the budget)
    lengths = draws[0].completion_mask.sum(1)
    assert bool((lengths >= 1).all()) and bool((lengths <= lm.max_new_tokens).all())


def test_evaluate_is_greedy_exact_match_accuracy_on_the_fixed_heldout_set(tmp_path: Path) -> None:
    agent = make("sft", tmp_path, eval_prompts=10).learn(100)
    result = agent.evaluate()
    examples = agent.lm.heldout(10)
    assert all(split_of(e.prompt) == "test" for e in examples)
    completions = agent.complete([e.prompt for e in examples])
    correct = [float(agent.lm.task.is_correct(e.prompt, c)) for e, c in zip(examples, completions)]
    assert result.returns == correct and result.mean == pytest.approx(sum(correct) / 10)
    assert agent.evaluate(episodes=3).returns == correct[:3]  # a prefix of the same fixed set


def test_bad_task_and_sizes_are_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="task='additon'.*addition"):
        make("sft", tmp_path, task="additon")
    with pytest.raises(ConfigError, match="task_size=40.*digits"):
        make("sft", tmp_path, task_size=40)
    with pytest.raises(ValueError, match="not in the tokenizer's alphabet"):
        make("sft", tmp_path).complete(["a+b="])


def test_the_step_size_decays_linearly_to_its_final_fraction_and_is_what_the_optimiser_uses(tmp_path: Path) -> None:
    agent = make("grpo", tmp_path, lr=1e-3, lr_final_fraction=0.1, lr_decay_steps=10, batch_size=2, group_size=2,
                 log_every=1)
    assert [agent.lm.step_size(t) for t in (0, 5, 10, 50)] == pytest.approx([1e-3, 5.5e-4, 1e-4, 1e-4])
    agent.learn(6)  # the sixth update (step 5) ran at the schedule's value there
    assert agent.optimizer.param_groups[0]["lr"] == pytest.approx(5.5e-4)
    assert make("grpo", tmp_path).lm.step_size(10**6) == 1e-3  # lr_final_fraction None: constant
    with pytest.raises(ConfigError, match=r"lr_final_fraction=1.5.*\[0, 1\]"):
        make("grpo", tmp_path, lr_final_fraction=1.5)
    with pytest.raises(ConfigError, match="lr_decay_steps=0"):
        make("grpo", tmp_path, lr_final_fraction=0.0, lr_decay_steps=0)


# ---- SFT ----------------------------------------------------------------------------------------------------------


def test_sft_lowers_the_loss_and_raises_heldout_accuracy(tmp_path: Path) -> None:
    agent = make("sft", tmp_path, n_layers=1, batch_size=64, lr=1e-2, log_every=50, eval_prompts=10)
    before = agent.evaluate().mean
    agent.learn(150)
    losses = [float(r) for r in _column(agent.run_dir, "loss")]
    after = agent.evaluate().mean
    assert losses[-1] < 0.6 * losses[0], losses
    assert before <= 0.1 and after >= 0.6, (before, after)


def test_no_heldout_prompt_is_ever_trained_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str] = []
    for algo in ("sft", "grpo"):
        agent = make(algo, tmp_path, batch_size=16, group_size=2, log_every=5) if algo == "grpo" else \
            make(algo, tmp_path, batch_size=64, log_every=5)
        real_join, real_sample = agent.lm.join, agent.lm.sample

        def join(prompts, completions, eos=True, real_join=real_join):
            seen.extend(prompts)
            return real_join(prompts, completions, eos)

        def sample(prompts, *args, real_sample=real_sample, **kwargs):
            if not kwargs.get("greedy"):
                seen.extend(prompts)
            return real_sample(prompts, *args, **kwargs)

        monkeypatch.setattr(agent.lm, "join", join)
        monkeypatch.setattr(agent.lm, "sample", sample)
        agent.learn(20)
        heldout = {e.prompt for e in agent.lm.heldout(10)}
        assert seen and all(split_of(p) == "train" for p in seen)
        assert not heldout & set(seen)


def test_a_warm_start_loads_the_sft_weights_and_refuses_a_bad_path_or_shape(tmp_path: Path) -> None:
    sft = make("sft", tmp_path, log_every=10).learn(20)
    grpo = make("grpo", tmp_path, seed=3, init_from=str(sft.run_dir))
    for key, value in sft.lm.model.state_dict().items():
        assert torch.equal(grpo.lm.model.state_dict()[key], value), key
        assert torch.equal(grpo.reference.state_dict()[key], value), key  # the reference is the warm start
    checkpoint = make("grpo", tmp_path, init_from=str(sft.run_dir / "final.pt"))
    assert torch.equal(checkpoint.lm.model.embed.weight, sft.lm.model.embed.weight)
    with pytest.raises(ConfigError, match="init_from=.*does not exist"):
        make("grpo", tmp_path, init_from=str(tmp_path / "nowhere"))
    with pytest.raises(ConfigError, match="init_from=.*another shape.*'d_model': 32"):
        make("grpo", tmp_path, d_model=16, init_from=str(sft.run_dir))
    with pytest.raises(ConfigError, match="init_from=.*another task"):
        make("grpo", tmp_path, task="sorting", task_size=3, init_from=str(sft.run_dir))


# ---- GRPO ---------------------------------------------------------------------------------------------------------


def test_grpo_normalises_within_each_prompts_group_not_over_the_batch() -> None:
    # INVENTORY E36: a group is the G completions of ONE prompt. Prompt 0 is easy (all right), prompt 1 hard (one
    # right of four): normalising over the whole batch would reward prompt 0's completions for the prompt being easy;
    # GRPO gives them zero advantage and ranks prompt 1's completions among themselves.
    rewards = torch.tensor([1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 1.0])
    advantages = grpo_advantages(rewards, group_size=4)
    third = 1 / 3**0.5
    assert advantages.tolist() == pytest.approx([0, 0, 0, 0, -third, -third, -third, 3 * third])
    over_batch = (rewards - rewards.mean()) / rewards.std(correction=0)
    assert bool((over_batch[:4] > 0.7).all())  # what "groups of all possible actions" would give
    assert torch.equal(advantages.view(2, 4), group_advantages(rewards.view(2, 4)))


def _hand_batch(agent: th.Agent, rewards: list[float]):
    lm = agent.lm
    batch = lm.join(["1+2="] * 4 + ["5+5="] * 4, ["3", "4", "3", "33", "10", "7", "0", "55"])
    return batch, torch.tensor(rewards)


def test_an_all_equal_group_gives_no_policy_gradient(tmp_path: Path) -> None:
    agent = make("grpo", tmp_path, group_size=4)
    model = agent.lm.model
    batch, rewards = _hand_batch(agent, [0.5, 0.5, 0.5, 0.5, 0.0, 1.0, 0.0, 1.0])
    advantages = grpo_advantages(rewards, 4)
    assert torch.equal(advantages[:4], torch.zeros(4))

    def gradient(rows: slice, kl_coef: float = 0.0) -> list[torch.Tensor]:
        model.zero_grad()
        logp = sequence_logprobs(model, batch.ids[rows], batch.attention_mask[rows], batch.completion_mask[rows])
        loss, _ = grpo_loss(logp, logp.detach(), logp.detach(), advantages[rows], batch.token_mask[rows], 0.2,
                            kl_coef)
        loss.backward()
        return [p.grad.clone() for p in model.parameters()]

    flat = gradient(slice(0, 4))
    assert all(torch.equal(g, torch.zeros_like(g)) for g in flat)  # the all-equal group: exactly nothing
    assert any(g.abs().sum() > 0 for g in gradient(slice(4, 8)))  # the other group moves the policy
    both = gradient(slice(0, 8))  # the flat group changes nothing but the 1/G averaging over more completions
    assert all(torch.allclose(2 * a, b, atol=1e-7) for a, b in zip(both, gradient(slice(4, 8))))


def test_the_kl_term_is_zero_when_policy_equals_reference(tmp_path: Path) -> None:
    agent = make("grpo", tmp_path, group_size=4)
    batch, rewards = _hand_batch(agent, [0.0, 1.0, 0.5, 0.0, 0.0, 1.0, 0.0, 1.0])
    advantages = grpo_advantages(rewards, 4)
    reference = agent.reference  # a fresh agent: the policy IS the reference
    model = agent.lm.model
    ref_logp = sequence_logprobs(reference, batch.ids, batch.attention_mask, batch.completion_mask)
    logp = sequence_logprobs(model, batch.ids, batch.attention_mask, batch.completion_mask)
    assert torch.equal(logp, ref_logp)
    grads = []
    for kl_coef in (0.0, 10.0):
        model.zero_grad()
        loss, kl = grpo_loss(sequence_logprobs(model, batch.ids, batch.attention_mask, batch.completion_mask),
                             logp.detach(), ref_logp, advantages, batch.token_mask, 0.2, kl_coef)
        loss.backward()
        assert float(kl.detach()) == 0.0
        grads.append([p.grad.clone() for p in model.parameters()])
    assert all(torch.allclose(a, b) for a, b in zip(*grads))
    # once the policy has moved, the KL is positive and the term pulls it back
    with torch.no_grad():
        model.embed.weight.add_(0.5 * torch.randn_like(model.embed.weight))
    moved = sequence_logprobs(model, batch.ids, batch.attention_mask, batch.completion_mask)
    _, kl = grpo_loss(moved, moved.detach(), ref_logp, advantages, batch.token_mask, 0.2, 1.0)
    assert float(kl.detach()) > 1e-3


def test_a_grpo_update_raises_the_better_completions_and_lowers_the_worse(tmp_path: Path) -> None:
    # One round on a hand-made batch: within each group, the completions above their group's mean reward become more
    # likely and those below less; the flat group (prompt 0: all rewards equal) is left to the KL term alone.
    agent = make("grpo", tmp_path, group_size=4, inner_epochs=3, lr=1e-3, kl_coef=0.0)
    batch, rewards = _hand_batch(agent, [0.5, 0.5, 0.5, 0.5, 1.0, 0.0, 0.0, 1.0])
    model = agent.lm.model

    def sequence_logp() -> torch.Tensor:
        with torch.no_grad():
            logp = sequence_logprobs(model, batch.ids, batch.attention_mask, batch.completion_mask)
        return logp.sum(-1)

    before = sequence_logp()
    stats = agent.update(batch, rewards)
    change = sequence_logp() - before
    assert float(change[4]) > 0 and float(change[7]) > 0  # reward 1 in a group of mean 0.5
    assert float(change[5]) < 0 and float(change[6]) < 0
    assert 0 <= float(stats["clip_fraction"]) <= 1 and float(stats["kl"]) >= 0


def _column(run_dir: Path, name: str) -> list[str]:
    import csv

    with open(run_dir / "progress.csv", newline="") as f:
        return [row[name] for row in csv.DictReader(f)]


def test_skip_flat_groups_makes_no_update_when_every_group_is_flat(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    for skip in (True, False):
        agent = make("grpo", tmp_path, batch_size=2, group_size=4, log_every=5, skip_flat_groups=skip, kl_coef=0.1)
        monkeypatch.setattr(agent.lm, "rewards", lambda batch, exact=False: torch.full((len(batch.texts),), 0.5))
        before = {k: v.clone() for k, v in agent.lm.model.state_dict().items()}
        agent.learn(5)
        (row,) = [float(v) for v in _column(agent.run_dir, "flat_groups")]
        assert row == 1.0
        stepped = bool(agent.optimizer.state)
        assert stepped is not skip  # skipped: not even Adam's step count moves
        if skip:
            assert all(torch.equal(before[k], v) for k, v in agent.lm.model.state_dict().items())


def test_the_gpt2_backbone_trains_saves_and_loads(tmp_path: Path) -> None:
    pytest.importorskip("transformers")
    agent = make("grpo", tmp_path, backbone="gpt2", d_model=16, n_layers=1, n_heads=2, batch_size=2, group_size=4,
                 log_every=2, kl_coef=0.1).learn(4)
    assert type(agent.lm.model).__name__ == "HFCausalLM" and agent.lm.model.max_len == agent.lm.max_len
    loaded = th.load(agent.run_dir / "final.pt")
    prompts = ["1+2=", "7+8="]
    assert loaded.complete(prompts) == agent.complete(prompts)
